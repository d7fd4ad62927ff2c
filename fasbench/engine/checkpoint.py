"""Checkpoints: model weights as safetensors, optimiser/schedule/loop state beside them.

Both files are written to temporary names and moved into place, model first; the loop
state names the step its weights belong to, so a crash between the two moves is detected
and the older, consistent pair is never mixed with a newer half.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model

from fasbench.errors import FasbenchError
from fasbench.util import atomic_target

MODEL = "model.safetensors"
STATE = "trainer.pt"


def save(ckpt_dir: Path, method: torch.nn.Module, state: dict[str, Any], name: str = MODEL) -> None:
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    step = int(state.get("step", -1))
    with atomic_target(ckpt_dir / name) as tmp:
        save_model(method, str(tmp), metadata={"step": str(step)})
    if name == MODEL:
        with atomic_target(ckpt_dir / STATE) as tmp:
            torch.save(state, tmp)


def load(ckpt_dir: Path, method: torch.nn.Module, name: str = MODEL) -> dict[str, Any] | None:
    """Load weights (and the loop state for the main checkpoint); None when there is none."""
    model_path = ckpt_dir / name
    if not model_path.exists():
        return None
    try:
        missing, unexpected = load_model(method, str(model_path), strict=True)
    except Exception as exc:
        raise FasbenchError(
            f"checkpoint {model_path} does not fit this method ({exc}); it was written by another "
            "configuration: remove the run directory or run without --resume"
        ) from exc
    if name != MODEL:
        return {}
    state_path = ckpt_dir / STATE
    if not state_path.exists():
        raise FasbenchError(f"checkpoint {ckpt_dir} has weights but no {STATE}; remove it or run without --resume")
    state = torch.load(state_path, map_location="cpu", weights_only=True)
    from safetensors import safe_open

    with safe_open(str(model_path), framework="pt") as f:
        wstep = int((f.metadata() or {}).get("step", -1))
    if wstep != int(state.get("step", -2)):
        raise FasbenchError(
            f"checkpoint {ckpt_dir} is inconsistent (weights of step {wstep}, loop state of step "
            f"{state.get('step')}); remove it to restart the task"
        )
    return state
