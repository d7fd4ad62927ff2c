"""Types of the harness's own config sections (``trainer``, ``optim``, ``augment``, ``eval``,
``splits`` and the top-level keys).

Their defaults live once, in the YAML presets of ``fasbench/conf`` (``trainer=smoke`` picks
another preset); these models declare the type and range of every key, so a wrong value is a
one-line error naming the key before any data loads. Component options (``method.*``,
``student.*``, teachers, aligners) are declared by each component (``fasbench.options``).
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveInt

from fasbench.options import Options


class Section(Options):
    """A harness section: every key typed, none defaulted here (the YAML presets hold the defaults)."""


class TrainerSettings(Section):
    max_steps: PositiveInt
    batch_size: PositiveInt
    eval_every: NonNegativeInt  # 0 = only at the end
    log_every: PositiveInt
    checkpoint_every: NonNegativeInt  # 0 = no checkpoints
    num_workers: NonNegativeInt
    amp: bool
    channels_last: bool
    grad_clip: NonNegativeFloat  # 0 = off


class OptimSettings(Section):
    name: str  # any timm optimizer name
    lr: float = Field(gt=0)
    weight_decay: NonNegativeFloat
    momentum: NonNegativeFloat
    schedule: Literal["cosine", "constant"]
    warmup_steps: NonNegativeInt


class AugmentSettings(Section):
    hflip: bool
    random_crop: bool
    color_jitter: float = Field(ge=0, le=1)


class EvalSettings(Section):
    checkpoint: Literal["last", "source-val", "target-oracle"]
    selection_metric: str
    metrics: list[str] | None
    bootstrap: NonNegativeInt
    ci_level: float = Field(gt=0, lt=100)
    ssdg: bool
    video_level: bool
    batch_size: PositiveInt


class SplitSettings(Section):
    source_train: str | list[str] | None
    source_val: str | list[str] | None
    target: str | list[str] | None


class DataSettings(Options):
    """The ``data.*`` keys the harness reads from every dataset's config; a dataset's own
    options class extends it (the synthetic world: fasbench.data.synthetic_dataset.options)."""

    name: str
    crop_size: PositiveInt  # network input side (random crop in training, centre crop in evaluation)
    cache_dir: str | None = None  # default: $FASBENCH_CACHE or ~/.cache/fasbench


class RootSettings(Section):
    """The top-level keys (the sections are validated by their own models)."""

    protocol: str
    tasks: str | list[str] | None
    seed: int
    out: str
    device: str


SECTIONS: dict[str, type[Section]] = {
    "trainer": TrainerSettings, "optim": OptimSettings, "augment": AugmentSettings,
    "eval": EvalSettings, "splits": SplitSettings,
}
