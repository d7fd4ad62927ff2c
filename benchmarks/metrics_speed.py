"""Speed of fasbench.metrics on 1,000,000 scores: vectorised vs a naive threshold loop.

Run: ``python benchmarks/metrics_speed.py [--n N] [--loop-thresholds K] [--seed S]``

Times (best of ``--repeat`` runs):
* ``vectorised_s``: ``eer`` (exact EER threshold) + ``compute_metrics`` at that threshold.
* ``ssdg_vectorised_s``: ``ssdg_eer_states`` (SSDG-CVPR2020 rule, 10,002 grid thresholds)
  + ``compute_metrics(..., ssdg=True)`` at its threshold.
* ``naive_loop_s_extrapolated``: a Python loop that counts TN/FN/FP/TP with numpy masks at
  each grid threshold, as SSDG's ``get_EER_states`` does; only ``--loop-thresholds`` of the
  10,001 grid points are timed and the time is scaled linearly to 10,001.
* ``speedup`` = naive_loop_s_extrapolated / ssdg_vectorised_s.

The last line printed is one JSON object with these figures.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

try:
    import fasbench  # noqa: F401
except ImportError:  # running from a checkout without an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fasbench.metrics import ScoreSet, compute_metrics, eer, ssdg_eer_states  # noqa: E402

GRID_POINTS = 10001  # SSDG's 0, 1e-4, ..., 1.0 (its extra 1.1 is ignored here)


def make_data(n: int, seed: int) -> ScoreSet:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    attacks = np.array(["print", "replay", "mask"], dtype=object)[rng.integers(0, 3, n)]
    attacks[labels == 1] = "live"
    # live scores skew high, spoof low; rounded so that ties and exact grid points occur
    scores = np.clip(rng.beta(2, 5, n) + 0.35 * labels, 0.0, 1.0).round(6)
    return ScoreSet(scores, labels, attacks)


def best_of(fn, repeat: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def _fresh(s: ScoreSet) -> ScoreSet:
    # a new ScoreSet per repeat: its sorted-score curve is cached, and each timing must pay for it
    return ScoreSet._trusted(s.scores, s.labels, s.attacks)


def vectorised(s: ScoreSet) -> dict:
    s = _fresh(s)
    _, thr = eer(s.scores, s.labels)
    return compute_metrics(s, thr)


def ssdg_vectorised(s: ScoreSet) -> dict:
    s = _fresh(s)
    _, thr, _, _ = ssdg_eer_states(s.scores, s.labels)
    return {**compute_metrics(s, thr, ssdg=True), "threshold": thr}


def naive_loop(s: ScoreSet, thresholds: np.ndarray) -> tuple[list[float], list[float]]:
    probs, labels = s.scores, s.labels
    fars, frrs = [], []
    for thr in thresholds:
        live_pred = probs >= thr
        tn = np.sum((labels == 0) & ~live_pred)
        fn = np.sum((labels == 1) & ~live_pred)
        fp = np.sum((labels == 0) & live_pred)
        tp = np.sum((labels == 1) & live_pred)
        fars.append(fp / float(fp + tn))
        frrs.append(fn / float(fn + tp))
    return fars, frrs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--loop-thresholds", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    s = make_data(a.n, a.seed)
    print(f"fasbench metrics benchmark: {a.n:,} scores ({s.n_live:,} live, {s.n_spoof:,} spoof, "
          f"3 attack types); python {platform.python_version()}, numpy {np.__version__}, "
          f"{platform.machine()}")

    vec_s, metrics = best_of(lambda: vectorised(s), a.repeat)
    ssdg_s, ssdg_metrics = best_of(lambda: ssdg_vectorised(s), a.repeat)

    # the naive loop on an evenly spaced subset of SSDG's grid, checked against the vectorised rates
    idx = np.linspace(0, GRID_POINTS - 1, a.loop_thresholds).round().astype(int)
    grid = np.arange(GRID_POINTS, dtype=np.float64) / 10000.0
    t0 = time.perf_counter()
    fars, frrs = naive_loop(s, grid[idx])
    loop_s = time.perf_counter() - t0
    _, _, frr_vec, far_vec = ssdg_eer_states(s.scores, s.labels)
    assert np.array_equal(np.asarray(fars), far_vec[idx]) and np.array_equal(np.asarray(frrs), frr_vec[idx])
    loop_full = loop_s * GRID_POINTS / a.loop_thresholds

    print(f"vectorised eer + compute_metrics:          {vec_s * 1e3:8.1f} ms  "
          f"(EER {metrics['EER']:.3f}%, HTER {metrics['HTER']:.3f}%, AUC {metrics['AUC']:.3f}%)")
    print(f"vectorised SSDG rule + compute_metrics:    {ssdg_s * 1e3:8.1f} ms  "
          f"(thr {ssdg_metrics['threshold']:.4f}, EER {ssdg_metrics['EER']:.3f}%)")
    print(f"naive loop, {a.loop_thresholds} of {GRID_POINTS:,} thresholds measured: {loop_s:8.2f} s "
          f"-> extrapolated linearly to all {GRID_POINTS:,}: {loop_full:.1f} s "
          "(its FAR/FRR match the vectorised ones exactly)")
    print(f"speedup of the vectorised SSDG rule over the naive loop: {loop_full / ssdg_s:,.0f}x; "
          f"target (< 1 s for vectorised metrics on 1M scores): {'met' if vec_s < 1.0 else 'MISSED'}")
    # the bootstrap intervals of one MICO run: 288 val and 800 target videos, 1,000 resamples, all metrics
    from fasbench.metrics import evaluate

    small = lambda n, seed: make_data(n, seed)  # noqa: E731
    val, target = small(288, a.seed + 1), small(800, a.seed + 2)
    boot_s, _ = best_of(lambda: evaluate(_fresh(val), _fresh(target), n_boot=1000), a.repeat)
    print(f"bootstrap CIs of one MICO run (288 + 800 videos, 1,000 resamples, 3 blocks): {boot_s:.2f} s")
    print(json.dumps({
        "n_scores": a.n,
        "bootstrap_run_s": round(boot_s, 3),
        "vectorised_s": round(vec_s, 4),
        "ssdg_vectorised_s": round(ssdg_s, 4),
        "naive_loop_thresholds_timed": a.loop_thresholds,
        "naive_loop_s_extrapolated": round(loop_full, 2),
        "speedup": round(loop_full / ssdg_s, 1),
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
