"""Rendering: leaderboard tables as markdown, CSV and LaTeX, and their ``mean ± std (±ci)`` cells."""
from __future__ import annotations

import math
from typing import Any

import pandas as pd
from tabulate import tabulate

from fasbench.leaderboard.grouping import AVERAGE, REPORTED_LABEL
from fasbench.records import SOURCE_VAL_THRESHOLD, TARGET_EER_THRESHOLD

POLICY_LABELS = {
    SOURCE_VAL_THRESHOLD: "target, threshold from source-val (deployable)",
    TARGET_EER_THRESHOLD: "target, threshold at target EER (idealized: reads target labels)",
}
POLICY_NOTES = {
    SOURCE_VAL_THRESHOLD: (
        "the threshold is the EER threshold of the source domains' validation split, applied "
        "unchanged to the target: a deployable result, no target data chose it."
    ),
    TARGET_EER_THRESHOLD: (
        "the threshold is the target domain's own EER point; it reads target labels, so it is an "
        "idealized bound, not a deployable result."
    ),
}
MISSING = "—"


def policy_label(policy: str) -> str:
    return POLICY_LABELS.get(policy, policy)


# --------------------------------------------------------------------------- display


def _num(value: Any) -> float | None:
    if value is None or value is pd.NA:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def format_cell(mean: Any, std: Any = None, ci: Any = None, pm: str = "±", missing: str = MISSING) -> str:
    """``12.34 ± 1.20 (±2.9)``: mean ± std over seeds (±mean 95% CI half-width over videos)."""
    mean, std, ci = _num(mean), _num(std), _num(ci)
    if mean is None:
        return missing
    text = f"{mean:.2f}" if std is None else f"{mean:.2f} {pm} {std:.2f}"
    return text if ci is None else f"{text} ({pm}{ci:.1f})"


def _metric_columns(tasks: list[str], shown: list[str]) -> list[str]:
    return [f"{t} {m}" for t in tasks for m in shown] + [f"Avg {m}" for m in shown]


def display_frame(df: pd.DataFrame, pm: str = "±", missing: str = MISSING) -> pd.DataFrame:
    """String table of the measured rows: method, run, the shown metrics, seeds, setting..."""
    tasks = df.attrs.get("measured_tasks", df.attrs.get("tasks", []))
    shown = df.attrs.get("shown", [])
    names = set(df.attrs.get("metrics", []))
    out_rows = []
    for _, row in df[df["reported"] == ""].iterrows():
        out = {"method": row["method"], "run": row["run"], "policy": row["policy"]}
        for metric in shown:
            for task in tasks:
                out[f"{task} {metric}"] = (
                    format_cell(row[f"{task} {metric} mean"], row[f"{task} {metric} std"],
                                row[f"{task} {metric} ci95"], pm, missing)
                    if metric in names else missing)
            out[f"Avg {metric}"] = (
                format_cell(row[f"{AVERAGE} {metric} mean"], row[f"{AVERAGE} {metric} std"], None, pm, missing)
                if metric in names else missing)
        out["seeds"] = row["seeds"]
        out["data"] = row["data"]
        out["fasbench"] = row["fasbench"]
        out["setting"] = row["setting"]
        out_rows.append(out)
    columns = ["method", "run", "policy"] + _metric_columns(tasks, shown)
    columns += ["seeds", "data", "fasbench", "setting"]
    return pd.DataFrame(out_rows, columns=columns)


def reported_display(df: pd.DataFrame, missing: str = MISSING) -> pd.DataFrame | None:
    """String table of the reported rows (``None`` if there are none)."""
    rep = df[df["reported"] != ""]
    if not len(rep):
        return None
    tasks = df.attrs.get("tasks", [])
    shown = df.attrs.get("shown", [])
    names = set(df.attrs.get("metrics", []))
    out_rows = []
    for _, row in rep.iterrows():
        out = {"method": row["method"]}
        for task in tasks + [AVERAGE]:
            for metric in shown:
                col = f"{'Avg' if task == AVERAGE else task} {metric}"
                value = _num(row[f"{task} {metric} mean"]) if metric in names else None
                out[col] = missing if value is None else f"{value:.2f}"
        out["source"] = row["source"]
        out["caveat"] = row["caveat"]
        out_rows.append(out)
    columns = ["method"] + _metric_columns(tasks, shown) + ["source", "caveat"]
    return pd.DataFrame(out_rows, columns=columns)


def _md_escape(text: Any) -> str:
    return str(text).replace("|", "\\|")


def _md_table(frame: pd.DataFrame, numeric_cols: set[str]) -> str:
    headers = [_md_escape(c) for c in frame.columns]
    rows = [[_md_escape(v) for v in row] for row in frame.itertuples(index=False)]
    align = ["right" if c in numeric_cols else "left" for c in frame.columns]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True,
                    colalign=align)


def _selection_line(texts: list[str]) -> str:
    if len(texts) == 1:
        return f"checkpoint selection: {texts[0]}"
    return ("checkpoint selection (the `ckpt=` part of the setting; none: last): "
            + "; ".join(texts))


def _numeric_columns(frame: pd.DataFrame, tasks: list[str], shown: list[str]) -> set[str]:
    return set(_metric_columns(tasks, shown)) & set(frame.columns)


def render_markdown(protocol: str, df: pd.DataFrame) -> str:
    """The markdown leaderboard of one protocol (measured blocks, then the reported block)."""
    measured_tasks = df.attrs.get("measured_tasks", [])
    tasks = df.attrs.get("tasks", [])
    shown = df.attrs.get("shown", [])
    names = df.attrs.get("metrics", [])
    n_records = df.attrs.get("n_records", 0)
    lines = [
        f"# {protocol} leaderboard",
        "",
        f"- Tasks: {', '.join(measured_tasks)}.",
        f"- Metrics in % on the target domain: {', '.join(shown)} (`fasbench leaderboard --metrics` "
        f"chooses; the CSV has every metric the runs report: {', '.join(names)}).",
        "- A cell reads `mean ± std (±ci)`: the mean and sample std (ddof=1) over seeds (one seed: "
        "no std), then in parentheses the mean over seeds of the 95% bootstrap CI half-width over "
        "target videos (the uncertainty of one run from the number of target videos).",
        "- Avg: mean over tasks of the per-task means (only for rows covering every task), "
        "± the std over seeds of the per-seed average.",
        "- One row per run setting: `run` is the short id of the run key (method, component "
        "versions and weights, data fingerprint, precision, checkpoint selection, config hash), "
        "`setting` spells it out; rows of different settings are never averaged together.",
        "- One block per threshold policy; the target-EER threshold is idealized (it reads target labels).",
        f"- Generated by `fasbench leaderboard` from {n_records} run record"
        f"{'s' if n_records != 1 else ''}.",
    ]
    shown_frame = display_frame(df)
    numeric = _numeric_columns(shown_frame, measured_tasks, shown)
    policies = df.attrs.get("policies", [])
    measured_policy = df.loc[df["reported"] == "", "policy"].to_numpy()
    for policy in policies:
        block = shown_frame[measured_policy == policy].drop(columns=["policy"])
        lines += ["", f"## {policy_label(policy)}", ""]
        note = POLICY_NOTES.get(policy)
        text = f"Threshold policy `{policy}`" + (f": {note}" if note else ".")
        selections = df.attrs.get("selections", {}).get(policy, [])
        if selections:
            sel = _selection_line(selections)
            text += f" {sel[0].upper()}{sel[1:]}."
        lines += [text, ""]
        lines.append(_md_table(block, numeric))
    reported = reported_display(df)
    if reported is not None:
        lines += [
            "",
            f"## {REPORTED_LABEL[0].upper()}{REPORTED_LABEL[1:]}",
            "",
            "Numbers copied from papers, not produced by this harness; their setup (data, "
            "preprocessing, threshold policy, checkpoint selection) may differ, see the caveat "
            "column.  Never averaged with the rows above.",
            "",
            _md_table(reported, _numeric_columns(reported, tasks, shown)),
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
    """A booktabs ``tabular`` (needs ``\\usepackage{booktabs}``), one block per policy, then
    the reported (not reproduced) rows in a block of their own."""
    measured_tasks = df.attrs.get("measured_tasks", [])
    tasks = df.attrs.get("tasks", [])
    shown = df.attrs.get("shown", [])
    frame = display_frame(df).drop(columns=["data", "fasbench"])
    reported = reported_display(df)
    extra = [t for t in tasks if t not in measured_tasks] if reported is not None else []
    metric_cols = _metric_columns(measured_tasks + extra, shown)
    cols = ["method", "run"] + metric_cols + ["seeds", "setting"]
    spec = "".join("r" if c in metric_cols else "l" for c in cols)
    lines = [
        f"% {protocol} leaderboard generated by `fasbench leaderboard`; needs \\usepackage{{booktabs}}.",
        f"% Target metrics in %: {', '.join(shown)}; a cell is mean $\\pm$ sample std over seeds "
        "(mean 95% bootstrap CI half-width over target videos).",
        "% Avg: mean over tasks of the per-task means, $\\pm$ the std over seeds of the per-seed average.",
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
        " & ".join(latex_escape(c) for c in cols) + r" \\",
    ]
    measured_policy = df.loc[df["reported"] == "", "policy"].to_numpy()
    for policy in df.attrs.get("policies", []):
        block = frame[measured_policy == policy]
        heading = policy_label(policy)
        selections = df.attrs.get("selections", {}).get(policy, [])
        if selections:
            heading += "; " + _selection_line(selections).replace("`", "")
        lines.append("\\midrule")
        lines.append(f"\\multicolumn{{{len(cols)}}}{{l}}{{\\textit{{{latex_escape(heading)}}}}} \\\\")
        lines.append("\\midrule")
        for _, row in block.iterrows():
            lines.append(" & ".join(latex_escape(row.get(c, MISSING)) for c in cols) + r" \\")
    if reported is not None:
        lines.append("\\midrule")
        lines.append(f"\\multicolumn{{{len(cols)}}}{{l}}{{\\textit{{{latex_escape(REPORTED_LABEL)}: "
                     f"numbers copied from papers, setups may differ}}}} \\\\")
        lines.append("\\midrule")
        for _, row in reported.iterrows():
            setting = row["source"] + (f" ({row['caveat']})" if row["caveat"] else "")
            cells = {"method": row["method"], "run": "", "seeds": "", "setting": setting}
            lines.append(" & ".join(latex_escape(cells.get(c, row.get(c, MISSING))) for c in cols) + r" \\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def render_csv(df: pd.DataFrame) -> str:
    return df.to_csv(index=False, float_format="%.4f", lineterminator="\n")
