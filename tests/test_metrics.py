"""Tests for fasbench.metrics and the ``fasbench score`` command.

References are independent of the code under test: scikit-learn for AUC / ROC-derived
metrics, hand-computed numbers for the threshold metrics, and a plain loop written from
the description of SSDG-CVPR2020's utils/statistic.py for the SSDG mode.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from fasbench.commands.score import add_parser
from fasbench.errors import FasbenchError
from fasbench.metrics import (
    BUILTIN_METRICS,
    DEFAULT_METRICS,
    ScoreSet,
    auc,
    bootstrap_ci,
    compute_metrics,
    eer,
    evaluate,
    far_frr,
    roc,
    ssdg_eer,
    ssdg_eer_states,
    ssdg_hter,
    ssdg_threshold,
    tpr_at_fpr,
)


# --------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------
def case_a() -> ScoreSet:
    """4 live, 6 spoof (2 print, 3 replay, 1 mask); numbers below are worked by hand."""
    scores = [0.9, 0.8, 0.4, 0.7, 0.1, 0.6, 0.75, 0.3, 0.2, 0.5]
    labels = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    attacks = [None, None, None, None, "print", "print", "replay", "replay", "replay", "mask"]
    return ScoreSet(np.array(scores), np.array(labels), np.array(attacks, dtype=object))


def random_set(rng: np.random.Generator, n: int, decimals: int | None = None, shift: float = 0.3):
    y = rng.integers(0, 2, n)
    s = np.clip(rng.random(n) * (1 - shift) + shift * y, 0.0, 1.0)
    if decimals is not None:
        s = np.round(s, decimals)
    return s, y


def sk_rates(s, y):
    """sklearn operating points at every distinct score (plus 'accept nothing')."""
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    return fpr, 1.0 - tpr, thr


# --------------------------------------------------------------------------------------
# hand-computed threshold metrics
# --------------------------------------------------------------------------------------
def test_compute_metrics_hand_computed():
    m = compute_metrics(case_a(), 0.55)
    # lives < 0.55: {0.4} -> FRR 1/4; spoofs >= 0.55: print 0.6, replay 0.75 -> FAR 2/6
    assert m["BPCER"] == pytest.approx(25.0)
    assert m["HTER"] == pytest.approx((100 * 2 / 6 + 25.0) / 2)  # 29.1667
    assert m["APCER/print"] == pytest.approx(50.0)  # 1 of 2
    assert m["APCER/replay"] == pytest.approx(100 / 3)  # 1 of 3
    assert m["APCER/mask"] == pytest.approx(0.0)  # 0.5 < 0.55
    assert m["APCER"] == pytest.approx(50.0)  # worst attack type
    assert m["ACER"] == pytest.approx(37.5)
    # EER: at thr 0.6 FAR 2/6 FRR 1/4, at 0.7 FAR 1/6 FRR 1/4: |diff| ties at 1/12;
    # the tie goes to the smaller FAR + FRR -> thr 0.7, EER = (1/6 + 1/4) / 2 = 5/24
    assert m["EER"] == pytest.approx(100 * 5 / 24)
    # AUC: lives beat 6 + 6 + 5 + 3 = 20 of 24 (live, spoof) pairs
    assert m["AUC"] == pytest.approx(100 * 20 / 24)
    # FPR 0 first reached at thr 0.8 where 2 of 4 lives pass
    assert m["TPR@FPR=1%"] == pytest.approx(50.0)
    assert m["TPR@FPR=0.1%"] == pytest.approx(50.0)
    assert list(m)[:len(DEFAULT_METRICS) - 2] == list(DEFAULT_METRICS[:-2])  # in the order asked for
    assert set(m) - set(DEFAULT_METRICS) == {"APCER/print", "APCER/replay", "APCER/mask"}
    assert all(isinstance(v, float) for v in m.values())


def test_eer_tie_break_and_threshold():
    s = case_a()
    value, thr = eer(s.scores, s.labels)
    assert thr == 0.7
    assert value == pytest.approx(5 / 24)


def test_apcer_without_attacks_is_far():
    s = case_a()
    m = compute_metrics(ScoreSet(s.scores, s.labels), 0.55)
    assert m["APCER"] == pytest.approx(100 * 2 / 6)
    assert m["ACER"] == pytest.approx((100 * 2 / 6 + 25) / 2)
    assert not any(k.startswith("APCER/") for k in m)


def test_builtin_metrics_match_compute_metrics_and_the_functional_api():
    s = case_a()
    m = compute_metrics(s, 0.55)
    assert tuple(BUILTIN_METRICS) == DEFAULT_METRICS
    for name, (fn, _, _) in BUILTIN_METRICS.items():
        assert fn(s, 0.55) == m[name], name
    far, frr = far_frr(s.scores, s.labels, 0.55)
    assert m["HTER"] == 100 * (far + frr) / 2 and m["BPCER"] == 100 * frr
    assert m["EER"] == 100 * eer(s.scores, s.labels)[0] and m["AUC"] == 100 * auc(s.scores, s.labels)
    assert m["TPR@FPR=1%"] == 100 * tpr_at_fpr(s.scores, s.labels, 0.01)


def test_only_the_named_metrics_are_computed():
    m = compute_metrics(case_a(), 0.55, ["AUC", "HTER"])
    assert list(m) == ["AUC", "HTER"]
    with pytest.raises(FasbenchError, match=r"unknown metric 'AUCC'; did you mean 'AUC'"):
        compute_metrics(case_a(), 0.55, ["AUCC"])


@pytest.mark.parametrize("t", [-1.0, 0.0, 0.3, 0.5, 0.55, 0.7, 0.75, 0.9, 0.95, 2.0])
def test_rates_from_the_curve_match_a_direct_count(t):
    s = case_a()
    live = s.labels == 1
    direct = (np.mean(s.scores[~live] >= t), np.mean(s.scores[live] < t))
    assert s.rates(t) == far_frr(s.scores, s.labels, t) == pytest.approx(direct, abs=0)


def test_accept_at_equal_score():
    # a score exactly equal to the threshold is accepted as live
    s = ScoreSet(np.array([0.5, 0.5]), np.array([1, 0]))
    m = compute_metrics(s, 0.5)
    assert m["BPCER"] == 0.0 and m["APCER"] == 100.0


# --------------------------------------------------------------------------------------
# against scikit-learn
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed,decimals", [(0, None), (1, 2), (2, 1), (3, 3)])
def test_auc_matches_sklearn(seed, decimals):
    rng = np.random.default_rng(seed)
    s, y = random_set(rng, 2000, decimals)
    assert auc(s, y) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


@pytest.mark.parametrize("seed,decimals", [(0, None), (1, 2), (2, 1), (4, 3)])
def test_roc_and_eer_match_sklearn(seed, decimals):
    rng = np.random.default_rng(seed)
    s, y = random_set(rng, 1500, decimals)
    fpr, fnr, _ = sk_rates(s, y)
    curve = roc(s, y)
    # same set of operating points (sklearn lists them from the highest threshold)
    np.testing.assert_allclose(curve.far[::-1], fpr, atol=1e-12)
    np.testing.assert_allclose(curve.frr[::-1], fnr, atol=1e-12)
    value, thr = eer(s, y)
    dist = np.abs(fpr - fnr)
    best = np.flatnonzero(np.isclose(dist, dist.min(), rtol=0, atol=1e-12))
    assert value == pytest.approx(((fpr + fnr) / 2)[best].min(), abs=1e-12)
    # the returned threshold reproduces the EER operating point
    far = np.mean(s[y == 0] >= thr)
    frr = np.mean(s[y == 1] < thr)
    assert (far + frr) / 2 == pytest.approx(value, abs=1e-12)
    assert abs(far - frr) == pytest.approx(dist.min(), abs=1e-12)


@pytest.mark.parametrize("seed,decimals", [(0, None), (5, 2), (6, 3)])
@pytest.mark.parametrize("target", [0.01, 0.001, 0.1, 0.0, 1.0])
def test_tpr_at_fpr_matches_sklearn(seed, decimals, target):
    rng = np.random.default_rng(seed)
    s, y = random_set(rng, 3000, decimals, shift=0.5)
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    assert tpr_at_fpr(s, y, target) == pytest.approx(tpr[fpr <= target].max(), abs=1e-12)


# --------------------------------------------------------------------------------------
# SSDG mode against a plain loop over the thresholds
# --------------------------------------------------------------------------------------
def loop_counts(probs, labels, thr):
    pred_live = probs >= thr
    tn = int(np.sum((labels == 0) & ~pred_live))
    fn = int(np.sum((labels == 1) & ~pred_live))
    fp = int(np.sum((labels == 0) & pred_live))
    tp = int(np.sum((labels == 1) & pred_live))
    return tn, fn, fp, tp


def loop_far_frr(probs, labels, thr):
    tn, fn, fp, tp = loop_counts(probs, labels, thr)
    if fn + tp == 0:  # no live samples
        return fp / float(fp + tn), 1.0
    if fp + tn == 0:  # no spoof samples
        return 1.0, fn / float(fn + tp)
    return fp / float(fp + tn), fn / float(fn + tp)


def loop_ssdg_eer_states(probs, labels, grid_density=10000):
    grid = [0.0 + i * 1.0 / float(grid_density) for i in range(grid_density + 1)] + [1.1]
    best_dist, best = 1.0, None
    fars, frrs = [], []
    for thr in grid:
        far, frr = loop_far_frr(probs, labels, thr)
        fars.append(far)
        frrs.append(frr)
        d = math.fabs(frr - far)
        if d <= best_dist:  # '<=': a later tie replaces an earlier one
            best_dist, best = d, (far, frr, thr)
    return (best[0] + best[1]) / 2.0, best[2], frrs, fars


def loop_ssdg_hter(probs, labels, thr):
    far, frr = loop_far_frr(probs, labels, thr)
    return (far + frr) / 2.0


@pytest.mark.parametrize(
    "seed,n,decimals,density",
    [
        (10, 300, 4, 10000),  # scores exactly on grid points, full SSDG grid
        (11, 200, 2, 1000),  # heavy ties
        (12, 150, 1, 1000),  # very heavy ties: long runs of equal |FRR - FAR|
        (13, 250, None, 1000),
        (14, 120, 3, 1000),
    ],
)
def test_ssdg_matches_loop(seed, n, decimals, density):
    rng = np.random.default_rng(seed)
    s, y = random_set(rng, n, decimals)
    s[:3] = [0.0, 1.0, 0.5]  # the ends of the grid
    ref = loop_ssdg_eer_states(s, y, density)
    got = ssdg_eer_states(s, y, density)
    assert got[0] == ref[0] and got[1] == ref[1]  # bit-identical, not approximately
    np.testing.assert_array_equal(got[2], ref[2])
    np.testing.assert_array_equal(got[3], ref[3])
    for thr in (ref[1], 0.5, 0.0, 1.1, 0.1234):
        assert ssdg_hter(s, y, thr) == loop_ssdg_hter(s, y, thr)
    if density == 10000:
        assert ssdg_threshold(s, y) == ref[1]
        assert ssdg_eer(s, y) == (ref[0], ref[1])


@pytest.mark.parametrize("only", [0, 1])
def test_ssdg_one_class_special_cases(only):
    s = np.round(np.random.default_rng(20).random(40), 4)
    y = np.full(40, only)
    ref = loop_ssdg_eer_states(s, y, 1000)
    got = ssdg_eer_states(s, y, 1000)
    assert got[:2] == ref[:2]
    np.testing.assert_array_equal(got[2], ref[2])
    np.testing.assert_array_equal(got[3], ref[3])
    assert ssdg_hter(s, y, 0.3) == loop_ssdg_hter(s, y, 0.3)


def test_ssdg_last_tie_wins():
    # perfectly separated: |FRR - FAR| = 0 for every thr in (0.2, 0.8] -> the last is 0.8
    s = np.array([0.1, 0.2, 0.8, 0.9])
    y = np.array([0, 0, 1, 1])
    assert ssdg_eer(s, y) == (0.0, 0.8)
    # the exact EER takes the lowest tied threshold with the same (zero) error
    assert eer(s, y) == (0.0, 0.8)


def test_ssdg_compute_metrics_eer():
    rng = np.random.default_rng(30)
    s, y = random_set(rng, 400, 3)
    ss = ScoreSet(s, y)
    thr = ssdg_threshold(s, y)
    m = compute_metrics(ss, thr, ssdg=True)
    assert m["EER"] == pytest.approx(100 * loop_ssdg_eer_states(s, y, 10000)[0])
    assert m["HTER"] == pytest.approx(100 * loop_ssdg_hter(s, y, thr))


# --------------------------------------------------------------------------------------
# ScoreSet validation and per-video averaging
# --------------------------------------------------------------------------------------
def test_per_video_mean_label_attack():
    s = ScoreSet(
        np.array([0.9, 0.7, 0.2, 0.4, 0.6, 0.3]),
        np.array([1, 1, 0, 0, 0, 1]),
        np.array(["", "", "print", "print", "replay", None], dtype=object),
        np.array(["a", "a", "b", "b", "c", "d"], dtype=object),
    )
    v = s.per_video()
    assert list(v.videos) == ["a", "b", "c", "d"]
    np.testing.assert_allclose(v.scores, [0.8, 0.3, 0.6, 0.3])
    assert v.labels.tolist() == [1, 0, 0, 1]
    assert v.attacks.tolist() == ["", "print", "replay", "unknown"]
    assert v.per_video().scores.tolist() == v.scores.tolist()


def test_per_video_without_videos_returns_self():
    s = case_a()
    assert s.per_video() is s


def test_per_video_mixed_label_raises():
    s = ScoreSet(np.array([0.9, 0.1, 0.5]), np.array([1, 0, 0]), videos=np.array(["x", "x", "y"]))
    with pytest.raises(FasbenchError, match="mix live and spoof"):
        s.per_video()


def test_per_video_mixed_attack_raises():
    s = ScoreSet(
        np.array([0.2, 0.1]), np.array([0, 0]), np.array(["print", "replay"]), np.array(["x", "x"])
    )
    with pytest.raises(FasbenchError, match="attack"):
        s.per_video()


@pytest.mark.parametrize(
    "scores,labels,videos,match",
    [
        ([0.1, 0.2], [1], None, "lengths must match"),
        ([0.1, float("nan")], [1, 0], None, "NaN"),
        ([0.1, float("inf")], [1, 0], None, "NaN or infinite"),
        ([0.1, 0.2], [1, 2], None, "labels"),
        ([], [], None, "no scores"),
        ([0.1, 0.2], [1, 0], ["v", None], "video id"),
        ([0.1, 0.2], [1, 0], ["v"], "lengths must match"),
    ],
)
def test_scoreset_validation(scores, labels, videos, match):
    with pytest.raises(FasbenchError, match=match):
        ScoreSet(np.array(scores, dtype=float), np.array(labels), None,
                 None if videos is None else np.array(videos, dtype=object))


@pytest.mark.parametrize("label", [0, 1])
def test_degenerate_single_class(label):
    s = ScoreSet(np.array([0.1, 0.5, 0.9]), np.array([label] * 3))
    for fn in (lambda: s.rates(0.5), lambda: eer(s.scores, s.labels),
               lambda: auc(s.scores, s.labels), lambda: evaluate(s, s)):
        with pytest.raises(FasbenchError, match="both live and spoof"):
            fn()


# --------------------------------------------------------------------------------------
# threshold policies
# --------------------------------------------------------------------------------------
def test_evaluate_names_every_block_by_its_data():
    target = case_a()
    # source-val: lives 0.9, 0.8 / spoofs 0.2, 0.3 -> EER 0 at threshold 0.8
    source_val = ScoreSet(np.array([0.9, 0.8, 0.2, 0.3]), np.array([1, 1, 0, 0]))
    out = evaluate(source_val, target)
    assert list(out) == ["val", "target"]
    assert list(out["target"]) == ["source-val-threshold", "target-eer-threshold"]
    val, sv, te = out["val"], out["target"]["source-val-threshold"], out["target"]["target-eer-threshold"]
    # the val block is the source-val split's own: perfect separation
    assert (val["data"], val["threshold_from"], val["threshold"]) == ("source-val", "source-val", 0.8)
    assert val["metrics"]["EER"] == 0.0 and val["metrics"]["AUC"] == 100.0 and val["metrics"]["HTER"] == 0.0
    assert (val["n_videos"], val["n_live"], val["n_spoof"]) == (4, 2, 2)
    # the target at the source-val threshold 0.8: lives 0.4 and 0.7 rejected, no spoof accepted
    assert (sv["data"], sv["threshold_from"], sv["threshold"]) == ("target", "source-val", 0.8)
    assert sv["metrics"]["BPCER"] == pytest.approx(50.0)
    assert sv["metrics"]["APCER"] == pytest.approx(0.0)
    assert sv["metrics"]["HTER"] == pytest.approx(25.0)
    assert (te["data"], te["threshold_from"], te["threshold"]) == ("target", "target", 0.7)
    assert te["metrics"]["HTER"] == pytest.approx(100 * 5 / 24)
    # threshold-free metrics agree between policies
    for k in ("EER", "AUC", "TPR@FPR=1%"):
        assert sv["metrics"][k] == te["metrics"][k]
    for d in (sv, te):
        assert (d["n_videos"], d["n_live"], d["n_spoof"]) == (10, 4, 6)
        assert all(isinstance(d[k], int) for k in ("n_videos", "n_live", "n_spoof"))
    assert list(evaluate(source_val, None)) == ["val"]


def test_val_block_ignores_the_target():
    rng = np.random.default_rng(3)
    val = ScoreSet(rng.random(40), np.arange(40) % 2)
    a = evaluate(val, ScoreSet(rng.random(30), np.arange(30) % 2), n_boot=50)
    b = evaluate(val, ScoreSet(rng.random(50), 1 - np.arange(50) % 2), n_boot=50)
    assert a["val"] == b["val"]


def test_evaluate_video_level_and_ssdg():
    rng = np.random.default_rng(40)
    n_videos, frames = 60, 5
    vid_label = rng.integers(0, 2, n_videos)
    videos = np.repeat(np.arange(n_videos), frames).astype(str)
    labels = np.repeat(vid_label, frames)
    scores = np.clip(rng.random(n_videos * frames) * 0.7 + 0.3 * labels, 0, 1)
    target = ScoreSet(scores, labels, videos=videos)
    per_video_means = scores.reshape(n_videos, frames).mean(axis=1)

    out = evaluate(target, target)["target"]["target-eer-threshold"]
    assert out["n_videos"] == n_videos and out["level"] == "video"
    assert out["n_live"] + out["n_spoof"] == n_videos
    assert out["metrics"]["AUC"] == pytest.approx(100 * roc_auc_score(vid_label, per_video_means))
    frame = evaluate(target, target, video_level=False)["target"]["target-eer-threshold"]
    assert frame["n_live"] + frame["n_spoof"] == n_videos * frames and frame["level"] == "frame"
    assert frame["metrics"]["AUC"] == pytest.approx(100 * roc_auc_score(labels, scores))

    ssdg = evaluate(target, target, ssdg=True)
    ref_eer, ref_thr, _, _ = loop_ssdg_eer_states(per_video_means, vid_label, 10000)
    for block in (ssdg["val"], *ssdg["target"].values()):
        assert block["threshold"] == ref_thr
        assert block["metrics"]["EER"] == pytest.approx(100 * ref_eer)
        assert block["metrics"]["HTER"] == pytest.approx(100 * loop_ssdg_hter(per_video_means, vid_label, ref_thr))


def test_bootstrap_ci_is_stratified_deterministic_and_covers():
    rng = np.random.default_rng(5)
    n = 400
    labels = np.arange(n) % 2
    scores = rng.normal(size=n) + 1.5 * labels
    s = ScoreSet(scores, labels)
    thr = 0.75
    a = bootstrap_ci(s, ["HTER", "AUC"], thr, n_boot=500, seed=1)
    assert a == bootstrap_ci(s, ["HTER", "AUC"], thr, n_boot=500, seed=1)
    assert a != bootstrap_ci(s, ["HTER", "AUC"], thr, n_boot=500, seed=2)
    point = compute_metrics(s, thr, ["HTER", "AUC"])
    for name in ("HTER", "AUC"):
        lo, hi = a[name]
        assert lo < point[name] < hi
    # the normal approximation of a fixed-threshold HTER: sd = sqrt(sum p(1-p)/n_class) / 2
    far, frr = s.rates(thr)
    sd = 100 * np.sqrt(far * (1 - far) / 200 + frr * (1 - frr) / 200) / 2
    assert (a["HTER"][1] - a["HTER"][0]) / 2 == pytest.approx(1.96 * sd, rel=0.2)
    # a threshold re-chosen per resample (target-eer policy) is allowed too
    b = bootstrap_ci(s, ["HTER"], None, n_boot=200, seed=1)
    assert b["HTER"][0] < compute_metrics(s, eer(scores, labels)[1], ["HTER"])["HTER"] < b["HTER"][1]
    assert bootstrap_ci(s, ["HTER"], thr, n_boot=0) == {}


def test_import_is_numpy_only():
    code = ("import sys, fasbench.metrics; "
            "print(sorted(m for m in ('torch', 'pandas', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------------------
# fasbench score
# --------------------------------------------------------------------------------------
@pytest.fixture
def cli():
    parser = argparse.ArgumentParser(prog="fasbench")
    add_parser(parser.add_subparsers(dest="command"))

    def run(*argv):
        args = parser.parse_args(["score", *map(str, argv)])
        return args.func(args)

    return run


def write(path, text):
    path.write_text(text)
    return path


CASE_A_CSV = """score,label,attack
0.9,1,
0.8,1,
0.4,1,
0.7,1,
0.1,0,print
0.6,0,print
0.75,0,replay
0.3,0,replay
0.2,0,replay
0.5,0,mask
"""


def test_score_json_target_eer(cli, tmp_path, capsys):
    f = write(tmp_path / "s.csv", CASE_A_CSV)
    assert cli(f, "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["policy"] == "target-eer"
    assert out["threshold"] == 0.7
    assert out["HTER"] == pytest.approx(100 * 5 / 24)
    assert out["APCER"] == pytest.approx(100 / 3)  # at 0.7 only replay 0.75 passes: 1 of 3
    assert out["APCER/print"] == 0.0
    assert set(out) == set(DEFAULT_METRICS) | {"policy", "threshold", "APCER/print", "APCER/replay", "APCER/mask"}


def test_score_dev_and_table(cli, tmp_path, capsys):
    f = write(tmp_path / "s.csv", CASE_A_CSV)
    dev = write(tmp_path / "dev.csv", "score,label\n0.9,1\n0.8,1\n0.2,0\n0.3,0\n")
    assert cli(f, "--dev", dev, "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["policy"] == "dev-eer" and out["threshold"] == 0.8
    assert out["HTER"] == pytest.approx(25.0)
    assert cli(f, "--dev", dev) == 0
    text = capsys.readouterr().out
    assert "dev-eer" in text and "HTER" in text and "25.00" in text


def test_score_ssdg_video_level(cli, tmp_path, capsys):
    f = write(
        tmp_path / "v.csv",
        "score,label,attack,video\n0.9,1,,a\n0.8,1,,a\n0.7,1,,b\n0.3,0,print,c\n"
        "0.6,0,replay,d\n0.2,0,replay,e\n0.55,1,,f\n",
    )
    assert cli(f, "--ssdg", "--json") == 0
    out = json.loads(capsys.readouterr().out)
    # videos: live 0.85, 0.7, 0.55; spoof 0.3, 0.6, 0.2 -> FAR = FRR = 1/3 for thr in
    # (0.55, 0.6]; SSDG keeps the last tied grid point, 0.6
    assert out["threshold"] == 0.6
    assert out["EER"] == pytest.approx(100 / 3)
    assert out["AUC"] == pytest.approx(100 * 8 / 9)
    assert cli(f, "--json", "--frame-level") == 0
    frame = json.loads(capsys.readouterr().out)
    frame_scores = [0.9, 0.8, 0.7, 0.3, 0.6, 0.2, 0.55]
    assert frame["AUC"] == pytest.approx(100 * roc_auc_score([1, 1, 1, 0, 0, 0, 1], frame_scores))


@pytest.mark.parametrize(
    "content,match",
    [
        (None, "no such file"),
        ("", "empty"),
        ("score,lab\n0.1,1\n", "missing column.*label"),
        ("score,label\n0.1,2\n0.2,0\n", "label other than 0 or 1"),
        ("score,label\nnan,1\n0.2,0\n", "NaN"),
        ("score,label\nabc,1\n0.2,0\n", "non-numeric"),
        ("score,label\n", "no rows"),
        ("score,label\n0.1,1\n0.2,1\n", "both live and spoof"),
        ("score,label,video\n0.1,1,v\n0.2,0,v\n", "mix live and spoof"),
        ("score,label,video\n0.1,1,v\n0.2,0,\n", "empty video id"),
    ],
)
def test_score_bad_files(cli, tmp_path, content, match):
    f = tmp_path / "bad.csv"
    if content is not None:
        f.write_text(content)
    with pytest.raises(FasbenchError, match=match) as info:
        cli(f)
    assert str(f) in str(info.value)


def test_score_bad_dev_file_is_named(cli, tmp_path):
    f = write(tmp_path / "s.csv", CASE_A_CSV)
    dev = write(tmp_path / "dev.csv", "score,label\n0.9,1\n0.8,1\n")
    with pytest.raises(FasbenchError, match="dev.csv.*both live and spoof"):
        cli(f, "--dev", dev)
