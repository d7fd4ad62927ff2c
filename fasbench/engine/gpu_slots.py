"""GPU slots: under a local launcher (basic, joblib, submitit_local), every sweep job takes a
free slot of a visible GPU and holds it for its whole life, so that parallel jobs spread over
the GPUs instead of all picking ``cuda:0``.

A slot is a ``filelock.FileLock`` (``flock`` on Linux) on
``CACHE/gpu-slots/<host>/gpu<ID>-slot<J>.lock``: ``trainer.jobs_per_gpu`` slots per GPU. The
operating system drops a lock when its holder exits, killed or not, so a slot is never lost to
a dead job. The folder is keyed by host (a cache on a shared file system serves many machines;
``flock`` on network file systems is not relied upon across hosts) and, inside a SLURM
allocation, by its job id (``CUDA_VISIBLE_DEVICES=0`` of two allocations on one node are two
different GPUs). Jobs of ``hydra/launcher=submitit_slurm`` take no slot: the scheduler gives
each job its own GPUs already.
"""
from __future__ import annotations

import contextlib
import os
import re
import socket
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: launchers whose jobs share this machine's GPUs (Hydra's ``hydra/launcher`` choice)
LOCAL_LAUNCHERS = ("basic", "joblib", "submitit_local")


@dataclass
class Slot:
    gpu: int  # index among the visible devices: the job uses cuda:<gpu>
    slot: int
    lock: Any  # the held filelock.FileLock

    @property
    def device(self) -> str:
        return f"cuda:{self.gpu}"

    def release(self) -> None:
        self.lock.release()


def slot_order(n_gpus: int, per_gpu: int) -> list[tuple[int, int]]:
    """(gpu, slot) pairs in the order they are tried: the first slot of every GPU, then the
    second of every GPU..., so that jobs spread over the GPUs before they share one."""
    return [(g, s) for s in range(per_gpu) for g in range(n_gpus)]


def claim_slot(n_gpus: int, per_gpu: int, lock_dir: str | os.PathLike, *, names: Sequence[str] | None = None,
               timeout: float | None = None, poll_s: float = 0.5, say: Callable[[str], None] | None = None) -> Slot:
    """Take the first free (gpu, slot) of ``n_gpus`` GPUs with ``per_gpu`` slots each, waiting
    (polling every ``poll_s`` seconds) while all are taken; ``timeout`` seconds at most
    (``None``: as long as it takes) before ``TimeoutError``. ``names``: the GPUs' identities in
    lock file names (default ``0..n_gpus-1``). The caller releases the slot (``Slot.release``)."""
    import filelock

    if n_gpus < 1 or per_gpu < 1:
        raise ValueError(f"claim_slot needs n_gpus >= 1 and per_gpu >= 1 (got {n_gpus}, {per_gpu})")
    names = [str(i) for i in range(n_gpus)] if names is None else [str(n) for n in names]
    folder = Path(lock_dir)
    folder.mkdir(parents=True, exist_ok=True)
    locks = {(g, s): filelock.FileLock(str(folder / f"gpu{_safe(names[g])}-slot{s}.lock"))
             for g, s in slot_order(n_gpus, per_gpu)}
    start, told = time.monotonic(), False
    while True:
        for (g, s), lock in locks.items():
            try:
                lock.acquire(timeout=0)
            except filelock.Timeout:
                continue
            return Slot(gpu=g, slot=s, lock=lock)
        if timeout is not None and time.monotonic() - start >= timeout:
            raise TimeoutError(f"no free GPU slot among {n_gpus} GPU(s) x {per_gpu} slot(s) in {timeout:.0f} s ({folder})")
        if not told and say is not None:
            say(f"all {n_gpus * per_gpu} GPU slot(s) are taken ({n_gpus} GPU(s) x trainer.jobs_per_gpu={per_gpu}); "
                f"waiting for one to free ({folder})")
            told = True
        time.sleep(poll_s)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def lock_dir() -> Path:
    """``CACHE/gpu-slots/<host>[-slurm<JOBID>]``."""
    from fasbench.util import cache_root

    key = socket.gethostname()
    if os.environ.get("SLURM_JOB_ID"):
        key += f"-slurm{os.environ['SLURM_JOB_ID']}"
    return cache_root() / "gpu-slots" / _safe(key)


def _visible_names(n: int) -> list[str]:
    """The visible GPUs' identities: ``CUDA_VISIBLE_DEVICES``'s entries (indices or UUIDs) when
    set, so that two sweeps that see different subsets never share a slot by index."""
    env = [x.strip() for x in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if x.strip()]
    return env[:n] if len(env) >= n else [str(i) for i in range(n)]


@contextlib.contextmanager
def job_slot(device: str, per_gpu: int, launcher: str | None) -> Iterator[str | None]:
    """For a sweep job: the device it should use while it holds its slot (``cuda:I``), or
    ``None`` when it takes none (a device other than auto/cuda, no GPU, a SLURM-scheduled job)."""
    if str(device) not in ("auto", "cuda") or launcher not in LOCAL_LAUNCHERS:
        yield None
        return
    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n < 1:
        yield None
        return
    slot = claim_slot(n, int(per_gpu), lock_dir(), names=_visible_names(n),
                      say=lambda m: print(f"fasbench: {m}", file=sys.stderr))
    print(f"fasbench: GPU slot {slot.slot} of GPU {slot.gpu}: this job runs on {slot.device}", file=sys.stderr)
    try:
        yield slot.device
    finally:
        slot.release()
