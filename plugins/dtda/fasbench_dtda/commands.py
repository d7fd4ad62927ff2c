"""``fasbench teachers``: pretrain and inspect the synthetic-world teachers.

They are the weights behind ``dtda-synthetic:perceptual`` and ``dtda-synthetic:generative``
(the teachers' defaults on the synthetic dataset); the first resolve of either URI pretrains
them too, so this command only does it ahead of time and shows what was trained.
"""
from __future__ import annotations

import json


def add_teachers_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "teachers", help="DTDA teachers: pretrain the synthetic-world stand-ins, show where they are",
        description="Teachers for DTDA. On the synthetic world the real teachers (face recognition, face "
                    "generation) are replaced by scaled-down ones pretrained here on tasks of their own kind; "
                    "their weights URIs are dtda-synthetic:perceptual and dtda-synthetic:generative.",
    )
    sub = p.add_subparsers(dest="teachers_command", metavar="ACTION", required=True)
    pre = sub.add_parser("pretrain", help="pretrain the synthetic-world teachers (cached; a few minutes on a CPU)")
    pre.add_argument("--data", default="synthetic", help="only 'synthetic' (real data uses the published teachers)")
    pre.add_argument("--force", action="store_true", help="pretrain again even if cached")
    pre.add_argument("--cache-dir", help="cache root (default: $FASBENCH_CACHE or ~/.cache/fasbench, where "
                     "dtda-synthetic: URIs resolve; elsewhere, use the printed local-dir: URIs)")
    pre.add_argument("--no-progress", action="store_true")
    pre.add_argument("--json", action="store_true", help="print URIs, folders and metrics as JSON")
    pre.set_defaults(func=_pretrain)
    qual = sub.add_parser(
        "quality", help="measure the synthetic-world teachers: identification top-1, reconstruction PSNR (JSON)",
        description="Measures the stand-ins from their saved weights (pretraining them first if missing): "
                    "identification top-1 of the perceptual teacher (gallery: an identity's first video, probes: "
                    "its other videos) and reconstruction PSNR of the generative teacher (encoder + codebook + "
                    "decoder), on the teacher domain T's held-out identities (never trained on) and, for "
                    "information, on live faces of the benchmark domains M, C, I, O (never used in training).",
    )
    qual.add_argument("--data", default="synthetic", help="only 'synthetic'")
    qual.add_argument("--cache-dir", help="cache root (default: $FASBENCH_CACHE or ~/.cache/fasbench)")
    qual.add_argument("--benchmark-subjects", type=int, default=32,
                      help="subjects per benchmark domain in the information-only figures (default 32)")
    qual.add_argument("--no-progress", action="store_true")
    qual.set_defaults(func=_quality)


def _pretrain(args) -> int:
    from pathlib import Path

    from fasbench.errors import FasbenchError
    from fasbench_dtda.pretrain import PretrainConfig, default_root, ensure_synthetic_teachers, synthetic_uri

    if args.data != "synthetic":
        raise FasbenchError(
            f"teachers pretrain --data {args.data}: only the synthetic world has pretrained stand-ins; on real data "
            "DTDA uses the published teachers (fasbench weights pull hf-hub:minchul/cvlface_arcface_ir101_webface4m)"
        )
    dirs = ensure_synthetic_teachers(PretrainConfig(), cache_dir=args.cache_dir,
                                     progress=False if args.no_progress else None, force=args.force)
    # the dtda-synthetic: scheme resolves in the default cache root; another root needs local-dir:
    default = not args.cache_dir or Path(args.cache_dir).expanduser().resolve() == default_root().resolve()
    out = {}
    for role, folder in dirs.items():
        metrics = json.loads((folder / "pretrain.json").read_text())
        out[role] = {"uri": synthetic_uri(role) if default else f"local-dir:{folder}", "folder": str(folder),
                     "metrics": {k: v for k, v in metrics.items() if k != "recipe"}}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    for role, info in out.items():
        m = info["metrics"]
        score = (f"top-1 identification {100 * m['heldout_top1']:.1f}% over {m['heldout_identities']} held-out "
                 f"identities (trained on {m['identities']})"
                 if "heldout_top1" in m else f"held-out PSNR {m['heldout_psnr_db']:.1f} dB")
        print(f"{role:10s} {info['uri']}  ({info['folder']})\n"
              f"{'':10s} {m['task']}: {score}, {m['steps']} steps, {m['seconds']} s")
    return 0


def _quality(args) -> int:
    from fasbench.errors import FasbenchError
    from fasbench_dtda.pretrain import PretrainConfig, teacher_quality

    if args.data != "synthetic":
        raise FasbenchError(f"teachers quality --data {args.data}: only the synthetic world has stand-in teachers")
    if args.benchmark_subjects < 2:
        raise FasbenchError(f"teachers quality --benchmark-subjects {args.benchmark_subjects}: needs at least 2 "
                            "(identification among one subject means nothing)")
    out = teacher_quality(PretrainConfig(), cache_dir=args.cache_dir, benchmark_subjects=args.benchmark_subjects,
                          progress=False if args.no_progress else None)
    print(json.dumps(out, indent=2))
    return 0
