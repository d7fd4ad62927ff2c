"""``fasbench compare``: the paired bootstrap of a metric difference between two run settings.

The runs are synthetic records with real score files: target scores are drawn per (method,
task, seed) on a fixed set of target videos, written with the engine's ``write_scores`` and
evaluated with ``fasbench.metrics.evaluate``, so every number in a record is the one its
scores give.
"""
from __future__ import annotations

import copy
import gzip
import hashlib
import json
import statistics
from pathlib import Path

import numpy as np
import pytest

from fasbench.compare import compare, paired_bootstrap, select_runs
from fasbench.engine.scoring import write_scores
from fasbench.errors import FasbenchError
from fasbench.leaderboard import build_tables
from fasbench.metrics import ScoreSet, evaluate
from fasbench.records import load_records, parse_record, run_key_id, write_record

TEMPLATE = json.loads((Path(__file__).parent / "data" / "records" / "erm-v1-MICO-OCI_M-s0" / "record.json").read_text())
METRICS = ["HTER", "EER", "AUC", "TPR@FPR=1%", "APCER", "BPCER", "ACER"]
TASKS = {"OCI->M": ("O", "C", "I"), "ICM->O": ("I", "C", "M")}
SV, TE = "source-val-threshold", "target-eer-threshold"
FRAMES = 3


def _scores(domain: str, n_live: int, n_spoof: int, sep: float, rng: np.random.Generator) -> tuple[ScoreSet, np.ndarray]:
    """Frame scores of a fixed set of videos of ``domain`` (ids and labels depend on nothing else)."""
    videos, labels, attacks, scores = [], [], [], []
    for k in range(n_live + n_spoof):
        live = k < n_live
        attack = "none" if live else ("print" if k % 2 else "replay")
        centre = 0.5 + (sep / 2 if live else -sep / 2)
        video_score = centre + rng.normal(0.0, 0.12)
        for _ in range(FRAMES):
            videos.append(f"{domain}/{'live' if live else attack}{k:03d}")
            labels.append(int(live))
            attacks.append(attack)
            scores.append(float(np.clip(video_score + rng.normal(0.0, 0.03), 0.0, 1.0)))
    frame = np.tile(np.arange(FRAMES), n_live + n_spoof)
    return ScoreSet(np.asarray(scores), np.asarray(labels), np.asarray(attacks, dtype=object),
                    np.asarray(videos, dtype=object)), frame


def make_run(root: Path, method: str, task: str, seed: int, sep: float, *, protocol: str = "MICO",
             precision: str = "cpu-fp32", n_live: int = 16, n_spoof: int = 16, tag: int = 0,
             fingerprint: str | None = None) -> Path:
    """Write one run (record.json + scores.csv.gz) under ``root``; return its directory."""
    sources, target = TASKS[task], task[-1]
    rng = np.random.default_rng([sum(map(ord, method)), sum(map(ord, task)), seed, tag])
    val, val_frames = _scores("val-" + "".join(sources), 10, 10, sep, rng)
    tgt, tgt_frames = _scores(target, n_live, n_spoof, sep, rng)
    run_dir = root / protocol / method / task.replace("->", "_to_") / f"{precision}-seed{seed}"
    scores = write_scores(run_dir, [("val", val, val_frames), ("target", tgt, tgt_frames)])
    res = evaluate(val, tgt, METRICS, n_boot=20, seed=seed)
    rec = copy.deepcopy(TEMPLATE)
    rec.update({
        "run_id": f"{method}-{protocol}-{task}-s{seed}", "method": method, "protocol": protocol,
        "task": {"name": task, "sources": list(sources), "target": target}, "seed": seed,
        "config_hash": hashlib.sha256(method.encode()).hexdigest()[:12], "precision": precision, "metric_names": METRICS,
        "val": res["val"], "target": res["target"], "scores": scores,
    })
    rec["config"] = {**rec["config"], "method": {"name": method}, "seed": seed}
    if fingerprint is not None:
        rec["data"] = {**rec["data"], "fingerprint": fingerprint}
    rec["components"]["method"]["name"] = method
    rec["components"]["protocol"]["name"] = protocol
    write_record(run_dir, parse_record(json.loads(json.dumps(rec)), str(run_dir / "record.json")))
    return run_dir


@pytest.fixture(scope="module")
def runs(module_tmp) -> Path:
    """erm (weaker) and dat (stronger) on two MICO tasks, seeds 0-2; dat lacks seed 2 on ICM->O."""
    root = module_tmp("runs")
    for task in TASKS:
        for seed in range(3):
            make_run(root, "erm", task, seed, sep=0.18)
            if not (task == "ICM->O" and seed == 2):
                make_run(root, "dat", task, seed, sep=0.30)
            make_run(root, "base", task, seed, sep=0.0)   # chance level
            make_run(root, "strong", task, seed, sep=0.6)  # far better than chance
    return root


def _mean_metric(records, policy: str, metric: str = "HTER") -> float:
    """Mean over tasks of the per-task seed means, from the records' stored values."""
    by_task: dict[str, list[float]] = {}
    for r in records:
        by_task.setdefault(r.task.name, []).append(r.target[policy].metrics[metric])
    return statistics.fmean(statistics.fmean(v) for v in by_task.values())


@pytest.mark.parametrize("policy", [SV, TE])
def test_point_estimate_is_the_difference_of_the_mean_hters(runs, policy):
    records = load_records(runs)
    r = compare(records, "erm", "dat", policy=policy, resamples=200)
    paired = {("OCI->M", 0), ("OCI->M", 1), ("OCI->M", 2), ("ICM->O", 0), ("ICM->O", 1)}
    erm = [x for x in records if x.method == "erm" and (x.task.name, x.seed) in paired]
    dat = [x for x in records if x.method == "dat"]
    assert r.difference == pytest.approx(_mean_metric(erm, policy) - _mean_metric(dat, policy), abs=1e-9)
    assert r.a["mean"] == pytest.approx(_mean_metric(erm, policy), abs=1e-9)
    # ... which is the difference of the leaderboard averages over the paired records
    df = build_tables(erm + dat)["MICO"]
    avg = {m: df[(df["policy"] == policy) & (df["method"] == m)]["Average HTER mean"].item() for m in ("erm", "dat")}
    assert r.difference == pytest.approx(avg["erm"] - avg["dat"], abs=1e-9)
    # pairing: the seed dat lacks is dropped and said so
    assert r.tasks == {"OCI->M": [0, 1, 2], "ICM->O": [0, 1]} and r.n_pairs == 5
    assert r.dropped == [{"task": "ICM->O", "seed": 2, "only": "A"}]
    assert r.ci[0] <= r.difference <= r.ci[1] and r.resamples_used == 200
    assert r.policy == policy and r.metric == "HTER" and not r.higher_is_better


def test_same_setting_gives_exactly_zero(runs):
    r = compare(load_records(runs), "erm", "erm", resamples=100)
    assert r.difference == 0.0 and r.ci == [0.0, 0.0]
    assert not r.excludes_zero and r.verdict == "the interval includes 0: no difference shown"


def test_a_clear_difference_excludes_zero(runs):
    records = load_records(runs)
    r = compare(records, "strong", "base", resamples=300)
    assert r.difference < -20 and r.ci[1] < 0 and r.excludes_zero
    assert r.verdict.startswith(f"A lower by {-r.difference:.2f} [") and r.verdict.endswith("the interval excludes 0")
    # a metric where higher is better, through the registry
    auc = compare(records, "strong", "base", metric="AUC", resamples=100)
    assert auc.higher_is_better and auc.difference > 20 and auc.verdict.startswith("A higher by")
    # deterministic for a seed
    again = compare(records, "strong", "base", resamples=300)
    assert again.ci == r.ci
    assert compare(records, "strong", "base", resamples=300, seed=1).ci != r.ci


def test_tampered_or_missing_scores_are_refused(tmp_path):
    a = make_run(tmp_path, "erm", "OCI->M", 0, sep=0.2)
    make_run(tmp_path, "dat", "OCI->M", 0, sep=0.3)
    assert compare(load_records(tmp_path), "erm", "dat", resamples=20).n_pairs == 1
    path = a / "scores.csv.gz"
    text = gzip.decompress(path.read_bytes()).decode()
    lines = text.splitlines()
    last = lines[-1].rsplit(",", 1)
    lines[-1] = f"{last[0]},0.999"  # one score changed
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    with pytest.raises(FasbenchError, match=r"scores\.csv\.gz: sha256 .* does not match"):
        compare(load_records(tmp_path), "erm", "dat", resamples=20)
    path.unlink()
    with pytest.raises(FasbenchError, match=r"scores\.csv\.gz: cannot be read"):
        compare(load_records(tmp_path), "erm", "dat", resamples=20)


def test_records_without_scores_are_refused():
    rec = parse_record(TEMPLATE, "runs/x/record.json")
    with pytest.raises(FasbenchError, match="names no scores file"):
        paired_bootstrap([rec], [rec], resamples=10)


def test_several_settings_need_a_run_id(tmp_path):
    make_run(tmp_path, "erm", "OCI->M", 0, sep=0.2)
    make_run(tmp_path, "erm", "OCI->M", 0, sep=0.2, precision="cuda-bf16", tag=1)
    make_run(tmp_path, "dat", "OCI->M", 0, sep=0.3)
    records = load_records(tmp_path)
    ids = {r.precision: run_key_id(r) for r in records if r.method == "erm"}
    with pytest.raises(FasbenchError) as info:
        compare(records, "erm", "dat", resamples=10)
    message = str(info.value)
    assert "erm has 2 run settings on MICO" in message and "METHOD#RUN" in message and "\n" not in message
    for precision, rid in ids.items():
        assert f"erm#{rid} (erm@1 resnet18@1 {precision}" in message
    r = compare(records, f"erm#{ids['cuda-bf16']}", "dat", resamples=10)
    assert r.a["run"] == ids["cuda-bf16"] and "cuda-bf16" in r.a["label"]
    with pytest.raises(FasbenchError, match=r"no run setting 'erm#00000000'.*erm's settings: erm#"):
        compare(records, "erm#00000000", "dat", resamples=10)
    with pytest.raises(FasbenchError, match="no run records of method 'nope'.*methods found: dat, erm"):
        compare(records, "nope", "dat", resamples=10)


def test_protocol_is_needed_when_several_match(tmp_path):
    for protocol in ("MICO", "Other"):
        make_run(tmp_path, "erm", "OCI->M", 0, sep=0.2, protocol=protocol)
        make_run(tmp_path, "dat", "OCI->M", 0, sep=0.3, protocol=protocol)
    records = load_records(tmp_path)
    with pytest.raises(FasbenchError, match=r"several protocols match \(MICO, Other\); choose one with --protocol"):
        select_runs(records, "erm", "dat")
    protocol, a, b = select_runs(records, "erm", "dat", protocol="Other")
    assert protocol == "Other" and {r.protocol for r in a + b} == {"Other"}


def test_different_target_videos_cannot_be_paired(tmp_path):
    make_run(tmp_path, "erm", "OCI->M", 0, sep=0.2)
    make_run(tmp_path, "dat", "OCI->M", 0, sep=0.3, n_live=15)
    with pytest.raises(FasbenchError, match="OCI->M: .* different target videos"):
        compare(load_records(tmp_path), "erm", "dat", resamples=10)


def test_runs_on_other_copies_of_the_data_cannot_be_paired(tmp_path, run_cli):
    """Same video ids and labels, other pixels (the synthetic world generated in another environment
    gets another content fingerprint): not one test set, so no paired comparison."""
    for task in TASKS:
        make_run(tmp_path, "erm", task, 0, sep=0.2)
        make_run(tmp_path, "dat", task, 0, sep=0.3, fingerprint="0123456789abcdef")
    with pytest.raises(FasbenchError, match=r"task \S+ seed 0: dat was evaluated on data 01234567 and erm on "
                                            r"\w{8} .*needs the same target data"):
        compare(load_records(tmp_path), "dat", "erm", resamples=10)
    proc = run_cli("compare", "dat", "erm", "--runs", tmp_path, "--resamples", "10")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "needs the same target data" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_cli_prints_the_verdict_and_exits_0(runs, capsys):
    from fasbench.cli import main

    assert main(["compare", "strong", "base", "--runs", str(runs), "--resamples", "100"]) == 0
    out = capsys.readouterr().out
    assert "HTER (%, lower is better) on MICO, target, threshold from source-val (deployable)" in out
    assert "paired: 2 tasks, 6 seed pairs" in out
    verdict = [ln for ln in out.splitlines() if ln.startswith("verdict: ")]
    assert len(verdict) == 1 and verdict[0].startswith("verdict: A lower by")

    assert main(["compare", "erm", "erm", "--runs", str(runs), "--resamples", "50"]) == 0
    assert "verdict: the interval includes 0: no difference shown" in capsys.readouterr().out

    assert main(["compare", "erm", "dat", "--runs", str(runs), "--resamples", "50", "--json",
                 "--policy", TE]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["policy"] == TE and result["n_pairs"] == 5 and result["n_tasks"] == 2
    assert result["dropped"] == [{"task": "ICM->O", "seed": 2, "only": "A"}]
    assert len(result["ci"]) == 2 and isinstance(result["verdict"], str)

    assert main(["compare", "erm", "dat", "--runs", str(runs), "--policy", "nope"]) == 2
    err = capsys.readouterr().err
    assert "fasbench: error: unknown policy 'nope'" in err and "Traceback" not in err
