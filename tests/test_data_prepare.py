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
    # more than half of its sampled frames without a face: listed (one of two is not more than half)
    assert s["no_face_videos"] == [{"path": "scene01/attack/attack_client002_laptop_SD_printed_photo_scene01.mov",
                                    "sampled": 2, "no_face": 2, "fallback": "center"}]
    assert json.loads((p.entry / "summary.json").read_text())["no_face_videos"] == s["no_face_videos"]
    assert (set(p.videos["rotation"]), set(p.videos["flip"])) == ({0}, {0})  # upright videos: nothing turned
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


# --------------------------------------------------------------------------------------
# preparation at scale: seeking to the sampled frames, one MTCNN batch, one detector per worker
# --------------------------------------------------------------------------------------

def _distinct_frames(n: int = 50, w: int = 96, h: int = 64) -> list[np.ndarray]:
    """Frames no two alike (noise and a moving white square), so a frame off by one shows."""
    rng = np.random.default_rng(1)
    out = []
    for k in range(n):
        f = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
        y, x = (k * 3) % (h - 8), (k * 5) % (w - 8)
        f[y:y + 8, x:x + 8] = 255
        out.append(f)
    return out


def _write(path: Path, codec: str, gop: int = 12, b_frames: int | None = None) -> Path:
    import av

    frames = _distinct_frames()
    with av.open(str(path), "w") as out:
        s = out.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        s.codec_context.gop_size = gop
        if b_frames is not None:
            s.codec_context.max_b_frames = b_frames
        if codec == "mpeg4":
            s.bit_rate = 1_000_000
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


H264 = "libx264"
# (file, codec, B-frames, how it must be read): H.264 with B-frames in MP4/MOV/MKV seeks; AVI stores no
# presentation times, so with B-frames its frames do not come out in timestamp order and it is read
# sequentially (seeking there would give wrong frames); MPEG-4 without B-frames in AVI seeks.
SEEK_CASES = [("v.mp4", H264, None, "seek"), ("v.mov", H264, None, "seek"), ("v.mkv", H264, None, "seek"),
              ("v.avi", "mpeg4", 0, "seek"), ("b.avi", H264, None, "sequential"), ("b.mp4", "mpeg4", 2, "seek")]


@pytest.mark.parametrize("name,codec,b_frames,method", SEEK_CASES)
def test_seeking_gives_exactly_the_frames_of_sequential_decoding(tmp_path, name, codec, b_frames, method):
    """A 50-frame video with a keyframe every 12 frames: every frame index asked for, alone or
    together, decodes to the same pixels as decoding from the start; past the end is absent."""
    import av

    from fasbench.data.video import decode

    if codec not in av.codecs_available:
        pytest.skip(f"no {codec} encoder")
    path = _write(tmp_path / name, codec, b_frames=b_frames)
    wanted = [0, 5, 11, 12, 13, 23, 24, 25, 36, 47, 49, 60]
    ref = decode(path, wanted, seek=False)
    assert ref.method == "sequential" and sorted(ref.frames) == [k for k in wanted if k < 50]
    together = decode(path, wanted, seek=True)
    assert together.method == method
    assert sorted(together.frames) == sorted(ref.frames)
    for k in ref.frames:
        assert np.array_equal(together.frames[k], ref.frames[k]), k
        alone = decode(path, [k], seek=True)
        assert np.array_equal(alone.frames[k], ref.frames[k]), k
    # the frames are the video's frames, in order (the encoder's frames, give or take compression)
    src = _distinct_frames()
    for k in ref.frames:
        err = [np.abs(ref.frames[k].astype(int) - s.astype(int)).mean() for s in src]
        assert int(np.argmin(err)) == k


def test_a_failing_seek_falls_back_to_sequential_decoding(tmp_path, monkeypatch):
    from fasbench.data import video

    path = _write(tmp_path / "v.mp4", H264)
    ref = video.decode(path, [3, 30], seek=False)

    def broken(container, stream, wanted, threads):
        raise RuntimeError("seek failed")  # what a demuxer that cannot seek raises (av.error.*)

    monkeypatch.setattr(video, "_decode_seeking", broken)
    got = video.decode(path, [3, 30], seek=True)
    assert got.method == "sequential" and all(np.array_equal(got.frames[k], ref.frames[k]) for k in (3, 30))
    monkeypatch.undo()
    monkeypatch.setenv("FASBENCH_DECODE_SEEK", "0")  # forced, for files seeking would misread
    assert video.decode(path, [3, 30]).method == "sequential"


def test_one_mtcnn_batch_per_video_finds_the_same_faces(fake_roots):  # noqa: F811
    from fasbench.data.faces import detect
    from fasbench.data.prepare import PrepConfig
    from fasbench.data.video import decode

    cfg = PrepConfig.from_mapping().face
    half = Path(fake_roots["M"]) / "scene01/real/real_client002_laptop_SD_scene01.mov"  # a face, then none
    frames = list(decode(half, range(8)).frames.values())
    batched, single = detect(frames, cfg), detect(frames, cfg, batch=False)
    assert [f is None for f in batched] == [f is None for f in single] == [False] * 7 + [True]
    for b, s in zip(batched, single):
        if b is not None:
            assert np.allclose(b[0], s[0], atol=1e-3) and np.allclose(b[1], s[1], atol=1e-3)


def test_a_worker_loads_the_detector_once(fake_roots, monkeypatch):  # noqa: F811
    """The pool initialiser loads MTCNN; the videos that worker then prepares reuse it."""
    import facenet_pytorch

    from fasbench.data import faces, prepare

    made = []
    real = facenet_pytorch.MTCNN

    def counting(*a, **kw):
        made.append(kw.get("device"))
        return real(*a, **kw)

    monkeypatch.setattr(facenet_pytorch, "MTCNN", counting)
    monkeypatch.setattr(faces, "_DETECTORS", {})
    monkeypatch.setattr(prepare, "_DECODE_THREADS", 0)
    monkeypatch.setenv("FASBENCH_DETECT_DEVICE", "cpu")
    import torch

    threads = torch.get_num_threads()
    try:
        cfg = prepare.PrepConfig.from_mapping()
        prepare._init_worker(cfg.face.min_face)
        assert made == ["cpu"] and prepare._DECODE_THREADS == 1
        root = Path(fake_roots["C"])
        for i, p in enumerate(sorted(root.rglob("*.avi"))[:3]):
            rec = prepare.process_video((i, str(p), 8, 2, cfg.as_dict()))
            assert rec["status"] == "ok" and rec["faces"] == 2
        assert made == ["cpu"]
    finally:
        torch.set_num_threads(threads)
