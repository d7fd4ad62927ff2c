"""Cost of a crash-safe checkpoint: writing and verifying one for ERM with a resnet18 student.

A checkpoint (fasbench/engine/checkpoint.py) is a folder written whole: weights + loop state
(Adam moments, every random state), each file fsynced, a manifest with both files' sha256,
the folder renamed into place. This measures, for the real model size:

- ``save_s``: one :func:`checkpoint.save` (write, fsync, hash, rename, prune);
- ``plain_s``: the same two files written with ``torch.save``/``save_model`` and no fsync,
  no hashing (what a naive writer pays);
- ``load_s``: :func:`checkpoint.latest` (verify sizes and sha256, read the state, load weights);
- ``bytes``: the folder's size, and the disk estimate the pre-flight check asks for.

    python benchmarks/checkpoint_cost.py [--repeats 5]

Prints a summary, then one JSON object on the last line.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    from safetensors.torch import save_model

    from fasbench import config
    from fasbench.api import Context
    from fasbench.engine import checkpoint as ckpt
    from fasbench.engine import rng

    cfg = config.compose(["method=erm"])
    method = Context(cfg=cfg, domains=["M", "C", "I"], device=torch.device("cpu")).build_method()
    opt = torch.optim.Adam(method.parameters(), lr=1e-3)
    x = torch.rand(4, 3, 112, 112)
    method.train()
    loss = sum(method.training_step({"image": x, "label": torch.tensor([0, 1, 0, 1]), "domain": torch.tensor([0, 1, 2, 0])}).values())
    loss.backward()
    opt.step()  # Adam's moments exist now, as in a real checkpoint

    def state(step: int) -> dict:
        return {"step": step, "optimizer": opt.state_dict(), "rng": rng.capture(method), "history": [],
                "best": {"score": None, "step": None}}

    save_s, plain_s, load_s = [], [], []
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        for i in range(args.repeats):
            t = time.perf_counter()
            unit = ckpt.save(root / "checkpoint", method, state(i + 1))
            save_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            save_model(method, str(root / "plain.safetensors"))
            torch.save(state(i + 1), root / "plain.pt")
            plain_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            ckpt.latest(root / "checkpoint", method)
            load_s.append(time.perf_counter() - t)
        size = sum(p.stat().st_size for p in unit.iterdir())
    out = {
        "benchmark": "checkpoint_cost", "model": "erm/timm-resnet18", "repeats": args.repeats,
        "save_s": round(min(save_s), 3), "plain_s": round(min(plain_s), 3), "load_s": round(min(load_s), 3),
        "bytes": size, "estimate_bytes": ckpt.estimate_bytes(method), "threads": torch.get_num_threads(),
    }
    print(f"crash-safe save {out['save_s']:.3f} s vs plain {out['plain_s']:.3f} s; verified load {out['load_s']:.3f} s; "
          f"{size / 2**20:.1f} MiB per checkpoint (pre-flight estimate {out['estimate_bytes'] / 2**20:.1f} MiB)")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
