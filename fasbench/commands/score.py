"""``fasbench score``: metrics for a score file written by any codebase, or a run re-scored.

``fasbench score RUN_DIR`` (a run directory, or its ``record.json``) recomputes the record's
``val`` and ``target`` blocks from the ``scores.csv.gz`` beside it (after checking its sha256)
with the record's own metric list, threshold rule, video averaging and bootstrap settings,
compares them with the record exactly, and exits 1 when anything differs.

For a score file:

The CSV needs the columns ``score`` (live probability or live-ness score, higher = more
live) and ``label`` (1 = live, 0 = spoof); ``attack`` (attack type, used for the
worst-attack APCER) and ``video`` (video id; frames are averaged per video unless
``--frame-level``) are optional. The threshold is the file's own EER threshold
(policy ``target-eer``) or, with ``--dev``, the EER threshold of a development score
file (policy ``dev-eer``); ``--ssdg`` uses SSDG's threshold rule (grid 0..1 in steps of
1e-4 plus 1.1, last tie wins).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from fasbench.errors import FasbenchError

REQUIRED_COLUMNS = ("score", "label")
OPTIONAL_COLUMNS = ("attack", "video")
_FORMAT = "a CSV with a header row and the columns score,label (optional: attack,video)"


def add_parser(subparsers: Any) -> None:
    """Register ``score`` on an ``argparse`` ``add_subparsers()`` object."""
    p = subparsers.add_parser(
        "score",
        help="metrics (HTER, EER, AUC, APCER/BPCER/ACER, ...) for a CSV of scores",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("scores", metavar="SCORES.csv|RUN_DIR",
                   help="CSV with columns score,label[,attack,video], or a run directory to re-score from its scores.csv.gz")
    p.add_argument(
        "--dev",
        metavar="DEV.csv",
        default=None,
        help="take the threshold from this file's EER (policy dev-eer) instead of SCORES.csv's own",
    )
    p.add_argument("--ssdg", action="store_true", help="use SSDG-CVPR2020's threshold rule and EER")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    p.add_argument("--metrics", default=None,
                   help="comma-separated metric names (default: the built-ins; `fasbench ls metrics`)")
    p.add_argument(
        "--frame-level",
        action="store_true",
        help="score every row on its own even when a video column is present",
    )
    p.set_defaults(func=main)


def _lines(index: Any) -> list[int]:
    """CSV line numbers (header = line 1) of the first few rows in ``index``."""
    return [int(i) + 2 for i in list(index)[:5]]


def load_score_csv(path: str | Path) -> Any:
    """Read and validate a score CSV into a :class:`fasbench.metrics.ScoreSet`."""
    import numpy as np
    import pandas as pd

    from fasbench.metrics import ScoreSet

    path = Path(path)
    if not path.exists():
        raise FasbenchError(f"{path}: no such file; give the path of {_FORMAT}")
    if path.is_dir():
        raise FasbenchError(f"{path}: is a directory; give the path of {_FORMAT}")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=True, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise FasbenchError(f"{path}: the file is empty; it must be {_FORMAT}") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FasbenchError(f"{path}: cannot be parsed as CSV ({first}); it must be {_FORMAT}") from None
    except OSError as exc:
        raise FasbenchError(
            f"{path}: cannot be read ({exc.strerror or exc}); check the path and permissions"
        ) from None

    df.columns = [str(c).strip().lower() for c in df.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise FasbenchError(
            f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(df.columns)}); "
            f"the file must be {_FORMAT}"
        )
    if len(df) == 0:
        raise FasbenchError(f"{path}: has a header but no rows; add one row per scored sample")

    score = pd.to_numeric(df["score"].str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(score)
    if bad.any():
        raise FasbenchError(
            f"{path}: {int(bad.sum())} row(s) have a missing, non-numeric, NaN or infinite score "
            f"(line(s) {_lines(np.flatnonzero(bad))}); every score must be a finite number"
        )
    label = pd.to_numeric(df["label"].str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    bad = ~((label == 0) | (label == 1))
    if bad.any():
        examples = sorted({str(v) for v in df["label"][bad].head(5)})
        raise FasbenchError(
            f"{path}: {int(bad.sum())} row(s) have a label other than 0 or 1 (e.g. {examples} at "
            f"line(s) {_lines(np.flatnonzero(bad))}); use 1 for live and 0 for spoof"
        )

    attacks = None
    if "attack" in df.columns:
        attacks = df["attack"].str.strip().replace("", np.nan).to_numpy(dtype=object)
    videos = None
    if "video" in df.columns:
        vid = df["video"].str.strip().replace("", np.nan)
        if vid.isna().any():
            raise FasbenchError(
                f"{path}: {int(vid.isna().sum())} row(s) have an empty video id (line(s) "
                f"{_lines(np.flatnonzero(vid.isna().to_numpy()))}); fill them in, drop the video "
                "column, or pass --frame-level"
            )
        videos = vid.to_numpy(dtype=object)
    try:
        return ScoreSet(score, label.astype(np.int64), attacks, videos)
    except FasbenchError as exc:
        raise FasbenchError(f"{path}: {exc}") from None


def _prepare(path: str, frame_level: bool) -> tuple[Any, Any]:
    """(original, evaluated) score sets; evaluated is per-video unless frame_level."""
    s = load_score_csv(path)
    try:
        return s, (s if frame_level else s.per_video())
    except FasbenchError as exc:
        raise FasbenchError(f"{path}: {exc}") from None


def _counts(original: Any, evaluated: Any) -> dict[str, int]:
    import pandas as pd

    n_videos = len(pd.unique(original.videos)) if original.videos is not None else len(evaluated)
    return {"n_videos": n_videos, "n_live": evaluated.n_live, "n_spoof": evaluated.n_spoof}


def _threshold(s: Any, ssdg: bool, where: str) -> float:
    from fasbench.metrics import eer, ssdg_threshold

    try:
        return ssdg_threshold(s.scores, s.labels) if ssdg else eer(s.scores, s.labels)[1]
    except FasbenchError as exc:
        raise FasbenchError(f"{where}: {exc}") from None


def _fmt(key: str, value: float | None) -> str:
    if value is None:
        return "—"
    if key == "threshold":
        return f"{value:.6g}"
    return "nan" if math.isnan(value) else f"{value:.2f}"


def main(args: argparse.Namespace) -> int:
    """Run ``fasbench score``; returns the exit code (0; 1 when a run does not reproduce)."""
    from fasbench.metrics import DEFAULT_METRICS, compute_metrics, resolve_metrics

    path = Path(args.scores)
    if path.is_dir() or path.name == "record.json":
        return score_run(path, as_json=args.json)
    names = resolve_metrics(args.metrics or list(DEFAULT_METRICS))
    original, target = _prepare(args.scores, args.frame_level)
    if args.dev is not None:
        _, dev = _prepare(args.dev, args.frame_level)
        thr = _threshold(dev, args.ssdg, args.dev)
        policy = "dev-eer"
    else:
        thr = _threshold(target, args.ssdg, args.scores)
        policy = "target-eer"
    try:
        metrics = {**compute_metrics(target, thr, names, ssdg=args.ssdg), "threshold": thr}
    except FasbenchError as exc:
        raise FasbenchError(f"{args.scores}: {exc}") from None

    if args.json:
        print(json.dumps({"policy": policy, **metrics}, indent=2))
        return 0

    from tabulate import tabulate

    counts = _counts(original, target)
    level = "frame level" if (args.frame_level or original.videos is None) else "video level"
    rule = "SSDG grid rule" if args.ssdg else "exact EER"
    source = args.dev if args.dev is not None else args.scores
    if args.ssdg and (target.scores.min() < 0.0 or target.scores.max() > 1.0):
        print("warning: --ssdg assumes scores in [0, 1]; some scores lie outside", file=sys.stderr)
    print(f"scores: {args.scores}  ({level}: {counts['n_videos']} videos, "
          f"{counts['n_live']} live / {counts['n_spoof']} spoof evaluated)")
    print(f"policy: {policy}  (threshold from {source}, {rule})")
    rows = [(k, _fmt(k, v)) for k, v in metrics.items()]
    print(tabulate(rows, headers=["metric", "value"], colalign=("left", "right"),
                   disable_numparse=True))
    print("(all values in percent except the threshold, which is on the score scale)")
    return 0


# --------------------------------------------------------------------------- a run re-scored


def read_run_scores(rec: Any) -> tuple[Any, Any]:
    """``(val, target)`` frame-level ScoreSets from a record's ``scores.csv.gz``, in the order the
    run scored them, after checking the file's sha256 against the record."""
    import gzip
    import hashlib
    import io

    import numpy as np
    import pandas as pd

    from fasbench.metrics import ScoreSet

    if rec.scores is None:
        raise FasbenchError(f"{rec.source}: this record names no scores file; re-run the task with this fasbench")
    path = Path(rec.source).parent / rec.scores.file
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise FasbenchError(f"{path}: cannot be read ({exc.strerror or exc}); the record {rec.source} needs it") from None
    digest = hashlib.sha256(blob).hexdigest()
    if digest != rec.scores.sha256:
        raise FasbenchError(
            f"{path}: sha256 {digest[:12]}... does not match the record's {rec.scores.sha256[:12]}...; "
            "the scores were changed after the run (re-run the task to get a consistent pair)"
        )
    # scores as text, converted by Python's float(): the exact inverse of the repr they were written with
    df = pd.read_csv(io.BytesIO(gzip.decompress(blob)), dtype={"split": str, "video": str, "attack": str, "score": str},
                     keep_default_na=False)
    df["score"] = np.fromiter((float(x) for x in df["score"]), dtype=np.float64, count=len(df))
    out = []
    for split in ("val", "target"):
        d = df[df["split"] == split]
        if not len(d):
            raise FasbenchError(f"{path}: no rows of split {split!r}")
        out.append(ScoreSet(d["score"].to_numpy(np.float64), d["label"].to_numpy(np.int64),
                            d["attack"].to_numpy(object), d["video"].to_numpy(object)))
    return out[0], out[1]


def rescore(rec: Any) -> dict[str, Any]:
    """The record's ``val`` and ``target`` blocks recomputed from its scores file."""
    from fasbench.metrics import evaluate, resolve_metrics

    val, target = read_run_scores(rec)
    e = rec.config.get("eval", {})
    ci = rec.val.ci_method or {}
    return evaluate(val, target, resolve_metrics(rec.metric_names), ssdg=bool(e.get("ssdg", False)),
                    video_level=bool(e.get("video_level", True)), n_boot=int(ci.get("resamples", 0)),
                    level=float(ci.get("level", 95.0)), seed=int(ci.get("seed", rec.seed)))


def _differences(a: Any, b: Any, where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in dict.fromkeys([*a, *b]):
            out += _differences(a.get(k, "<missing>"), b.get(k, "<missing>"), f"{where}.{k}" if where else k)
        return out
    return [] if a == b else [f"{where}: record {a!r}, recomputed {b!r}"]


def score_run(path: Path, as_json: bool = False) -> int:
    from tabulate import tabulate

    from fasbench.records import read_record

    rec_path = path / "record.json" if path.is_dir() else path
    if not rec_path.exists():
        raise FasbenchError(f"{path}: no record.json there; give a run directory written by `fasbench run`")
    rec = read_record(rec_path)
    got = rescore(rec)
    stored = {"val": rec.val.model_dump(mode="json"),
              "target": {p: b.model_dump(mode="json") for p, b in rec.target.items()}}
    recomputed = json.loads(json.dumps(got))
    recomputed["val"] = rec.val.model_validate(recomputed["val"]).model_dump(mode="json")
    recomputed["target"] = {p: rec.val.model_validate(b).model_dump(mode="json") for p, b in recomputed["target"].items()}
    diffs = _differences(stored, recomputed)
    if as_json:
        print(json.dumps({"record": str(rec_path), "reproduced": not diffs, "differences": diffs, **recomputed}, indent=2))
        return 0 if not diffs else 1
    names = list(dict.fromkeys([*rec.val.metrics, *[k for b in rec.target.values() for k in b.metrics]]))
    blocks = [("val (source data)", recomputed["val"])] + [(f"target, {p}", b) for p, b in recomputed["target"].items()]
    rows = []
    for name in names:
        row = [name]
        for _, b in blocks:
            v, ci = b["metrics"].get(name), b.get("ci", {}).get(name)
            row.append(_fmt(name, v) + (f" [{ci[0]:.1f}, {ci[1]:.1f}]" if ci else ""))
        rows.append(row)
    rows.append(["threshold"] + [_fmt("threshold", b["threshold"]) for _, b in blocks])
    rows.append(["videos (live/spoof)"] + [f"{b['n_videos']} ({b['n_live']}/{b['n_spoof']})" for _, b in blocks])
    print(f"run: {rec_path.parent}  ({rec.method}, {rec.protocol} {rec.task.name}, seed {rec.seed})")
    print(f"scores: {rec.scores.file} (sha256 {rec.scores.sha256[:12]}..., {rec.scores.rows} frames) -- checked")
    print(tabulate(rows, headers=["metric"] + [t for t, _ in blocks], disable_numparse=True))
    print("(percent, [95% bootstrap CI over videos]; thresholds on the score scale)")
    if diffs:
        print(f"does NOT reproduce {rec_path}: {len(diffs)} value(s) differ, e.g. {diffs[0]}")
        return 1
    print(f"reproduces every number of {rec_path} exactly")
    return 0
