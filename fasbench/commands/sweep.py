"""``fasbench sweep status``: every run of a sweep as complete / running / interrupted /
failed / not started, from the plan the sweep wrote and the files of each run folder."""
from __future__ import annotations

from pathlib import Path


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("sweep", help="the state of every run of a -m sweep",
                              description="Inspect sweeps started with `fasbench run METHOD -m ...`.")
    sub = p.add_subparsers(dest="sweep_command", metavar="SUBCOMMAND", required=True)
    s = sub.add_parser("status", help="every run of the newest sweep under --out: complete, running, interrupted, "
                                      "failed or not started")
    s.add_argument("--out", default="runs", help="the sweep's --out (default: runs)")
    s.add_argument("--plan", help="a plan file (OUT/multirun/sweeps/*.json; default: the newest)")
    s.add_argument("--json", action="store_true", help="print the rows as JSON")
    s.set_defaults(func=status_main)


def status_main(args) -> int:
    import json

    from tabulate import tabulate

    from fasbench.engine.sweep import STATES, status

    rows = status(Path(args.out) / "multirun", Path(args.plan) if args.plan else None)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    # only the overrides that differ between jobs tell them apart
    common = set.intersection(*(set(r["overrides"]) for r in rows)) if rows else set()
    print(tabulate([[r["state"], " ".join(o for o in r["overrides"] if o not in common) or "-",
                     "/".join(Path(r["run_dir"]).parts[-4:]), r["detail"]] for r in rows],
                   headers=["state", "job", "run", "detail"], tablefmt="simple"))
    counts = {s: sum(r["state"] == s for r in rows) for s in STATES}
    print("\n" + ", ".join(f"{n} {s}" for s, n in counts.items() if n) + f" (of {len(rows)} runs)")
    return 0
