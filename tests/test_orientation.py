"""Frames reach the face detector upright: a video's display matrix (MP4/MOV rotation, with a
mirror where the matrix has one) and a JPEG's EXIF orientation are applied to every decoded
frame, the cache's ``videos.csv`` records what was applied, and a video whose sampled frames
mostly have no face is listed in the preparation summary (``no_face_videos``).

The test videos store the astronaut's face turned and carry the display rotation under which a
player shows it upright. What "upright" means is not taken from our own code: ``displayed`` below
applies the raw display matrix as libavutil/display.h defines it (a source point ``(p, q)`` goes
to ``(p, q, 1) . M``), which is also what ffmpeg's own autorotation does (a matrix read as a
90 degree counter-clockwise rotation gets ``transpose=cclock``)."""
from __future__ import annotations

import json

import numpy as np
import pytest

av = pytest.importorskip("av")
skimage_data = pytest.importorskip("skimage.data")
pytest.importorskip("facenet_pytorch")

from PIL import Image  # noqa: E402

W, H = 144, 192  # the upright (portrait) frame
N_FRAMES = 10


def _codec() -> str:
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def upright_frame(k: int = 0) -> np.ndarray:
    """A portrait frame with the astronaut's face upright, shifted a little per frame."""
    face = np.asarray(Image.fromarray(skimage_data.astronaut()).resize((W, W), Image.BILINEAR))
    out = np.full((H, W, 3), 100, np.uint8)
    out[24:24 + W] = np.roll(face, (k % 3) - 1, axis=1)
    return out


def stored(upright: np.ndarray, rotation: int, flip: bool = False) -> np.ndarray:
    """What the file stores so that showing it turned ``rotation`` degrees counter-clockwise (then
    mirrored) is ``upright`` (the inverse of the display transform)."""
    img = upright[:, ::-1] if flip else upright
    return np.ascontiguousarray(np.rot90(img, -(rotation // 90)))


def write_video(path, frames, rotation=None, flip=False, codec=None, gop=None):
    """``frames`` encoded as they are; ``rotation`` (counter-clockwise degrees, PyAV's
    ``set_display_rotation``) and ``flip`` go into the container's display matrix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        s = out.add_stream(codec or _codec(), rate=10)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        if s.codec_context.name == "mpeg4":
            s.bit_rate = 2_000_000
        else:
            s.options = {"crf": "18", "preset": "veryfast"}
        if gop:
            s.codec_context.gop_size = gop
        if rotation is not None:
            s.set_display_rotation(rotation, hflip=flip)
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


def raw_frame_and_matrix(path):
    """The first frame as stored (no orientation applied) and the display matrix it carries."""
    from av.sidedata.sidedata import Type

    with av.open(str(path)) as c:
        f = next(c.decode(video=0))
        sd = f.side_data.get(Type.DISPLAYMATRIX)
        m = np.frombuffer(bytes(sd), dtype=np.int32) if sd is not None else None
        return f.to_ndarray(format="rgb24"), m


def displayed(raw: np.ndarray, m) -> np.ndarray:
    """A reference player: libavutil/display.h maps a source point (p, q) to
    (p', q') = (a p + c q + x, b p + d q + y) with M = [a b u; c d v; x y w] (16.16 fixed point);
    the picture is that map of every pixel, shifted to start at (0, 0)."""
    if m is None:
        return raw
    a, b, c, d = (round(v / 65536) for v in (m[0], m[1], m[3], m[4]))
    h, w = raw.shape[:2]
    q, p = np.mgrid[0:h, 0:w]
    p2, q2 = a * p + c * q, b * p + d * q
    p2, q2 = p2 - p2.min(), q2 - q2.min()
    out = np.zeros((q2.max() + 1, p2.max() + 1, 3), raw.dtype)
    out[q2, p2] = raw[q, p]
    return out


def face_is_upright(img: np.ndarray) -> bool:
    """MTCNN finds a face (probability at least 0.9, preparation's threshold) whose eyes are above
    its mouth and roughly level."""
    from fasbench.data import faces

    _, probs, lms = faces.detector(20).detect(np.ascontiguousarray(img), landmarks=True)
    if lms is None or probs[0] is None or float(probs[0]) < 0.9:
        return False
    (lx, ly), (rx, ry), _, (mlx, mly), (mrx, mry) = lms[0]
    eye_gap = abs(rx - lx)
    return bool(max(ly, ry) < min(mly, mry) - 0.3 * eye_gap and abs(ry - ly) < 0.2 * eye_gap and eye_gap > 0)


# --------------------------------------------------------------------------------------
# the orientation itself, against the reference player and PIL
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("rotation,flip", [(r, f) for f in (False, True) for r in (0, 90, 180, 270)])
def test_every_display_matrix_is_applied_as_a_player_shows_it(tmp_path, rotation, flip):
    from fasbench.data.video import decode

    frame = np.zeros((32, 48, 3), np.uint8)
    frame[:8, :16] = 255  # a white mark top-left, a red one bottom-left: no symmetry left
    frame[-8:, :8, 0] = 255
    path = write_video(tmp_path / "v.mp4", [frame] * 3, rotation=rotation, flip=flip)
    raw, m = raw_frame_and_matrix(path)
    for seek in (True, False):
        got = decode(path, [0, 2], seek=seek)
        assert np.array_equal(got.frames[0], displayed(raw, m))
        assert (got.rotation, got.flip) == (rotation, flip)
    # and it is the picture we meant to show (the mark where the upright frame has it)
    assert np.array_equal(displayed(stored(frame, rotation, flip), m) > 127, frame > 127)


def test_a_frame_without_a_display_matrix_is_left_as_it_is(tmp_path):
    from fasbench.data.video import decode

    frame = upright_frame()
    path = write_video(tmp_path / "plain.mp4", [frame] * 2)
    raw, m = raw_frame_and_matrix(path)
    got = decode(path, [0, 1])
    assert m is None and (got.rotation, got.flip) == (0, False) and np.array_equal(got.frames[0], raw)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(tmp_path, orientation):
    from PIL import ImageOps

    from fasbench.data.video import EXIF_ORIENTATIONS, decode, upright

    img = Image.fromarray(upright_frame())
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "im.png"  # lossless, so pixels compare exactly
    img.save(path, exif=exif)
    with Image.open(path) as im:
        want = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    got = decode(path, [0])
    assert np.array_equal(got.frames[0], want)
    rot, flip = EXIF_ORIENTATIONS[orientation]
    assert (got.rotation, got.flip) == (rot, flip)
    assert np.array_equal(upright(np.asarray(img), rot, flip), want)  # the table says what PIL does


# --------------------------------------------------------------------------------------
# preparation: rotated videos and a rotated JPEG give upright face crops
# --------------------------------------------------------------------------------------

def _manifest(root, paths):
    import pandas as pd

    from fasbench.data.video import probe_frames

    return pd.DataFrame({"dataset": "orient", "path": paths, "n_frames": [probe_frames(root / p) for p in paths],
                         "error": ""})


@pytest.fixture(scope="module")
def oriented(module_tmp):
    """One prepared dataset: upright, 180 and 90 degree videos with their display matrix, the
    same turned videos without it (controls), a rotated JPEG with its EXIF tag, a gradient."""
    from fasbench.data.prepare import PrepConfig, prepare

    root = module_tmp("oriented")
    ups = [upright_frame(k) for k in range(N_FRAMES)]
    write_video(root / "upright.mp4", ups)
    write_video(root / "rot180.mp4", [stored(f, 180) for f in ups], rotation=180)
    write_video(root / "rot90.mov", [stored(f, 90) for f in ups], rotation=90)
    write_video(root / "rot270_mirrored.mp4", [stored(f, 270, True) for f in ups], rotation=270, flip=True)
    write_video(root / "control180.mp4", [stored(f, 180) for f in ups])  # the same pixels, no metadata
    write_video(root / "control90.mov", [stored(f, 90) for f in ups])
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": PIL's exif_transpose turns it 270 counter-clockwise
    Image.fromarray(stored(ups[0], 270)).save(root / "photo.jpg", quality=95, exif=exif)
    yy, xx = np.mgrid[0:H, 0:W]
    grad = np.stack([xx * 255 // W, yy * 255 // H, np.full_like(xx, 128)], -1).astype(np.uint8)
    write_video(root / "gradient.mp4", [grad] * N_FRAMES)
    paths = ["upright.mp4", "rot180.mp4", "rot90.mov", "rot270_mirrored.mp4", "control180.mp4", "control90.mov",
             "photo.jpg", "gradient.mp4"]
    cache = module_tmp("oriented-cache")
    p = prepare(_manifest(root, paths), root, PrepConfig.from_mapping(), cache, workers=1, progress=False)
    return root, p


def _crops(p, path):
    v = p.videos.set_index("path").loc[path]
    return [p.images[int(v["slot_start"]) + j] for j in range(int(v["slots"]))], v


@pytest.mark.parametrize("path,rotation,flip", [("upright.mp4", 0, 0), ("rot180.mp4", 180, 0), ("rot90.mov", 90, 0),
                                                ("rot270_mirrored.mp4", 270, 1), ("photo.jpg", 270, 0)])
def test_turned_videos_and_photos_give_upright_face_crops(oriented, path, rotation, flip):
    _, p = oriented
    crops, v = _crops(p, path)
    assert int(v["faces"]) == int(v["slots"]) and int(v["no_face"]) == 0  # a face in every sampled frame
    assert all(face_is_upright(c) for c in crops), path
    assert (int(v["rotation"]), int(v["flip"])) == (rotation, flip)


@pytest.mark.parametrize("path", ["control180.mp4", "control90.mov"])
def test_controls_without_metadata_are_not_upright(oriented, path):
    """The same stored pixels without the display matrix: what every video gave before frames were
    turned upright. The check above would have failed on them."""
    root, p = oriented
    crops, v = _crops(p, path)
    assert (int(v["rotation"]), int(v["flip"])) == (0, 0)
    assert not any(face_is_upright(c) for c in crops)
    raw, m = raw_frame_and_matrix(root / path)
    assert m is None and not face_is_upright(raw)


def test_videos_csv_records_the_orientation(oriented):
    _, p = oriented
    import pandas as pd

    csv = pd.read_csv(p.entry / "videos.csv", keep_default_na=False).set_index("path")
    assert {"rotation", "flip"} <= set(csv.columns)
    assert csv.loc["rot90.mov", "rotation"] == 90 and csv.loc["rot270_mirrored.mp4", "flip"] == 1
    assert csv.loc["control180.mp4", "rotation"] == 0 and csv.loc["photo.jpg", "rotation"] == 270


def test_videos_without_a_face_are_listed(oriented):
    """More than half of the sampled frames without a face: listed with its counts, in what
    prepare() returns and in summary.json; the turned videos with their metadata are not."""
    _, p = oriented
    listed = {v["path"]: v for v in p.summary["no_face_videos"]}
    assert listed["gradient.mp4"] == {"path": "gradient.mp4", "sampled": 2, "no_face": 2, "fallback": "center"}
    assert not {"upright.mp4", "rot180.mp4", "rot90.mov", "rot270_mirrored.mp4", "photo.jpg"} & set(listed)
    assert set(listed) == {"gradient.mp4", "control180.mp4", "control90.mov"}  # the turned-face bug is flagged too
    assert all(v["no_face"] * 2 > v["sampled"] for v in listed.values())
    on_disk = json.loads((p.entry / "summary.json").read_text())
    assert on_disk["no_face_videos"] == p.summary["no_face_videos"]
