"""The data behind each figure, computed from run records and their scores files only.

Nothing here computes a metric a second way: curves and operating points come from
:func:`fasbench.metrics.roc` and :meth:`fasbench.metrics.ScoreSet.rates`, the per-video scores
from :meth:`~fasbench.metrics.ScoreSet.per_video` (when the record was evaluated at video
level), the scores from :func:`fasbench.commands.score.read_run_scores` (which checks the
file's sha256 against the record), and the leaderboard bars from
:func:`fasbench.leaderboard.build_tables`, the function that writes the leaderboard CSV.

Every function returns plain JSON-ready dicts (lists of floats, no numpy), which the drawing
code (:mod:`fasbench.plots.draw`) draws and writes beside each figure as ``<figure>.json``.
This module imports neither matplotlib nor torch.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from fasbench.records import POLICIES, RunRecord, run_key_id
from fasbench.util import slug

#: Names of the figures, in the order ``fasbench plot`` draws them.
FIGURES = ("roc", "det", "hist", "curves", "leaderboard")
#: Figures drawn from the scores file (the others need the record only).
SCORE_FIGURES = ("roc", "det", "hist")
#: Bins of the score histograms (shared by every panel of one run).
HIST_BINS = 30
#: Class name of live videos in the histograms (spoofs are named by their attack type).
LIVE = "live"


def _floats(values: Iterable[Any]) -> list[float | None]:
    out = []
    for v in values:
        f = float(v)
        out.append(f if math.isfinite(f) else None)
    return out


def run_name(rec: RunRecord) -> str:
    """``method-runid/TASK-seedN``: where a run's own figures go under an output folder."""
    return f"{slug(rec.method)}-{run_key_id(rec)}/{slug(rec.task.name)}-seed{rec.seed}"


def record_info(rec: RunRecord) -> dict[str, Any]:
    return {"record": rec.source, "method": rec.method, "run": run_key_id(rec), "protocol": rec.protocol,
            "task": rec.task.name, "target": rec.task.target, "seed": rec.seed,
            "selection": {"rule": rec.selection.rule, "metric": rec.selection.metric,
                          "step": rec.selection.selected_step}}


# --------------------------------------------------------------------------- scores


def run_scores(rec: RunRecord) -> dict[str, Any]:
    """``{"val": ScoreSet, "target": ScoreSet}`` at the level the record was evaluated
    (video means when its blocks say ``video``), read from its checked scores file."""
    from fasbench.commands.score import read_run_scores

    val, target = read_run_scores(rec)
    if rec.val.level == "video":
        val = val.per_video()
    if next(iter(rec.target.values())).level == "video":
        target = target.per_video()
    return {"val": val, "target": target}


# --------------------------------------------------------------------------- ROC / DET


def operating_curve(rec: RunRecord, scores: dict[str, Any] | None = None) -> dict[str, Any]:
    """The target's ROC (FPR = APCER pooled over attack types = FAR, TPR = 1 - BPCER) at every
    candidate threshold, and the operating point of each threshold policy of the record.

    Each point says the policy's threshold (from the record), the (FPR, FRR) there
    (:meth:`~fasbench.metrics.ScoreSet.rates`) and the record's HTER and BPCER at that policy,
    which the point must match: FRR = BPCER and FPR = 2 HTER - BPCER.
    """
    from fasbench.metrics import roc

    s = (scores or run_scores(rec))["target"]
    curve = roc(s.scores, s.labels)
    points = {}
    for policy in sorted(rec.target, key=lambda p: POLICIES.index(p) if p in POLICIES else len(POLICIES)):
        block = rec.target[policy]
        far, frr = s.rates(block.threshold)
        points[policy] = {"threshold": block.threshold, "threshold_from": block.threshold_from,
                          "fpr": far, "frr": frr, "tpr": 1.0 - frr,
                          "record_HTER": block.metrics.get("HTER"), "record_BPCER": block.metrics.get("BPCER")}
    return {**record_info(rec), "data": "target", "level": next(iter(rec.target.values())).level,
            "n_live": s.n_live, "n_spoof": s.n_spoof,
            "thresholds": _floats(curve.thresholds), "fpr": _floats(curve.far),
            "frr": _floats(curve.frr), "tpr": _floats(1.0 - curve.frr), "points": points}


def task_panels(recs: Sequence[RunRecord], curves: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One panel per task (records' order of first appearance), each with its records' curves."""
    panels: dict[str, dict[str, Any]] = {}
    for rec in recs:
        if rec.source not in curves:
            continue
        panel = panels.setdefault(rec.task.name, {"task": rec.task.name, "target": rec.task.target, "curves": []})
        panel["curves"].append(curves[rec.source])
    return list(panels.values())


# --------------------------------------------------------------------------- histograms


def _classes(s: Any) -> np.ndarray:
    attacks = s.attacks if s.attacks is not None else np.full(len(s), "spoof", dtype=object)
    return np.where(s.labels == 1, LIVE, attacks.astype(str))


def score_histograms(rec: RunRecord, scores: dict[str, Any] | None = None, bins: int = HIST_BINS) -> dict[str, Any]:
    """Counts of live and of each attack type's scores (per video when the record is video
    level) on shared bins, for the source-val split and the target, with the thresholds:
    the source-val threshold on both, the target-EER threshold on the target only."""
    scores = scores or run_scores(rec)
    lo = min(0.0, *(float(s.scores.min()) for s in scores.values()))
    hi = max(1.0, *(float(s.scores.max()) for s in scores.values()))
    edges = np.linspace(lo, hi, bins + 1)
    panels = []
    for split, s in scores.items():
        classes = _classes(s)
        names = [LIVE] + sorted(set(classes.tolist()) - {LIVE})
        counts = {}
        for name in names:
            c, _ = np.histogram(s.scores[classes == name], bins=edges)
            counts[name] = [int(v) for v in c]
        if split == "val":
            lines = {"source-val-threshold": rec.val.threshold}
        else:
            lines = {p: b.threshold for p, b in rec.target.items()}
        panels.append({"split": split, "data": "source-val" if split == "val" else "target",
                       "level": rec.val.level if split == "val" else next(iter(rec.target.values())).level,
                       "counts": counts, "n": {k: int(sum(v)) for k, v in counts.items()}, "thresholds": lines})
    return {**record_info(rec), "edges": _floats(edges), "panels": panels}


# --------------------------------------------------------------------------- training curves


def _curve_group(key: str) -> str:
    if key.startswith("val/"):
        return "val"
    if key.startswith("target/"):
        return "target"
    return "loss"


#: The per-step training log a run may keep beside its record (``fasbench.engine.logs``).
TRAIN_LOG = "log.csv"


def train_log(rec: RunRecord) -> dict[str, Any] | None:
    """The ``kind=train`` rows of the run's ``log.csv`` (every logged step): ``{"steps": [...],
    "series": {"loss/<name>": [...]}}``, or ``None`` when the run has no such log."""
    import csv

    if rec.run_dir is None or not (rec.run_dir / TRAIN_LOG).is_file():
        return None
    try:
        with open(rec.run_dir / TRAIN_LOG, newline="", encoding="utf-8") as fh:
            rows = [r for r in csv.DictReader(fh) if r.get("kind") == "train" and (r.get("step") or "").isdigit()]
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    keys = list(dict.fromkeys(k for r in rows for k, v in r.items() if k and k.startswith("loss/") and v not in ("", None)))
    if not rows or not keys:
        return None
    return {"steps": [int(r["step"]) for r in rows], "series": {k: [_num(r.get(k)) for r in rows] for k in keys}}


def training_curves(rec: RunRecord) -> dict[str, Any]:
    """``record.curve`` by series: losses, the source-val split's metrics, the target's (in
    the record's key order), each a list of values per evaluated step (``None`` where a step
    has no value). When the run keeps a training log (``log.csv``), the losses are its values
    at every logged step instead (``loss_steps``, ``loss_source``)."""
    steps = [int(p["step"]) for p in rec.curve]
    keys: dict[str, None] = {}
    for p in rec.curve:
        for k in p:
            if k != "step":
                keys.setdefault(k, None)
    groups: dict[str, dict[str, list]] = {"loss": {}, "val": {}, "target": {}}
    for key in keys:
        values = []
        for p in rec.curve:
            v = p.get(key)
            values.append(float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None)
        groups[_curve_group(key)][key] = values
    out = {**record_info(rec), "steps": steps, "series": groups, "selected_step": rec.selection.selected_step,
           "loss_steps": steps, "loss_source": "record.curve"}
    log = train_log(rec)
    if log is not None:
        groups["loss"] = log["series"]
        out.update(loss_steps=log["steps"], loss_source=TRAIN_LOG)
    return out


# --------------------------------------------------------------------------- leaderboard chart


def chart_data(df: Any, policy: str, metric: str = "HTER") -> dict[str, Any]:
    """The bars of one protocol and threshold policy: one group per measured row of ``df`` (a
    table of :func:`fasbench.leaderboard.build_tables`), one bar per task and the Average,
    height = the mean over seeds, error = the sample std over seeds (``None``: one seed)."""
    from fasbench.leaderboard import AVERAGE

    tasks = list(df.attrs.get("measured_tasks", [])) + [AVERAGE]
    rows = df[(df["reported"] == "") & (df["policy"] == policy)]
    groups = []
    for _, row in rows.iterrows():
        bars = []
        for task in tasks:
            mean, std = row.get(f"{task} {metric} mean"), row.get(f"{task} {metric} std")
            bars.append({"task": task, "mean": _num(mean), "std": _num(std)})
        groups.append({"method": row["method"], "run": row["run"], "setting": row["setting"],
                       "seeds": row["seeds"], "bars": bars})
    selections = df.attrs.get("selections", {}).get(policy, [])
    protocol = str(rows["protocol"].iloc[0]) if len(rows) else ""
    return {"protocol": protocol, "policy": policy, "metric": metric, "tasks": tasks, "groups": groups,
            "selections": list(selections)}


def _num(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None
