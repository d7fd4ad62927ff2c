"""Sweeps: job folder names, the plan a sweep writes before launching, and the status of its
runs (complete / running / interrupted / failed / not started), read from the run folders
themselves (DomainBed's ``sweep`` status is the model: the files are the truth)."""
from __future__ import annotations

import hashlib
import json
import socket
import time
import traceback
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
            status = json.loads(rec.read_text()).get("status")
        except (OSError, ValueError):
            status = None
        if status == "complete":
            return "complete", str(rec)
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
        return "interrupted", f"checkpoint of step {units[0][0]} (--resume continues)"
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
