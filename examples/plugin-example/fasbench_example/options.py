"""Options of example-center-loss: each `method.*` key declared once, typed, with its default
and range. Keep this module torch-free: `fasbench run` validates options before loading torch."""
from pydantic import Field

from fasbench.options import Options


class CenterLossOptions(Options):
    center_weight: float = Field(0.1, ge=0.0)  # weight of the live-feature spread loss
