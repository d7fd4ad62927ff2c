"""Face anti-spoofing metrics: vectorised, numpy-only at import.

Conventions
-----------
* ``label`` 1 = **live** (bona fide, the positive class), 0 = **spoof** (attack).
* ``score`` = live probability or any live-ness score: higher means more live.
* A presentation is **accepted as live** when ``score >= threshold``.

Error rates at a threshold ``t`` (the functional API returns fractions in [0, 1];
:func:`compute_metrics`, :func:`policy_metrics` and :data:`BUILTIN_METRICS` report
**percent**, 0-100, except ``threshold`` itself and the ``n_*`` counts):

* **FAR** (false acceptance rate, = FPR, = APCER over all attacks pooled):
  fraction of spoof samples with ``score >= t``.
* **FRR** (false rejection rate, = 1 - TPR, = **BPCER**): fraction of live samples with
  ``score < t``.
* **HTER** = (FAR + FRR) / 2 at ``t``.
* **APCER** (ISO/IEC 30107-3): computed per attack type (presentation attack
  instrument species) as the fraction of that type's spoofs with ``score >= t``; the
  reported APCER is the **worst** (maximum) over types. Each type's value is also
  reported as ``APCER/<attack>``. Without attack types APCER = FAR.
* **BPCER** = FRR; **ACER** = (APCER + BPCER) / 2.
* **EER**: the candidate thresholds are the distinct scores plus one value just above
  the largest score (which accepts nothing); the EER threshold is the candidate that
  minimises |FAR - FRR|, and EER = (FAR + FRR) / 2 there. Ties in |FAR - FRR| (compared
  exactly, in integer counts) are broken by the smaller FAR + FRR, then by the lower
  threshold. No interpolation between operating points.
* **AUC**: area under the ROC curve = P(live score > spoof score) + 0.5 P(equal), i.e.
  the Mann-Whitney statistic with ties counted one half; equal to
  ``sklearn.metrics.roc_auc_score``.
* **TPR@FPR=x**: the highest TPR (= 1 - FRR) over the candidate thresholds whose FPR
  (= FAR) is <= x (a relative tolerance of 1e-12 absorbs floating-point round-off in
  ``x * n_spoof``). Reported for x = 1 % and 0.1 %.

SSDG mode
---------
``ssdg=True`` reproduces the evaluation of SSDG (Jia et al., CVPR 2020,
github.com/taylover-pei/SSDG-CVPR2020, ``utils/statistic.py``: ``get_EER_states`` and
``get_HTER_at_thr``), used by many cross-domain FAS papers: the candidate thresholds are
the fixed grid ``i / 10000`` for i = 0 ... 10000 followed by 1.1; a sample is accepted
when ``prob >= thr``; the chosen threshold minimises |FRR - FAR| and, because that code
updates its running minimum with ``<=``, the **last** (highest) tied threshold wins; its
EER is (FAR + FRR) / 2 there. When there are no live samples FRR is taken as 1, and when
there are no spoof samples FAR is taken as 1 (their special cases). The grid only makes
sense for scores in [0, 1].

Video level
-----------
:meth:`ScoreSet.per_video` averages the frame scores of each video (arithmetic mean) and
keeps one label (which must be constant within the video) and one attack type per video;
:func:`policy_metrics` does this first by default, as SSDG-style protocols do.

Threshold policies (:func:`policy_metrics`)
-------------------------------------------
* ``target-eer``: the EER threshold of the target (test) scores themselves - the
  common but optimistic cross-domain protocol, since it looks at the test labels.
* ``source-val``: the EER threshold of held-out *source* validation scores, applied
  unchanged to the target scores - a deployable protocol.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import numpy as np

from fasbench.errors import FasbenchError

__all__ = [
    "ScoreSet",
    "RocCurve",
    "roc",
    "eer",
    "auc",
    "tpr_at_fpr",
    "far_frr",
    "apcer_per_attack",
    "ssdg_eer_states",
    "ssdg_threshold",
    "ssdg_eer",
    "ssdg_hter",
    "compute_metrics",
    "policy_metrics",
    "BUILTIN_METRICS",
    "METRIC_KEYS",
    "SSDG_GRID_DENSITY",
]

#: The keys :func:`compute_metrics` always returns (plus ``APCER/<attack>`` per attack type).
METRIC_KEYS = (
    "HTER",
    "EER",
    "AUC",
    "TPR@FPR=1%",
    "TPR@FPR=0.1%",
    "APCER",
    "BPCER",
    "ACER",
    "threshold",
)

#: SSDG's ``grid_density``: thresholds 0, 1/10000, ..., 1 plus 1.1.
SSDG_GRID_DENSITY = 10000

#: Label given to spoof samples whose attack type is missing.
UNKNOWN_ATTACK = "unknown"


# --------------------------------------------------------------------------------------
# input validation
# --------------------------------------------------------------------------------------
def _as_scores(scores: Any, where: str = "scores") -> np.ndarray:
    try:
        arr = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise FasbenchError(f"{where}: scores must be numbers ({exc})") from None
    if arr.ndim != 1:
        if arr.ndim == 2 and 1 in arr.shape:  # a column or row vector
            arr = arr.reshape(-1)
        else:
            raise FasbenchError(f"{where}: scores must be a 1-D array, got shape {arr.shape}")
    if arr.size == 0:
        raise FasbenchError(f"{where}: no scores given")
    finite = np.isfinite(arr)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise FasbenchError(
            f"{where}: {bad.size} score(s) are NaN or infinite (first at index "
            f"{bad[:5].tolist()}); every score must be a finite number"
        )
    return arr


def _as_labels(labels: Any, n: int, where: str = "labels") -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.shape[0] != n:
        raise FasbenchError(f"{where}: {arr.shape[0]} labels for {n} scores; lengths must match")
    if arr.dtype == bool:
        return arr.astype(np.int64)
    if arr.dtype.kind not in "iuf":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise FasbenchError(
                f"{where}: labels must be 1 (live) or 0 (spoof), got non-numeric values"
            ) from None
    ok = (arr == 0) | (arr == 1)
    if not ok.all():
        bad = np.unique(arr[~ok])[:5].tolist()
        raise FasbenchError(f"{where}: labels {bad} found; labels must be 1 (live) or 0 (spoof)")
    return arr.astype(np.int64)


def _check_pair(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    s = _as_scores(scores)
    return s, _as_labels(labels, s.shape[0])


def _need_both(n_live: int, n_spoof: int, what: str) -> None:
    if n_live == 0 or n_spoof == 0:
        missing = "live (label 1)" if n_live == 0 else "spoof (label 0)"
        raise FasbenchError(
            f"{what} needs both live and spoof samples, but there are no {missing} samples "
            f"({n_live} live, {n_spoof} spoof)"
        )


# --------------------------------------------------------------------------------------
# ScoreSet
# --------------------------------------------------------------------------------------
@dataclass(eq=False)
class ScoreSet:
    """Scores with their labels and, optionally, attack types and video ids (one per row).

    Validated on construction: equal lengths, at least one row, finite scores, labels in
    {0, 1} (stored as int64), no missing video ids. Missing attack types become
    ``"unknown"``; attack types are stored as strings.
    """

    scores: np.ndarray
    labels: np.ndarray
    attacks: np.ndarray | None = None
    videos: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.scores = _as_scores(self.scores)
        n = self.scores.shape[0]
        self.labels = _as_labels(self.labels, n)
        if self.attacks is not None:
            import pandas as pd

            att = np.asarray(self.attacks, dtype=object).reshape(-1)
            if att.shape[0] != n:
                raise FasbenchError(f"attacks: {att.shape[0]} values for {n} scores; lengths must match")
            codes, uniques = pd.factorize(att)
            names = np.asarray([str(u) for u in uniques] + [UNKNOWN_ATTACK], dtype=object)
            self.attacks = names[codes]  # code -1 (missing) -> "unknown"
        if self.videos is not None:
            import pandas as pd

            vid = np.asarray(self.videos, dtype=object).reshape(-1)
            if vid.shape[0] != n:
                raise FasbenchError(f"videos: {vid.shape[0]} ids for {n} scores; lengths must match")
            missing = pd.isna(vid)
            if missing.any():
                raise FasbenchError(
                    f"videos: {int(missing.sum())} row(s) have no video id (first at index "
                    f"{np.flatnonzero(missing)[:5].tolist()}); give every row a video id"
                )
            self.videos = vid

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @property
    def n_live(self) -> int:
        return int(self.labels.sum())

    @property
    def n_spoof(self) -> int:
        return len(self) - self.n_live

    def per_video(self) -> "ScoreSet":
        """One row per video: mean frame score, the video's label and attack type.

        Videos keep the order of their first appearance. Raises :class:`FasbenchError`
        if a video mixes labels or attack types. Returns ``self`` when there are no video ids.
        """
        if self.videos is None:
            return self
        import pandas as pd

        codes, uniques = pd.factorize(self.videos)
        nv = len(uniques)
        counts = np.bincount(codes, minlength=nv)
        mean = np.bincount(codes, weights=self.scores, minlength=nv) / counts
        live = np.bincount(codes, weights=self.labels, minlength=nv)
        mixed = (live != 0) & (live != counts)
        if mixed.any():
            bad = [str(v) for v in uniques[np.flatnonzero(mixed)[:5]]]
            raise FasbenchError(
                f"{int(mixed.sum())} video(s) mix live and spoof frames (e.g. {bad}); "
                "a video must have one label - fix the video ids or use frame-level scoring"
            )
        labels = (live > 0).astype(np.int64)
        attacks = None
        if self.attacks is not None:
            acodes, anames = pd.factorize(self.attacks)
            pairs = np.unique(codes.astype(np.int64) * len(anames) + acodes)
            if pairs.shape[0] != nv:
                per_video = np.bincount(pairs // len(anames), minlength=nv)
                bad = [str(v) for v in uniques[np.flatnonzero(per_video > 1)[:5]]]
                raise FasbenchError(
                    f"video(s) {bad} mix several attack types; a video must have one attack type"
                )
            attacks = np.asarray(anames, dtype=object)[pairs % len(anames)]
        return ScoreSet(mean, labels, attacks, np.asarray(uniques, dtype=object))


# --------------------------------------------------------------------------------------
# the sorted-score curve shared by roc / eer / auc / tpr_at_fpr
# --------------------------------------------------------------------------------------
class _Curve(NamedTuple):
    thresholds: np.ndarray  # ascending distinct scores, then one value above the max
    fa: np.ndarray  # spoof accepted (score >= thr), int64
    fr: np.ndarray  # live rejected (score < thr), int64
    n_live: int
    n_spoof: int


def _curve(scores: np.ndarray, labels: np.ndarray) -> _Curve:
    order = np.argsort(scores, kind="stable")
    s = scores[order]
    live_sorted = labels[order]
    starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
    cum_live = np.concatenate(([0], np.cumsum(live_sorted, dtype=np.int64)))
    n = s.shape[0]
    n_live = int(cum_live[-1])
    n_spoof = n - n_live
    live_below = np.append(cum_live[starts], n_live)  # live with score < thr
    spoof_below = np.append(starts, n) - live_below
    thresholds = np.append(s[starts], np.nextafter(s[-1], np.inf))
    return _Curve(thresholds, n_spoof - spoof_below, live_below, n_live, n_spoof)


class RocCurve(NamedTuple):
    """Operating points at each candidate threshold (accept if score >= threshold)."""

    thresholds: np.ndarray  #: ascending: the distinct scores, then one value above the max
    far: np.ndarray  #: fraction of spoofs accepted (FPR), non-increasing
    frr: np.ndarray  #: fraction of lives rejected (1 - TPR), non-decreasing


def roc(scores: Any, labels: Any) -> RocCurve:
    """FAR and FRR (fractions) at every candidate threshold; one sort, no loop."""
    s, y = _check_pair(scores, labels)
    c = _curve(s, y)
    _need_both(c.n_live, c.n_spoof, "roc")
    return RocCurve(c.thresholds, c.fa / c.n_spoof, c.fr / c.n_live)


def _eer_from_curve(c: _Curve) -> tuple[float, float]:
    # |FAR - FRR| and FAR + FRR scaled by n_live * n_spoof: exact integers, exact ties
    a = c.fa * c.n_live
    b = c.fr * c.n_spoof
    dist = np.abs(a - b)
    tied = np.flatnonzero(dist == dist.min())
    k = tied[np.argmin((a + b)[tied])]  # argmin -> first, i.e. lowest threshold
    value = (c.fa[k] / c.n_spoof + c.fr[k] / c.n_live) / 2.0
    return float(value), float(c.thresholds[k])


def eer(scores: Any, labels: Any) -> tuple[float, float]:
    """``(eer_fraction, threshold)``: see the module docstring for the exact rule.

    Among candidate thresholds the one minimising |FAR - FRR| is chosen; ties go to the
    smaller FAR + FRR, then to the lower threshold.
    """
    s, y = _check_pair(scores, labels)
    c = _curve(s, y)
    _need_both(c.n_live, c.n_spoof, "EER")
    return _eer_from_curve(c)


def _auc_from_curve(c: _Curve) -> float:
    # group k = the samples scoring exactly thresholds[k] (k < last)
    live_in_group = np.diff(c.fr)
    spoof_in_group = -np.diff(c.fa)
    live_above = c.n_live - c.fr[1:]  # lives scoring above group k
    # sum over spoofs of (#lives above + half #lives tied), doubled to stay an integer
    twice = int(np.sum(spoof_in_group * (2 * live_above + live_in_group), dtype=np.int64))
    return twice / (2.0 * c.n_live * c.n_spoof)


def auc(scores: Any, labels: Any) -> float:
    """Area under the ROC curve (fraction); ties count one half, like ``roc_auc_score``."""
    s, y = _check_pair(scores, labels)
    c = _curve(s, y)
    _need_both(c.n_live, c.n_spoof, "AUC")
    return _auc_from_curve(c)


def _tpr_at_fpr_from_curve(c: _Curve, fpr: float) -> float:
    allowed = c.fa <= fpr * c.n_spoof * (1.0 + 1e-12)
    # FAR is non-increasing in the threshold, so ``allowed`` is a suffix that always
    # holds the last point (accept nothing, FAR = 0); TPR is highest at its start.
    k = int(np.argmax(allowed))
    return float((c.n_live - c.fr[k]) / c.n_live)


def tpr_at_fpr(scores: Any, labels: Any, fpr: float) -> float:
    """Highest TPR (fraction) at any candidate threshold whose FPR is <= ``fpr`` (a fraction)."""
    if not 0.0 <= fpr <= 1.0:
        raise FasbenchError(f"tpr_at_fpr: fpr must be a fraction in [0, 1], got {fpr}")
    s, y = _check_pair(scores, labels)
    c = _curve(s, y)
    _need_both(c.n_live, c.n_spoof, "TPR@FPR")
    return _tpr_at_fpr_from_curve(c, fpr)


def far_frr(scores: Any, labels: Any, threshold: float) -> tuple[float, float]:
    """``(FAR, FRR)`` fractions at ``threshold`` (accept if score >= threshold)."""
    s, y = _check_pair(scores, labels)
    live = y == 1
    n_live = int(live.sum())
    n_spoof = y.shape[0] - n_live
    _need_both(n_live, n_spoof, "FAR/FRR")
    accepted = s >= threshold
    fa = int(np.count_nonzero(accepted & ~live))
    fr = n_live - int(np.count_nonzero(accepted & live))
    return fa / n_spoof, fr / n_live


def apcer_per_attack(
    scores: Any, labels: Any, attacks: Any, threshold: float
) -> dict[str, float]:
    """APCER (fraction) of each attack type among the spoofs, sorted by attack name."""
    import pandas as pd

    s, y = _check_pair(scores, labels)
    att = np.asarray(attacks, dtype=object).reshape(-1)
    if att.shape[0] != s.shape[0]:
        raise FasbenchError(f"attacks: {att.shape[0]} values for {s.shape[0]} scores")
    spoof = y == 0
    if not spoof.any():
        raise FasbenchError("APCER needs spoof (label 0) samples, but there are none")
    codes, names = pd.factorize(att[spoof])
    if (codes < 0).any():  # missing attack types (not normalised by ScoreSet)
        names = np.append(np.asarray(names, dtype=object), UNKNOWN_ATTACK)
        codes = np.where(codes < 0, len(names) - 1, codes)
    total = np.bincount(codes, minlength=len(names))
    accepted = np.bincount(codes, weights=s[spoof] >= threshold, minlength=len(names))
    out = {str(nm): float(a / t) for nm, a, t in zip(names, accepted, total) if t > 0}
    return dict(sorted(out.items()))


# --------------------------------------------------------------------------------------
# SSDG (CVPR 2020) evaluation, vectorised
# --------------------------------------------------------------------------------------
def _ssdg_grid(grid_density: int) -> np.ndarray:
    # ``0.0 + i * 1.0 / float(grid_density)`` in float64, i = 0..grid_density, then 1.1
    i = np.arange(grid_density + 1, dtype=np.float64)
    return np.append(0.0 + i * 1.0 / float(grid_density), 1.1)


def _ssdg_rates(
    s: np.ndarray, y: np.ndarray, thr: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """SSDG's (FAR, FRR) at each threshold in ``thr``, including its one-class special cases."""
    live_sorted = np.sort(s[y == 1])
    spoof_sorted = np.sort(s[y == 0])
    n_live, n_spoof = live_sorted.shape[0], spoof_sorted.shape[0]
    if n_live == 0 and n_spoof == 0:
        raise FasbenchError("SSDG evaluation needs at least one score")
    fn = np.searchsorted(live_sorted, thr, side="left")  # live with prob < thr
    fp = n_spoof - np.searchsorted(spoof_sorted, thr, side="left")  # spoof with prob >= thr
    if n_live == 0:
        return fp / float(n_spoof), np.ones(thr.shape[0])
    if n_spoof == 0:
        return np.ones(thr.shape[0]), fn / float(n_live)
    return fp / float(n_spoof), fn / float(n_live)


def ssdg_eer_states(
    scores: Any, labels: Any, grid_density: int = SSDG_GRID_DENSITY
) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Vectorised ``get_EER_states``: ``(eer, threshold, frr_per_thr, far_per_thr)``.

    Fractions; the threshold grid is ``i / grid_density`` (i = 0..grid_density) then 1.1;
    the last threshold with the smallest |FRR - FAR| wins.
    """
    s, y = _check_pair(scores, labels)
    grid = _ssdg_grid(grid_density)
    far, frr = _ssdg_rates(s, y, grid)
    dist = np.abs(frr - far)
    k = dist.shape[0] - 1 - int(np.argmin(dist[::-1]))  # last minimiser, as `<=` does
    value = (far[k] + frr[k]) / 2.0
    return float(value), float(grid[k]), frr, far


def ssdg_threshold(scores: Any, labels: Any) -> float:
    """The threshold SSDG's ``get_EER_states`` picks (a point of its 0..1 grid, or 1.1)."""
    return ssdg_eer_states(scores, labels)[1]


def ssdg_eer(scores: Any, labels: Any) -> tuple[float, float]:
    """``(eer_fraction, threshold)`` as SSDG's ``get_EER_states`` computes them."""
    value, thr, _, _ = ssdg_eer_states(scores, labels)
    return value, thr


def ssdg_hter(scores: Any, labels: Any, threshold: float) -> float:
    """``get_HTER_at_thr``: (FAR + FRR) / 2 as a fraction, with SSDG's one-class cases."""
    s, y = _check_pair(scores, labels)
    far, frr = _ssdg_rates(s, y, np.asarray([threshold], dtype=np.float64))
    return float((far[0] + frr[0]) / 2.0)


# --------------------------------------------------------------------------------------
# metric dictionaries
# --------------------------------------------------------------------------------------
def compute_metrics(s: ScoreSet, threshold: float, *, ssdg: bool = False) -> dict[str, float]:
    """All metrics of ``s`` at ``threshold``, in percent (``threshold`` as given).

    Keys: :data:`METRIC_KEYS` plus ``APCER/<attack>`` for each attack type when ``s`` has
    attack types. EER, AUC and TPR@FPR do not depend on ``threshold``; with ``ssdg=True``
    the EER is SSDG's grid EER instead of the exact one.
    """
    c = _curve(s.scores, s.labels)
    _need_both(c.n_live, c.n_spoof, "metrics")
    threshold = float(threshold)
    live = s.labels == 1
    accepted = s.scores >= threshold
    far = np.count_nonzero(accepted & ~live) / c.n_spoof
    frr = (c.n_live - np.count_nonzero(accepted & live)) / c.n_live
    eer_value = ssdg_eer(s.scores, s.labels)[0] if ssdg else _eer_from_curve(c)[0]
    per_attack: dict[str, float] = {}
    if s.attacks is not None:
        per_attack = apcer_per_attack(s.scores, s.labels, s.attacks, threshold)
        apcer = max(per_attack.values())
    else:
        apcer = far
    out = {
        "HTER": 100.0 * (far + frr) / 2.0,
        "EER": 100.0 * eer_value,
        "AUC": 100.0 * _auc_from_curve(c),
        "TPR@FPR=1%": 100.0 * _tpr_at_fpr_from_curve(c, 0.01),
        "TPR@FPR=0.1%": 100.0 * _tpr_at_fpr_from_curve(c, 0.001),
        "APCER": 100.0 * apcer,
        "BPCER": 100.0 * frr,
        "ACER": 100.0 * (apcer + frr) / 2.0,
        "threshold": threshold,
    }
    for name, value in per_attack.items():
        out[f"APCER/{name}"] = 100.0 * value
    return {k: float(v) for k, v in out.items()}


def _counts(s: ScoreSet, original: ScoreSet) -> dict[str, int]:
    if original.videos is not None:
        import pandas as pd

        n_videos = int(pd.unique(original.videos).shape[0])
    else:
        n_videos = len(s)
    return {"n_videos": n_videos, "n_live": s.n_live, "n_spoof": s.n_spoof}


def policy_metrics(
    target: ScoreSet,
    source_val: ScoreSet | None = None,
    *,
    ssdg: bool = False,
    video_level: bool = True,
) -> dict[str, dict[str, float | int]]:
    """Metrics on ``target`` under each threshold policy.

    Returns ``{"source-val": {...}, "target-eer": {...}}`` (``source-val`` only when
    ``source_val`` is given). ``target-eer`` uses the EER threshold of ``target`` itself;
    ``source-val`` the EER threshold of ``source_val``, applied to ``target``. With
    ``ssdg=True`` both thresholds (and the EER) follow SSDG's grid rule. With
    ``video_level`` (default) both sets are first averaged per video where they have
    video ids. Each dict also holds ``n_videos`` (distinct videos, or rows when there are
    no video ids), ``n_live`` and ``n_spoof`` (evaluated rows of each class) as ints.
    """
    t = target.per_video() if video_level else target
    counts = _counts(t, target)
    out: dict[str, dict[str, float | int]] = {}
    if source_val is not None:
        v = source_val.per_video() if video_level else source_val
        thr = ssdg_threshold(v.scores, v.labels) if ssdg else eer(v.scores, v.labels)[1]
        out["source-val"] = {**compute_metrics(t, thr, ssdg=ssdg), **counts}
    thr = ssdg_threshold(t.scores, t.labels) if ssdg else eer(t.scores, t.labels)[1]
    out["target-eer"] = {**compute_metrics(t, thr, ssdg=ssdg), **counts}
    return out


# --------------------------------------------------------------------------------------
# registry entries: fn(ScoreSet, threshold) -> percent
# --------------------------------------------------------------------------------------
def _m_hter(s: ScoreSet, threshold: float) -> float:
    far, frr = far_frr(s.scores, s.labels, threshold)
    return 100.0 * (far + frr) / 2.0


def _m_eer(s: ScoreSet, threshold: float) -> float:
    return 100.0 * eer(s.scores, s.labels)[0]


def _m_auc(s: ScoreSet, threshold: float) -> float:
    return 100.0 * auc(s.scores, s.labels)


def _m_tpr1(s: ScoreSet, threshold: float) -> float:
    return 100.0 * tpr_at_fpr(s.scores, s.labels, 0.01)


def _m_tpr01(s: ScoreSet, threshold: float) -> float:
    return 100.0 * tpr_at_fpr(s.scores, s.labels, 0.001)


def _apcer(s: ScoreSet, threshold: float) -> float:
    if s.attacks is not None:
        return max(apcer_per_attack(s.scores, s.labels, s.attacks, threshold).values())
    spoof = s.labels == 0
    if not spoof.any():
        raise FasbenchError("APCER needs spoof (label 0) samples, but there are none")
    return float(np.mean(s.scores[spoof] >= threshold))


def _bpcer(s: ScoreSet, threshold: float) -> float:
    live = s.labels == 1
    if not live.any():
        raise FasbenchError("BPCER needs live (label 1) samples, but there are none")
    return float(np.mean(s.scores[live] < threshold))


def _m_apcer(s: ScoreSet, threshold: float) -> float:
    return 100.0 * _apcer(s, threshold)


def _m_bpcer(s: ScoreSet, threshold: float) -> float:
    return 100.0 * _bpcer(s, threshold)


def _m_acer(s: ScoreSet, threshold: float) -> float:
    return 100.0 * (_apcer(s, threshold) + _bpcer(s, threshold)) / 2.0


#: name -> ``fn(ScoreSet, threshold) -> float`` in percent (threshold-free ones ignore it).
BUILTIN_METRICS: dict[str, Callable[[ScoreSet, float], float]] = {
    "HTER": _m_hter,
    "EER": _m_eer,
    "AUC": _m_auc,
    "TPR@FPR=1%": _m_tpr1,
    "TPR@FPR=0.1%": _m_tpr01,
    "APCER": _m_apcer,
    "BPCER": _m_bpcer,
    "ACER": _m_acer,
}
