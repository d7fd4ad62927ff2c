"""Reading videos (PyAV) and still images (Pillow) as uint8 RGB frames."""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

#: File name endings read as still images (one frame); anything else is decoded as a video.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def is_image(path: str | Path) -> bool:
    return str(path).lower().endswith(IMAGE_SUFFIXES)


class VideoError(Exception):
    """A video or image that cannot be read (the message says why)."""


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


def read_frames(path: str | Path, indices: Iterable[int]) -> dict[int, np.ndarray]:
    """Decode the frames at ``indices`` (0-based) as uint8 ``(H, W, 3)`` RGB arrays.

    Decodes sequentially and stops after the last wanted frame. Frames past the end of the
    video are absent from the result (the caller decides what to do about them).
    """
    wanted = sorted(set(int(i) for i in indices))
    if not wanted:
        return {}
    if is_image(path):
        from PIL import Image

        try:
            with Image.open(path) as im:
                arr = np.asarray(im.convert("RGB"))
        except Exception as exc:
            raise VideoError(f"{type(exc).__name__}: {exc}") from None
        return {i: arr for i in wanted if i == 0}
    import av

    out: dict[int, np.ndarray] = {}
    last = wanted[-1]
    want = set(wanted)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError("no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for k, frame in enumerate(container.decode(stream)):
                if k in want:
                    out[k] = frame.to_ndarray(format="rgb24")
                if k >= last:
                    break
    except VideoError:
        raise
    except Exception as exc:
        if not out:
            raise VideoError(f"{type(exc).__name__}: {exc}") from None
        # a stream damaged near its end: keep what decoded, the caller sees the gap
    return out
