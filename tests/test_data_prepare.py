"""Face preparation into the frame cache (MTCNN crops, no-face fallback, corrupt videos,
resume after an interruption) and end-to-end `fasbench run` on fake copies of the real
datasets (built on the fly by test_real_datasets.py)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("facenet_pytorch")
from test_real_datasets import fake_roots  # noqa: E402,F401  (session fixture: the fake copies)

from fasbench.contract import TINY_WORLD  # noqa: E402

CORRUPT = "scene01/real/real_client001_laptop_SD_scene01.mov"


def _prepare(root, cache, **kw):
    from fasbench.data import indexers
    from fasbench.data.prepare import PrepConfig, prepare

    res = indexers.index("M", root, progress=False)
    return prepare(res.videos, root, PrepConfig.from_mapping(), cache, workers=1, progress=False, **kw)


@pytest.fixture(scope="module")
def msu_prepared(fake_roots, fasbench_cache):  # noqa: F811
    return _prepare(fake_roots["M"], fasbench_cache)


def test_prepare_writes_crops_counts_fallbacks_and_skips(msu_prepared):
    p = msu_prepared
    s = p.summary
    assert (s["videos"], s["prepared"], s["frames"]) == (16, 15, 30)
    assert p.images.shape == (30, 256, 256, 3) and p.images.dtype == np.uint8
    assert isinstance(p.images, np.memmap) and (p.entry / "images.npy").exists()
    assert [sk["path"] for sk in s["skipped"]] == [CORRUPT] and "Invalid data" in s["skipped"][0]["reason"]
    # frames 6 and 7 of each 8-frame video (SSDG sampling); the laptop live video of client 2 has no
    # face in frame 7 (nearest-face fallback), one attack video has no face at all (centre crop)
    assert set(p.videos["sampled"]) == {"6;7"}
    assert s["no_face_frames"] == 3 and s["faces_found"] == 27 and s["fallbacks"] == {"center": 1, "nearest": 1}
    v = p.videos.set_index("path")
    blank = v.loc["scene01/attack/attack_client002_laptop_SD_printed_photo_scene01.mov"]
    half = v.loc["scene01/real/real_client002_laptop_SD_scene01.mov"]
    assert (blank["no_face"], blank["fallback"], half["no_face"], half["fallback"]) == (2, "center", 1, "nearest")
    face_crop = p.images[int(v.loc["scene01/real/real_client002_android_SD_scene01.mp4", "slot_start"])]
    blank_crop = p.images[int(blank["slot_start"])]
    assert face_crop.std() > 30 and blank_crop.std() < 10  # a face crop vs the centre of a plain frame


def test_prepare_resumes_after_interruption(fake_roots, tmp_path):  # noqa: F811
    from fasbench.data import indexers
    from fasbench.data.prepare import PrepConfig, prepare

    root = fake_roots["C"]
    videos = indexers.index("C", root, progress=False).videos
    seen = []

    def interrupt(rec):
        seen.append(rec["path"])
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prepare(videos, root, PrepConfig.from_mapping(), tmp_path, progress=False, on_video=interrupt)
    entry = next((tmp_path / "real" / "casia_fasd").iterdir())
    assert not (entry / "summary.json").exists() and (entry / "images.partial.npy").exists()
    assert len((entry / "progress.jsonl").read_text().splitlines()) == 3
    again = []
    p = prepare(videos, root, PrepConfig.from_mapping(), tmp_path, progress=False, on_video=lambda rec: again.append(rec["path"]))
    assert p.summary["resumed"] == 3 and len(again) == 5 and not set(again) & set(seen)
    assert p.summary["prepared"] == 8 and p.summary["faces_found"] == 16
    # the crops written before the interruption are intact face crops
    assert all(p.images[k].std() > 30 for k in range(16)) and list(p.videos["path"]) == list(videos["path"])
    assert prepare(videos, root, PrepConfig.from_mapping(), tmp_path, progress=False).summary["resumed"] == 8  # complete: loaded


def test_prepare_cli_json_multiprocess(run_cli, fake_roots, tmp_path, fasbench_cache):  # noqa: F811
    env = {"FASBENCH_CONFIG": str(tmp_path / "none.yaml")}
    proc = run_cli("data", "prepare", "casia_fasd", "--root", fake_roots["C"], "--workers", "2", "--json",
                   "--no-progress", env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    assert (s["videos"], s["frames"], s["faces_found"], s["no_face_frames"], s["skipped"]) == (8, 16, 16, 0, [])
    assert Path(s["cache"]).is_relative_to(fasbench_cache)
    proc = run_cli("data", "prepare", "M", "--root", fake_roots["M"], "--json", "--no-progress", env=env)
    s = json.loads(proc.stdout)  # prepared in-process above (same cache): loaded, skipped video still listed
    assert s["resumed"] == 16 and s["skipped"][0]["path"] == CORRUPT and s["no_face_frames"] == 3


def _record(out: Path, pattern: str) -> dict:
    recs = sorted(out.rglob("record.json"))
    picked = [r for r in recs if pattern in str(r)]
    assert picked, recs
    return json.loads(picked[0].read_text())


@pytest.mark.slow
def test_run_mico_on_real_data(run_cli, fake_roots, tmp_path):  # noqa: F811
    env = {f"FASBENCH_ROOT_{L}": str(fake_roots[L]) for L in "MCIO"}
    env.update(FASBENCH_CONFIG=str(tmp_path / "none.yaml"), FASBENCH_PREPARE_WORKERS="1")
    out = tmp_path / "runs"
    # no --data: the real datasets are the default once their roots are configured
    proc = run_cli("run", "erm", "--protocol", "MICO", "--tasks", "M", "--no-progress", "--out", out,
                   "trainer=smoke", "data.crop_size=112", env=env, timeout=400)
    assert proc.returncode == 0, proc.stderr
    assert "(real)" in proc.stdout
    rec = _record(out, "OCI_to_M")
    d = rec["data"]
    assert d["dataset"] == "real" and d["split_convention"]["convention"] == "whole"
    assert d["splits"] == {"source_train": ["train"], "source_val": ["dev"], "target": ["train", "dev"]}
    assert d["skipped_videos"] == 1 and d["preparation"]["M"]["skipped"][0]["path"] == CORRUPT
    assert d["frames"]["target"] == 30  # the whole of M (15 readable videos x 2 frames)
    assert {d["identity"]["datasets"][L]["dataset"] for L in "MCIO"} == {"msu_mfsd", "casia_fasd", "replay_attack", "oulu_npu"}
    # sources O, C, I: devel of I and O left out; source-val = whole held-out subjects
    assert d["frames"]["source_train"] + d["frames"]["source_val"] == 2 * (10 + 8 + 10)
    assert rec["target"]["source-val-threshold"]["n_videos"] == 15
    assert rec["val"]["data"] == "source-val" and rec["val"]["n_videos"] > 0



@pytest.mark.slow
def test_run_oulu_protocol_1(run_cli, fake_roots, tmp_path):  # noqa: F811
    out = tmp_path / "runs"
    proc = run_cli("run", "erm", "--protocol", "OULU-NPU-P1", "--data", "oulu_npu", "--no-progress", "--out", out,
                   "trainer=smoke", "data.crop_size=112", f"data.roots.O={fake_roots['O']}",
                   env={"FASBENCH_CONFIG": str(tmp_path / "none.yaml"), "FASBENCH_PREPARE_WORKERS": "1"}, timeout=400)
    assert proc.returncode == 0, proc.stderr
    rec = _record(out, "P1")
    assert rec["task"]["name"] == "O->O[P1]"
    assert rec["data"]["frames"] == {"source_train": 10, "source_val": 10, "target": 10}  # the list files' videos
    m = rec["target"]["source-val-threshold"]  # Dev threshold applied to Test
    assert {"APCER", "BPCER", "ACER"} <= set(m["metrics"]) and m["n_videos"] == 5


def test_cross_attack_on_the_synthetic_world(run_cli, tmp_path):
    out = tmp_path / "runs"
    proc = run_cli("run", "erm", "--protocol", "CrossAttack", "--tasks", "M", "--data", "synthetic", "--no-progress",
                   "--out", out, *TINY_WORLD, "trainer=smoke", timeout=300)
    assert proc.returncode == 0, proc.stderr
    names = sorted(json.loads(p.read_text())["task"]["name"] for p in out.rglob("record.json"))
    assert names == ["M->M[unseen-print]", "M->M[unseen-replay]"]
    for p in out.rglob("record.json"):
        rec = json.loads(p.read_text())
        held = rec["task"]["name"].split("unseen-")[1].rstrip("]")
        apcer = [k for k in rec["target"]["target-eer-threshold"]["metrics"] if k.startswith("APCER/")]
        assert apcer == [f"APCER/{held}"]  # the only attack type tested is the held-out one
