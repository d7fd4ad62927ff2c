"""Leaderboard tables built from run records only.

Grouping.  Records are grouped by (protocol, method, :func:`~fasbench.records.component_key`,
data fingerprint, checkpoint selection) and, within a record, by threshold policy (each
``metrics`` block: ``source-val``, ``target-eer``, ...).  One group is one table row; groups
are never merged, so runs with a different component version or data form their own rows.

Statistics.  Per task, HTER and AUC are the mean and the *sample* standard deviation
(``ddof=1``, :func:`statistics.stdev`) over seeds; with one seed only the mean is shown (the
CSV std cell is empty).  ``Average`` is the mean over tasks of the per-task means and is
given only when the row covers every task of the protocol (as seen in the records); its
std is the sample std over seeds of the per-seed task average, given only when every seed
covers every task.

Duplicates.  If the same (group, task, seed) was run twice, the record with the newest
``created`` timestamp is kept and a :class:`~fasbench.records.RecordWarning` names both
files.

Outputs (:func:`write_leaderboard`): per protocol ``P.md`` (GitHub markdown), ``P.csv``
(numeric mean/std columns) and ``P.tex`` (booktabs tabular), written atomically and
deterministically (no timestamps), so they can be compared against golden files.
"""
from __future__ import annotations

import csv
import math
import re
import statistics
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd
from tabulate import tabulate

from fasbench.errors import FasbenchError
from fasbench.records import (
    RecordWarning,
    atomic_write_text,
    component_key,
    finite_or_none,
    is_complete,
    validate_record,
)

#: Metrics shown per task.
METRICS = ("HTER", "AUC")
#: Threshold policies in display order; other policies follow alphabetically.
POLICY_ORDER = ("source-val", "target-eer")
POLICY_LABELS = {"target-eer": "target-eer (idealized)"}
POLICY_NOTES = {
    "source-val": "threshold chosen on source-domain validation data (deployable).",
    "target-eer": (
        "threshold at the target domain's EER point; it uses target labels, so it is an "
        "idealized upper bound, not a deployable result."
    ),
}
#: Canonical target order of the O/C/I/M benchmarks (MICO: OCI->M, OMI->C, OCM->I, ICM->O).
#: Tasks whose target is not listed follow, in order of first appearance.
CANONICAL_TARGETS = {
    "MICO": ("M", "C", "I", "O"),
    "LimitedSource": ("M", "C", "I", "O"),
}
DEFAULT_TARGETS = ("M", "C", "I", "O")
AVERAGE = "Average"
MISSING = "—"
STD_DDOF = 1


def policy_label(policy: str) -> str:
    return POLICY_LABELS.get(policy, policy)


def _policy_rank(policy: str) -> tuple:
    if policy in POLICY_ORDER:
        return (POLICY_ORDER.index(policy), "")
    return (len(POLICY_ORDER), policy)


# --------------------------------------------------------------------------- statistics


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample std (ddof=1) of ``values``; std is None for fewer than two values."""
    if not values:
        return None, None
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else None
    return mean, std


def _created_key(rec: dict) -> tuple:
    """Sort key for "newest": parsed ``created`` (UTC), records without one are oldest."""
    raw = rec.get("created")
    if isinstance(raw, str) and raw:
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
    method: str
    ckey: str
    fingerprint: str
    checkpoint: str | None
    policy: str
    dataset: str
    components: str
    data_label: str
    fasbench: set = field(default_factory=set)
    # task -> seed -> metric -> value
    values: dict = field(default_factory=dict)
    n_records: int = 0


def _source(rec: dict, index: int) -> str:
    return rec.get("_source") or rec.get("run_id") or f"record #{index}"


def _components_label(rec: dict) -> str:
    comps = rec["components"]
    parts = [f"{comps['method']['name']}@{comps['method']['version']}"]
    parts.append(f"{comps['student']['name']}@{comps['student']['version']}")
    if comps["aligner"]["name"] != "none":
        parts.append(f"{comps['aligner']['name']}@{comps['aligner']['version']}")
    if comps["teachers"]:
        # teachers are identified by their weights too (sha256 prefix): other weights, other row
        parts.append("teachers:" + "+".join(
            f"{t['name']}@{t['version']}" + (f"#{t['weights']['sha256'][:8]}" if (t.get("weights") or {}).get("sha256") else "")
            for t in comps["teachers"]))
    ckpt = rec.get("checkpoint_selection")
    if ckpt not in (None, "last"):
        parts.append(f"ckpt={ckpt}")
    if rec.get("config_hash"):  # runs of different settings never share a row
        parts.append(f"cfg={rec['config_hash'][:8]}")
    return " ".join(parts)


def _data_label(rec: dict) -> str:
    comp = rec["components"]["dataset"]
    return f"{rec['data']['dataset']}@{comp['version']} ({rec['data']['fingerprint'][:8]})"


def _run_key(rec: dict) -> tuple:
    return (
        rec["protocol"],
        rec["method"],
        component_key(rec),
        rec["data"]["fingerprint"],
        rec.get("checkpoint_selection"),
        rec.get("config_hash"),
    )


def _prepare(records: Iterable[dict]) -> list[dict]:
    """Validate, drop incomplete records, and keep the newest of duplicated runs."""
    kept: dict[tuple, tuple[dict, str]] = {}
    for i, rec in enumerate(records):
        src = _source(rec, i)
        validate_record(rec, source=src)
        if not is_complete(rec):
            warnings.warn(
                f"skipping {src}: status is {rec.get('status')!r}, not 'complete'",
                RecordWarning,
                stacklevel=3,
            )
            continue
        key = _run_key(rec) + (rec["task"]["name"], rec["seed"])
        if key in kept:
            old, old_src = kept[key]
            # Ties (same `created`) go to the later record in input order.
            newer, older = (
                ((rec, src), (old, old_src))
                if _created_key(rec) >= _created_key(old)
                else ((old, old_src), (rec, src))
            )
            warnings.warn(
                f"duplicate run of {rec['method']} on {rec['protocol']} {rec['task']['name']} "
                f"seed {rec['seed']}: keeping the newest, {newer[1]} "
                f"(created {newer[0].get('created')}), ignoring {older[1]} "
                f"(created {older[0].get('created')})",
                RecordWarning,
                stacklevel=3,
            )
            kept[key] = newer
        else:
            kept[key] = (rec, src)
    return [rec for rec, _ in kept.values()]


def _task_order(protocol: str, records: list[dict]) -> list[str]:
    targets = CANONICAL_TARGETS.get(protocol, DEFAULT_TARGETS)
    first_seen: dict[str, tuple[int, str]] = {}
    for rec in records:
        first_seen.setdefault(rec["task"]["name"], (len(first_seen), rec["task"]["target"]))

    def rank(task: str) -> tuple:
        seen, target = first_seen[task]
        return (targets.index(target) if target in targets else len(targets), seen)

    return sorted(first_seen, key=rank)


def _groups(records: list[dict]) -> dict[tuple, _Group]:
    groups: dict[tuple, _Group] = {}
    for rec in records:
        for policy, block in rec["metrics"].items():
            key = _run_key(rec) + (policy,)
            group = groups.get(key)
            if group is None:
                group = groups[key] = _Group(
                    protocol=rec["protocol"],
                    method=rec["method"],
                    ckey=key[2],
                    fingerprint=key[3],
                    checkpoint=key[4],
                    policy=policy,
                    dataset=rec["data"]["dataset"],
                    components=_components_label(rec),
                    data_label=_data_label(rec),
                )
            group.fasbench.add(rec["versions"]["fasbench"])
            group.n_records += 1
            cell = group.values.setdefault(rec["task"]["name"], {}).setdefault(rec["seed"], {})
            for metric in METRICS:
                cell[metric] = finite_or_none(block.get(metric))
    return groups


def _seeds_label(seeds: Sequence[int]) -> str:
    return f"{len(seeds)} ({','.join(str(s) for s in seeds)})"


def _version_sort_key(v: str) -> tuple:
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.+-]", v))


def _row(group: _Group, tasks: list[str]) -> dict[str, Any]:
    seeds = sorted({s for per_seed in group.values.values() for s in per_seed})
    row: dict[str, Any] = {
        "protocol": group.protocol,
        "policy": group.policy,
        "method": group.method,
        "components": group.components,
        "data": group.data_label,
        "seeds": _seeds_label(seeds),
        "n_seeds": len(seeds),
        "n_records": group.n_records,
        "fasbench": ",".join(sorted(group.fasbench, key=_version_sort_key)),
        "dataset": group.dataset,
        "fingerprint": group.fingerprint,
        "checkpoint_selection": group.checkpoint if group.checkpoint is not None else "",
        "component_key": group.ckey,
    }
    covers_all = all(t in group.values for t in tasks)
    for metric in METRICS:
        task_means = []
        for task in tasks:
            per_seed = group.values.get(task, {})
            vals = [m[metric] for m in per_seed.values() if m.get(metric) is not None]
            mean, std = mean_std(vals)
            row[f"{task} {metric} mean"] = mean
            row[f"{task} {metric} std"] = std
            row[f"{task} {metric} n"] = len(vals)
            if mean is not None:
                task_means.append(mean)
        avg_mean = avg_std = None
        if covers_all and len(task_means) == len(tasks) and tasks:
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


def _columns(tasks: list[str]) -> list[str]:
    cols = ["protocol", "policy", "method", "components", "data", "seeds", "n_seeds",
            "n_records", "fasbench"]
    for task in tasks:
        for metric in METRICS:
            cols += [f"{task} {metric} mean", f"{task} {metric} std", f"{task} {metric} n"]
    for metric in METRICS:
        cols += [f"{AVERAGE} {metric} mean", f"{AVERAGE} {metric} std"]
    cols += ["dataset", "fingerprint", "checkpoint_selection", "component_key"]
    return cols


def build_tables(records: Iterable[dict]) -> dict[str, pd.DataFrame]:
    """One numeric table per protocol (sorted by protocol name), one row per group.

    Columns: ``protocol, policy, method, components, data, seeds, n_seeds, n_records,
    fasbench``, then per task ``"<task> HTER mean"``, ``"... HTER std"``, ``"... HTER n"``
    (and the same for AUC), then ``"Average HTER mean"/"std"``, ``"Average AUC mean"/"std"``,
    and the identity columns ``dataset, fingerprint, checkpoint_selection, component_key``.
    Missing values are NaN.  Rows are sorted by policy (source-val, target-eer, others),
    then Average HTER ascending (rows without an average last), then method.
    ``df.attrs`` holds ``tasks`` (ordered task names), ``policies`` and ``n_records``.
    """
    prepared = _prepare(records)
    by_protocol: dict[str, list[dict]] = {}
    for rec in prepared:
        by_protocol.setdefault(rec["protocol"], []).append(rec)

    tables: dict[str, pd.DataFrame] = {}
    for protocol in sorted(by_protocol):
        recs = by_protocol[protocol]
        tasks = _task_order(protocol, recs)
        rows = [_row(g, tasks) for g in _groups(recs).values()]

        def sort_key(row: dict) -> tuple:
            avg = row[f"{AVERAGE} HTER mean"]
            return (
                _policy_rank(row["policy"]),
                avg is None,
                avg if avg is not None else 0.0,
                row["method"],
                row["component_key"],
                row["fingerprint"],
                row["checkpoint_selection"],
            )

        rows.sort(key=sort_key)
        df = pd.DataFrame(rows, columns=_columns(tasks))
        stat_cols = [c for c in df.columns if c.endswith((" mean", " std"))]
        df[stat_cols] = df[stat_cols].astype("float64")  # None -> NaN, even in empty columns
        df.attrs["tasks"] = list(tasks)
        df.attrs["policies"] = sorted({r["policy"] for r in rows}, key=_policy_rank)
        df.attrs["n_records"] = len(recs)
        tables[protocol] = df
    return tables


# --------------------------------------------------------------------------- display


def _num(value: Any) -> float | None:
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def format_cell(mean: Any, std: Any, pm: str = "±", missing: str = MISSING) -> str:
    mean, std = _num(mean), _num(std)
    if mean is None:
        return missing
    return f"{mean:.2f}" if std is None else f"{mean:.2f} {pm} {std:.2f}"


def display_frame(df: pd.DataFrame, pm: str = "±", missing: str = MISSING) -> pd.DataFrame:
    """String table for humans: method, components, per-task/average HTER & AUC, etc."""
    tasks = df.attrs.get("tasks", [])
    out_rows = []
    for _, row in df.iterrows():
        out = {"method": row["method"], "policy": policy_label(row["policy"])}
        for task in tasks:
            for metric in METRICS:
                out[f"{task} {metric}"] = format_cell(
                    row[f"{task} {metric} mean"], row[f"{task} {metric} std"], pm, missing
                )
        for metric in METRICS:
            out[f"Avg {metric}"] = format_cell(
                row[f"{AVERAGE} {metric} mean"], row[f"{AVERAGE} {metric} std"], pm, missing
            )
        out["seeds"] = row["seeds"]
        out["data"] = row["data"]
        out["fasbench"] = row["fasbench"]
        out["components"] = row["components"]
        out_rows.append(out)
    columns = ["method", "policy"] + [f"{t} {m}" for t in tasks for m in METRICS]
    columns += [f"Avg {m}" for m in METRICS] + ["seeds", "data", "fasbench", "components"]
    return pd.DataFrame(out_rows, columns=columns)


def _md_escape(text: Any) -> str:
    return str(text).replace("|", "\\|")


def _md_table(frame: pd.DataFrame, numeric_cols: set[str]) -> str:
    headers = [_md_escape(c) for c in frame.columns]
    rows = [[_md_escape(v) for v in row] for row in frame.itertuples(index=False)]
    align = ["right" if c in numeric_cols else "left" for c in frame.columns]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True,
                    colalign=align)


def render_markdown(protocol: str, df: pd.DataFrame,
                    reported: pd.DataFrame | None = None) -> str:
    tasks = df.attrs.get("tasks", [])
    n_records = df.attrs.get("n_records", 0)
    lines = [
        f"# {protocol} leaderboard",
        "",
        f"- Tasks: {', '.join(tasks)}.",
        "- HTER and AUC in %, mean ± std over seeds (sample std, ddof=1; one seed: mean only).",
        "- Avg: mean over tasks of the per-task means (only for rows covering every task), "
        "± the std over seeds of the per-seed average.",
        "- One block per threshold policy; `target-eer` is idealized (it uses target labels).",
        f"- Generated by `fasbench leaderboard` from {n_records} run record"
        f"{'s' if n_records != 1 else ''}; rows that differ in component versions or data "
        "fingerprint are never averaged together.",
    ]
    shown = display_frame(df)
    numeric = {c for c in shown.columns if c.endswith(METRICS)}
    for policy in df.attrs.get("policies", []):
        block = shown[df["policy"].to_numpy() == policy].drop(columns=["policy"])
        lines += ["", f"## Threshold policy: {policy_label(policy)}", ""]
        if policy in POLICY_NOTES:
            lines += [POLICY_NOTES[policy][0].upper() + POLICY_NOTES[policy][1:], ""]
        lines.append(_md_table(block, numeric))
    if reported is not None and len(reported):
        lines += [
            "",
            "## Reported (not reproduced)",
            "",
            "Numbers copied from papers, not produced by this harness; their setup (data, "
            "preprocessing, threshold policy) may differ, see the caveat column.  Never "
            "averaged with the rows above.",
            "",
            _md_table(reported, {c for c in reported.columns if c.endswith(METRICS)}),
        ]
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "±": r"$\pm$",
    "—": "--",
}


def latex_escape(text: Any) -> str:
    """Escape LaTeX special characters; ``->`` becomes ``$\\rightarrow$``."""
    parts = str(text).split("->")
    escaped = ["".join(_LATEX_SPECIAL.get(ch, ch) for ch in part) for part in parts]
    return r"$\rightarrow$".join(escaped)


def render_latex(protocol: str, df: pd.DataFrame) -> str:
    """A booktabs ``tabular`` (needs ``\\usepackage{booktabs}``), one block per policy."""
    shown = display_frame(df).drop(columns=["data", "fasbench"])
    cols = [c for c in shown.columns if c != "policy"]
    spec = "".join("r" if c.endswith(METRICS) else "l" for c in cols)
    lines = [
        f"% {protocol} leaderboard generated by `fasbench leaderboard`; needs \\usepackage{{booktabs}}.",
        "% HTER and AUC in %, mean $\\pm$ sample std over seeds.",
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
        " & ".join(latex_escape(c) for c in cols) + r" \\",
    ]
    for policy in df.attrs.get("policies", []):
        block = shown[df["policy"].to_numpy() == policy]
        lines.append("\\midrule")
        lines.append(
            f"\\multicolumn{{{len(cols)}}}{{l}}{{\\textit{{threshold: "
            f"{latex_escape(policy_label(policy))}}}}} \\\\"
        )
        lines.append("\\midrule")
        for _, row in block.iterrows():
            lines.append(" & ".join(latex_escape(row[c]) for c in cols) + r" \\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def render_csv(df: pd.DataFrame) -> str:
    return df.to_csv(index=False, float_format="%.4f", lineterminator="\n")


# --------------------------------------------------------------------------- reported rows

REPORTED_COLUMNS = ("protocol", "method", "task", "HTER", "AUC", "source", "caveat")
_AVERAGE_NAMES = {"average", "avg", "mean"}


def _task_identity(name: str) -> tuple:
    """(sources, target) for names like ``OCI->M``, ``O&C&I->M`` or ``O, C, I -> M``."""
    name = name.replace("→", "->")
    if "->" not in name:
        return (name.strip(),)
    lhs, rhs = name.split("->", 1)
    tokens = [t for t in re.split(r"[&,+\s]+", lhs.strip()) if t]
    if len(tokens) == 1:
        tokens = list(tokens[0])
    return (frozenset(tokens), rhs.strip())


def load_reported(path: str | Path) -> list[dict]:
    """Read a ``reported.csv`` of paper numbers (columns :data:`REPORTED_COLUMNS`)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in REPORTED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise FasbenchError(
                    f"{path}: missing column(s) {missing}; a reported-results file needs "
                    f"{', '.join(REPORTED_COLUMNS)}"
                )
            rows = []
            for line, row in enumerate(reader, start=2):
                for metric in METRICS:
                    raw = (row.get(metric) or "").strip()
                    try:
                        row[metric] = float(raw) if raw else None
                    except ValueError:
                        raise FasbenchError(
                            f"{path}:{line}: column {metric} must be a number or empty, "
                            f"got {raw!r}"
                        ) from None
                rows.append({k: row[k] if k in METRICS else (row[k] or "").strip()
                             for k in REPORTED_COLUMNS})
            return rows
    except OSError as exc:
        raise FasbenchError(f"cannot read reported results {path}: {exc}") from exc


def reported_frame(rows: list[dict], protocol: str, tasks: list[str]) -> pd.DataFrame | None:
    """Display table of the reported rows of ``protocol``, aligned on the leaderboard tasks."""
    rows = [r for r in rows if r["protocol"] == protocol]
    if not rows:
        return None
    by_identity = {_task_identity(t): t for t in tasks}
    columns_tasks = list(tasks)
    entries: dict[tuple, dict] = {}
    for r in rows:
        if r["task"].strip().lower() in _AVERAGE_NAMES:
            task = "Avg"
        else:
            task = by_identity.get(_task_identity(r["task"]), r["task"])
            if task not in columns_tasks:
                columns_tasks.append(task)
        entry = entries.setdefault((r["method"], r["source"], r["caveat"]), {})
        entry[task] = (r["HTER"], r["AUC"])
    columns = ["method"] + [f"{t} {m}" for t in columns_tasks for m in METRICS]
    columns += [f"Avg {m}" for m in METRICS] + ["source", "caveat"]
    out = []
    for (method, source, caveat), cells in entries.items():
        row = {"method": method, "source": source, "caveat": caveat}
        for task in columns_tasks + ["Avg"]:
            for i, metric in enumerate(METRICS):
                value = cells.get(task, (None, None))[i]
                row[f"{task} {metric}"] = MISSING if value is None else f"{value:.2f}"
        out.append(row)
    return pd.DataFrame(out, columns=columns)


# --------------------------------------------------------------------------- writing


def _safe_name(protocol: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", protocol).strip("._") or "protocol"


def write_leaderboard(
    records: Iterable[dict],
    out_dir: str | Path,
    reported: str | Path | None = None,
    protocols: Sequence[str] | None = None,
) -> list[Path]:
    """Write ``P.md``, ``P.csv`` and ``P.tex`` for each protocol ``P``; return the paths.

    ``reported``: optional CSV of paper-reported numbers, shown in the markdown in a
    separate "reported (not reproduced)" block.  ``protocols``: restrict to these.
    """
    tables = build_tables(records)
    if protocols is not None:
        tables = {p: t for p, t in tables.items() if p in set(protocols)}
    reported_rows = load_reported(reported) if reported is not None else []
    out_dir = Path(out_dir)
    written: list[Path] = []
    for protocol, df in tables.items():
        stem = _safe_name(protocol)
        rep = reported_frame(reported_rows, protocol, df.attrs.get("tasks", []))
        written.append(atomic_write_text(out_dir / f"{stem}.md", render_markdown(protocol, df, rep)))
        written.append(atomic_write_text(out_dir / f"{stem}.csv", render_csv(df)))
        written.append(atomic_write_text(out_dir / f"{stem}.tex", render_latex(protocol, df)))
    return written
