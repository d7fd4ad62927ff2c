"""pluggy hook specifications of fasbench.

A plugin is a module with ``@hookimpl`` functions named after these specs, listed under
``[project.entry-points.fasbench]`` in its ``pyproject.toml``. Every ``register_*`` hook
receives a ``register(name, factory, *, version=1, description="", **meta)`` callable;
``factory`` may be a callable or a lazy ``"module:attr"`` string (preferred: it keeps
``fasbench --help`` free of heavy imports).
"""
from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("fasbench")
hookimpl = pluggy.HookimplMarker("fasbench")


@hookspec
def register_datasets(register):
    """Register datasets: ``factory(cfg, progress=True) -> FrameSet`` where ``cfg`` is the
    ``data`` config and ``progress`` says whether long work may show a tqdm bar.

    The FrameSet is a sample manifest (one row per frame; columns dataset, domain, video_id,
    subject, split, label (1 = live), attack, path, frame) plus uint8 ``(N, H, W, 3)`` pixels.
    """


@hookspec
def register_protocols(register):
    """Register protocols: ``factory() -> fasbench.protocols.Protocol`` (named tasks, each
    ``sources -> target`` over domain letters, with the splits each side uses)."""


@hookspec
def register_students(register):
    """Register students: ``factory(**cfg) -> nn.Module`` exposing ``features(x)`` (dict of
    named tensors, at least ``"pooled"``) and ``logits(x)`` (live/spoof logits, class 1 = live)."""


@hookspec
def register_teachers(register):
    """Register teachers: frozen networks with ``kind`` (perceptual / generative), ``weights``
    URI and ``features(x)`` on their own input size and normalisation."""


@hookspec
def register_aligners(register):
    """Register aligners: ``factory(cfg, ctx) -> Aligner``; an aligner maps
    ``(batch, student) -> (batch, losses)`` (it may perturb the inputs or add losses)."""


@hookspec
def register_methods(register):
    """Register methods (recipes): ``factory(cfg, ctx) -> fasbench.api.Method`` with
    ``training_step(batch) -> dict[str, Tensor]`` and ``predict(x) -> live score in [0, 1]``."""


@hookspec
def register_metrics(register):
    """Register metrics: ``fn(scores: ScoreSet, threshold: float) -> float`` (percent), with
    ``uses_threshold=`` (False for rank metrics such as AUC) and ``higher_is_better=`` in the
    registration. A run computes the metrics its ``eval.metrics`` names, on the source-val split
    and on the target under each threshold policy (docs/evaluation.md)."""


@hookspec
def register_commands(subparsers):
    """Add CLI subcommands to the ``fasbench`` argparse ``subparsers``; each parser sets
    ``func=callable(args) -> int`` with ``set_defaults``."""


@hookspec(firstresult=True)
def resolve_weights(uri):
    """Resolve a custom weight URI scheme to a local safetensors path (or None to pass)."""
