"""Face anti-spoofing metrics: vectorised, numpy-only at import.

Conventions
-----------
* ``label`` 1 = **live** (bona fide, the positive class), 0 = **spoof** (attack).
* ``score`` = live probability or any live-ness score: higher means more live.
* A presentation is **accepted as live** when ``score >= threshold``.

Error rates at a threshold ``t`` (the functional API returns fractions in [0, 1];
:func:`compute_metrics`, :func:`evaluate` and :data:`BUILTIN_METRICS` report
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
:func:`evaluate` does this first by default, as SSDG-style protocols do.

Metrics by name
---------------
A metric is a function ``fn(s: ScoreSet, threshold: float) -> percent`` registered under a
name through the ``register_metrics`` hook (the built-ins below register the same way), with
``uses_threshold`` and ``higher_is_better`` in its registration. :func:`compute_metrics`
computes the *named* metrics through the registry, so a plugin metric named in
``eval.metrics`` reaches the record, ``fasbench score`` and the leaderboard. Each formula is
written once, here; the functional API (``eer``, ``auc``, ...) and the registered metrics
share it.

Evaluation (:func:`evaluate`)
-----------------------------
One definition of which number comes from which data:

* ``val``: the source-val split's *own* metrics, at the source-val split's EER threshold,
  computed from source-val scores only.
* ``target``: metrics on the target under each threshold policy: ``source-val-threshold``
  (the source-val EER threshold applied unchanged: deployable) and ``target-eer-threshold``
  (the target's own EER threshold: idealized, it reads target labels).

Each block can carry a percentile bootstrap confidence interval over videos
(:func:`bootstrap_ci`): live and spoof videos are resampled separately (stratified, so both
classes are always present); a fixed threshold stays fixed, a threshold chosen on the
resampled data itself (``target-eer-threshold``) is re-chosen in every resample.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

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
    "evaluate",
    "bootstrap_ci",
    "Metric",
    "BUILTIN_METRICS",
    "DEFAULT_METRICS",
    "SSDG_GRID_DENSITY",
]

#: The metrics a run reports unless ``eval.metrics`` says otherwise (the built-ins, in order).
DEFAULT_METRICS = (
    "HTER",
    "EER",
    "AUC",
    "TPR@FPR=1%",
    "TPR@FPR=0.1%",
    "APCER",
    "BPCER",
    "ACER",
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

    @classmethod
    def _trusted(cls, scores: np.ndarray, labels: np.ndarray, attacks: np.ndarray | None = None,
                 videos: np.ndarray | None = None) -> ScoreSet:
        """A ScoreSet from arrays that are already validated (bootstrap resamples)."""
        obj = cls.__new__(cls)
        obj.scores, obj.labels, obj.attacks, obj.videos = scores, labels, attacks, videos
        return obj

    def curve(self) -> _Curve:
        """The sorted-score curve every rank metric reads (computed once per ScoreSet)."""
        c = self.__dict__.get("_curve_cache")
        if c is None:
            c = self.__dict__["_curve_cache"] = _curve(self.scores, self.labels)
        return c

    def rates(self, threshold: float) -> tuple[float, float]:
        """``(FAR, FRR)`` fractions at ``threshold`` (accept when score >= threshold)."""
        c = self.curve()
        _need_both(c.n_live, c.n_spoof, "FAR/FRR")
        k = int(np.searchsorted(c.thresholds, threshold, side="left"))
        # thresholds[k] is the smallest candidate >= threshold: same accept set
        if k >= len(c.thresholds):
            return 0.0, 1.0
        return float(c.fa[k] / c.n_spoof), float(c.fr[k] / c.n_live)

    @property
    def n_live(self) -> int:
        return int(self.labels.sum())

    @property
    def n_spoof(self) -> int:
        return len(self) - self.n_live

    def per_video(self) -> ScoreSet:
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
    return ScoreSet(scores, labels).rates(threshold)


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
# the built-in metrics: fn(ScoreSet, threshold) -> percent, each formula once
# --------------------------------------------------------------------------------------
def _m_hter(s: ScoreSet, threshold: float) -> float:
    """Half total error rate (FAR + FRR) / 2 at the threshold."""
    far, frr = s.rates(threshold)
    return 100.0 * (far + frr) / 2.0


def _m_eer(s: ScoreSet, threshold: float) -> float:
    """Equal error rate: (FAR + FRR) / 2 where FAR = FRR (threshold-free)."""
    c = s.curve()
    _need_both(c.n_live, c.n_spoof, "EER")
    return 100.0 * _eer_from_curve(c)[0]


def _m_auc(s: ScoreSet, threshold: float) -> float:
    """Area under the ROC curve, ties count one half (threshold-free)."""
    c = s.curve()
    _need_both(c.n_live, c.n_spoof, "AUC")
    return 100.0 * _auc_from_curve(c)


def _tpr_metric(fpr: float) -> Callable[[ScoreSet, float], float]:
    def fn(s: ScoreSet, threshold: float) -> float:
        c = s.curve()
        _need_both(c.n_live, c.n_spoof, "TPR@FPR")
        return 100.0 * _tpr_at_fpr_from_curve(c, fpr)

    fn.__doc__ = f"Highest live acceptance rate (video level) with FAR <= {100 * fpr:g}%."
    return fn


def _apcer(s: ScoreSet, threshold: float) -> float:
    if s.attacks is not None:
        return max(apcer_per_attack(s.scores, s.labels, s.attacks, threshold).values())
    return s.rates(threshold)[0]


def _m_apcer(s: ScoreSet, threshold: float) -> float:
    """ISO/IEC 30107-3 APCER of the worst attack type at the threshold."""
    return 100.0 * _apcer(s, threshold)


def _m_bpcer(s: ScoreSet, threshold: float) -> float:
    """BPCER (= FRR): live presentations rejected at the threshold."""
    return 100.0 * s.rates(threshold)[1]


def _m_acer(s: ScoreSet, threshold: float) -> float:
    """(APCER + BPCER) / 2 at the threshold."""
    return 100.0 * (_apcer(s, threshold) + s.rates(threshold)[1]) / 2.0


def _m_eer_ssdg(s: ScoreSet, threshold: float) -> float:
    return 100.0 * ssdg_eer(s.scores, s.labels)[0]


@dataclass(frozen=True)
class Metric:
    """A metric as the registry holds it."""

    name: str
    fn: Callable[[ScoreSet, float], float]
    #: False for rank metrics (EER, AUC, TPR@FPR) whose value ignores the threshold
    uses_threshold: bool = True
    higher_is_better: bool = False
    version: int = 1
    plugin: str = "fasbench"


#: name -> (fn, uses_threshold, higher_is_better); registered by ``fasbench.builtins``.
BUILTIN_METRICS: dict[str, tuple[Callable[[ScoreSet, float], float], bool, bool]] = {
    "HTER": (_m_hter, True, False),
    "EER": (_m_eer, False, False),
    "AUC": (_m_auc, False, True),
    "TPR@FPR=1%": (_tpr_metric(0.01), False, True),
    "TPR@FPR=0.1%": (_tpr_metric(0.001), False, True),
    "APCER": (_m_apcer, True, False),
    "BPCER": (_m_bpcer, True, False),
    "ACER": (_m_acer, True, False),
}


def get_metric(name: str) -> Metric:
    """The registered metric ``name`` (built-in or from a plugin); unknown names suggest close ones."""
    from fasbench import plugins

    entry = plugins.registry("metrics").get(name)
    meta = entry.meta
    return Metric(entry.name, entry.load(), bool(meta.get("uses_threshold", True)),
                  bool(meta.get("higher_is_better", False)), entry.version, entry.plugin)


def resolve_metrics(names: Any) -> list[Metric]:
    """Check a list of metric names (``eval.metrics``) against the registry, before any work."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    names = list(names or [])
    if not names:
        raise FasbenchError(f"eval.metrics is empty; name at least one metric, e.g. eval.metrics=[{','.join(DEFAULT_METRICS[:3])}]")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise FasbenchError(f"eval.metrics lists {dup} twice; name each metric once")
    return [get_metric(str(n)) for n in names]


def compute_metrics(s: ScoreSet, threshold: float, metrics: Any = DEFAULT_METRICS, *,
                    ssdg: bool = False) -> dict[str, float | None]:
    """The named metrics of ``s`` at ``threshold``, in percent, through the metric registry.

    ``metrics``: names or :class:`Metric` objects. A metric undefined for this data (it
    raises :class:`FasbenchError`, e.g. APCER without spoofs) is ``None``. With attack types,
    APCER adds ``APCER/<attack>`` for each type. With ``ssdg=True`` the EER is SSDG's grid
    EER instead of the exact one (the threshold rule is the caller's).
    """
    ms = [m if isinstance(m, Metric) else get_metric(str(m)) for m in metrics]
    threshold = float(threshold)
    out: dict[str, float | None] = {}
    for m in ms:
        fn = _m_eer_ssdg if (ssdg and m.name == "EER" and m.fn is _m_eer) else m.fn
        try:
            value = float(fn(s, threshold))
        except FasbenchError:
            value = None
        out[m.name] = value if value is None or math.isfinite(value) else None
        if m.name == "APCER" and m.fn is _m_apcer and s.attacks is not None and s.n_spoof:
            for attack, v in apcer_per_attack(s.scores, s.labels, s.attacks, threshold).items():
                out[f"APCER/{attack}"] = 100.0 * v
    return out


def choose_threshold(s: ScoreSet, ssdg: bool = False) -> float:
    """The EER threshold of ``s`` (exact rule, or SSDG's grid rule)."""
    return ssdg_threshold(s.scores, s.labels) if ssdg else _eer_from_curve(_checked_curve(s, "EER"))[1]


def _checked_curve(s: ScoreSet, what: str) -> _Curve:
    c = s.curve()
    _need_both(c.n_live, c.n_spoof, what)
    return c


# --------------------------------------------------------------------------------------
# bootstrap confidence intervals over videos
# --------------------------------------------------------------------------------------
def bootstrap_ci(s: ScoreSet, metrics: Any, threshold: float | None, *, n_boot: int = 1000,
                 level: float = 95.0, seed: int = 0, ssdg: bool = False) -> dict[str, list[float]]:
    """Percentile bootstrap interval of each named metric over the rows of ``s`` (videos).

    Live and spoof rows are resampled separately, with replacement, keeping their counts.
    ``threshold=None`` re-chooses the EER threshold in every resample (a policy that reads
    the evaluated data's own labels); a number keeps it fixed. Deterministic for ``seed``.
    Returns ``{name: [low, high]}`` in percent (metrics undefined in a resample are left out).
    """
    ms = [m if isinstance(m, Metric) else get_metric(str(m)) for m in metrics]
    if n_boot <= 0:
        return {}
    rng = np.random.default_rng(seed)
    live = np.flatnonzero(s.labels == 1)
    spoof = np.flatnonzero(s.labels == 0)
    values: dict[str, list[float]] = {m.name: [] for m in ms}
    for _ in range(int(n_boot)):
        idx = np.concatenate([live[rng.integers(0, len(live), len(live))],
                              spoof[rng.integers(0, len(spoof), len(spoof))]])
        r = ScoreSet._trusted(s.scores[idx], s.labels[idx], None if s.attacks is None else s.attacks[idx])
        thr = choose_threshold(r, ssdg) if threshold is None else threshold
        for name, v in compute_metrics(r, thr, ms, ssdg=ssdg).items():
            if name in values and v is not None:
                values[name].append(v)
    lo, hi = (100.0 - level) / 2.0, 100.0 - (100.0 - level) / 2.0
    return {name: [float(np.percentile(v, lo)), float(np.percentile(v, hi))]
            for name, v in values.items() if v}


# --------------------------------------------------------------------------------------
# evaluation: which number comes from which data, defined once
# --------------------------------------------------------------------------------------
SOURCE_VAL_THRESHOLD = "source-val-threshold"
TARGET_EER_THRESHOLD = "target-eer-threshold"


def _block(s: ScoreSet, original: ScoreSet, threshold: float, ms: list[Metric], *, data: str,
           threshold_from: str, video_level: bool, ssdg: bool, n_boot: int, level: float, seed: int,
           rechoose: bool) -> dict[str, Any]:
    block: dict[str, Any] = {
        "data": data,
        "threshold_from": threshold_from,
        "threshold": float(threshold),
        "level": "video" if video_level and original.videos is not None else "frame",
        "n_videos": int(len(s)) if video_level or original.videos is None else int(len(np.unique(original.videos))),
        "n_live": s.n_live,
        "n_spoof": s.n_spoof,
        "metrics": compute_metrics(s, threshold, ms, ssdg=ssdg),
    }
    if n_boot > 0:
        block["ci"] = bootstrap_ci(s, ms, None if rechoose else threshold, n_boot=n_boot, level=level,
                                   seed=seed, ssdg=ssdg)
        block["ci_method"] = {"level": level, "resamples": int(n_boot), "seed": int(seed),
                              "unit": "video" if block["level"] == "video" else "frame",
                              "stratified": "live and spoof resampled separately",
                              "threshold": "re-chosen in every resample" if rechoose else "fixed"}
    return block


def evaluate(val: ScoreSet, target: ScoreSet | None, metrics: Any = DEFAULT_METRICS, *, ssdg: bool = False,
             video_level: bool = True, n_boot: int = 0, level: float = 95.0, seed: int = 0) -> dict[str, Any]:
    """Source-val metrics from source-val scores only, and target metrics per threshold policy.

    Returns ``{"val": block, "target": {"source-val-threshold": block, "target-eer-threshold":
    block}}`` (``target`` absent when ``target`` is None). A block holds ``data``,
    ``threshold_from``, ``threshold``, ``level``, counts, ``metrics`` and, with ``n_boot``,
    a bootstrap ``ci`` over videos. Nothing in ``val`` depends on the target: the target is
    only ever cut at the source-val threshold or at its own (labelled) EER threshold.
    """
    ms = [m if isinstance(m, Metric) else get_metric(str(m)) for m in metrics]
    v = val.per_video() if video_level else val
    try:
        val_thr = choose_threshold(v, ssdg)
    except FasbenchError as exc:
        raise FasbenchError(f"source-val split: {exc}") from None
    common = dict(ms=ms, video_level=video_level, ssdg=ssdg, n_boot=n_boot, level=level, seed=seed)
    out: dict[str, Any] = {"val": _block(v, val, val_thr, data="source-val", threshold_from="source-val",
                                         rechoose=True, **common)}
    if target is not None:
        t = target.per_video() if video_level else target
        try:
            tgt_thr = choose_threshold(t, ssdg)
        except FasbenchError as exc:
            raise FasbenchError(f"target: {exc}") from None
        out["target"] = {
            SOURCE_VAL_THRESHOLD: _block(t, target, val_thr, data="target", threshold_from="source-val",
                                         rechoose=False, **common),
            TARGET_EER_THRESHOLD: _block(t, target, tgt_thr, data="target", threshold_from="target",
                                         rechoose=True, **common),
        }
    return out
