"""Options of the baseline methods: the one declaration of each ``method.*`` key, its type,
default and range (torch-free, so `fasbench run` checks them before anything heavy loads)."""
from __future__ import annotations

from pydantic import Field

from fasbench.options import Options


class ERMOptions(Options):
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)  # cross-entropy label smoothing


class DATOptions(Options):
    weight: float = Field(1.0, ge=0.0)  # weight of the domain-adversarial loss
    max_lambda: float = Field(1.0, ge=0.0)  # final gradient-reversal strength
    gamma: float = Field(10.0, gt=0.0)  # DANN schedule: lambda(p) = max_lambda * (2 / (1 + exp(-gamma p)) - 1)
    hidden: int = Field(256, ge=1)  # discriminator hidden width
    dropout: float = Field(0.5, ge=0.0, lt=1.0)
    single_side: bool = False  # align live faces only (SSDG-style single side)
