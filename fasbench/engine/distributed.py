"""One run on several processes (``torchrun --nproc_per_node=N -m fasbench run ...``).

torchrun starts N copies of the command and sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``
in each; :func:`init` reads them, joins the process group (``gloo`` on the CPU, ``nccl`` on
CUDA, each process on ``cuda:LOCAL_RANK``) and destroys it when the process exits. Without
those variables (a plain ``fasbench run``) everything here is a no-op for a world of one.

What the harness does with it (docs/distributed.md): the balanced sampler hands each rank its
slice of the global batch, augmentation numbers are drawn for the global batch, the method's
trainable modules train under DistributedDataParallel (frozen teachers are left out of it),
rank 0 alone evaluates and writes (checkpoints, lease, ``failed.json``, record), and the other
ranks wait for it at a barrier.

``FASBENCH_DIST_TIMEOUT`` (seconds, default 1800) bounds every collective, a barrier behind
rank 0's evaluation included: a rank that never arrives makes the others fail, not hang.
``FASBENCH_DDP_FULL_BATCH=1`` is a check of the plumbing, not a training mode: every rank
trains on the whole global batch, so a run must equal a one-process run bit for bit.
"""
from __future__ import annotations

import atexit
import contextlib
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch

from fasbench.errors import FasbenchError

TIMEOUT_ENV = "FASBENCH_DIST_TIMEOUT"
FULL_BATCH_ENV = "FASBENCH_DDP_FULL_BATCH"
DEFAULT_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class World:
    """This process's place in the run: ``world_size`` processes, this one is ``rank``."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def per_rank_batch(self, batch_size: int) -> int:
        """This rank's share of the global batch (all of it under ``FASBENCH_DDP_FULL_BATCH``)."""
        return batch_size if full_batch() else batch_size // self.world_size

    def rows(self, batch_size: int) -> slice:
        """This rank's rows of a global batch of ``batch_size``."""
        if full_batch():
            return slice(0, batch_size)
        per = batch_size // self.world_size
        return slice(self.rank * per, (self.rank + 1) * per)

    def check_batch(self, batch_size: int) -> None:
        if self.enabled and batch_size % self.world_size:
            raise FasbenchError(
                f"trainer.batch_size={batch_size} (the global batch) does not divide by the {self.world_size} processes "
                f"of this run; use a multiple of {self.world_size}, e.g. trainer.batch_size="
                f"{max(self.world_size, batch_size - batch_size % self.world_size)}"
            )

    # -- collectives (no-ops in a world of one) --------------------------------------------
    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (picklable), in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def agree(self, ok: bool, what: str) -> None:
        """Every rank learns whether all ranks got here with ``ok``; the ranks that were fine
        raise one line naming the ranks that were not (which raise their own error)."""
        flags = self.gather(bool(ok))
        bad = [r for r, f in enumerate(flags) if not f]
        if bad and ok:
            raise RanksFailed(f"{what} failed on rank(s) {bad} (their error is above)")


@contextlib.contextmanager
def on_main(world: World, make: Callable[[], contextlib.AbstractContextManager], what: str) -> Iterator[None]:
    """Enter ``make()`` on rank 0 only (the run directory's lease); every rank learns whether
    that worked, so no rank trains a run whose rank 0 could not start it."""
    with contextlib.ExitStack() as stack:
        if world.is_main:
            try:
                stack.enter_context(make())
            except BaseException:
                world.agree(False, what)
                raise
        world.agree(True, what)
        yield


class RanksFailed(FasbenchError):
    """Raised on every rank of a run together (all ranks agreed on it, none is left waiting)."""


_WORLD = World()


def full_batch() -> bool:
    return os.environ.get(FULL_BATCH_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def env_world() -> tuple[int, int, int]:
    """``(WORLD_SIZE, RANK, LOCAL_RANK)`` from the environment torchrun sets (1, 0, 0 without)."""
    try:
        ws = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise FasbenchError("WORLD_SIZE, RANK and LOCAL_RANK must be integers (torchrun sets them); "
                            "unset them to run in one process") from None
    if ws < 1 or not 0 <= rank < ws:
        raise FasbenchError(f"RANK={rank} does not fit WORLD_SIZE={ws}; launch with torchrun, or unset both")
    return ws, rank, local


def current() -> World:
    """The world :func:`init` joined (a world of one before, or without torchrun)."""
    return _WORLD


def init(device: str = "auto") -> World:
    """Join the process group torchrun describes (once per process; later calls return the same
    world). ``device``: the run's ``device`` setting; CUDA processes take ``cuda:LOCAL_RANK``."""
    global _WORLD
    ws, rank, local = env_world()
    if ws == 1:
        return _WORLD
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return _WORLD
    if not dist.is_available():
        raise FasbenchError("this torch build has no torch.distributed; run in one process (without torchrun)")
    name = str(device or "auto")
    cuda = name.startswith("cuda") or (name in ("", "auto") and torch.cuda.is_available())
    if name.startswith("cuda:"):
        raise FasbenchError(f"device={name!r}: under torchrun each process takes cuda:LOCAL_RANK; use device=cuda or device=auto")
    if name == "mps":
        raise FasbenchError("device=mps cannot run several processes; use device=cpu or CUDA under torchrun")
    if cuda:
        if not torch.cuda.is_available():
            raise FasbenchError(f"device={name!r} asked for CUDA but torch sees no GPU; use device=cpu or device=auto")
        if local >= torch.cuda.device_count():
            raise FasbenchError(f"LOCAL_RANK={local} but this machine shows {torch.cuda.device_count()} GPU(s); "
                                "use --nproc_per_node <= the number of GPUs")
        torch.cuda.set_device(local)
    backend = "nccl" if cuda else "gloo"
    try:
        timeout = float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S))
    except ValueError:
        raise FasbenchError(f"{TIMEOUT_ENV} must be a number of seconds") from None
    kwargs: dict[str, Any] = {"backend": backend, "timeout": timedelta(seconds=timeout)}
    if cuda:
        kwargs["device_id"] = torch.device("cuda", local)
    dist.init_process_group(**kwargs)
    _WORLD = World(ws, rank, local, backend)
    atexit.register(shutdown)
    if rank != 0:  # one copy of the tables and messages: rank 0's (errors still reach stderr)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (kept open for the life of the process)
    return _WORLD


def shutdown() -> None:
    """Leave the process group (at exit; safe to call twice)."""
    global _WORLD
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _WORLD = World()


def device_of(world: World, resolved: torch.device) -> torch.device:
    """The device of this rank: ``cuda:LOCAL_RANK`` on CUDA, else the resolved device."""
    if world.enabled and resolved.type == "cuda":
        return torch.device("cuda", world.local_rank)
    return resolved


def convert_sync_batchnorm(module: torch.nn.Module) -> torch.nn.Module:
    """BatchNorm layers of ``module`` -> SyncBatchNorm (statistics over the global batch), in
    place, skipping frozen submodules (teachers stay in eval mode and are never synced)."""
    from torch import nn

    for name, child in module.named_children():
        if getattr(child, "frozen", False):
            continue
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, nn.SyncBatchNorm):
            setattr(module, name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
        else:
            convert_sync_batchnorm(child)
    return module


class TrainingStep(torch.nn.Module):
    """The module DistributedDataParallel wraps: ``forward(batch)`` is the method's
    ``training_step(batch)``, so DDP sees the forward that produces the losses."""

    def __init__(self, method: torch.nn.Module) -> None:
        super().__init__()
        self.method = method

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.method.training_step(batch)


def wrap(method: torch.nn.Module, world: World, device: torch.device) -> torch.nn.Module:
    """``method`` inside DistributedDataParallel (a callable ``step(batch) -> losses``).

    Parameters and buffers of frozen submodules (teachers: no gradients, weights pinned by
    URI) are ignored by DDP: neither broadcast at start nor every step. ``find_unused_parameters``
    is on, because a method may leave parts out of some steps (an option at 0, a branch
    that runs only on some batches); DDP then marks them ready instead of waiting for them.
    """
    from torch.nn.parallel import DistributedDataParallel as DDP

    step = TrainingStep(method)
    frozen = tuple(f"method.{n}." for n, m in method.named_modules() if n and getattr(m, "frozen", False))
    ignore = [n for n, _ in step.named_parameters() if n.startswith(frozen)]
    ignore += [n for n, _ in step.named_buffers() if n.startswith(frozen)]
    DDP._set_params_and_buffers_to_ignore_for_model(step, ignore)
    # a 1x1 convolution's weight gradient may come with other (equivalent) strides than its
    # bucket view; DDP then copies it into the bucket and warns once per run: a cost, not an error
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    ids = [device.index] if device.type == "cuda" else None
    return DDP(step, device_ids=ids, output_device=ids[0] if ids else None, find_unused_parameters=True)
