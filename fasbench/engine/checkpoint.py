"""Checkpoints: one folder per checkpoint, complete or absent.

Layout of a run's ``checkpoint/`` folder::

    step-00000120/                  the newest complete checkpoint
        model.safetensors           trainable weights (frozen teachers are pinned by URI, not saved)
        trainer.pt                  loop state: optimiser, schedule, grad scaler, every random state,
                                    curve, selection state, run identity, config, code version
        manifest.json               step, size and sha256 of both files (written last)
    best/step-00000100.safetensors  weights of the best evaluation so far (checkpoint selection)
    .step-00000140.HOST.PID.TOKEN.tmp/   a checkpoint being written (or left by a killed writer)

A checkpoint is written into a temporary folder (every file fsynced, then the folder), renamed
onto ``step-N`` in one step and the parent fsynced; only then are older checkpoints removed.
A kill, Ctrl-C or full disk at any point leaves the previous checkpoint intact beside, at
worst, a temporary folder, which the next start removes (:func:`clean`). :func:`latest` picks
the newest folder whose manifest matches its files.

``FAULT_HOOK`` is a seam for fault-injection tests: when set, it is called with the name of
each write point (``begin``, ``model``, ``state``, ``manifest``, ``renamed``, ``pruned``,
``best``) and may kill the process there.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model

from fasbench.errors import FasbenchError
from fasbench.util import atomic_target, clean_leftovers, fsync_dir, fsync_file, temp_name

MODEL = "model.safetensors"
STATE = "trainer.pt"
MANIFEST = "manifest.json"
BEST = "best"
FORMAT = 2  # 1: model.safetensors + trainer.pt directly in checkpoint/ (fasbench <= 0.1, not resumable)

_UNIT = re.compile(r"^step-(\d{8})$")
_BEST = re.compile(r"^step-(\d{8})\.safetensors$")

FAULT_HOOK: Callable[[str], None] | None = None


def _at(point: str) -> None:
    if FAULT_HOOK is not None:
        FAULT_HOOK(point)


def unit_name(step: int) -> str:
    return f"step-{int(step):08d}"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def units(ckpt_dir: Path) -> list[tuple[int, Path]]:
    """Complete-looking checkpoint folders, newest first."""
    if not ckpt_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in ckpt_dir.iterdir() if p.is_dir() and (m := _UNIT.match(p.name))]
    return sorted(found, reverse=True)


def best_files(ckpt_dir: Path) -> dict[int, Path]:
    d = ckpt_dir / BEST
    if not d.is_dir():
        return {}
    return {int(m.group(1)): p for p in d.iterdir() if (m := _BEST.match(p.name))}


def clean(ckpt_dir: Path, keep_best_upto: int | None = None) -> list[Path]:
    """Remove what an interrupted writer left: temp files and folders of dead writers, and
    (``keep_best_upto``: the step of the checkpoint being resumed) best-weights files written
    after that checkpoint, which the resumed run writes again. Returns what was removed."""
    removed = clean_leftovers(ckpt_dir) + clean_leftovers(ckpt_dir / BEST)
    if keep_best_upto is not None:
        for step, path in best_files(ckpt_dir).items():
            if step > keep_best_upto:
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def save(ckpt_dir: Path, method: torch.nn.Module, state: dict[str, Any], keep: int = 1) -> Path:
    """Write a complete checkpoint of ``method`` and the loop ``state`` (which must name its
    ``step``) as ``ckpt_dir/step-N``; then remove checkpoints older than the newest ``keep``
    (at least this one) and best-weights files that ``state["best"]`` no longer names. A failure
    leaves the previous checkpoint as it was."""
    step = int(state["step"])
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    final = ckpt_dir / unit_name(step)
    tmp = ckpt_dir / temp_name(final.name)
    try:
        tmp.mkdir()
        _at("begin")
        save_model(method, str(tmp / MODEL), metadata={"step": str(step)})
        fsync_file(tmp / MODEL)
        _at("model")
        torch.save({**state, "format": FORMAT}, tmp / STATE)
        fsync_file(tmp / STATE)
        _at("state")
        manifest = {"format": FORMAT, "step": step,
                    "files": {n: {"bytes": (tmp / n).stat().st_size, "sha256": _sha256(tmp / n)} for n in (MODEL, STATE)}}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        fsync_file(tmp / MANIFEST)
        fsync_dir(tmp)
        _at("manifest")
        if final.exists():  # the same step written again (a resumed run's last step): replace it
            shutil.rmtree(final)
        os.rename(tmp, final)
        fsync_dir(ckpt_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _at("renamed")
    for old_step, path in units(ckpt_dir)[max(1, int(keep)):]:  # newest first
        if old_step != step:
            shutil.rmtree(path, ignore_errors=True)
    keep = (state.get("best") or {}).get("step")
    for best_step, path in best_files(ckpt_dir).items():
        if best_step != keep and best_step <= step:
            path.unlink(missing_ok=True)
    _at("pruned")
    return final


def finish(ckpt_dir: Path, keep: int = 0) -> list[Path]:
    """After a run's record is written: keep the newest ``keep`` checkpoints (``trainer.keep_checkpoints``)
    and remove the rest, best-weights files included (the record and the selected student's weights
    stay in the run directory). ``keep=0`` removes the checkpoint folder. Returns what was removed."""
    if not ckpt_dir.is_dir():
        return []
    keep = max(0, int(keep))
    if keep == 0:
        shutil.rmtree(ckpt_dir, ignore_errors=True)
        return [ckpt_dir]
    gone = [path for _, path in units(ckpt_dir)[keep:]] + list(best_files(ckpt_dir).values())
    for path in gone:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if (ckpt_dir / BEST).is_dir() and not any((ckpt_dir / BEST).iterdir()):
        (ckpt_dir / BEST).rmdir()
    return gone


def save_best(ckpt_dir: Path, method: torch.nn.Module, step: int) -> Path:
    """Weights of the best evaluation so far, atomically (the loop state names the step)."""
    path = ckpt_dir / BEST / f"{unit_name(step)}.safetensors"
    with atomic_target(path) as tmp:
        save_model(method, str(tmp), metadata={"step": str(int(step))})
    _at("best")
    return path


def load_best(ckpt_dir: Path, method: torch.nn.Module, step: int) -> None:
    path = ckpt_dir / BEST / f"{unit_name(step)}.safetensors"
    if not path.exists():
        raise FasbenchError(f"the selected checkpoint's weights {path} are missing; delete {ckpt_dir.parent} and rerun the task")
    _load_weights(method, path)


def _load_weights(method: torch.nn.Module, path: Path) -> None:
    try:
        load_model(method, str(path), strict=True)
    except Exception as exc:
        raise FasbenchError(
            f"checkpoint {path} does not fit this method ({str(exc).splitlines()[0][:200]}); it was written by another "
            "configuration: delete the run directory or run without --resume"
        ) from exc


def _verify(unit: Path) -> dict[str, Any]:
    """The manifest of a checkpoint folder after checking its files against it (sizes and
    sha256); a FasbenchError naming what is wrong otherwise."""
    try:
        manifest = json.loads((unit / MANIFEST).read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FasbenchError(f"checkpoint {unit} has no readable {MANIFEST} ({type(exc).__name__})") from None
    for name in (MODEL, STATE):
        path, want = unit / name, files.get(name) or {}
        if not path.exists():
            raise FasbenchError(f"checkpoint {unit} lacks {name}")
        if path.stat().st_size != want.get("bytes") or _sha256(path) != want.get("sha256"):
            raise FasbenchError(f"checkpoint {unit}: {name} does not match its manifest (size or sha256 differ: the file is damaged)")
    return manifest


def check(ckpt_dir: Path) -> int | None:
    """Check the newest checkpoint without a model (files against the manifest, loop state
    readable); its step, None when there is none. The errors of :func:`latest`."""
    return _newest_state(ckpt_dir)[0]


def _newest_state(ckpt_dir: Path) -> tuple[int | None, Path | None, dict[str, Any] | None]:
    found = units(ckpt_dir)
    if not found:
        if (ckpt_dir / MODEL).exists() or (ckpt_dir / STATE).exists():
            raise FasbenchError(
                f"checkpoint {ckpt_dir} is in the layout of an older fasbench (not resumable exactly); "
                "run without --resume to restart the task"
            )
        return None, None, None
    step, unit = found[0]
    fix = f"delete {unit} to " + ("resume from the checkpoint before it" if len(found) > 1 else "restart the task") \
        + ", or run without --resume"
    try:
        _verify(unit)
        state = torch.load(unit / STATE, map_location="cpu", weights_only=True)
    except FasbenchError as exc:
        raise FasbenchError(f"{exc}; {fix}") from None
    except Exception as exc:
        raise FasbenchError(f"checkpoint {unit}: {STATE} cannot be read ({type(exc).__name__}); {fix}") from None
    if not isinstance(state, dict) or int(state.get("step", -1)) != step:
        raise FasbenchError(f"checkpoint {unit}: {STATE} is not the loop state of step {step}; {fix}")
    return step, unit, state


def latest(ckpt_dir: Path, method: torch.nn.Module) -> dict[str, Any] | None:
    """Load the newest complete checkpoint into ``method`` and return its loop state (None when
    there is none). A damaged checkpoint is one clear error, never silently skipped: the fix
    (delete it, which resumes from the one before if any, or restart) is the user's choice."""
    _, unit, state = _newest_state(ckpt_dir)
    if state is None:
        return None
    _load_weights(method, unit / MODEL)
    return state


def read_state(ckpt_dir: Path) -> dict[str, Any] | None:
    """The newest checkpoint's loop state without loading weights (None if absent or unreadable)."""
    for _, unit in units(ckpt_dir)[:1]:
        try:
            state = torch.load(unit / STATE, map_location="cpu", weights_only=True)
        except Exception:
            return None
        return state if isinstance(state, dict) else None
    return None


def estimate_bytes(method: torch.nn.Module) -> int:
    """Disk a run's checkpoints may need at their peak: two checkpoints side by side (weights +
    optimiser state, ~2 moments per trainable tensor) and one best-weights file."""
    weights = sum(t.numel() * t.element_size() for t in method.state_dict().values())
    trainable = sum(p.numel() * p.element_size() for p in method.parameters() if p.requires_grad)
    return 2 * (weights + 2 * trainable) + weights + (1 << 20)
