"""`fasbench data preview`: the contact sheet of prepared crops (fasbench/data/preview.py) on the
fake copies of the real datasets (test_real_datasets.py): its size follows the groups and N,
every group and tile comes from the manifest, the tiles are the cached crops, and the crops of
a video without a face are framed in red while face crops are not."""
from __future__ import annotations

import json
import types

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("facenet_pytorch")
from test_real_datasets import fake_roots  # noqa: E402,F401  (session fixture: the fake copies)

from fasbench.data import preview  # noqa: E402

BLANK = "scene01/attack/attack_client002_laptop_SD_printed_photo_scene01.mov"  # no face in any frame
FACE = "scene01/real/real_client002_android_SD_scene01.mp4"                    # a face in every frame


@pytest.fixture(scope="module")
def msu_frames(fake_roots, fasbench_cache):  # noqa: F811
    """The prepared fake MSU-MFSD as a FrameSet-like object, with its per-frame fallback flags."""
    from fasbench.data import indexers
    from fasbench.data.prepare import PrepConfig, prepare
    from fasbench.data.real_dataset import frame_manifest

    res = indexers.index("M", fake_roots["M"], progress=False)
    got = prepare(res.videos, fake_roots["M"], PrepConfig.from_mapping(), fasbench_cache, workers=1, progress=False)
    flags, per = preview.fallback_flags(got.videos)
    frames = types.SimpleNamespace(manifest=frame_manifest(res.videos, got.videos), images=got.images)
    return frames, flags, per


def _kind(row) -> str:
    return "live" if int(row["label"]) == 1 else str(row["attack_type"])


def _is_red(px: np.ndarray) -> np.ndarray:
    return (px[..., 0] > 180) & (px[..., 1] < 60) & (px[..., 2] < 60)


def _border(sheet: np.ndarray, box) -> np.ndarray:
    """The pixels of the frame around one tile (BORDER wide on each side)."""
    x0, y0, x1, y1 = box
    b = preview.BORDER
    cell = sheet[y0:y1, x0:x1]
    return np.concatenate([cell[:b].reshape(-1, 3), cell[-b:].reshape(-1, 3),
                           cell[b:-b, :b].reshape(-1, 3), cell[b:-b, -b:].reshape(-1, 3)])


def test_sheet_size_groups_and_tiles_come_from_the_data(msu_frames):
    from PIL import Image

    frames, flags, _ = msu_frames
    m = frames.manifest
    n, tile = 3, 40
    image, layout = preview.contact_sheet(frames, flags, n=n, tile=tile, seed=0)
    # one block per domain x live / attack type present in the manifest: live first, attack types sorted
    assert [(g.domain, g.kind) for g in layout.groups] == [
        ("M", "live"), ("M", "ipad_video"), ("M", "iphone_video"), ("M", "printed_photo")]
    cell = tile + 2 * preview.BORDER
    width = max(2 * preview.PAD + n * cell + (n - 1) * preview.GAP, preview.MIN_WIDTH)
    height = 2 * preview.PAD + preview.HEADER_H + 4 * (preview.LABEL_H + cell + preview.GAP) - preview.GAP
    assert image.size == layout.size == (width, height)
    sheet = np.asarray(image)
    for g in layout.groups:
        members = m[(m["domain"] == g.domain) & (m.apply(_kind, axis=1) == g.kind)]
        assert g.frames == len(members) and g.videos == members["video_id"].nunique()
        assert len(g.rows) == min(n, len(members)) == len(g.boxes)
        assert set(g.rows) <= set(members.index) and g.rows == sorted(g.rows)
        assert len(set(m.loc[g.rows, "video_id"])) == len(g.rows)  # different videos first (each has 2 frames)
        assert g.label.startswith(f"M msu_mfsd · {g.kind}") and f"{len(g.rows)} of {len(members)} frames" in g.label
        for r, (x0, y0, _, _) in zip(g.rows, g.boxes):  # each tile is that row's cached crop
            want = np.asarray(Image.fromarray(np.asarray(frames.images[r])).resize((tile, tile), Image.BILINEAR))
            b = preview.BORDER
            assert np.array_equal(sheet[y0 + b:y0 + b + tile, x0 + b:x0 + b + tile], want)
    again, layout2 = preview.contact_sheet(frames, flags, n=n, tile=tile, seed=0)  # deterministic
    assert [g.rows for g in layout2.groups] == [g.rows for g in layout.groups]
    assert np.array_equal(np.asarray(again), sheet)


def test_fallback_crop_framed_in_red_face_crop_not(msu_frames):
    frames, flags, per = msu_frames
    m = frames.manifest
    assert per == "video"  # the cache records frames without a face per video
    image, layout = preview.contact_sheet(frames, flags, n=8, tile=48)
    sheet = np.asarray(image)
    tiles = {(str(m.at[r, "path"]), int(m.at[r, "frame"])): box for g in layout.groups for r, box in zip(g.rows, g.boxes)}
    printed = next(g for g in layout.groups if g.kind == "printed_photo")
    assert printed.frames == 8 and len(printed.rows) == 8 and sum(printed.fallback) == 2  # n >= group: every crop shown
    for frame in (6, 7):
        assert _is_red(_border(sheet, tiles[(BLANK, frame)])).all()
        face_border = _border(sheet, tiles[(FACE, frame)])
        assert not _is_red(face_border).any() and (face_border == preview.FACE_FRAME).all()
    # the tile of the blank video is its centre crop: plain, while a face crop is not
    x0, y0, x1, y1 = tiles[(BLANK, 6)]
    assert sheet[y0 + 4:y1 - 4, x0 + 4:x1 - 4].std() < 10
    x0, y0, x1, y1 = tiles[(FACE, 6)]
    assert sheet[y0 + 4:y1 - 4, x0 + 4:x1 - 4].std() > 30


def test_fallback_flags_per_video_or_per_frame():
    videos = pd.DataFrame({"path": ["a", "b", "c"], "slots": [2, 2, 1], "no_face": [0, 1, 1]})
    flags, per = preview.fallback_flags(videos)
    assert per == "video" and flags.tolist() == [False, False, True, True, True]
    videos["face_slots"] = ["1;1", "1;0", "0"]  # per-slot detections, when the cache records them
    flags, per = preview.fallback_flags(videos)
    assert per == "frame" and flags.tolist() == [False, False, False, True, True]


def test_sample_is_deterministic_and_spreads_over_videos():
    pos = np.arange(100, 120)
    vids = [f"v{i // 4}" for i in range(20)]  # 5 videos of 4 frames
    a = preview.sample(pos, vids, 5, "M/live", seed=0)
    assert a == preview.sample(pos, vids, 5, "M/live", seed=0) and a == sorted(a)
    assert len({vids[p - 100] for p in a}) == 5  # one crop of each video before a second of any
    assert preview.sample(pos, vids, 50, "M/live") == list(range(100, 120))
    assert any(preview.sample(pos, vids, 5, "M/live", seed=s) != a for s in range(1, 5))


def test_contact_sheet_rejects_bad_input(msu_frames):
    from fasbench.errors import FasbenchError

    frames, flags, _ = msu_frames
    with pytest.raises(FasbenchError, match="at least 1 crop"):
        preview.contact_sheet(frames, flags, n=0)
    with pytest.raises(FasbenchError, match="fallback flags: 3 given for 30 frames"):
        preview.contact_sheet(frames, flags[:3])


# --- the command ---------------------------------------------------------------------------

def test_preview_cli_json_and_png(run_cli, fake_roots, tmp_path):  # noqa: F811
    from PIL import Image

    from fasbench.data import indexers

    out = tmp_path / "sheets" / "m.png"
    proc = run_cli("data", "preview", "M", "--root", fake_roots["M"], "--n", "4", "--out", out, "--json", "--no-progress",
                   env={"FASBENCH_CONFIG": str(tmp_path / "none.yaml")}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["path"] == str(out) and got["fallback_per"] == "video"
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == tuple(got["size"]) == preview.sheet_size(4, 4, 96)
    videos = indexers.index("M", fake_roots["M"], probe=False).videos.set_index("path")
    assert [g["type"] for g in got["groups"]] == ["live", "ipad_video", "iphone_video", "printed_photo"]
    for g in got["groups"]:
        assert g["shown"] == len(g["tiles"]) == 4
        for t in g["tiles"]:  # each tile's video is of its group's type, as indexed
            v = videos.loc[t["path"]]
            assert ("live" if v["label"] == 1 else v["attack_type"]) == g["type"] and v["video_id"] == t["video_id"]
            assert t["fallback"] == (t["path"] in (BLANK, "scene01/real/real_client002_laptop_SD_scene01.mov"))
    assert not list(out.parent.glob("*.tmp")) and [p.name for p in out.parent.iterdir()] == ["m.png"]

    proc = run_cli("data", "preview", "M", "--root", fake_roots["M"], "--split", "test", "--no-progress",
                   env={"FASBENCH_CONFIG": str(tmp_path / "none.yaml")}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "preview-msu_mfsd-test.png" and (tmp_path / "preview-msu_mfsd-test.png").exists()


def test_preview_cli_bad_input(run_cli, one_line_error, fake_roots, tmp_path):  # noqa: F811
    env = {"FASBENCH_CONFIG": str(tmp_path / "none.yaml")}
    line = one_line_error(run_cli("data", "preview", "M", "--root", fake_roots["M"], "--split", "devel", "--no-progress",
                                  "--out", tmp_path / "x.png", env=env))
    assert "--split devel" in line and "test, train" in line
    line = one_line_error(run_cli("data", "preview", "M", "--root", fake_roots["M"], "--out", tmp_path / "x.jpg", env=env))
    assert "--out" in line and "FILE.png" in line
    line = one_line_error(run_cli("data", "preview", "M", "--root", fake_roots["M"], "--n", "0", env=env))
    assert "--n 0" in line
    empty = {**env, "FASBENCH_CACHE": str(tmp_path / "empty-cache")}  # nothing prepared, auto-prepare off
    line = one_line_error(run_cli("data", "preview", "M", "--root", fake_roots["M"], "data.auto_prepare=false", "--no-progress",
                                  env=empty))
    assert "no prepared frame cache" in line and "fasbench data prepare msu_mfsd" in line
    assert not (tmp_path / "empty-cache" / "real").exists() or not any((tmp_path / "empty-cache" / "real").rglob("*.npy"))
