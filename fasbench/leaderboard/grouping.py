"""Grouping: run records -> one numeric table per protocol.

Records are grouped by (protocol, :func:`~fasbench.records.run_key`, threshold policy); each
group is one row with per-task, per-metric statistics over seeds and the task average. The
paper-reported rows (:mod:`fasbench.leaderboard.reported`) are aligned on the same tasks and
appended as rows of their own. See :mod:`fasbench.leaderboard` for the rules.
"""
from __future__ import annotations

import math
import re
import statistics
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from fasbench.errors import FasbenchError
from fasbench.protocols import parse_task_name
from fasbench.records import (
    POLICIES,
    RecordWarning,
    RunRecord,
    identity_fields,
    parse_record,
    run_key,
    run_key_id,
    run_label,
)

#: Metrics the markdown and LaTeX tables show unless ``metrics=`` (``--metrics``) says otherwise.
DEFAULT_SHOWN = ("HTER", "AUC", "TPR@FPR=1%")
#: Canonical target order of the O/C/I/M benchmarks (MICO: OCI->M, OMI->C, OCM->I, ICM->O).
#: Tasks whose target is not listed follow, in order of first appearance.
CANONICAL_TARGETS = {
    "MICO": ("M", "C", "I", "O"),
    "LimitedSource": ("M", "C", "I", "O"),
}
DEFAULT_TARGETS = ("M", "C", "I", "O")
AVERAGE = "Average"
STD_DDOF = 1
REPORTED_LABEL = "reported (not reproduced)"
#: Metrics that can only go up to be better (used to sort rows; others: lower is better).
_HIGHER_IS_BETTER_FALLBACK = ("AUC", "TPR@FPR=1%", "TPR@FPR=0.1%")
_AVERAGE_NAMES = {"average", "avg", "mean"}


def _policy_rank(policy: str) -> tuple:
    if policy in POLICIES:
        return (POLICIES.index(policy), "")
    return (len(POLICIES), policy)


def selection_text(rule: str, metric: str | None) -> str:
    """How a checkpoint was selected, and on what data (for table headers)."""
    if rule == "last":
        return "last (no target data)"
    if rule == "source-val":
        return f"source-val: best {metric or '?'} on the source-val split (source data only)"
    if rule == "target-oracle":
        return f"target-oracle: best {metric or '?'} on the target (reads target labels: idealized)"
    return rule


def _higher_is_better(name: str) -> bool:
    try:
        from fasbench.metrics import get_metric

        return get_metric(name).higher_is_better
    except FasbenchError:  # an unregistered plugin metric: the known names, else ascending
        return name in _HIGHER_IS_BETTER_FALLBACK


# --------------------------------------------------------------------------- statistics


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample std (ddof=1) of ``values``; std is None for fewer than two values."""
    if not values:
        return None, None
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else None
    return mean, std


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _half_width(interval: Any) -> float | None:
    if not isinstance(interval, (list, tuple)) or len(interval) != 2:
        return None
    lo, hi = _finite(interval[0]), _finite(interval[1])
    return None if lo is None or hi is None else (hi - lo) / 2.0


def _created_key(rec: RunRecord) -> tuple:
    """Sort key for "newest": parsed ``created`` (UTC), unparsable timestamps are oldest."""
    raw = rec.created
    if raw:
        try:
            when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            if when.tzinfo is None:
                when = when.replace(tzinfo=timezone.utc)
            return (1, when.timestamp(), raw)
        except ValueError:
            return (1, float("-inf"), raw)
    return (0, float("-inf"), "")


# --------------------------------------------------------------------------- grouping


@dataclass
class _Group:
    protocol: str
    policy: str
    method: str
    key: str
    run: str
    setting: str
    selection: str
    selection_text: str
    precision: str
    dataset: str
    fingerprint: str
    data_label: str
    fasbench: set = field(default_factory=set)
    # task -> seed -> metric -> value
    values: dict = field(default_factory=dict)
    # task -> seed -> metric -> 95% CI half-width
    ci: dict = field(default_factory=dict)
    n_records: int = 0


def _as_record(rec: Any, index: int) -> RunRecord:
    if isinstance(rec, RunRecord):
        return rec
    return parse_record(rec, f"record #{index}")


def prepare(records: Iterable[RunRecord | dict]) -> list[RunRecord]:
    """Records to tabulate: incomplete ones dropped, the newest of duplicated runs kept.

    A duplicate is the same (protocol, :func:`~fasbench.records.run_key`, task, seed); the
    record with the newest ``created`` is kept (ties: the later one in input order) and a
    :class:`RecordWarning` names both files. Dicts are validated as records first.
    """
    kept: dict[tuple, RunRecord] = {}
    for i, raw in enumerate(records):
        rec = _as_record(raw, i)
        if rec.status != "complete":
            warnings.warn(f"skipping {rec.source}: status is {rec.status!r}, not 'complete'",
                          RecordWarning, stacklevel=3)
            continue
        key = (rec.protocol, run_key(rec), rec.task.name, rec.seed)
        old = kept.get(key)
        if old is None:
            kept[key] = rec
            continue
        newer, older = (rec, old) if _created_key(rec) >= _created_key(old) else (old, rec)
        warnings.warn(
            f"duplicate run of {rec.method} on {rec.protocol} {rec.task.name} seed {rec.seed} "
            f"(run {run_key_id(rec)}): keeping the newest, {newer.source} (created {newer.created}), "
            f"ignoring {older.source} (created {older.created})",
            RecordWarning,
            stacklevel=3,
        )
        kept[key] = newer
    return list(kept.values())


def _task_order(protocol: str, records: list[RunRecord]) -> list[str]:
    targets = CANONICAL_TARGETS.get(protocol, DEFAULT_TARGETS)
    first_seen: dict[str, tuple[int, str]] = {}
    for rec in records:
        first_seen.setdefault(rec.task.name, (len(first_seen), rec.task.target))

    def rank(task: str) -> tuple:
        seen, target = first_seen[task]
        return (targets.index(target) if target in targets else len(targets), seen)

    return sorted(first_seen, key=rank)


def metric_union(records: Iterable[RunRecord]) -> list[str]:
    """The union of the records' ``metric_names``, in order of first appearance."""
    out: dict[str, None] = {}
    for rec in records:
        for name in rec.metric_names:
            out.setdefault(name, None)
    return list(out)


def _groups(records: list[RunRecord], metrics: list[str]) -> dict[tuple, _Group]:
    groups: dict[tuple, _Group] = {}
    for rec in records:
        key = run_key(rec)
        for policy, block in rec.target.items():
            group = groups.get((key, policy))
            if group is None:
                comp = rec.components.dataset
                group = groups[(key, policy)] = _Group(
                    protocol=rec.protocol,
                    policy=policy,
                    method=rec.method,
                    key=key,
                    run=run_key_id(rec),
                    setting=run_label(rec),
                    selection=identity_fields(rec)["selection"],
                    selection_text=selection_text(rec.selection.rule, rec.selection.metric),
                    precision=rec.precision,
                    dataset=rec.data.dataset,
                    fingerprint=rec.data.fingerprint,
                    data_label=f"{rec.data.dataset}@{comp.version} ({rec.data.fingerprint[:8]})",
                )
            version = rec.versions.get("fasbench")
            if version is not None:
                group.fasbench.add(str(version))
            group.n_records += 1
            cell = group.values.setdefault(rec.task.name, {}).setdefault(rec.seed, {})
            ci = group.ci.setdefault(rec.task.name, {}).setdefault(rec.seed, {})
            for metric in metrics:
                cell[metric] = _finite(block.metrics.get(metric))
                ci[metric] = _half_width(block.ci.get(metric))
    return groups


def _seeds_label(seeds: Sequence[int]) -> str:
    return f"{len(seeds)} ({','.join(str(s) for s in seeds)})"


def _version_sort_key(v: str) -> tuple:
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.+-]", v))


def _row(group: _Group, tasks: list[str], metrics: list[str]) -> dict[str, Any]:
    seeds = sorted({s for per_seed in group.values.values() for s in per_seed})
    row: dict[str, Any] = {
        "protocol": group.protocol,
        "policy": group.policy,
        "method": group.method,
        "run": group.run,
        "setting": group.setting,
        "selection": group.selection,
        "precision": group.precision,
        "data": group.data_label,
        "seeds": _seeds_label(seeds),
        "n_seeds": len(seeds),
        "n_records": group.n_records,
        "fasbench": ",".join(sorted(group.fasbench, key=_version_sort_key)),
        "reported": "",
        "source": "",
        "caveat": "",
        "dataset": group.dataset,
        "fingerprint": group.fingerprint,
        "run_key": group.key,
        "_selection_text": group.selection_text,
    }
    covers_all = bool(tasks) and all(t in group.values for t in tasks)
    for metric in metrics:
        task_means = []
        for task in tasks:
            per_seed = group.values.get(task, {})
            vals = [m[metric] for m in per_seed.values() if m.get(metric) is not None]
            mean, std = mean_std(vals)
            widths = [c[metric] for c in group.ci.get(task, {}).values() if c.get(metric) is not None]
            row[f"{task} {metric} mean"] = mean
            row[f"{task} {metric} std"] = std
            row[f"{task} {metric} n"] = len(vals)
            row[f"{task} {metric} ci95"] = statistics.fmean(widths) if widths else None
            if mean is not None:
                task_means.append(mean)
        avg_mean = avg_std = None
        if covers_all and len(task_means) == len(tasks):
            avg_mean = statistics.fmean(task_means)
            per_seed_avgs = []
            for seed in seeds:
                vals = [group.values[t].get(seed, {}).get(metric) for t in tasks]
                if any(v is None for v in vals):
                    per_seed_avgs = []
                    break
                per_seed_avgs.append(statistics.fmean(vals))
            if len(per_seed_avgs) > 1:
                avg_std = statistics.stdev(per_seed_avgs)
        row[f"{AVERAGE} {metric} mean"] = avg_mean
        row[f"{AVERAGE} {metric} std"] = avg_std
    return row


_LEAD_COLUMNS = ["protocol", "policy", "method", "run", "setting", "selection", "precision", "data",
                 "seeds", "n_seeds", "n_records", "fasbench"]
_TAIL_COLUMNS = ["reported", "source", "caveat", "dataset", "fingerprint", "run_key"]
_INT_COLUMNS = ("n_seeds", "n_records")


def _columns(tasks: list[str], metrics: list[str]) -> list[str]:
    cols = list(_LEAD_COLUMNS)
    for task in tasks:
        for metric in metrics:
            cols += [f"{task} {metric} mean", f"{task} {metric} std", f"{task} {metric} n",
                     f"{task} {metric} ci95"]
    for metric in metrics:
        cols += [f"{AVERAGE} {metric} mean", f"{AVERAGE} {metric} std"]
    return cols + _TAIL_COLUMNS


def _frame(rows: list[dict], tasks: list[str], metrics: list[str]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=_columns(tasks, metrics))
    for col in df.columns:
        if col.endswith((" mean", " std", " ci95")):
            df[col] = df[col].astype("float64")  # None -> NaN, even in empty columns
        elif col.endswith(" n") or col in _INT_COLUMNS:
            df[col] = df[col].astype("Int64")  # blank, not 3.0000, in the reported rows
        else:
            df[col] = df[col].fillna("").astype(object)
    return df


def _check_metrics(requested: Sequence[str], available: Sequence[str]) -> list[str]:
    requested = [str(m).strip() for m in requested if str(m).strip()]
    if not requested:
        raise FasbenchError(f"--metrics is empty; name at least one of: {', '.join(available)}")
    unknown = [m for m in requested if m not in available]
    if unknown:
        raise FasbenchError(
            f"unknown metric(s) {', '.join(unknown)} for --metrics; the records report: "
            f"{', '.join(available) or '(none)'}"
        )
    return list(dict.fromkeys(requested))


def parse_metrics(text: str | Sequence[str] | None) -> list[str] | None:
    """``"HTER,AUC"`` -> ``["HTER", "AUC"]`` (``None`` stays ``None``: the default columns)."""
    if text is None:
        return None
    if isinstance(text, str):
        return [t.strip() for t in text.split(",") if t.strip()]
    return [str(t).strip() for t in text]


def build_tables(records: Iterable[RunRecord | dict], metrics: Sequence[str] | None = None,
                 reported: list[dict] | None = None) -> dict[str, pd.DataFrame]:
    """One numeric table per protocol (sorted by protocol name), one row per group.

    Columns: ``protocol, policy, method, run, setting, selection, precision, data, seeds,
    n_seeds, n_records, fasbench``; per task and metric (every metric the records name)
    ``"<task> <metric> mean"``, ``"... std"``, ``"... n"``, ``"... ci95"``; per metric
    ``"Average <metric> mean"/"std"``; then ``reported, source, caveat, dataset, fingerprint,
    run_key``.  Missing values are NaN (counts: ``<NA>``).  Measured rows are sorted by policy
    (:data:`~fasbench.records.POLICIES` order), then Average HTER ascending (rows without an
    average last), then method; the ``reported`` rows (from :func:`load_reported`) follow.
    ``df.attrs``: ``tasks`` (ordered, measured tasks first), ``measured_tasks``, ``metrics``
    (the CSV metrics), ``shown`` (the metrics the markdown/LaTeX show), ``policies``,
    ``n_records`` and ``selections`` (policy -> selection descriptions of its rows).

    ``metrics``: the metrics to show; each must be named by some record (else a
    :class:`FasbenchError` listing the available ones).  Default: those of
    :data:`DEFAULT_SHOWN` the records name.
    """
    prepared = prepare(records)
    available = metric_union(prepared)
    if metrics is not None:
        metrics = _check_metrics(metrics, available)
    by_protocol: dict[str, list[RunRecord]] = {}
    for rec in prepared:
        by_protocol.setdefault(rec.protocol, []).append(rec)

    tables: dict[str, pd.DataFrame] = {}
    for protocol in sorted(by_protocol):
        recs = by_protocol[protocol]
        measured_tasks = _task_order(protocol, recs)
        names = metric_union(recs)
        rows = [_row(g, measured_tasks, names) for g in _groups(recs, names).values()]
        sort_metric = "HTER" if "HTER" in names else (names[0] if names else None)
        sign = -1.0 if sort_metric is not None and _higher_is_better(sort_metric) else 1.0

        def sort_key(row: dict, sort_metric=sort_metric, sign=sign) -> tuple:
            avg = row.get(f"{AVERAGE} {sort_metric} mean")
            return (_policy_rank(row["policy"]), avg is None, sign * avg if avg is not None else 0.0,
                    row["method"], row["setting"], row["run"])

        rows.sort(key=sort_key)
        selections: dict[str, list[str]] = {}
        for row in rows:
            texts = selections.setdefault(row["policy"], [])
            if row["_selection_text"] not in texts:
                texts.append(row["_selection_text"])
        shown = list(metrics) if metrics is not None else [m for m in DEFAULT_SHOWN if m in names]
        if not shown:
            shown = names[:3]
        tasks = list(measured_tasks)
        rep_rows: list[dict] = []
        if reported:
            rep_rows, tasks, names = _reported_rows(reported, protocol, tasks, names)
        df = _frame(rows + rep_rows, tasks, names)
        df.attrs["tasks"] = tasks
        df.attrs["measured_tasks"] = list(measured_tasks)
        df.attrs["metrics"] = list(names)
        df.attrs["shown"] = shown
        df.attrs["policies"] = sorted({r["policy"] for r in rows}, key=_policy_rank)
        df.attrs["n_records"] = len(recs)
        df.attrs["selections"] = selections
        tables[protocol] = df
    return tables


# --------------------------------------------------------------------------- reported rows


def _task_identity(name: str) -> tuple:
    """(sources, target) for names like ``OCI->M``, ``O&C&I->M`` or ``O, C, I -> M``."""
    parsed = parse_task_name(name)
    if parsed is None:
        return (name.strip(),)
    sources, target = parsed
    return (frozenset(sources), target)


def _reported_rows(rows: list[dict], protocol: str, tasks: list[str],
                   metrics: list[str]) -> tuple[list[dict], list[str], list[str]]:
    """Numeric table rows of the reported numbers of ``protocol`` (aligned on the measured
    tasks; a task no run measured gets columns of its own), the tasks and the metrics."""
    rows = [r for r in rows if r["protocol"] == protocol]
    tasks, metrics = list(tasks), list(metrics)
    by_identity = {_task_identity(t): t for t in tasks}
    entries: dict[tuple, dict] = {}
    for r in rows:
        if r["task"].strip().lower() in _AVERAGE_NAMES:
            task = AVERAGE
        else:
            task = by_identity.get(_task_identity(r["task"]), r["task"])
            if task not in tasks:
                tasks.append(task)
                by_identity[_task_identity(task)] = task
        cells = entries.setdefault((r["method"], r["source"], r["caveat"]), {})
        for metric, value in r["metrics"].items():
            if value is not None:
                cells[(task, metric)] = value
                if metric not in metrics:
                    metrics.append(metric)
    out = []
    for (method, source, caveat), cells in entries.items():
        row: dict[str, Any] = {"protocol": protocol, "method": method, "reported": REPORTED_LABEL,
                               "source": source, "caveat": caveat}
        for (task, metric), value in cells.items():
            row[f"{task} {metric} mean"] = value
        out.append(row)
    return out, tasks, metrics
