"""Training logs in the tools people use: a CSV file per run, always, and TensorBoard event files
when ``tensorboard`` is installed (``trainer.logger=[csv,tensorboard]``).

The record's ``curve`` stays the source of truth for evaluation points; these logs add every
``trainer.log_every`` step (losses, learning rate, elapsed time) and repeat the evaluation
points, so a run can be watched while it trains and plotted with the usual tools.

``RUN_DIR/log.csv`` has one row per logged training step (``kind=train``) and one per evaluation
(``kind=eval``); columns are ``step,kind,elapsed_s,lr`` then every value name in the order first
seen (``loss/<name>``, ``val/<metric>``, ``target/<metric>@<policy>``). A name that appears late
(an evaluation's metrics) widens the file: it is rewritten with the new header (atomically), so
the file is always one valid CSV. On ``--resume`` the rows after the resumed step are dropped, so
the log of a resumed run equals the log of an uninterrupted one (elapsed time aside).

TensorBoard events go to ``RUN_DIR/tensorboard/``; on resume the writer purges events after the
resumed step (``SummaryWriter(purge_step=...)``).

Weights & Biases and MLflow are not wired in: each needs its own account or tracking server and
a large package, and both take what is here (``wandb sync --sync-tensorboard RUN_DIR/tensorboard``;
the CSV is one ``pandas.read_csv`` away from ``mlflow.log_metric``).
"""
from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fasbench.errors import FasbenchError
from fasbench.util import atomic_write_bytes

KNOWN = ("csv", "tensorboard")
CSV_NAME = "log.csv"
TB_DIR = "tensorboard"
FIXED = ("step", "kind", "elapsed_s", "lr")


def parse_loggers(value: Any) -> tuple[str, ...]:
    """``"csv,tensorboard"``, ``["csv", "tensorboard"]`` or ``"none"`` -> names, checked.
    The CSV log is always written; ``none`` turns every other logger off."""
    if value is None:
        items: list[str] = []
    elif isinstance(value, str):
        items = [v.strip() for v in value.split(",")]
    elif isinstance(value, Iterable):
        items = [str(v).strip() for v in value]
    else:
        raise FasbenchError(f"trainer.logger={value!r}: write names separated by commas, e.g. trainer.logger=csv,tensorboard")
    items = [v for v in items if v and v != "none"]
    bad = [v for v in items if v not in KNOWN]
    if bad:
        raise FasbenchError(f"trainer.logger: unknown logger {bad[0]!r}; use {' and/or '.join(KNOWN)} "
                            "(e.g. trainer.logger=[csv,tensorboard])")
    return tuple(dict.fromkeys(["csv", *items]))


def check_available(names: Iterable[str]) -> None:
    """One line when a requested logger's package is missing (before any data loads)."""
    if "tensorboard" in names:
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise FasbenchError("trainer.logger=tensorboard needs the tensorboard package: pip install 'fasbench[logs]' "
                                "(or drop tensorboard from trainer.logger)") from None


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    return str(value)


class CSVLog:
    """``RUN_DIR/log.csv``, kept complete and valid after every write."""

    def __init__(self, path: Path, start_step: int = 0) -> None:
        self.path = path
        self.columns: list[str] = list(FIXED)
        self.rows: list[dict[str, str]] = []
        if start_step > 0 and path.exists():  # resumed: keep the rows up to the checkpoint's step
            with path.open(newline="") as f:
                reader = csv.DictReader(f)
                header = list(reader.fieldnames or [])
                kept = [r for r in reader if r.get("step", "").isdigit() and int(r["step"]) <= start_step]
            self.columns = list(dict.fromkeys([*FIXED, *header]))
            self.rows = [{k: v for k, v in r.items() if k is not None} for r in kept]
        self._rewrite()

    def _encode(self, rows: list[dict[str, str]], header: bool) -> bytes:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.columns, restval="", lineterminator="\n")
        if header:
            w.writeheader()
        w.writerows(rows)
        return buf.getvalue().encode()

    def _rewrite(self) -> None:
        atomic_write_bytes(self.path, self._encode(self.rows, header=True))

    def write(self, step: int, kind: str, elapsed_s: float, values: dict[str, Any], lr: float | None = None) -> None:
        row = {"step": str(int(step)), "kind": kind, "elapsed_s": f"{elapsed_s:.3f}", "lr": _cell(lr)}
        row.update({k: _cell(v) for k, v in values.items()})
        new = [k for k in row if k not in self.columns]
        self.rows.append(row)
        if new:  # a wider header: rewrite the whole file (atomically)
            self.columns.extend(new)
            self._rewrite()
            return
        with self.path.open("ab") as f:  # one whole line per append
            f.write(self._encode([row], header=False))
            f.flush()


class RunLogger:
    """The loggers of one run: ``train(step, losses, lr)`` at each logged step, ``eval(point)``
    at each evaluation, ``close()`` at the end (also after an error)."""

    def __init__(self, run_dir: Path, names: Iterable[str] = ("csv",), start_step: int = 0) -> None:
        self.names = parse_loggers(list(names))
        check_available(self.names)
        self.t0 = time.perf_counter()
        self.csv = CSVLog(Path(run_dir) / CSV_NAME, start_step)
        self.tb = None
        if "tensorboard" in self.names:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(log_dir=str(Path(run_dir) / TB_DIR), purge_step=start_step if start_step > 0 else None)

    def _elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def train(self, step: int, losses: dict[str, float], lr: float | None = None) -> None:
        values = {f"loss/{k}": float(v) for k, v in losses.items()}
        self.csv.write(step, "train", self._elapsed(), values, lr)
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(k, v, step)
            if lr is not None:
                self.tb.add_scalar("lr", lr, step)

    def eval(self, point: dict[str, Any]) -> None:
        step = int(point["step"])
        values = {k: v for k, v in point.items() if k != "step" and not k.startswith("loss/")}
        self.csv.write(step, "eval", self._elapsed(), values)
        if self.tb is not None:
            for k, v in values.items():
                if v is not None:
                    self.tb.add_scalar(k, float(v), step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.flush()
            self.tb.close()
            self.tb = None
