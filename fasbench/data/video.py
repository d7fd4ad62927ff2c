"""Reading videos (PyAV) and still images (Pillow) as upright uint8 RGB frames.

**Orientation.** Phones store the picture as the sensor saw it and say how to show it: a video
carries a display matrix (MP4/MOV ``tkhd``, the old ``rotate`` tag), a JPEG an EXIF orientation.
Every frame returned here has it applied, as a player shows it. An orientation is
``(rotation, flip)``: turn the stored frame ``rotation`` degrees counter-clockwise (0, 90, 180,
270), then mirror it left-right if ``flip``. For videos that is ffmpeg's reading of the display
matrix (libavutil/display.h: a stored point ``(p, q)`` is shown at ``(p, q, 1) . M``;
``av_display_rotation_get`` and PyAV's ``VideoFrame.rotation`` give the same counter-clockwise
angle, e.g. -90, i.e. 270, for a phone's portrait video tagged ``rotate=90``); ffmpeg's own
autorotation inserts the same transposes and flips.

**Seeking.** The wanted frames are decoded from the nearest keyframe before each of them
instead of from the start: the packets' presentation timestamps (read without decoding) say
which timestamp frame ``k`` has (the ``k``-th smallest), the container seeks to the keyframe
at or before it, and decoding goes forward until that exact timestamp, every frame on the way
checked against the index. The frame is the one sequential decoding gives as its ``k``-th;
where timestamps cannot identify frames (missing or repeated, a stream that does not start on
its first frame, a header count that disagrees with the packets, frames that do not come out
in the index's order) or a seek does not land before its target, the whole file is decoded
sequentially instead, as before. ``FASBENCH_DECODE_SEEK=0`` forces that path everywhere.
"""
from __future__ import annotations

import bisect
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: File name endings read as still images (one frame); anything else is decoded as a video.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")

#: EXIF orientation tag (1-8) -> (counter-clockwise rotation, then mirrored left-right), which
#: is what ``PIL.ImageOps.exif_transpose`` does (tested against it).
EXIF_ORIENTATIONS: dict[int, tuple[int, bool]] = {
    1: (0, False), 2: (0, True), 3: (180, False), 4: (180, True),
    5: (270, True), 6: (270, False), 7: (90, True), 8: (90, False),
}


def is_image(path: str | Path) -> bool:
    return str(path).lower().endswith(IMAGE_SUFFIXES)


class VideoError(Exception):
    """A video or image that cannot be read (the message says why)."""


@dataclass
class Decoded:
    """Frames of one file, upright, by 0-based index; the orientation applied to them; how
    they were decoded (``seek``, ``sequential`` or ``image``)."""

    frames: dict[int, np.ndarray] = field(default_factory=dict)
    rotation: int = 0
    flip: bool = False
    method: str = "sequential"


def upright(arr: np.ndarray, rotation: int, flip: bool) -> np.ndarray:
    """``arr`` (H, W, C) turned ``rotation`` degrees counter-clockwise, then mirrored if ``flip``."""
    k = (int(rotation) // 90) % 4
    out = np.rot90(arr, k) if k else arr
    if flip:
        out = out[:, ::-1]
    return np.ascontiguousarray(out) if (k or flip) else arr


def orientation_from_matrix(m) -> tuple[int, bool]:
    """``(rotation, flip)`` of a display matrix (9 ints, FFmpeg's layout, 16.16 fixed point),
    snapped to the nearest quarter turn. The matrix of ``rotation`` then a left-right mirror is
    ``[[cos r * s, -sin r], [sin r * s, cos r]]`` (``s = -1`` when mirrored;
    ``av_display_rotation_set`` then ``av_display_matrix_flip``)."""
    a, b, c, d = float(m[0]), float(m[1]), float(m[3]), float(m[4])
    if abs(a) + abs(d) >= abs(b) + abs(c):  # 0 or 180 degrees
        return (0 if d > 0 else 180), a * d < 0
    return (90 if b < 0 else 270), b * c > 0


def _frame_orientation(frame, stream) -> tuple[int, bool]:
    from av.sidedata.sidedata import Type

    sd = frame.side_data.get(Type.DISPLAYMATRIX)
    if sd is not None:
        m = np.frombuffer(bytes(sd), dtype=np.int32)
        if m.size >= 9 and (m[0] or m[1] or m[3] or m[4]):
            return orientation_from_matrix(m)
    tag = (stream.metadata or {}).get("rotate")  # older muxers' tag: clockwise degrees
    if tag:
        try:
            return (-round(float(tag) / 90) * 90) % 360, False
        except ValueError:  # a tag that is not a number: no rotation
            pass
    return 0, False


def probe_frames(path: str | Path) -> int:
    """Number of frames of a video (container metadata, else a packet count); 1 for an image.

    Raises :class:`VideoError` when the file cannot be opened or has no video stream.
    """
    if is_image(path):
        return 1
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError("no video stream")
            stream = container.streams.video[0]
            n = int(stream.frames or 0)
            if n <= 0:  # some containers do not store the count: count the packets instead
                n = sum(1 for p in container.demux(stream) if p.size)
            return n
    except VideoError:
        raise
    except Exception as exc:  # av.error.* (InvalidDataError, ...), OSError
        raise VideoError(f"{type(exc).__name__}: {exc}") from None


def read_frames(path: str | Path, indices: Iterable[int], *, seek: bool | None = None) -> dict[int, np.ndarray]:
    """The upright frames at ``indices`` (see :func:`decode`)."""
    return decode(path, indices, seek=seek).frames


def decode(path: str | Path, indices: Iterable[int], *, seek: bool | None = None, threads: int = 0) -> Decoded:
    """Decode the frames at ``indices`` (0-based) as upright uint8 ``(H, W, 3)`` RGB arrays.

    ``seek``: decode from the keyframe before each wanted frame (default, unless
    ``FASBENCH_DECODE_SEEK=0``); False decodes from the start and stops after the last wanted
    frame. Both give the same frames. Frames past the end of the video are absent from the
    result (the caller decides what to do about them). ``threads``: decoder threads (0: FFmpeg
    picks).
    """
    wanted = sorted(set(int(i) for i in indices))
    if not wanted:
        return Decoded()
    if is_image(path):
        return _read_image(path, wanted)
    if seek is None:
        seek = os.environ.get("FASBENCH_DECODE_SEEK", "1").strip().lower() not in ("0", "false", "no", "off")
    import av

    if seek:
        try:
            with av.open(str(path)) as container:
                if not container.streams.video:
                    raise VideoError("no video stream")
                got = _decode_seeking(container, container.streams.video[0], wanted, threads)
            if got is not None:
                return got
        except VideoError:
            raise
        except Exception:  # noqa: S110 -- any trouble seeking: the sequential path decides (and reports)
            pass
    return _decode_sequential(path, wanted, threads)


def _read_image(path: str | Path, wanted: list[int]) -> Decoded:
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            try:
                tag = int(im.getexif().get(0x0112, 1))
            except Exception:
                tag = 1
            rotation, flip = EXIF_ORIENTATIONS.get(tag, (0, False))
            arr = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    except Exception as exc:
        raise VideoError(f"{type(exc).__name__}: {exc}") from None
    return Decoded({i: arr for i in wanted if i == 0}, rotation, flip, "image")


def _open_stream(stream, threads: int) -> None:
    stream.thread_type = "AUTO"
    if threads:
        stream.codec_context.thread_count = int(threads)


def _decode_sequential(path: str | Path, wanted: list[int], threads: int) -> Decoded:
    import av

    out = Decoded(method="sequential")
    last = wanted[-1]
    want = set(wanted)
    oriented = False
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError("no video stream")
            stream = container.streams.video[0]
            _open_stream(stream, threads)
            for k, frame in enumerate(container.decode(stream)):
                if k in want:
                    if not oriented:
                        out.rotation, out.flip = _frame_orientation(frame, stream)
                        oriented = True
                    out.frames[k] = upright(frame.to_ndarray(format="rgb24"), out.rotation, out.flip)
                if k >= last:
                    break
    except VideoError:
        raise
    except Exception as exc:
        if not out.frames:
            raise VideoError(f"{type(exc).__name__}: {exc}") from None
        # a stream damaged near its end: keep what decoded, the caller sees the gap
    return out


class _SeekFailed(Exception):
    """Seeking cannot be shown to give the sequential frames: decode from the start instead."""


def _frame_index(container, stream) -> tuple[list[int], list[int]] | None:
    """Presentation timestamps of the frames in display order, and those of the keyframes
    (sorted), read from the packets without decoding; None when they cannot say which frame
    sequential decoding would give as the ``k``-th."""
    pts, keys, first = [], [], None
    for p in container.demux(stream):
        if not p.size:
            continue  # the demuxer's final empty packet
        if p.pts is None:
            return None
        if first is None:
            first = p
        pts.append(int(p.pts))
        if p.is_keyframe:
            keys.append(int(p.pts))
    if not pts or first is None or not first.is_keyframe:
        return None
    order = sorted(pts)
    if len(set(order)) != len(order) or order[0] != int(first.pts):  # repeated, or frames before the first keyframe
        return None
    if stream.frames and int(stream.frames) != len(order):  # the header and the packets disagree
        return None
    return order, sorted(keys)


def _decode_seeking(container, stream, wanted: list[int], threads: int) -> Decoded | None:
    """The wanted frames decoded from the keyframe before each; None where the sequential path
    must decide (see the module docstring).

    After each seek, decoding must show the frames in the order the index predicts: the first
    keyframe it gives is some frame ``a`` of the index (at or before the wanted one), and every
    frame after it carries exactly the timestamp of frame ``a + 1``, ``a + 2``, ... So the frame
    returned as ``k`` is the ``k``-th that sequential decoding gives; a container whose
    timestamps are not presentation times (AVI's, with B-frames) fails that check and is decoded
    sequentially."""
    index = _frame_index(container, stream)
    if index is None:
        return None
    order, keys = index
    at = {t: j for j, t in enumerate(order)}
    _open_stream(stream, threads)
    out = Decoded(method="seek")
    oriented = False
    frames = None  # the decoding iterator since the last seek
    nxt = None     # index of the frame it gives next (None: no keyframe seen since the seek)
    try:
        for k in wanted:
            if k >= len(order):
                break  # past the end: absent, as from sequential decoding
            target = order[k]
            key = keys[max(0, bisect.bisect_right(keys, target) - 1)]
            if frames is None or nxt is None or nxt > k or at[key] > nxt:
                container.seek(key, stream=stream, backward=True, any_frame=False)
                frames, nxt = container.decode(stream), None
            for frame in frames:
                if frame.pts is None:
                    raise _SeekFailed
                pts = int(frame.pts)
                if nxt is None:  # frames before the first keyframe (an open GOP's leading ones) are skipped
                    j = at.get(pts)
                    if j is None or j > k:
                        raise _SeekFailed  # landed after the wanted frame, or a timestamp not in the index
                    if not frame.key_frame:
                        continue
                    nxt = j
                if nxt >= len(order) or pts != order[nxt]:
                    raise _SeekFailed  # not in presentation order: the timestamps cannot be trusted
                nxt += 1
                if pts == target:
                    if not oriented:
                        out.rotation, out.flip = _frame_orientation(frame, stream)
                        oriented = True
                    out.frames[k] = upright(frame.to_ndarray(format="rgb24"), out.rotation, out.flip)
                    break
            else:
                raise _SeekFailed  # the stream ended before it
    except _SeekFailed:
        return None
    return out
