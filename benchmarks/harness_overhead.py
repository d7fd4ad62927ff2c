"""Harness overhead: steps/s of the fasbench ERM training loop vs a hand-written PyTorch loop.

Same model (timm resnet18 + 2-way head), same batch size and input size, same synthetic
frames, same optimiser. The hand-written loop is the minimum a careful user would write:
random indices, uint8 gather, crop + flip + normalise, forward, cross-entropy, backward,
step. fasbench adds balanced sampling, the DataLoader, batched augmentation, the named-loss
dict, the LR schedule, logging and the progress bar. Measurements alternate between the two
loops and the best of ``--repeats`` is kept for each, to be fair to both under noise.

    python benchmarks/harness_overhead.py [--steps 40] [--repeats 3] [--batch-size 32]

Prints a summary, then one JSON object on the last line (``ratio`` = fasbench / hand-written).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F


def hand_written(images: np.ndarray, labels: np.ndarray, rows: np.ndarray, steps: int, batch: int, crop: int) -> float:
    import timm

    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False, num_classes=2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=5e-4)
    mean = torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1)
    std = torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1)
    rng = np.random.default_rng(0)
    model.train()
    h = images.shape[1]
    off = (h - crop) // 2

    def step() -> None:
        idx = np.sort(rng.choice(rows, size=batch, replace=False))
        x = torch.from_numpy(images[idx][:, off:off + crop, off:off + crop]).permute(0, 3, 1, 2).float().div_(255)
        if rng.random() < 0.5:
            x = x.flip(3)
        x = (x - mean) / std
        y = torch.from_numpy(labels[idx])
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    # timed from the first step, like the fasbench loop (both pay the same cold start)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - t)


def fasbench_loop(cfg, protocol, task, frames, steps: int, out: str) -> float:
    from fasbench.engine.trainer import TaskRunner

    cfg.trainer.max_steps = steps
    runner = TaskRunner(cfg, protocol, task, frames, os.path.join(out, "run"), progress=True)
    rec = runner.run()  # the record times the training loop apart from model building and evaluation
    t = rec["timings"]
    return t["steps_this_session"] / t["train_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()

    from fasbench import config, plugins
    from fasbench.engine.run import resolve_protocol

    cfg = config.compose(["method=erm", "augment=default", f"trainer.batch_size={args.batch_size}",
                          "trainer.eval_every=0", "trainer.checkpoint_every=0", "trainer.log_every=10",
                          "optim.warmup_steps=0", "device=cpu"])
    protocol, _ = resolve_protocol("MICO")
    task = protocol.tasks[0]
    frames = plugins.registry("datasets").get("synthetic").build(cfg.data, progress=False)
    rows = frames.select(task.sources, ("train",))
    images = np.ascontiguousarray(frames.images)
    labels = frames.manifest["label"].to_numpy(dtype=np.int64)
    crop = int(cfg.data.crop_size)

    fb, hw = [], []
    with tempfile.TemporaryDirectory() as out:
        for r in range(args.repeats):
            hw.append(hand_written(images, labels, rows, args.steps, args.batch_size, crop))
            fb.append(fasbench_loop(cfg.copy(), protocol, task, frames, args.steps, out))
            print(f"repeat {r}: hand-written {hw[-1]:.3f} steps/s, fasbench {fb[-1]:.3f} steps/s")
    result = {
        "benchmark": "harness_overhead",
        "model": "resnet18",
        "batch_size": args.batch_size,
        "input_px": crop,
        "steps": args.steps,
        "repeats": args.repeats,
        "torch_threads": torch.get_num_threads(),
        "handwritten_steps_per_s": round(max(hw), 4),
        "fasbench_steps_per_s": round(max(fb), 4),
        "ratio": round(max(fb) / max(hw), 4),
    }
    print(f"fasbench / hand-written steps/s = {result['ratio']:.3f} (target >= 0.95)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
