"""``fasbench export RUN_DIR --onnx [--out FILE]``: the run's student as an ONNX model.

The model takes ``image``: float RGB in [0, 1], NCHW, at the run's crop size
(``data.crop_size``; face crops prepared as for ``fasbench predict``, centre-cropped), with a
dynamic batch axis, and returns ``live_probability`` (batch,): the student's softmax live
probability, what the run's record was computed from. Normalisation is inside the model.

It is exported with torch's ``torch.export``-based exporter (``torch.onnx.export(...,
dynamo=True)``, the default since torch 2.9; the TorchScript exporter is deprecated and to be
removed), which needs ``onnxscript``. The file is then checked: ONNX Runtime (CPU) and PyTorch
score one batch of random images and of a different batch size; the largest absolute
difference is printed, and above ``--tolerance`` (1e-4) the export fails.

Needs the ``export`` extra: ``pip install 'fasbench[export]'`` (onnx, onnxruntime, onnxscript).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path
from typing import Any

from fasbench.errors import FasbenchError

EXTRA = "pip install 'fasbench[export]'"


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "export", help="export a run's student (ONNX), checked against PyTorch with ONNX Runtime",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a finished run directory")
    p.add_argument("--onnx", action="store_true", required=True, help="write an ONNX model (the only format)")
    p.add_argument("--out", metavar="FILE", help="output file (default: RUN_DIR/student.onnx)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    p.add_argument("--tolerance", type=float, default=1e-4, help="largest allowed |ONNX Runtime - PyTorch| (default 1e-4)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=main)


def require_export_extra() -> None:
    """One line naming the missing package and the install command."""
    for module, package in (("onnx", "onnx"), ("onnxruntime", "onnxruntime"), ("onnxscript", "onnxscript")):
        if importlib.util.find_spec(module) is None:
            raise FasbenchError(f"fasbench export --onnx needs {package}: {EXTRA}")


class LiveProbability:
    """Factory of the exported module: [0, 1] images -> live probability (built lazily: torch)."""

    @staticmethod
    def wrap(student: Any) -> Any:
        import torch

        class _Live(torch.nn.Module):
            def __init__(self, s: Any) -> None:
                super().__init__()
                self.student = s

            def forward(self, image: torch.Tensor) -> torch.Tensor:
                return self.student.logits(image).float().softmax(dim=1)[:, 1]

        return _Live(student).eval()


def export_onnx(student: Any, crop_size: int, out: Path, opset: int = 18) -> None:
    """Write ``student`` (on CPU, eval mode) to the file ``out`` as ONNX."""
    import contextlib
    import io
    import warnings

    import torch
    from torch.export import Dim

    model = LiveProbability.wrap(student.to("cpu").eval())
    example = (torch.rand(2, 3, crop_size, crop_size, generator=torch.Generator().manual_seed(0)),)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(model, example, str(out), dynamo=True, input_names=["image"],
                              output_names=["live_probability"], dynamic_shapes=({0: Dim("batch")},),
                              opset_version=opset, external_data=False, verbose=False)
        except Exception as exc:
            raise FasbenchError(f"torch.onnx.export could not export the student ({type(exc).__name__}: "
                                f"{str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''})") from None


def check_onnx(student: Any, crop_size: int, path: Path, batches: tuple[int, ...] = (4, 7)) -> float:
    """Largest |ONNX Runtime - PyTorch| over random batches (two batch sizes: the axis is dynamic)."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from fasbench.inference import live_probability

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(1)
    worst = 0.0
    for n in batches:
        x = torch.rand(n, 3, crop_size, crop_size, generator=g)
        want = live_probability(student.to("cpu").eval(), x).numpy()
        got = session.run(["live_probability"], {"image": x.numpy()})[0]
        if got.shape != want.shape:
            raise FasbenchError(f"{path}: ONNX Runtime returned shape {got.shape} for a batch of {n}, PyTorch {want.shape}")
        worst = max(worst, float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max()))
    return worst


def main(args: argparse.Namespace) -> int:
    require_export_extra()
    from fasbench.inference import load_student

    loaded = load_student(args.run_dir, "cpu")
    out = Path(args.out) if args.out else Path(loaded.record.source).parent / "student.onnx"
    if out.is_dir():
        raise FasbenchError(f"--out {out} is a folder; give a file name, e.g. {out / 'student.onnx'}")
    from fasbench.util import atomic_target

    with atomic_target(out) as tmp:  # checked before it takes the name: a failing export leaves no file
        export_onnx(loaded.student, loaded.crop_size, tmp, args.opset)
        diff = check_onnx(loaded.student, loaded.crop_size, tmp)
        ok = diff <= args.tolerance
        if not ok:
            raise FasbenchError(f"{out}: ONNX Runtime differs from PyTorch by {diff:.3g} (> {args.tolerance:g}) on random "
                                "batches; the export is not faithful and was not written: try another --opset")
    info = {"file": str(out), "bytes": out.stat().st_size, "input": {"name": "image", "shape": ["batch", 3, loaded.crop_size,
            loaded.crop_size], "range": [0, 1], "layout": "RGB NCHW"}, "output": {"name": "live_probability", "shape": ["batch"]},
            "threshold": loaded.threshold, "threshold_policy": "source-val-threshold",
            "max_abs_diff": diff, "tolerance": args.tolerance, "ok": ok, "opset": args.opset}
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"wrote {out} ({info['bytes']} bytes): input image [batch, 3, {loaded.crop_size}, {loaded.crop_size}] RGB in [0, 1], "
              f"output live_probability [batch]; decide live at >= {loaded.threshold:.6f} (the record's source-val threshold)")
        print(f"ONNX Runtime vs PyTorch on random batches of 4 and 7: max abs diff {diff:.3g} (tolerance {args.tolerance:g})")
    return 0
