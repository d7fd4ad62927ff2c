"""A finished run of the tiny synthetic world, for the tests of what uses a trained student
(predict, export, push/eval): ERM, smoke trainer, task MC->I, checkpoint selected on source-val."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fasbench.contract import TINY_WORLD


@dataclass
class TinyRun:
    record: Any
    run_dir: Path
    cache: Path
    overrides: list[str]

    def frames(self) -> Any:
        """The world's FrameSet (the run's data)."""
        from fasbench import config, plugins

        cfg = config.compose(["method=erm", *self.overrides])
        return plugins.registry("datasets").get("synthetic").build(cfg.data, progress=False)

    def scores(self) -> Any:
        """The run's scores.csv.gz as a DataFrame."""
        import pandas as pd

        return pd.read_csv(self.run_dir / "scores.csv.gz")


def train_tiny_run(root: Path) -> TinyRun:
    from fasbench import config
    from fasbench.engine.run import run_protocol

    cache = root / "cache"
    overrides = ["trainer=smoke", *TINY_WORLD, f"data.cache_dir={cache}"]
    cfg = config.compose(["method=erm", *overrides, "eval.checkpoint=source-val", "eval.bootstrap=50"])
    cfg.protocol = "MC->I"
    cfg.device = "cpu"
    cfg.out = str(root / "runs")
    (rec,) = run_protocol(cfg, progress=False, echo=lambda *_: None)
    return TinyRun(rec, Path(rec.source).parent, cache, overrides)
