"""What makes two runs the same setting: the result-relevant config hash, config and identity
checks before resuming or overwriting, and the software versions a record carries."""
from __future__ import annotations

import platform
from typing import Any

import fasbench
from fasbench.errors import FasbenchError
from fasbench.records import fields_diff

#: Config keys that do not change results (or are recorded elsewhere): left out of the
#: config hash so that seeds and output places of one setting average together.
#: ``device`` is left out because the effective precision (cpu-fp32, cuda-bf16, ...) is part of
#: the run identity instead; the ``eval.metrics`` list and the bootstrap settings only choose
#: which numbers are reported, never the numbers themselves.
NON_RESULT_KEYS = ("seed", "out", "tasks", "device", "trainer.num_workers", "trainer.jobs_per_gpu", "trainer.log_every",
                   "trainer.logger", "trainer.keep_checkpoints", "trainer.checkpoint_every", "eval.batch_size", "eval.metrics",
                   "eval.bootstrap",
                   "eval.ci_level", "data.cache_dir", "data.roots")


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def config_diff(a: dict, b: dict) -> list[str]:
    """Result-relevant dotted keys whose values differ between two resolved configs."""
    fa, fb = _flatten(a), _flatten(b)
    keys = sorted(k for k in set(fa) | set(fb) if fa.get(k, "<unset>") != fb.get(k, "<unset>"))
    return [k for k in keys if not any(k == n or k.startswith(n + ".") for n in NON_RESULT_KEYS)]


def config_hash(cfg: dict) -> str:
    """Hash of the result-relevant config: runs differing in it never share a leaderboard row."""
    import copy
    import hashlib
    import json

    c = copy.deepcopy(cfg)
    for key in NON_RESULT_KEYS:
        *parents, leaf = key.split(".")
        node = c
        for p in parents:
            node = node.get(p, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(leaf, None)
    return hashlib.sha256(json.dumps(c, sort_keys=True, default=str).encode()).hexdigest()[:12]


def check_same_config(saved: dict, config: dict, what: str) -> None:
    """Refuse to resume, keep or overwrite the results of another configuration in place."""
    old_hash, new_hash = saved.get("config_hash"), config_hash(config)
    if old_hash is None or old_hash == new_hash:
        return
    shown = ""
    if isinstance(saved.get("config"), dict):
        before, after = _flatten(saved["config"]), _flatten(config)
        diff = config_diff(saved["config"], config)
        shown = ", ".join(f"{k}: {before.get(k, '<unset>')!r} -> {after.get(k, '<unset>')!r}" for k in diff[:4])
        shown += f" (+{len(diff) - 4} more)" if len(diff) > 4 else ""
    raise FasbenchError(
        f"{what} belongs to a run of another configuration (config hash {old_hash} vs {new_hash}"
        + (f"; {shown}" if shown else "") + "); give this setting its own --out DIR, or delete that run "
        "directory to replace it"
    )


def _versions() -> dict[str, Any]:
    import timm
    import torch

    from fasbench import plugins

    return {
        "fasbench": fasbench.__version__,
        "torch": torch.__version__,
        "timm": timm.__version__,
        "python": platform.python_version(),
        "plugins": plugins.plugin_of_dist_versions(),
    }


def check_same_identity(saved: dict | None, current: dict, what: str) -> None:
    """Refuse to continue a checkpoint of another run identity (component versions, weights,
    precision, data, selection): the result would be neither run."""
    if saved is None or saved == current:
        return
    diff = fields_diff(saved, current)
    raise FasbenchError(
        f"{what} belongs to another run ({'; '.join(diff[:3])}{' ...' if len(diff) > 3 else ''}); "
        "give this setting its own --out DIR, or delete that run directory to replace it"
    )


_PROCESS_GIT: dict[str, Any] | None = None


def process_git() -> dict[str, Any]:
    """``{"commit", "dirty"}`` of fasbench's checkout as this process first saw it.

    Python does not reload modules: a commit made while a long sweep runs in one process must
    not be credited to the runs that follow it, whose code predates it. ``fasbench run`` asks
    once before anything trains (:func:`fasbench.commands.run.main`); every record and
    checkpoint of the process then names that state. A worker process (loky, torchrun) imports
    the code afresh and takes its own snapshot."""
    global _PROCESS_GIT
    if _PROCESS_GIT is None:
        from pathlib import Path

        from fasbench.records import git_info

        _PROCESS_GIT = git_info(Path(fasbench.__file__).resolve().parent)
    return dict(_PROCESS_GIT)


def code_identity() -> dict[str, Any]:
    """The code a checkpoint was written by: fasbench's version and git commit, and every
    loaded plugin distribution's version. A resumed run must run the same code."""
    from fasbench import plugins

    git = process_git()
    return {"fasbench": fasbench.__version__, "commit": git["commit"], "plugins": plugins.plugin_of_dist_versions()}


def check_same_code(saved: dict | None, current: dict, what: str) -> None:
    """Refuse to continue a checkpoint written by other code (fasbench version or commit,
    plugin versions): the result would be neither version's."""
    if saved is None:
        raise FasbenchError(f"{what} does not say which code wrote it (an older fasbench); run without --resume to restart the task")
    diffs = []
    for key in ("fasbench", "commit"):
        if saved.get(key) != current.get(key):
            diffs.append(f"{key} {saved.get(key) or '?'} -> {current.get(key) or '?'}")
    old, new = saved.get("plugins") or {}, current.get("plugins") or {}
    diffs += [f"{d} {old.get(d, '<none>')} -> {new.get(d, '<none>')}" for d in sorted(set(old) | set(new)) if old.get(d) != new.get(d)]
    if diffs:
        raise FasbenchError(
            f"{what} was written by other code ({'; '.join(diffs[:3])}{' ...' if len(diffs) > 3 else ''}); continuing it would "
            "mix two versions: run without --resume to restart the task (or go back to that version to finish it)"
        )
