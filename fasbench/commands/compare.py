"""``fasbench compare A B``: is A's target metric different from B's? A paired bootstrap.

A and B are method names, or ``METHOD#RUN`` with the 8-hex run id of the leaderboard's
``run`` column when a method has several run settings under ``--runs``.  Records of A and B
on one protocol are paired by (task, seed); each record's ``scores.csv.gz`` (sha256 checked)
gives its target scores.  In every resample the target videos of each task are resampled
with replacement, live and spoof separately, with the same videos for A and B, and the seed
pairs are resampled with replacement; the statistic is the mean over tasks of the mean over
seed pairs of metric(A) - metric(B), each at the record's own threshold for ``--policy``.
Prints the point estimate (equal to the difference of the leaderboard averages over the
paired records), the 95% percentile interval and a verdict; the exit code is 0 either way.
The method is described in full in ``fasbench/compare.py``.
"""
from __future__ import annotations

import argparse
import json
from typing import Any

from fasbench.errors import FasbenchError


def add_parser(subparsers: Any) -> None:
    """Register ``compare`` on an ``argparse`` ``add_subparsers()`` object."""
    p = subparsers.add_parser(
        "compare",
        help="paired bootstrap CI of the metric difference A - B over tasks x seeds",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("a", metavar="A", help="METHOD or METHOD#RUN (run id from the leaderboard)")
    p.add_argument("b", metavar="B", help="METHOD or METHOD#RUN")
    p.add_argument("--runs", metavar="DIR", default="runs",
                   help="directory searched for **/record.json (default: runs)")
    p.add_argument("--protocol", metavar="P", default=None,
                   help="the protocol (needed when A's or B's records cover several)")
    p.add_argument("--policy", default="source-val-threshold",
                   help="threshold policy on the target: source-val-threshold (default, deployable) "
                        "or target-eer-threshold (idealized)")
    p.add_argument("--metric", default="HTER", help="metric to compare (default: HTER)")
    p.add_argument("--resamples", metavar="N", type=int, default=2000,
                   help="bootstrap resamples (default: 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the resampling (default: 0)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=main)


def _pairs_text(tasks: dict[str, list[int]]) -> str:
    return "; ".join(f"{t} seeds {','.join(str(s) for s in seeds)}" for t, seeds in tasks.items())


def main(args: argparse.Namespace) -> int:
    from fasbench.commands.leaderboard import warnings_to_stderr
    from fasbench.compare import compare
    from fasbench.leaderboard import policy_label
    from fasbench.records import load_records

    runs = args.runs
    with warnings_to_stderr():
        records = load_records(runs)
        if not records:
            raise FasbenchError(
                f"no run records under {runs}; point --runs at the directory that holds the "
                "runs (it is searched for **/record.json)"
            )
        result = compare(records, args.a, args.b, protocol=args.protocol, policy=args.policy,
                         metric=args.metric, resamples=args.resamples, seed=args.seed, where=runs)

    if args.json:
        print(json.dumps(result.to_json(), indent=2))
        return 0
    r = result
    better = "higher" if r.higher_is_better else "lower"
    print(f"{r.metric} (%, {better} is better) on {r.protocol}, {policy_label(r.policy)}")
    print(f"A: {r.a['method']}#{r.a['run']}  {r.a['label']}")
    print(f"B: {r.b['method']}#{r.b['run']}  {r.b['label']}")
    print(f"paired: {len(r.tasks)} task{'s' if len(r.tasks) != 1 else ''}, {r.n_pairs} seed "
          f"pair{'s' if r.n_pairs != 1 else ''} ({_pairs_text(r.tasks)})")
    if r.dropped:
        print("dropped (no partner): " + ", ".join(
            f"{d['task']} seed {d['seed']} ({d['only']} only)" for d in r.dropped))
    print(f"mean {r.metric}: A {r.a['mean']:.2f}, B {r.b['mean']:.2f} (mean over tasks of the "
          "per-task seed means, paired records)")
    print(f"A - B = {r.difference:+.2f}, {r.level:g}% CI [{r.ci[0]:+.2f}, {r.ci[1]:+.2f}] (paired "
          f"bootstrap: {r.resamples_used} of {r.resamples} resamples of target videos, stratified "
          f"and shared by A and B, and of seed pairs; seed {r.seed})")
    print(f"verdict: {r.verdict}")
    return 0
