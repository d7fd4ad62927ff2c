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
        score = (f"held-out top-1 {100 * m['heldout_top1']:.1f}% over {m['identities']} identities"
                 if "heldout_top1" in m else f"held-out PSNR {m['heldout_psnr_db']:.1f} dB")
        print(f"{role:10s} {info['uri']}  ({info['folder']})\n"
              f"{'':10s} {m['task']}: {score}, {m['steps']} steps, {m['seconds']} s")
    return 0
