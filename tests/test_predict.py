"""fasbench predict: a trained run's student on image and video files, through preparation's
decoding, sampling and face crop and the run's evaluation preprocessing; the decision at the
record's source-val threshold; one line per file that cannot be scored."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from trained import train_tiny_run

from fasbench import cli
from fasbench.inference import STUDENT_FILENAME
from fasbench.weights import sha256_file


@pytest.fixture(scope="module")
def run(module_tmp):
    return train_tiny_run(module_tmp("predict"))


@pytest.fixture(scope="module")
def world(run):
    return run.frames()


def predict(capsys, *args):
    rc = cli.main(["predict", *map(str, args)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def frame_rows(world, video: str) -> list[int]:
    m = world.manifest
    key = (m["domain"].astype(str) + "/" + m["video_id"].astype(str)).to_numpy()
    return [int(i) for i in np.flatnonzero(key == video)]


def test_the_run_keeps_the_selected_students_weights(run):
    saved = run.record.components.student.model_extra["saved"]
    path = run.run_dir / STUDENT_FILENAME
    assert saved["file"] == STUDENT_FILENAME and saved["sha256"] == sha256_file(path)
    assert saved["step"] == run.record.selection.selected_step and saved["predict"] == "student"
    assert saved["bytes"] == path.stat().st_size


def test_a_frame_scores_what_the_record_scored(run, world, capsys, tmp_path):
    scores = run.scores()
    target = scores[scores["split"] == "target"].reset_index(drop=True)
    paths, want = [], []
    for k in (0, 1, len(target) - 1):
        row = target.iloc[k]
        (i,) = [j for j in frame_rows(world, row["video"]) if int(world.manifest["frame"].iat[j]) == int(row["frame"])]
        p = tmp_path / f"frame{k}.png"  # lossless: the pixels the run scored
        Image.fromarray(np.asarray(world.images[i])).save(p)
        paths.append(p)
        want.append(float(row["score"]))
    rc, out, err = predict(capsys, run.run_dir, *paths, "--no-detect", "--json")
    assert rc == 0, err
    res = json.loads(out)
    got = [r["live_probability"] for r in res["results"]]
    assert got == pytest.approx(want, abs=1e-6)
    thr = run.record.val.threshold
    assert res["threshold"] == {"value": thr, "policy": "source-val-threshold", "data": "source-val", "sources": ["M", "C"],
                                "level": "video", "rule": "live when live_probability >= value"}
    assert [r["decision"] for r in res["results"]] == ["live" if p >= thr else "spoof" for p in got]
    assert res["weights"]["sha256"] == run.record.components.student.model_extra["saved"]["sha256"]


def test_a_video_is_the_mean_of_its_sampled_frames_like_video_level_eval(run, world, capsys, tmp_path):
    """An 8-frame lossless video: preparation's sampling (ssdg, 2 frames: 6 and 7) takes the two
    frames of one of the world's videos, so the prediction is that video's video-level score."""
    import av

    scores = run.scores()
    video = scores[scores["split"] == "target"]["video"].iloc[0]
    rows = frame_rows(world, video)
    frames = [np.asarray(world.images[i]) for i in rows]
    noise = np.random.default_rng(0).integers(0, 256, frames[0].shape, dtype=np.uint8)
    path = tmp_path / "clip.mkv"
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=10)
        s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], "bgr0"
        for f in [noise] * 6 + frames:
            for packet in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    rc, out, err = predict(capsys, run.run_dir, path, "--no-detect", "--json")
    assert rc == 0, err
    (r,) = json.loads(out)["results"]
    assert r["frames"] == [6, 7]
    per_video = scores[(scores["split"] == "target") & (scores["video"] == video)]["score"].mean()
    assert r["live_probability"] == pytest.approx(float(per_video), abs=1e-6)
    assert r["frame_probabilities"] == pytest.approx(scores[scores["video"] == video]["score"].tolist(), abs=1e-6)


def test_mtcnn_crop_of_a_face_photo_is_what_no_detect_scores_on_that_crop(run, capsys, tmp_path):
    """With detection, a photo is cut by preparation's code (MTCNN, margin, alignment, size) and
    scored; the same crop saved and scored with --no-detect gives the same probability."""
    pytest.importorskip("facenet_pytorch")
    skimage_data = pytest.importorskip("skimage.data")
    from fasbench.data.prepare import run_video
    from fasbench.inference import prep_config

    photo = tmp_path / "astronaut.png"
    Image.fromarray(skimage_data.astronaut()).save(photo)
    rc, out, err = predict(capsys, run.run_dir, photo, "--json")
    assert rc == 0, err
    (r,) = json.loads(out)["results"]
    assert (r["faces"], r["no_face"], r["frames"]) == (1, 0, [0])
    crop = run_video(str(photo), 1, 1, prep_config(run.record.config))["crops"][0]
    assert crop.shape == (48, 48, 3)  # the run's stored frame size (data.image_size)
    Image.fromarray(crop).save(tmp_path / "crop.png")
    rc, out, err = predict(capsys, run.run_dir, tmp_path / "crop.png", "--no-detect", "--json")
    assert rc == 0, err
    assert json.loads(out)["results"][0]["live_probability"] == pytest.approx(r["live_probability"], abs=1e-6)


def test_files_without_a_face_or_unreadable_are_one_line_each_and_exit_1(run, world, capsys, tmp_path):
    pytest.importorskip("facenet_pytorch")
    gradient = np.tile(np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None], (64, 1, 3))
    Image.fromarray(gradient).save(tmp_path / "noface.png")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    Image.fromarray(np.asarray(world.images[0])).save(tmp_path / "ok.png")
    files = [tmp_path / "noface.png", tmp_path / "missing.png", tmp_path / "broken.jpg"]
    rc, out, err = predict(capsys, run.run_dir, *files, "--json")
    assert rc == 1
    lines = err.strip().splitlines()
    assert len(lines) == 3 and all(ln.startswith("fasbench: error: ") for ln in lines)
    assert f"{files[0]}: no face found in the image" in lines[0] and "--no-detect" in lines[0]
    assert f"{files[1]}: no such file" in lines[1]
    assert f"{files[2]}: cannot be read" in lines[2]
    res = json.loads(out)
    assert [r["ok"] for r in res["results"]] == [False, False, False] and res["failed"] == 3
    # a scorable file beside them is still scored (text output: one line per file)
    rc, out, err = predict(capsys, run.run_dir, tmp_path / "ok.png", files[0], "--no-detect")
    assert rc == 0 and "ok.png: live probability" in out and "noface.png: live probability" in out


def test_bad_run_dir_is_one_line(run, capsys, tmp_path):
    rc, out, err = predict(capsys, tmp_path, "x.png")
    assert rc == 2 and err.strip().count("\n") == 0 and "no record.json here" in err
    (tmp_path / "record.json").write_text(run.record.model_dump_json(by_alias=True))
    rc, out, err = predict(capsys, tmp_path, "x.png")
    assert rc == 2 and f"{tmp_path / STUDENT_FILENAME} is missing" in err
