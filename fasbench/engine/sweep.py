"""Sweeps: job folder names, the plan a sweep writes before launching, and the status of its
runs (complete / running / interrupted / failed / not started), read from the run folders
themselves (DomainBed's ``sweep`` status is the model: the files are the truth)."""
from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fasbench.util import atomic_write_json

#: overrides already named by the run path (PROTOCOL/METHOD/TASK/seedN) or not results
EXCLUDED_KEYS = ("method", "protocol", "seed", "out", "tasks", "device")
#: longest job folder name kept as written (bytes); longer ones are shortened and hashed
MAX_NAME = 200
FAILED = "failed.json"
STATES = ("complete", "running", "interrupted", "failed", "not started")


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def job_dirname(overrides: list[str]) -> str:
    """The job folder of a sweep job: its overrides that the run path does not name, sorted,
    joined by commas (``optim.lr=0.001,trainer.max_steps=600``), ``/`` made safe; past
    ``MAX_NAME`` bytes, a prefix and 16 hex of the full list's sha256 (file names stop at 255)."""
    items = sorted(str(o) for o in overrides if _key(str(o)) not in EXCLUDED_KEYS)
    name = ",".join(items).replace("/", "%2F") or "default"
    if len(name.encode()) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return f"{name.encode()[:MAX_NAME - 17].decode(errors='ignore')}-{digest}"


def job_key(overrides: list[str]) -> str:
    """16 hex naming one job's full override list (its ``.hydra/<key>`` folder)."""
    return hashlib.sha256("\n".join(sorted(str(o) for o in overrides)).encode()).hexdigest()[:16]


def write_plan(sweep_dir: Path, jobs: list[dict[str, Any]]) -> Path:
    """``SWEEP_DIR/sweeps/<time>-<hash>.json``: every job's overrides and run folders, written
    before the first job starts, so that ``fasbench sweep status`` knows what is not started."""
    blob = json.dumps(jobs, sort_keys=True).encode()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = sweep_dir / "sweeps" / f"{stamp}-{hashlib.sha256(blob).hexdigest()[:8]}.json"
    atomic_write_json(path, {"created": stamp, "jobs": jobs})
    return path


def write_failed(run_dir: Path, exc: BaseException) -> Path:
    """``RUN_DIR/failed.json``: where, when and why a run failed (removed when it completes)."""
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return atomic_write_json(run_dir / FAILED, {
        "host": socket.gethostname(), "pid": __import__("os").getpid(),
        "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "error": type(exc).__name__, "message": str(exc), "traceback": "".join(tb[-6:]),
    })


def run_state(run_dir: Path) -> tuple[str, str]:
    """(state, detail) of one run folder, from its files."""
    from fasbench.engine import checkpoint as ckpt
    from fasbench.engine.lease import LEASE

    rec = run_dir / "record.json"
    if rec.exists():
        try:
            saved = json.loads(rec.read_text())
        except (OSError, ValueError):
            saved = None
        if isinstance(saved, dict) and saved.get("status") == "complete":
            return "complete", f"record.json of {saved.get('created', '?')}"
    lease = run_dir / LEASE
    if lease.exists() and _lease_alive(lease):
        return "running", _lease_owner(lease)
    failed = run_dir / FAILED
    if failed.exists():
        try:
            info = json.loads(failed.read_text())
            return "failed", f"{info.get('time')} on {info.get('host')}: {str(info.get('message', ''))[:200]}"
        except (OSError, ValueError):
            return "failed", str(failed)
    units = ckpt.units(run_dir / "checkpoint")
    if units:
        return "interrupted", f"checkpoint of step {units[0][0]} (the same sweep command continues it)"
    return "not started", ""


def _lease_owner(lease: Path) -> str:
    try:
        fields = dict(line.split("=", 1) for line in lease.read_text().splitlines() if "=" in line)
    except OSError:
        return ""
    return f"{fields.get('host', '?')} pid {fields.get('pid', '?')}"


def _lease_alive(lease: Path) -> bool:
    """A lease is live when its holder runs (this host) or it was refreshed recently (another host)."""
    import os

    from fasbench.engine.lease import LEASE_S

    try:
        fields = dict(line.split("=", 1) for line in lease.read_text().splitlines() if "=" in line)
        age = time.time() - lease.stat().st_mtime
    except OSError:
        return False
    if fields.get("host") == socket.gethostname():
        try:
            os.kill(int(fields.get("pid", "0")), 0)
        except (ProcessLookupError, ValueError):
            return False
        except PermissionError:
            return True
        return True
    return age < LEASE_S


def status(sweep_dir: Path, plan: Path | None = None) -> list[dict[str, Any]]:
    """Every run of the newest sweep plan under ``sweep_dir`` (or ``plan``), with its state."""
    plans = sorted((sweep_dir / "sweeps").glob("*.json")) if plan is None else [plan]
    if not plans:
        from fasbench.errors import FasbenchError

        raise FasbenchError(f"no sweep plan under {sweep_dir / 'sweeps'}; start a sweep with `fasbench run METHOD -m ... --out DIR`"
                            " and pass the same --out")
    data = json.loads(plans[-1].read_text())
    rows = []
    for job in data["jobs"]:
        for rd in job["run_dirs"]:
            state, detail = run_state(Path(rd))
            rows.append({"overrides": job["overrides"], "run_dir": rd, "state": state, "detail": detail})
    return rows


# --------------------------------------------------------------------------- the jobs' side
# Launchers run the jobs in other processes (joblib: loky workers; submitit: ``python -m
# submitit.core._submit`` on this machine or a cluster node) that unpickle the task function
# and the sweep's config. Everything a job needs is therefore importable: the resolvers of the
# job folder names are registered when this module is imported (the task function below lives
# here, so unpickling it imports this module first), and a job reports to files, never to a
# list of the parent process.


def _jobdir(task: Any) -> str:
    return job_dirname([str(o) for o in task])


def _jobkey(task: Any) -> str:
    return job_key([str(o) for o in task])


def register_resolvers() -> None:
    """``${fasbench_jobdir:${hydra.overrides.task}}`` and ``${fasbench_jobkey:...}`` (idempotent)."""
    from omegaconf import OmegaConf

    OmegaConf.register_new_resolver("fasbench_jobdir", _jobdir, replace=True)
    OmegaConf.register_new_resolver("fasbench_jobkey", _jobkey, replace=True)


register_resolvers()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def result_path(results: str | Path, overrides: list[str]) -> Path:
    return Path(results) / f"{job_key(overrides)}.json"


@dataclass
class SweepJob:
    """The task function of every job of a sweep (Hydra calls it with the job's composed
    config). Picklable: joblib and submitit ship it to the processes that run the jobs.

    It trains the job's runs below the job's own folder (``hydra.runtime.output_dir``),
    resuming what is there, under a GPU slot when a local launcher shares this machine's GPUs;
    it never raises for a failing run: ``failed.json`` in the run folders and
    ``RESULTS/<job key>.json`` say what happened, and the parent sums them up."""

    progress: bool
    results: str  # OUT/multirun/sweeps/<plan>/: one JSON per job of this launch

    def __call__(self, cfg: Any) -> dict[str, Any]:
        import os
        import sys

        from hydra.core.hydra_config import HydraConfig
        from omegaconf import OmegaConf

        from fasbench import config as fconfig
        from fasbench.engine.gpu_slots import job_slot
        from fasbench.engine.run import run_protocol
        from fasbench.errors import FasbenchError

        hc = HydraConfig.get()
        task = [str(o) for o in hc.overrides.task]
        result: dict[str, Any] = {"overrides": task, "host": socket.gethostname(), "pid": os.getpid(), "started": _now()}
        started = time.time()
        try:
            OmegaConf.set_struct(cfg, False)
            cfg.out = hc.runtime.output_dir
            fconfig.check_config(cfg)  # the config `fasbench run` composes, value for value (config hash)
            OmegaConf.set_struct(cfg, False)
            launcher = result["launcher"] = hc.runtime.choices.get("hydra/launcher")
            with job_slot(str(cfg.device), int(cfg.trainer.jobs_per_gpu), launcher) as device:
                if device is not None:
                    cfg.device = device
                records = run_protocol(cfg, resume=True, progress=self.progress)
            result.update(status="complete", device=str(cfg.device),
                          runs=[f"{r.task.name} seed {r.seed}" for r in records])
        except Exception as exc:  # one line, and the sweep goes on (Hydra would print a traceback and stop)
            text = str(exc) if isinstance(exc, FasbenchError) else f"{type(exc).__name__}: {exc}"
            print(f"fasbench: error: sweep job [{' '.join(task)}]: {text}", file=sys.stderr)
            result.update(status="failed", error=type(exc).__name__, message=text.splitlines()[0][:500] if text else "")
            _mark_failed(cfg, exc, started)
        result["finished"] = _now()
        atomic_write_json(result_path(self.results, task), result)
        return result


def _mark_failed(cfg: Any, exc: BaseException, since: float) -> None:
    """failed.json in each run folder of a failed job that has no fresher one and is not
    complete (a failure before any run started, e.g. another configuration's record there)."""
    try:
        from fasbench.engine.run import _selected_tasks, resolve_protocol, run_dir_for

        protocol, _ = resolve_protocol(str(cfg.protocol))
        run_dirs = [run_dir_for(cfg, protocol, t.name) for t in _selected_tasks(protocol, cfg.get("tasks"))]
    except Exception:  # the job's own error is what gets reported; without run folders there is nothing to mark
        return
    for rd in run_dirs:
        failed = rd / FAILED
        if run_state(rd)[0] == "complete" or (failed.exists() and failed.stat().st_mtime >= since):
            continue
        with contextlib.suppress(OSError):  # an unwritable run folder: the job's result file still says why
            rd.mkdir(parents=True, exist_ok=True)
            write_failed(rd, exc)


# --------------------------------------------------------------------------- the parent's side


def is_complete(run_dirs: list[str], config_hash: str) -> bool:
    """Every run folder holds a complete record of this very configuration (a record of another
    one is left to the job, which names the clash)."""
    for rd in run_dirs:
        rec = Path(rd) / "record.json"
        try:
            saved = json.loads(rec.read_text())
        except (OSError, ValueError):
            return False
        if not isinstance(saved, dict) or saved.get("status") != "complete" or saved.get("config_hash") != config_hash:
            return False
    return True


_SWEEPER: dict[str, Any] = {}
#: Hydra accepts plugin classes from the ``hydra_plugins`` namespace only (a class registered by
#: hand with ``Plugins.register`` included): the sweeper below is named into it
SWEEPER_TARGET = "hydra_plugins.fasbench_sweeper.SkipCompleteSweeper"


def install_sweeper(skip: list[str]) -> str:
    """Register ``hydra/sweeper=fasbench``: Hydra's basic sweeper (the same jobs, the same
    order), less the jobs whose key is in ``skip`` (every run complete), dropped before any
    launcher sees them, and without composing every job a second time in this process (the
    caller checked them all). Returns the override that selects it."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins

    if "class" not in _SWEEPER:
        class SkipCompleteSweeper(BasicSweeper):
            def __init__(self, max_batch_size: int | None = None, params: dict[str, str] | None = None,
                         skip: list[str] | None = None) -> None:
                super().__init__(max_batch_size=max_batch_size, params=params)
                self.skip = set(skip or ())

            def split_arguments(self, overrides, max_batch_size):  # BasicSweeper calls it through self
                (jobs,) = BasicSweeper.split_arguments(overrides, None)
                jobs = [j for j in jobs if job_key(j) not in self.skip]
                n = max_batch_size or len(jobs) or 1
                return [jobs[i:i + n] for i in range(0, len(jobs), n)]

            def validate_batch_is_legal(self, batch) -> None:
                # fasbench composed and type-checked every job before launching (commands.run._check_sweep)
                return None

        # Hydra locates a plugin by its dotted name inside ``hydra_plugins`` (and imports that
        # module to instantiate it): the class gets a module of that name in this process only
        # (the sweeper runs in the process that launches; launchers never pickle it)
        import sys
        import types

        module, name = SWEEPER_TARGET.rsplit(".", 1)
        SkipCompleteSweeper.__module__, SkipCompleteSweeper.__qualname__ = module, name
        holder = types.ModuleType(module, "fasbench's sweeper (fasbench.engine.sweep.install_sweeper)")
        setattr(holder, name, SkipCompleteSweeper)
        sys.modules[module] = holder
        _SWEEPER["class"] = SkipCompleteSweeper
    Plugins.instance().register(_SWEEPER["class"])
    ConfigStore.instance().store(group="hydra/sweeper", name="fasbench", provider="fasbench",
                                 node={"_target_": SWEEPER_TARGET, "max_batch_size": None, "params": None,
                                       "skip": sorted(skip)})
    return "hydra/sweeper=fasbench"
