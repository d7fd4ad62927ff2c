"""Types of the harness's own config sections (``trainer``, ``optim``, ``augment``, ``eval``,
``splits`` and the top-level keys).

Their defaults live once, in the YAML presets of ``fasbench/conf`` (``trainer=smoke`` picks
another preset); these models declare the type and range of every key, so a wrong value is a
one-line error naming the key before any data loads. Component options (``method.*``,
``student.*``, teachers, aligners) are declared by each component (``fasbench.options``).
"""
from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, NonNegativeInt, PlainValidator, PositiveInt, model_validator

from fasbench.options import Options

#: a finite float >= 0 (nan and inf are refused: they would train silently to garbage)
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
#: seeds feed numpy's legacy seeding, which takes 0 .. 2**32 - 1
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
def _device(value: str) -> str:
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
        raise ValueError("use auto, cpu, cuda, cuda:N or mps")
    return value


#: ``auto``, ``cpu``, ``mps`` or a CUDA device (``cuda``, ``cuda:1``)
Device = Annotated[str, AfterValidator(_device)]


def _workers(value: object) -> int | str:
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return value
    raise ValueError("use a number of DataLoader workers >= 0, or auto (0 on the CPU, 2 on CUDA)")


#: DataLoader workers per process: an integer >= 0 or ``auto``
Workers = Annotated[int | str, PlainValidator(_workers)]


def _logger(value: str | list[str]) -> str | list[str]:
    from fasbench.engine.logs import parse_loggers

    try:
        parse_loggers(value)
    except Exception as exc:  # FasbenchError: its text names the choices
        raise ValueError(str(exc).split(": ", 1)[-1]) from None
    return value


#: ``csv``, ``tensorboard``, ``csv,tensorboard`` or a list of those
Logger = Annotated[str | list[str], AfterValidator(_logger)]


class Section(Options):
    """A harness section: every key typed, none defaulted here (the YAML presets hold the defaults)."""


class TrainerSettings(Section):
    max_steps: NonNegativeInt  # 0 = no training: evaluate the student as built (student.weights, fasbench eval)
    batch_size: PositiveInt
    eval_every: NonNegativeInt  # 0 = only at the end
    log_every: PositiveInt
    checkpoint_every: NonNegativeInt  # 0 = no checkpoints
    num_workers: Workers  # auto: 0 on the CPU, 2 on CUDA
    amp: bool
    channels_last: bool
    grad_clip: NonNegativeFloat  # 0 = off
    logger: Logger  # csv (always) and/or tensorboard (fasbench.engine.logs)
    keep_checkpoints: NonNegativeInt  # step checkpoints kept once the run is complete (0 = none)
    jobs_per_gpu: PositiveInt  # sweep jobs sharing one GPU under a local launcher (fasbench.engine.gpu_slots)


class OptimSettings(Section):
    name: str  # any timm optimizer name
    lr: float = Field(gt=0, allow_inf_nan=False)
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

    @model_validator(mode="after")
    def _crop_fits(self):
        # frames of a fixed side (the synthetic world's image_size, a real dataset's preprocess.size)
        # cannot give a larger crop
        key, side = "image_size", getattr(self, "image_size", None)
        if side is None:
            key, side = "preprocess.size", getattr(getattr(self, "preprocess", None), "size", None)
        if isinstance(side, int) and self.crop_size > side:
            raise ValueError(f"crop_size={self.crop_size} is larger than the frames ({key}={side}); "
                             f"use data.crop_size<={side} or a larger data.{key}")
        return self


class RootSettings(Section):
    """The top-level keys (the sections are validated by their own models)."""

    protocol: str
    tasks: str | list[str] | None
    seed: Seed
    out: str = Field(min_length=1)
    device: Device


SECTIONS: dict[str, type[Section]] = {
    "trainer": TrainerSettings, "optim": OptimSettings, "augment": AugmentSettings,
    "eval": EvalSettings, "splits": SplitSettings,
}
