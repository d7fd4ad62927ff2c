"""A markdown table of a ``fasbench run METHOD -m ...`` sweep, ranked on source-val EER only.

One row per sweep job (its overrides, i.e. its folder name under ``OUT/multirun/``), one
column per task with the source-val EER (the sources' held-out split, threshold-free), their
mean, and, apart, the mean target HTER at the source-val threshold, which is shown for
information and never used to rank, and the data fingerprint(s) the job's runs were made on
(with a note when the jobs differ there). A job missing a task is ranked after the complete ones.

    python benchmarks/sweep_table.py runs/tuning/stage1 [--seed 0]
    python benchmarks/sweep_table.py leaderboard/records/tuning/daa-stage1 --seed 0
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def collect(out: Path, seed: int | None) -> dict[str, dict[str, dict]]:
    """{job folder name: {task: record}}."""
    jobs: dict[str, dict[str, dict]] = {}
    # a sweep's --out folder holds its jobs under multirun/; a committed copy
    # (leaderboard/records/tuning/...) holds the job folders directly
    root = out / "multirun" if (out / "multirun").is_dir() else out
    for rec_path in sorted(root.glob("*/**/record.json")):
        job = rec_path.relative_to(root).parts[0]
        rec = json.loads(rec_path.read_text())
        if rec.get("status") != "complete" or (seed is not None and rec["seed"] != seed):
            continue
        jobs.setdefault(job, {})[rec["task"]["name"]] = rec
    return jobs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", nargs="+", type=Path, help="the --out folder(s) of the sweep(s)")
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args()
    jobs: dict[str, dict[str, dict]] = {}
    for out in args.out:
        jobs.update({f"{out.name}/{k}": v for k, v in collect(out, args.seed).items()})
    tasks = sorted({t for recs in jobs.values() for t in recs})
    rows = []
    for job, recs in jobs.items():
        val = {t: recs[t]["val"]["metrics"]["EER"] for t in recs}
        tgt = [recs[t]["target"]["source-val-threshold"]["metrics"]["HTER"] for t in recs]
        complete = len(recs) == len(tasks)
        rows.append((not complete, sum(val.values()) / len(val), job, val, sum(tgt) / len(tgt), len(recs)))
    rows.sort(key=lambda r: (r[0], r[1]))
    worlds = {job: sorted({r["data"]["fingerprint"][:8] for r in recs.values()}) for job, recs in jobs.items()}
    head = ["rank", "sweep job (overrides)", *[f"{t} val EER" for t in tasks], "mean val EER (selects)",
            "mean target HTER @source-val thr (NOT used for selection)", "data"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for i, (incomplete, mean, job, val, tgt, n) in enumerate(rows, 1):
        cells = [f"{val[t]:.2f}" if t in val else "-" for t in tasks]
        rank = f"{i}" if not incomplete else f"({n}/{len(tasks)} tasks)"
        name = f"**{job}**" if i == 1 and not incomplete else job
        print(f"| {rank} | {name} | " + " | ".join(cells) + f" | {mean:.2f} | {tgt:.2f} | {', '.join(worlds[job])} |")
    if len({w for ws in worlds.values() for w in ws}) > 1:
        # the same world generated in another environment has other pixels (another fingerprint)
        print("\nNote: the jobs were not all run on the same data (the `data` column: fingerprints); "
              "rows on different data are not a like-for-like comparison.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
