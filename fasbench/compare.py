"""Paired bootstrap comparison of two run settings on one protocol (``fasbench compare A B``).

The question: is setting A's target metric (default HTER) on a protocol different from
setting B's, beyond what the finite target data and the choice of training seeds explain?

Runs.  A and B are method names, or ``METHOD#RUN`` where ``RUN`` is the 8-hex
:func:`~fasbench.records.run_key_id` shown on the leaderboard (needed when a method has
several run settings).  Duplicated runs are resolved as on the leaderboard (the newest record
of a repeated (run key, task, seed) is kept).

Pairing.  A's and B's records are paired by (task, seed); a (task, seed) that only one side
has is dropped, and the result says which.

Data.  Each record's per-frame ``scores.csv.gz`` is read (its sha256 must equal
``rec.scores.sha256``: a missing or changed file is an error) and its target rows form a
:class:`~fasbench.metrics.ScoreSet`, averaged per video when the record's metrics are video
level.  All records of one task must have been evaluated on the same target videos (same ids,
same labels) of the same data (the records' data fingerprint: the same ids on another copy of a
dataset, or on the synthetic world generated in another environment, are other pixels); both
are checked, and their videos are aligned on one order.

Statistic.  ``m(rec, data)`` is the metric (:func:`~fasbench.metrics.get_metric`, computed
through :func:`~fasbench.metrics.compute_metrics`, in percent) of a record's target scores at
the record's own threshold for the policy: ``source-val-threshold`` uses the record's fixed
threshold (``rec.target[policy].threshold``, chosen on source data); ``target-eer-threshold``
re-chooses the EER threshold on the data itself (:func:`~fasbench.metrics.choose_threshold`,
with the record's ``eval.ssdg`` rule).  The difference is::

    D = mean over tasks t of ( mean over the seed pairs s of t of m(A_ts) - m(B_ts) )

On the original data, ``D`` is the point estimate; it equals the difference of the leaderboard
averages (mean over tasks of the per-task seed means) of A and B over the paired records.  The
recomputed per-record values are checked against the values stored in the records.

Bootstrap.  In each of ``resamples`` iterations and for each task independently: the target
videos (frames, for records evaluated at frame level) are resampled with replacement, live
and spoof separately (stratified, counts kept), and the SAME resampled video ids are used for
every record of the task (A and B, every seed: they were evaluated on the same videos, so the
pairing removes the shared difficulty of the data); the task's seed pairs are resampled with
replacement; the task's difference is the mean over the resampled pairs, and ``D*`` the mean
over tasks.  The result is the percentile interval (2.5 %, 97.5 %) of ``D*``; iterations
where the metric is undefined are left out (counted).
Deterministic for ``seed``.  Comparing a setting with itself gives exactly ``[0, 0]``.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fasbench.errors import FasbenchError
from fasbench.records import (
    POLICIES,
    SOURCE_VAL_THRESHOLD,
    TARGET_EER_THRESHOLD,
    RunRecord,
    run_key_id,
    run_label,
)

LEVEL = 95.0
DEFAULT_RESAMPLES = 2000


# --------------------------------------------------------------------------- scores


def read_target_scores(rec: RunRecord, policy: str) -> Any:
    """The target :class:`~fasbench.metrics.ScoreSet` of ``rec`` as its ``policy`` block was
    computed (per video for a video-level block), from the sha256-checked scores file
    (:func:`fasbench.commands.score.read_run_scores`)."""
    import pandas as pd

    from fasbench.commands.score import read_run_scores
    from fasbench.metrics import ScoreSet

    if rec.scores is not None and rec.run_dir is None:
        raise FasbenchError(f"{rec.run_id}: the record was not loaded from a file, so its scores file cannot be found")
    _, target = read_run_scores(rec)
    if rec.target[policy].level == "video":
        try:
            return target.per_video()
        except FasbenchError as exc:
            raise FasbenchError(f"{rec.source}: target scores: {exc}") from None
    # frame level: a frame is identified by its video and its position in the video
    nth = pd.Series(target.videos).groupby(target.videos).cumcount().to_numpy()
    ids = np.asarray([f"{v}#{i}" for v, i in zip(target.videos, nth)], dtype=object)
    return ScoreSet(target.scores, target.labels, target.attacks, ids)


# --------------------------------------------------------------------------- selection


def _split_spec(spec: str) -> tuple[str, str | None]:
    method, sep, rid = spec.rpartition("#")
    if not sep:
        return spec, None
    if not re.fullmatch(r"[0-9a-fA-F]{1,8}", rid):
        raise FasbenchError(f"{spec!r}: the part after '#' must be a run id (8 hex digits, as the leaderboard's run column)")
    return method, rid.lower()


def _settings(recs: Sequence[RunRecord]) -> dict[str, tuple[str, list[RunRecord]]]:
    out: dict[str, tuple[str, list[RunRecord]]] = {}
    for r in recs:
        out.setdefault(run_key_id(r), (run_label(r), []))[1].append(r)
    return out


def _listing(method: str, settings: dict[str, tuple[str, list[RunRecord]]]) -> str:
    return ", ".join(
        f"{method}#{rid} ({label}; {len(recs)} record{'s' if len(recs) != 1 else ''})"
        for rid, (label, recs) in sorted(settings.items())
    )


def _candidates(records: Sequence[RunRecord], spec: str, where: str) -> list[RunRecord]:
    method, rid = _split_spec(spec)
    mine = [r for r in records if r.method == method]
    if not mine:
        found = sorted({r.method for r in records})
        raise FasbenchError(f"no run records of method {method!r} under {where}; methods found: {', '.join(found) or '(none)'}")
    if rid is not None:
        chosen = [r for r in mine if run_key_id(r).startswith(rid)]
        if not chosen:
            raise FasbenchError(f"no run setting {spec!r} under {where}; {method}'s settings: {_listing(method, _settings(mine))}")
        if len({run_key_id(r) for r in chosen}) > 1:
            raise FasbenchError(f"{spec!r} matches several run settings; give all 8 hex digits: {_listing(method, _settings(chosen))}")
        return chosen
    return mine


def select_runs(records: Sequence[RunRecord], a: str, b: str, protocol: str | None = None,
                where: str = "the runs") -> tuple[str, list[RunRecord], list[RunRecord]]:
    """``(protocol, A's records, B's records)``: one protocol, one run setting per side."""
    cand = [(a, _candidates(records, a, where)), (b, _candidates(records, b, where))]
    if protocol is None:
        protos = sorted({r.protocol for _, recs in cand for r in recs})
        if len(protos) > 1:
            raise FasbenchError(f"records of several protocols match ({', '.join(protos)}); choose one with --protocol")
        protocol = protos[0]
    out = []
    for spec, recs in cand:
        on = [r for r in recs if r.protocol == protocol]
        if not on:
            found = sorted({r.protocol for r in recs})
            raise FasbenchError(f"no run records of {spec} on protocol {protocol!r} under {where}; its protocols: {', '.join(found)}")
        settings = _settings(on)
        if len(settings) > 1:
            method = _split_spec(spec)[0]
            raise FasbenchError(
                f"{method} has {len(settings)} run settings on {protocol} under {where}; name one as "
                f"METHOD#RUN: {_listing(method, settings)}"
            )
        out.append(on)
    return protocol, out[0], out[1]


# --------------------------------------------------------------------------- the bootstrap


@dataclass
class _Run:
    """One record's aligned target data and how its metric is computed."""

    rec: RunRecord
    scores: np.ndarray
    labels: np.ndarray
    attacks: np.ndarray | None
    threshold: float | None  # None: re-chosen on the data (target-eer-threshold)
    ssdg: bool

    def value(self, metric: Any, idx: np.ndarray | None = None) -> float | None:
        from fasbench.metrics import ScoreSet, choose_threshold, compute_metrics

        if idx is None:
            s = ScoreSet._trusted(self.scores, self.labels, self.attacks)
        else:
            s = ScoreSet._trusted(self.scores[idx], self.labels[idx],
                                  None if self.attacks is None else self.attacks[idx])
        try:
            thr = choose_threshold(s, self.ssdg) if self.threshold is None else self.threshold
        except FasbenchError:
            return None
        return compute_metrics(s, thr, [metric], ssdg=self.ssdg).get(metric.name)


@dataclass
class Comparison:
    """The result of :func:`paired_bootstrap` (percent; ``difference`` = A - B)."""

    protocol: str
    policy: str
    metric: str
    higher_is_better: bool
    a: dict[str, Any]
    b: dict[str, Any]
    tasks: dict[str, list[int]]
    dropped: list[dict[str, Any]]
    difference: float
    ci: list[float]
    level: float
    resamples: int
    resamples_used: int
    seed: int
    n_pairs: int = field(init=False)

    def __post_init__(self) -> None:
        self.n_pairs = sum(len(s) for s in self.tasks.values())

    @property
    def excludes_zero(self) -> bool:
        return self.ci[0] > 0.0 or self.ci[1] < 0.0

    @property
    def verdict(self) -> str:
        lo, hi = self.ci
        if not self.excludes_zero:
            return "the interval includes 0: no difference shown"
        if self.difference < 0:
            return f"A lower by {-self.difference:.2f} [{-hi:.2f}, {-lo:.2f}]: the interval excludes 0"
        return f"A higher by {self.difference:.2f} [{lo:.2f}, {hi:.2f}]: the interval excludes 0"

    def to_json(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol, "policy": self.policy, "metric": self.metric,
            "higher_is_better": self.higher_is_better, "a": self.a, "b": self.b,
            "tasks": self.tasks, "n_tasks": len(self.tasks), "n_pairs": self.n_pairs,
            "dropped": self.dropped, "difference": self.difference, "ci": list(self.ci),
            "level": self.level, "resamples": self.resamples, "resamples_used": self.resamples_used,
            "seed": self.seed, "excludes_zero": self.excludes_zero, "verdict": self.verdict,
        }


def _side(spec: str, recs: Sequence[RunRecord]) -> dict[str, Any]:
    return {"spec": spec, "method": recs[0].method, "run": run_key_id(recs[0]), "label": run_label(recs[0])}


def _build_run(rec: RunRecord, policy: str, metric: Any) -> tuple[_Run, Any]:
    if policy not in rec.target:
        raise FasbenchError(f"{rec.source}: no {policy!r} block; it has {', '.join(rec.target)}")
    s = read_target_scores(rec, policy)
    ev = rec.config.get("eval")
    ssdg = bool(ev.get("ssdg", False)) if isinstance(ev, dict) else False
    thr = float(rec.target[policy].threshold) if policy == SOURCE_VAL_THRESHOLD else None
    return _Run(rec, s.scores, s.labels, s.attacks, thr, ssdg), s.videos


def _align(task: str, runs: list[tuple[str, _Run, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Put every run of a task on the first run's video order; (live idx, spoof idx)."""
    import pandas as pd

    ref_name, ref, ref_videos = runs[0]
    ref_index = pd.Index(ref_videos)
    for name, run, videos in runs[1:]:
        if len(videos) != len(ref_videos) or set(videos) != set(ref_videos):
            only = sorted(set(map(str, videos)) ^ set(map(str, ref_videos)))[:3]
            raise FasbenchError(
                f"task {task}: {name} and {ref_name} were evaluated on different target videos "
                f"({len(videos)} vs {len(ref_videos)}; e.g. {only}); they cannot be paired"
            )
        order = pd.Index(videos).get_indexer(ref_index)
        run.scores, run.labels = run.scores[order], run.labels[order]
        if run.attacks is not None:
            run.attacks = run.attacks[order]
        if not np.array_equal(run.labels, ref.labels):
            raise FasbenchError(f"task {task}: {name} and {ref_name} label the same target videos differently")
    return np.flatnonzero(ref.labels == 1), np.flatnonzero(ref.labels == 0)


def paired_bootstrap(a_records: Sequence[RunRecord], b_records: Sequence[RunRecord], *,
                     policy: str = SOURCE_VAL_THRESHOLD, metric: str = "HTER",
                     resamples: int = DEFAULT_RESAMPLES, seed: int = 0, a: str = "A", b: str = "B",
                     protocol: str | None = None) -> Comparison:
    """Paired bootstrap CI of ``metric(A) - metric(B)`` over tasks x seeds (module docstring)."""
    from fasbench.metrics import get_metric

    if policy not in POLICIES:
        raise FasbenchError(f"unknown policy {policy!r}; choose one of {', '.join(POLICIES)}")
    if resamples < 1:
        raise FasbenchError(f"--resamples {resamples}: it must be at least 1")
    m = get_metric(metric)
    by_a = {(r.task.name, r.seed): r for r in a_records}
    by_b = {(r.task.name, r.seed): r for r in b_records}
    paired = [k for k in by_a if k in by_b]
    dropped = ([{"task": t, "seed": s, "only": "A"} for (t, s) in by_a if (t, s) not in by_b]
               + [{"task": t, "seed": s, "only": "B"} for (t, s) in by_b if (t, s) not in by_a])
    if not paired:
        raise FasbenchError(f"{a} and {b} share no (task, seed): nothing to pair")
    from fasbench.leaderboard.grouping import _task_order  # the leaderboard's task order

    protocol = protocol or a_records[0].protocol
    task_order = _task_order(protocol, [by_a[k] for k in sorted(paired)])

    tasks: dict[str, dict[str, Any]] = {}
    for task in task_order:
        seeds = sorted(s for (t, s) in paired if t == task)
        built: dict[int, _Run] = {}  # id(record) -> run, so A vs A reads each file once
        pairs, named = [], []
        for s in seeds:
            ra, rb = by_a[(task, s)], by_b[(task, s)]
            if ra.data.fingerprint != rb.data.fingerprint:
                # same video ids, other pixels (another copy of the dataset, or the synthetic world
                # generated in another environment): not one test set, so no paired comparison
                raise FasbenchError(
                    f"task {task} seed {s}: {a} was evaluated on data {ra.data.fingerprint[:8]} and {b} on "
                    f"{rb.data.fingerprint[:8]} (the data column of the leaderboard); a paired comparison "
                    f"needs the same target data: compare runs made on one copy of the data"
                )
            for side, rec in (("A", ra), ("B", rb)):
                if id(rec) not in built:
                    run, videos = _build_run(rec, policy, m)
                    built[id(rec)] = run
                    named.append((f"{side} seed {s}", run, videos))
            pairs.append((built[id(ra)], built[id(rb)]))
        live, spoof = _align(task, named)
        if not len(live) or not len(spoof):
            raise FasbenchError(f"task {task}: the target needs live and spoof videos for a stratified bootstrap")
        original = []
        for ra, rb in pairs:
            va, vb = ra.value(m), rb.value(m)
            for run, v in ((ra, va), (rb, vb)):
                if v is None:
                    raise FasbenchError(f"{run.rec.source}: {metric} is undefined on its target scores")
                stored = run.rec.target[policy].metrics.get(metric)
                if stored is not None and abs(stored - v) > 1e-6 * max(1.0, abs(stored)):
                    raise FasbenchError(
                        f"{run.rec.source}: {metric} recomputed from its scores file is {v:.6g}, the record "
                        f"says {stored:.6g}; the scores and the record disagree"
                    )
            original.append((va, vb))
        tasks[task] = {"seeds": seeds, "pairs": pairs, "live": live, "spoof": spoof, "original": original}

    mean_a = float(np.mean([np.mean([va for va, _ in t["original"]]) for t in tasks.values()]))
    mean_b = float(np.mean([np.mean([vb for _, vb in t["original"]]) for t in tasks.values()]))
    point = float(np.mean([np.mean([va - vb for va, vb in t["original"]]) for t in tasks.values()]))

    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(int(resamples)):
        task_diffs = []
        ok = True
        for t in tasks.values():
            live, spoof, pairs = t["live"], t["spoof"], t["pairs"]
            idx = np.concatenate([live[rng.integers(0, len(live), len(live))],
                                  spoof[rng.integers(0, len(spoof), len(spoof))]])
            pick = rng.integers(0, len(pairs), len(pairs))
            cache: dict[int, float | None] = {}
            diffs = []
            for j in pick.tolist():
                if j not in cache:
                    ra, rb = pairs[j]
                    va = ra.value(m, idx)
                    vb = va if rb is ra else rb.value(m, idx)
                    cache[j] = None if va is None or vb is None else va - vb
                if cache[j] is None:
                    ok = False
                    break
                diffs.append(cache[j])
            if not ok:
                break
            task_diffs.append(float(np.mean(diffs)))
        if ok:
            stats.append(float(np.mean(task_diffs)))
    if not stats:
        raise FasbenchError(f"{metric} was undefined in every bootstrap resample")
    lo, hi = np.percentile(np.asarray(stats), [(100.0 - LEVEL) / 2.0, 100.0 - (100.0 - LEVEL) / 2.0])
    a_side = {**_side(a, a_records), "mean": mean_a}
    b_side = {**_side(b, b_records), "mean": mean_b}
    return Comparison(
        protocol=protocol, policy=policy, metric=m.name,
        higher_is_better=m.higher_is_better, a=a_side, b=b_side,
        tasks={t: v["seeds"] for t, v in tasks.items()}, dropped=dropped, difference=point,
        ci=[float(lo), float(hi)], level=LEVEL, resamples=int(resamples), resamples_used=len(stats),
        seed=int(seed),
    )


def compare(records: Iterable[RunRecord], a: str, b: str, *, protocol: str | None = None,
            policy: str = SOURCE_VAL_THRESHOLD, metric: str = "HTER", resamples: int = DEFAULT_RESAMPLES,
            seed: int = 0, where: str = "the runs") -> Comparison:
    """Select A's and B's records (:func:`select_runs`) and run :func:`paired_bootstrap`."""
    from fasbench.leaderboard import prepare

    recs = prepare(records)
    protocol, ra, rb = select_runs(recs, a, b, protocol, where)
    return paired_bootstrap(ra, rb, policy=policy, metric=metric, resamples=resamples, seed=seed,
                            a=a, b=b, protocol=protocol)


__all__ = ["Comparison", "compare", "paired_bootstrap", "read_target_scores", "select_runs",
           "SOURCE_VAL_THRESHOLD", "TARGET_EER_THRESHOLD"]
