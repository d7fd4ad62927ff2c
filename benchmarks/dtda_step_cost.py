"""Training-step cost of DTDA (and its parts) relative to ERM, on the same batch.

Every method is built as ``fasbench run`` builds it (same student, same synthetic-world
teachers, same optimiser) and timed on one fixed, preprocessed batch of the MICO task
OCI->M: ``training_step`` + backward + optimiser step. Methods alternate within each repeat
and the best of ``--repeats`` is kept per method, to be fair under noise.

    python benchmarks/dtda_step_cost.py [--steps 10] [--repeats 3] [--batch-size 24] [--device cpu]

Prints a table, then one JSON object on the last line (``ratio`` = seconds per step / ERM's).
Target: DTDA <= 2.5x ERM on a CPU.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

METHODS = ("erm", "dat", "daa", "dtda-no-daa", "dtda-perceptual", "dtda-generative", "dtda")


def build(name: str, overrides: list[str], frames, task, device):
    from fasbench import config
    from fasbench.api import Context

    cfg = config.compose([f"method={name}", *overrides])
    torch.manual_seed(0)
    ctx = Context(cfg=cfg, domains=list(task.sources), device=device)
    method = ctx.build_method().to(device)
    from timm.optim import create_optimizer_v2

    opt = create_optimizer_v2(method.param_groups(), opt=str(cfg.optim.name), lr=float(cfg.optim.lr),
                              weight_decay=float(cfg.optim.weight_decay))
    return cfg, method, opt


def time_steps(method, opt, batch, steps: int, device) -> float:
    method.train()

    def one():
        losses = method.training_step(batch)
        opt.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        opt.step()

    one()  # warm-up (allocations, lazy init)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        one()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=24)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--methods", default=",".join(METHODS))
    args = ap.parse_args()

    from fasbench import config, plugins
    from fasbench.data.loader import FrameDataset, Preprocess
    from fasbench.engine.run import resolve_protocol

    device = torch.device(args.device)
    names = [m.strip() for m in args.methods.split(",") if m.strip()]
    overrides = [f"trainer.batch_size={args.batch_size}", f"device={args.device}"]
    base = config.compose(["method=erm", *overrides])
    protocol, _ = resolve_protocol("MICO")
    task = protocol.tasks[0]
    frames = plugins.registry("datasets").get("synthetic").build(base.data, progress=False)
    rows = frames.select(task.sources, ("train",))[:: max(1, len(frames) // 4096)][: args.batch_size]
    raw = FrameDataset(frames, {d: i for i, d in enumerate(task.sources)}).__getitems__(rows.tolist())

    built = {}
    for name in names:
        cfg, method, opt = build(name, overrides, frames, task, device)
        pre = Preprocess(int(cfg.data.crop_size))  # RGB in [0, 1]: the student normalises itself
        gen = torch.Generator().manual_seed(0)
        batch = {"image": pre(raw["image"], device, train=True, generator=gen),
                 "label": raw["label"].to(device), "domain": raw["domain"].to(device)}
        built[name] = (method, opt, batch)

    best: dict[str, float] = {}
    for r in range(args.repeats):
        for name in names:
            method, opt, batch = built[name]
            sec = time_steps(method, opt, batch, args.steps, device)
            best[name] = min(best.get(name, float("inf")), sec)
        print(f"repeat {r}: " + ", ".join(f"{n} {best[n]:.3f}s" for n in names))
    ref = best.get("erm", next(iter(best.values())))
    print(f"\n{'method':18s} {'s/step':>8s} {'x ERM':>7s}")
    for n in names:
        print(f"{n:18s} {best[n]:8.3f} {best[n] / ref:7.2f}")
    result = {
        "benchmark": "dtda_step_cost", "device": str(device), "batch_size": args.batch_size,
        "input_px": int(base.data.crop_size), "steps": args.steps, "repeats": args.repeats,
        "torch_threads": torch.get_num_threads(),
        "seconds_per_step": {n: round(best[n], 4) for n in names},
        "ratio": {n: round(best[n] / ref, 3) for n in names},
    }
    if "dtda" in best:
        print(f"DTDA / ERM step cost = {result['ratio']['dtda']:.2f} (target <= 2.5 on a CPU)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
