"""Every random state a run depends on, captured into a checkpoint and restored on resume:
Python's ``random``, NumPy's legacy global generator, torch's CPU generator, every CUDA
device's generator, and the generators a method owns (:meth:`fasbench.api.Method.random_state`).

Stored as tensors, lists and ints only, so ``torch.load(weights_only=True)`` reads them back.
"""
from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def capture(method: torch.nn.Module | None = None) -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
        "numpy": {"kind": kind, "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(gauss)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else [],
    }
    if method is not None and hasattr(method, "random_state"):
        state["method"] = method.random_state()
    return state


def restore(state: dict[str, Any], method: torch.nn.Module | None = None) -> None:
    p = state["python"]
    random.setstate((int(p["version"]), tuple(int(v) for v in p["internal"]), p["gauss_next"]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), int(n["pos"]), int(n["has_gauss"]),
                         float(n["cached_gaussian"])))
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available():
        if len(cuda) != torch.cuda.device_count():
            from fasbench.errors import FasbenchError

            raise FasbenchError(f"the checkpoint holds random states of {len(cuda)} GPU(s), this machine has "
                                f"{torch.cuda.device_count()}: resume it where it was written (or set CUDA_VISIBLE_DEVICES to match)")
        torch.cuda.set_rng_state_all(cuda)
    if method is not None and state.get("method") is not None and hasattr(method, "set_random_state"):
        method.set_random_state(state["method"])
