"""pluggy hook specifications of fasbench.

A plugin is a module with ``@hookimpl`` functions named after these specs, listed under
``[project.entry-points.fasbench]`` in its ``pyproject.toml``. Every ``register_*`` hook
receives a ``register(name, factory, *, version=1, description="", options=None, **meta)``
callable; ``factory`` may be a callable or a lazy ``"module:attr"`` string (preferred: it
keeps ``fasbench --help`` free of heavy imports). ``options`` is the component's
:class:`fasbench.options.Options` subclass (or a ``"module:Class"`` string naming it, in a
torch-free module): its typed fields with defaults are the component's config keys, declared
once; the factory receives the validated instance. docs/architecture.md describes every
kind's contract and the files a plugin author touches.
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

    A real dataset (the user's own copy in its official layout) registers the shared builder
    ``"fasbench.data.real_dataset:build"`` with ``real=fasbench.data.indexers.DatasetSpec(letter,
    title, index, official, layout, url)``: that one registration gives it ``fasbench data
    check/prepare``, dataset roots, the split conventions and ``--data NAME`` (docs/datasets.md,
    "Adding a dataset"; examples/dataset-example).
    """


@hookspec
def register_protocols(register):
    """Register protocols: ``factory() -> fasbench.protocols.Protocol`` (named tasks, each
    ``sources -> target`` over domain letters, with the splits each side uses)."""


@hookspec
def register_students(register):
    """Register students: ``factory(options, ctx) -> fasbench.api.Student`` (``features(x01,
    intermediates)`` with at least ``"pooled"``, ``classify(pooled)``, ``num_features``,
    ``normalize``); images are RGB in [0, 1] and the student normalises them itself."""


@hookspec
def register_teachers(register):
    """Register teachers: ``factory(options, ctx) -> fasbench.api.Teacher`` (frozen; ``kind``;
    ``features(x01, names)``; ``feature_shapes()``). Options subclass
    ``fasbench.api.TeacherOptions``; ``weights=`` in the registration is the default weights URI,
    or a mapping ``{"synthetic": URI, "*": URI}`` by dataset; the harness picks the URI."""


@hookspec
def register_aligners(register):
    """Register aligners: ``factory(options, ctx) -> fasbench.api.Aligner``; an aligner maps
    ``(batch, student) -> (batch, losses)`` (it may perturb the [0, 1] inputs or add losses)."""


@hookspec
def register_methods(register):
    """Register methods (recipes): ``factory(options, ctx) -> fasbench.api.Method`` with
    ``training_step(batch) -> dict[str, Tensor]`` and ``predict(x01) -> live score in [0, 1]``.
    ``data_defaults={"synthetic": {...}, "*": {...}}`` in the registration changes the method's
    defaults on those datasets (``*`` = any other); command-line overrides still win."""


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
