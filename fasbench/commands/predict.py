"""``fasbench predict RUN_DIR FILE...``: the live probability of face images and videos under a
finished run's student, and the decision at the threshold its record chose on source data.

Each file goes the way the run's own data went (:mod:`fasbench.inference`): frames decoded
upright and sampled like preparation, MTCNN face crop with the run's margin and size (or the
whole picture with ``--no-detect``), the evaluation's centre crop and the student's
normalisation; a video's probability is the mean over its sampled frames (video-level
evaluation). The decision is ``live`` when the probability is at least the record's
source-val threshold: the EER threshold of the run's source-domain validation split, chosen
without target data (the ``source-val-threshold`` policy of the record's target numbers).

A file that cannot be scored (no face found, unreadable) is one ``fasbench: error:`` line on
stderr (in ``--json`` it is listed with its error); the exit code is then 1.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "predict", help="live probability of face images/videos under a run's trained student",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a finished run directory (runs/PROTOCOL/METHOD/TASK/seedN)")
    p.add_argument("files", nargs="+", metavar="IMAGE_OR_VIDEO", help=".jpg/.jpeg/.png/.bmp images or videos")
    p.add_argument("--json", action="store_true", help="print one JSON object (run, threshold, one entry per file)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto (MTCNN follows "
                                                    "FASBENCH_DETECT_DEVICE, else the GPU when there is one)")
    p.add_argument("--no-detect", action="store_true",
                   help="no face detection: the picture's centred square is the face crop (for files that "
                        "already are face crops, like a prepared dataset's frames)")
    p.add_argument("--frames", type=int, metavar="N",
                   help="frames sampled per video (default: the run's data preparation's frames per video)")
    p.set_defaults(func=main)


def _describe(loaded: Any) -> dict[str, Any]:
    rec = loaded.record
    saved = rec.components.student.model_extra.get("saved") or {}
    return {
        "run": str(rec.source), "method": rec.method, "protocol": rec.protocol, "task": rec.task.name,
        "seed": rec.seed, "student": rec.components.student.name,
        "weights": {"file": str(loaded.weights), "sha256": saved.get("sha256"), "step": saved.get("step")},
        "selection": {"rule": rec.selection.rule, "selected_step": rec.selection.selected_step},
        "threshold": {"value": loaded.threshold, "policy": "source-val-threshold", "data": "source-val",
                      "sources": list(rec.task.sources), "level": loaded.level,
                      "rule": "live when live_probability >= value"},
        "input": {"crop_size": loaded.crop_size, "face_crop_size": loaded.prep.face.size,
                  "margin": loaded.prep.face.margin, "align": loaded.prep.face.align,
                  "frames_per_video": loaded.prep.frames_per_video, "sampling": loaded.prep.sampling},
    }


def main(args: argparse.Namespace) -> int:
    from fasbench.errors import FasbenchError
    from fasbench.inference import load_student, score_file

    if args.frames is not None and args.frames < 1:
        raise FasbenchError(f"--frames {args.frames}: sample at least 1 frame per video")
    loaded = load_student(args.run_dir, args.device)
    thr = loaded.threshold
    results = []
    failed = 0
    if not args.json:
        rec = loaded.record
        print(f"{rec.method} on {rec.protocol} task {rec.task.name} seed {rec.seed}: {rec.components.student.name}, "
              f"step {rec.selection.selected_step} ({rec.selection.rule} selection)")
        print(f"threshold {thr:.6f}: the EER threshold of the source-val split ({'+'.join(rec.task.sources)}, "
              f"source data only, {loaded.level} level); live when the live probability >= it", flush=True)
    for path in args.files:
        r = score_file(loaded, path, detect=not args.no_detect, frames=args.frames)
        entry = {"file": r.path, "ok": r.ok}
        if r.ok:
            entry.update(live_probability=r.live_probability, decision="live" if r.live_probability >= thr else "spoof",
                         frames=r.frames, frame_probabilities=r.frame_probabilities, faces=r.faces, no_face=r.no_face,
                         fallback=r.fallback or None, detect=r.detect, rotation=r.rotation, flip=r.flip)
        else:
            failed += 1
            entry.update(error=r.error, frames=r.frames, faces=r.faces, no_face=r.no_face)
            print(f"fasbench: error: {r.path}: {r.error}", file=sys.stderr, flush=True)
        results.append(entry)
        if r.ok and not args.json:
            n = len(r.frames)
            how = "no detection" if not r.detect else f"face in {r.faces}/{n}" + (f", {r.fallback} crop for the rest"
                                                                               if r.no_face else "")
            print(f"{r.path}: live probability {r.live_probability:.4f} -> {entry['decision'].upper()} "
                  f"({n} frame{'s' if n != 1 else ''}{' averaged' if n > 1 else ''}; {how})", flush=True)
    if args.json:
        print(json.dumps({**_describe(loaded), "results": results, "failed": failed}, indent=2))
    return 1 if failed else 0
