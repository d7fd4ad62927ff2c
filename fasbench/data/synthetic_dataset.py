"""The ``synthetic`` dataset plugin: the synthetic world behind the dataset hook."""
from __future__ import annotations

import dataclasses
from typing import Any

from fasbench.data.frames import FrameSet
from fasbench.errors import FasbenchError


def options() -> type:
    """The ``data.*`` options of the synthetic dataset: the harness's data keys plus every field
    of :class:`fasbench.data.synthetic.SyntheticConfig` (declared there once, typed)."""
    import typing

    from pydantic import create_model

    from fasbench.data.synthetic import SyntheticConfig
    from fasbench.settings import DataSettings

    hints = typing.get_type_hints(SyntheticConfig)
    fields = {f.name: (hints[f.name], f.default) for f in dataclasses.fields(SyntheticConfig)}
    return create_model("SyntheticOptions", __base__=DataSettings, **fields)


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
