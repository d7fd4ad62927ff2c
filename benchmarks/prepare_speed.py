"""Speed of `fasbench data prepare` on a realistic video: per core, split into start-up, decoding
and detection, before and after seeking to the sampled frames and batching MTCNN.

The video: 720x480, 300 frames (10 s at 30 fps), H.264 (libx264, B-frames, ~2 Mbit/s) with a
keyframe every ``--gop`` frames, scikit-image's astronaut moving over a noisy gradient
(``--size 1920x1080 --frames 150``: an OULU-NPU-like one). The preparation keeps 2 frames per
video (SSDG sampling: frames 6 and 6 + n // 2). Measured:

- ``startup_s``: a fresh interpreter importing the preparation code and loading MTCNN (what each
  pool worker pays once), in a subprocess;
- per video, on one core (one torch thread, one decoder thread), the phases of
  :func:`fasbench.data.prepare.run_video` (the function each worker runs per video), timed
  inside it with ``time.perf_counter``: ``decode`` (open, find/seek, decode, RGB, turn upright),
  ``detect`` (downscale + MTCNN), ``crop``; ``before``: sequential decoding and one MTCNN call
  per frame (the old path), ``after``: seeking and one batch per video;
- ``end_to_end``: :func:`fasbench.data.prepare.prepare` on ``--videos`` links to the file with
  ``--workers`` processes (spawn pool, start-up included), in a scratch cache; with
  ``--sequential`` its workers decode sequentially (``FASBENCH_DECODE_SEEK=0``).

    python benchmarks/prepare_speed.py [--videos 16] [--workers 2] [--gop 30] [--size 720x480] [--frames 300]
                                       [--repeats 8] [--sequential]

Prints a summary, then one JSON object on the last line (``extrapolation``: MICO's ~7,000
videos on 8 cores without a GPU, from the per-core figure).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MICO_VIDEOS = 7000


def make_video(path: Path, w: int = 720, h: int = 480, n: int = 300, gop: int = 30, fps: int = 30) -> Path:
    import av
    from PIL import Image
    from skimage import data

    side = h * 13 // 24  # the face region: 260 px of a 480-line frame
    face = np.asarray(Image.fromarray(data.astronaut()).resize((side, side), Image.BILINEAR))
    yy, xx = np.mgrid[0:h, 0:w]
    bg = np.stack([xx * 255 // w, yy * 255 // h, np.full_like(xx, 120)], -1).astype(np.int16)
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.codec_context.gop_size = gop
        s.bit_rate = 2_000_000
        if s.codec_context.name == "libx264":
            s.options = {"preset": "veryfast"}
        for k in range(n):
            f = (bg + rng.integers(-8, 9, (h, w, 1), dtype=np.int16)).clip(0, 255).astype(np.uint8)  # sensor noise
            x = int((w - side) / 2 + (w - side - 40) / 2 * np.sin(k / 25))
            y = int((h - side) / 2 + (h - side - 20) / 2 * np.cos(k / 40))
            f[y:y + side, x:x + side] = face
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


STARTUP = """
import time, json
t0 = time.perf_counter()
import torch
torch.set_num_threads(1)
from fasbench.data import faces
from fasbench.data.prepare import PrepConfig, process_video  # noqa: F401
cfg = PrepConfig.from_mapping()
t1 = time.perf_counter()
faces.detector(cfg.face.min_face)
t2 = time.perf_counter()
print(json.dumps({"imports_s": t1 - t0, "detector_s": t2 - t1, "device": faces.detect_device()}))
"""


def startup() -> dict:
    out = subprocess.run([sys.executable, "-c", STARTUP], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def phases(path: Path, n_frames: int, repeats: int, *, seek: bool, batch: bool) -> dict:
    from fasbench.data.prepare import PrepConfig, run_video

    cfg = PrepConfig.from_mapping()
    run_video(str(path), n_frames, 2, cfg, seek=seek, batch=batch, threads=1)  # warm-up (first MTCNN call)
    per = []
    for _ in range(repeats):
        t: dict[str, float] = {}
        t0 = time.perf_counter()
        rec = run_video(str(path), n_frames, 2, cfg, seek=seek, batch=batch, threads=1, timings=t)
        t["total"] = time.perf_counter() - t0
        assert rec["status"] == "ok", rec
        per.append(t)
    res = {k: statistics.median(p[k] for p in per) for k in ("decode", "detect", "crop", "total")}
    res["faces"], res["sampled"] = rec["faces"], rec["sampled"]
    return res


def end_to_end(path: Path, n_frames: int, videos: int, workers: int, sequential: bool) -> dict:
    import pandas as pd

    from fasbench.data.prepare import PrepConfig, prepare

    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "root"
        root.mkdir()
        names = []
        for i in range(videos):
            (root / f"v{i:04d}.mp4").symlink_to(path)
            names.append(f"v{i:04d}.mp4")
        df = pd.DataFrame({"dataset": "bench", "path": names, "n_frames": n_frames, "error": ""})
        old = os.environ.get("FASBENCH_DECODE_SEEK")
        if sequential:
            os.environ["FASBENCH_DECODE_SEEK"] = "0"  # the spawned workers inherit it
        stamps: list[float] = []
        try:
            t0 = time.perf_counter()
            p = prepare(df, root, PrepConfig.from_mapping(), Path(d) / "cache", workers=workers, progress=False,
                        on_video=lambda rec: stamps.append(time.perf_counter() - t0))
            wall = time.perf_counter() - t0
        finally:
            if sequential:
                if old is None:
                    os.environ.pop("FASBENCH_DECODE_SEEK", None)
                else:
                    os.environ["FASBENCH_DECODE_SEEK"] = old
        assert p.summary["prepared"] == videos, p.summary
        # steady state: from the moment every worker has delivered its first video to the last video
        w = min(workers, videos)
        steady = (videos - w) / max(1e-9, stamps[-1] - stamps[w - 1]) / w if videos > w else None
        return {"videos": videos, "workers": workers, "wall_s": wall, "first_video_s": stamps[0],
                "last_video_s": stamps[-1], "faces_found": p.summary["faces_found"],
                "decode": "sequential" if sequential else "seek", "steady_videos_per_s_per_worker": steady}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=16, help="videos in the end-to-end preparation")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--gop", type=int, default=30)
    ap.add_argument("--size", default="720x480", help="WxH of the generated video (OULU-NPU's is 1920x1080)")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=8, help="videos timed per phase measurement")
    ap.add_argument("--sequential", action="store_true", help="end-to-end with the old, sequential decoding")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from fasbench.data.video import decode, probe_frames

    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        w, h = (int(v) for v in args.size.lower().split("x"))
        path = make_video(Path(d) / "face.mp4", w=w, h=h, n=args.frames, gop=args.gop)
        gen_s = time.perf_counter() - t
        n = probe_frames(path)
        assert decode(path, [6, 6 + n // 2]).method == "seek"
        st = startup()
        before = phases(path, n, args.repeats, seek=False, batch=False)
        after = phases(path, n, args.repeats, seek=True, batch=True)
        e2e = end_to_end(path, n, args.videos, args.workers, args.sequential)

    boot = st["imports_s"] + st["detector_s"]
    per_core = after["total"]
    result = {
        "video": {"size": args.size, "frames": n, "codec": "h264", "gop": args.gop, "generated_s": round(gen_s, 2)},
        "device": st["device"], "cpu_count": os.cpu_count(),
        "startup_s": {"imports": round(st["imports_s"], 3), "detector": round(st["detector_s"], 3), "total": round(boot, 3)},
        "per_video_one_core_s": {
            "before": {k: round(v, 4) for k, v in before.items() if k not in ("faces", "sampled")},
            "after": {k: round(v, 4) for k, v in after.items() if k not in ("faces", "sampled")},
        },
        "speedup": round(before["total"] / after["total"], 2),
        "videos_per_s_per_core": round(1.0 / per_core, 2),
        "end_to_end": {**{k: (round(v, 3) if isinstance(v, float) else v) for k, v in e2e.items()},
                       "videos_per_s_per_worker": round(e2e["videos"] / e2e["wall_s"] / e2e["workers"], 3)},
        "extrapolation": {"videos": MICO_VIDEOS, "cores": 8, "gpu": False,
                          "minutes": round((MICO_VIDEOS * per_core / 8 + boot) / 60, 1),
                          "minutes_before": round((MICO_VIDEOS * before["total"] / 8 + boot) / 60, 1)},
    }
    b, a = before, after
    print(f"video: {args.size}, {n} frames, H.264 GOP {args.gop}; sampled {a['sampled']}, faces {a['faces']}/2")
    print(f"start-up per worker: {st['imports_s']:.2f} s imports + {st['detector_s']:.2f} s MTCNN load ({st['device']})")
    print(f"per video, one core: before {b['total']:.3f} s (decode {b['decode']:.3f}, detect {b['detect']:.3f}, crop {b['crop']:.3f})")
    print(f"                      after  {a['total']:.3f} s (decode {a['decode']:.3f}, detect {a['detect']:.3f}, crop {a['crop']:.3f})"
          f"  -> {1 / a['total']:.2f} videos/s/core")
    sv = e2e["steady_videos_per_s_per_worker"]
    print(f"end to end: {e2e['videos']} videos, {e2e['workers']} workers ({e2e['decode']}): {e2e['wall_s']:.2f} s wall "
          f"(first video after {e2e['first_video_s']:.2f} s, last after {e2e['last_video_s']:.2f} s), "
          f"{result['end_to_end']['videos_per_s_per_worker']} videos/s/worker overall"
          + (f", {sv:.2f} once started" if sv else ""))
    print(f"MICO (~{MICO_VIDEOS} videos), 8 cores, no GPU: {result['extrapolation']['minutes']} min "
          f"(before: {result['extrapolation']['minutes_before']} min)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
