"""The ``synthetic`` dataset plugin: the synthetic world behind the dataset hook."""
from __future__ import annotations

import dataclasses
from typing import Any

from fasbench.data.frames import FrameSet
from fasbench.errors import FasbenchError


def build(cfg: Any, progress: bool = True) -> FrameSet:
    """Build (or load from the cache) the synthetic world described by the ``data`` config."""
    from fasbench.data.synthetic import SyntheticConfig, load_or_generate

    fields = {f.name for f in dataclasses.fields(SyntheticConfig)}
    params = {k: v for k, v in dict(cfg).items() if k in fields}
    unknown = set(dict(cfg)) - fields - {"name", "cache_dir", "crop_size"}
    if unknown:
        raise FasbenchError(
            f"data config has unknown key(s) {sorted(unknown)} for the synthetic dataset; "
            f"known: {sorted(fields | {'cache_dir', 'crop_size'})}"
        )
    return load_or_generate(SyntheticConfig(**params), cache_dir=cfg.get("cache_dir"), progress=progress)
