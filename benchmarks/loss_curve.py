"""The training-loss curve of a ``fasbench run``, for choosing a training budget.

The run record keeps the losses at its evaluation points only; this runs ``fasbench run`` in
this process and keeps the losses of every ``trainer.log_every`` step (the values the progress
bar shows), then writes them to a CSV (``step,<loss names>``) and prints the mean total loss per
fifth of the run and the flatness criterion used for the board's budget:

    flat = |mean(last 20% of steps) - mean(previous 20%)| <= max(rel * mean(previous 20%), abs)

Usage (the arguments after ``--`` are those of ``fasbench run``)::

    OMP_NUM_THREADS=1 python benchmarks/loss_curve.py --csv erm_curve.csv -- \\
        erm --protocol MICO --data synthetic --tasks O data.image_size=64 data.crop_size=56 \\
        trainer.max_steps=400 trainer.log_every=5 trainer.eval_every=0 --out runs/curve --no-progress
"""
from __future__ import annotations

import argparse
import csv
import sys


def fifths(rows: list[dict[str, float]]) -> list[float]:
    """Mean total loss over each fifth of the logged steps (of one run)."""
    n = len(rows)
    out = []
    for i in range(5):
        part = rows[i * n // 5:(i + 1) * n // 5]
        out.append(sum(r["total"] for r in part) / max(1, len(part)))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--csv", required=True, help="where to write step,<loss names>,total")
    p.add_argument("--rel", type=float, default=0.10, help="relative tolerance of the flatness criterion")
    p.add_argument("--abs", type=float, default=0.01, help="absolute tolerance (nats) of the flatness criterion")
    p.add_argument("run", nargs=argparse.REMAINDER, help="-- then the arguments of `fasbench run`")
    args = p.parse_args()
    run_args = args.run[1:] if args.run[:1] == ["--"] else args.run

    from fasbench import cli
    from fasbench.engine import trainer

    rows: list[dict[str, float]] = []
    original = trainer.TaskRunner._logged_losses

    def keep(self, losses, step, desc):
        vals = original(self, losses, step, desc)
        rows.append({"run": desc, "step": step, **vals, "total": sum(vals.values())})
        return vals

    trainer.TaskRunner._logged_losses = keep
    rc = cli.main(["run", *run_args])
    if not rows:
        print("no training steps were logged", file=sys.stderr)
        return rc or 1
    names = list(dict.fromkeys(k for r in rows for k in r))
    with open(args.csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=names)
        w.writeheader()
        w.writerows(rows)
    for run in dict.fromkeys(r["run"] for r in rows):  # one line per task and seed
        m = fifths([r for r in rows if r["run"] == run])
        flat = abs(m[4] - m[3]) <= max(args.rel * m[3], args.abs)
        print(f"{run}: mean total loss per fifth {', '.join(f'{v:.4f}' for v in m)}; last fifth vs previous: "
              f"{'flat' if flat else 'still falling'} (criterion: within max({args.rel:.0%}, {args.abs} nats))")
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
