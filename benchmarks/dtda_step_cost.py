"""Training-step cost of DTDA (and its parts) relative to ERM, on the same batch.

Every method is built as ``fasbench run`` builds it (same student, same synthetic-world
teachers, same optimiser) and timed on one fixed, preprocessed batch of the MICO task
OCI->M: ``training_step`` + backward + optimiser step. Methods alternate within each repeat
and the best of ``--repeats`` is kept per method, to be fair under noise.

    python benchmarks/dtda_step_cost.py [--steps 10] [--repeats 3] [--batch-size 24] [--device cpu]

Prints a table, then one JSON object on the last line (``ratio`` = seconds per step / ERM's).
Target: DTDA <= 2.5x ERM on a CPU.

``--real-size``: the real-data setting with the real architectures, random weights (nothing
downloaded): ResNet-18 student on 224-px crops (``data.crop_size`` of real data), IR-101
(``fasbench_dtda.iresnet``, 112 px) and the LDM CelebA-HQ VQ-f4 encoder (``fasbench_dtda.vq``,
diffusers' blocks, 256 px), built through the harness as ``fasbench run dtda --data real`` builds
them (weights from ``file:`` safetensors of random weights). Reports FLOPs per image
(``torch.utils.flop_counter.FlopCounterMode``: matmuls and convolutions, forward and backward) and
CPU seconds per step for ERM and DTDA, the breakdown per part (DAA attack, each teacher, the rest:
student forward/backward on perturbed and clean images, projectors, domain classifier) and the
cost knobs: generative input size, generative tap, ``method.teacher_every``::

    OMP_NUM_THREADS=2 python benchmarks/dtda_step_cost.py --real-size [--batch-size 4] [--repeats 1]
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
    ap.add_argument("--batch-size", type=int, default=None, help="default 24; 4 with --real-size")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--real-size", action="store_true", help="real architectures at real-data sizes, random weights")
    ap.add_argument("--flops-only", action="store_true", help="--real-size: FLOPs only, no timing")
    ap.add_argument("--taps", default="mid,down2,down1,down0", help="--real-size: generative taps to cost")
    ap.add_argument("--gen-sizes", default="256,224,128", help="--real-size: generative input sizes to cost")
    ap.add_argument("--every", default="1,2,4,8", help="--real-size: teacher_every values to cost")
    ap.add_argument("--attack-steps", default="1,2", help="--real-size: other DAA step counts to cost")
    ap.add_argument("--time-teachers", default="128:down1",
                    help="--real-size: generative size:tap settings to time on the CPU (IR-101 is always timed; "
                         "256:mid takes minutes on a small CPU)")
    ap.add_argument("--default", default="real",
                    help="--real-size: also measure a full DTDA step: 'real' (default) composes it on data=real, "
                         "which takes the plugin's real-data defaults; or comma-separated key=value overrides on "
                         "the synthetic config (e.g. method.teacher_every=4,method.teachers.generative.input_size=128); "
                         "'' skips it")
    args = ap.parse_args()
    if not args.real_size:
        args.batch_size = args.batch_size or 24
    if args.real_size:
        args.batch_size = args.batch_size or 4
        real_size(args)
        return

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


# ----------------------------------------------------------------------------------- --real-size
REAL_CROP = 224  # data.crop_size of real data (fasbench.data.real_options)


def _random_weights(folder) -> dict[str, str]:
    """Random-weight safetensors of the real teachers (IR-101, LDM VQ-f4 encoder): ``file:`` URIs."""
    from pathlib import Path

    from safetensors.torch import save_file

    from fasbench_dtda.iresnet import IResNet
    from fasbench_dtda.vq import LDM_CELEBAHQ_VQ_CONFIG, VQEncoder

    folder = Path(folder)
    torch.manual_seed(0)
    ir = IResNet(depth=100)  # IR-101 at 112 px, 512-d (CVLFace layout)
    save_file({k: v.contiguous() for k, v in ir.state_dict().items()}, str(folder / "ir101.safetensors"))
    vq = VQEncoder(LDM_CELEBAHQ_VQ_CONFIG)  # encoder + quant_conv of the VQModel, 256 px
    save_file({k: v.contiguous() for k, v in vq.state_dict().items()}, str(folder / "vq.safetensors"))
    return {"perceptual": f"file:{folder / 'ir101.safetensors'}", "generative": f"file:{folder / 'vq.safetensors'}"}


def _flops(fn) -> tuple[float, object]:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        out = fn()
    return float(fc.get_total_flops()), out


def _seconds(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _teacher_flops(role: str, size: int, tap: str) -> float:
    """FLOPs per image of one real teacher forward up to ``tap``, counted on the meta device
    (shapes only, no arithmetic: exact for convolutions and matmuls, instant)."""
    from fasbench_dtda.iresnet import IResNet
    from fasbench_dtda.vq import LDM_CELEBAHQ_VQ_CONFIG, VQEncoder

    with torch.device("meta"):
        net = IResNet(depth=100).eval() if role == "perceptual" else VQEncoder(LDM_CELEBAHQ_VQ_CONFIG).eval()
        x = torch.empty(1, 3, size, size)
    with torch.no_grad():
        f, _ = _flops(lambda: net.forward_features(x) if role == "perceptual" else net.forward_features(x, names=[tap]))
    return f


def real_size(args) -> None:
    import os
    import shutil
    import sys
    import tempfile

    from fasbench import config
    from fasbench.api import Context

    b, timing = args.batch_size, not args.flops_only
    tmp = tempfile.mkdtemp(prefix="dtda-real-size-")
    uris = _random_weights(tmp)
    base = [f"trainer.batch_size={b}", "device=cpu", "data.image_size=256", f"data.crop_size={REAL_CROP}"]
    # data=real: the real datasets' own crop (224) and the methods' real-data defaults; no data is read
    real_base = [f"trainer.batch_size={b}", "device=cpu", "data=real", f"data.crop_size={REAL_CROP}"]
    weights = [f"method.teachers.{r}.weights={u}" for r, u in uris.items()]
    domains = ["O", "C", "I"]
    g = torch.Generator().manual_seed(0)
    batch = {"image": torch.rand(b, 3, REAL_CROP, REAL_CROP, generator=g), "label": torch.arange(b) % 2,
             "domain": torch.arange(b) % len(domains)}

    composed = {}  # the last built method's composed options

    def build(name: str, extra=(), on_real: bool = False):
        # stop_kl=0: the attack takes all its steps (its early stop only lowers the cost: an upper bound)
        aligner = ["method.aligner.stop_kl=0"] if name in ("dtda", "daa") else []
        cfg = config.compose([f"method={name}", *(real_base if on_real else base),
                              *(weights if name.startswith("dtda") else []), *aligner, *extra])
        composed["method"] = cfg.method
        torch.manual_seed(0)
        method = Context(cfg=cfg, domains=domains).build_method()
        method.train()
        return method

    def step_fn(method):
        def one():
            losses = method.training_step(dict(batch))
            sum(losses.values()).backward()
            method.zero_grad(set_to_none=True)
        return one

    rows: dict[str, dict[str, float]] = {}

    def show(label, row):
        rows[label] = row
        print(f"{label:62s} {row['gflop_per_image']:8.2f} GFLOP/img" +
              (f" {row['seconds_per_step']:8.2f} s/step (batch {b})" if "seconds_per_step" in row else ""), flush=True)
        return row

    def measure(label: str, fn, per_steps: int = 1, time_it: bool = True) -> dict[str, float]:
        t0 = time.perf_counter()
        f, _ = _flops(fn)  # with --repeats 1 this run is also the timed one (no warm-up: minutes saved)
        sec = time.perf_counter() - t0
        row = {"gflop_per_image": round(f / b / per_steps / 1e9, 2)}
        if timing and time_it:
            if args.repeats > 1:
                sec = _seconds(fn, args.repeats)
            row["seconds_per_step"] = round(sec / per_steps, 3)
        return show(label, row)

    print(f"real size: student resnet18 at {REAL_CROP} px, IR-101 at 112 px, LDM VQ-f4 encoder; batch {b}, "
          f"{torch.get_num_threads()} threads, load {os.getloadavg()[0]:.1f}", flush=True)
    erm = measure("erm: step (student fwd+bwd)", step_fn(build("erm")))
    daa = build("daa")  # dtda's student side without teachers: attack + ce + ce_clean + domain classifier
    steps = int(getattr(daa.aligner, "steps", 0))
    no_teachers = measure(f"dtda without teachers (= daa step, {steps} attack steps)", step_fn(daa))
    attack = measure(f"  part: DAA attack, {steps} steps", lambda: daa.aligner(dict(batch), daa.student))
    show("  part: rest (student fwd+bwd on perturbed and clean, domain classifier)",
         {k: round(no_teachers[k] - attack[k], 3) for k in no_teachers})
    for s in [int(v) for v in args.attack_steps.split(",") if v]:
        if s != steps:
            m = build("daa", [f"method.aligner.steps={s}"])
            measure(f"  DAA attack with {s} step(s)", lambda m=m: m.aligner(dict(batch), m.student))
    # teachers: FLOPs on the meta device; CPU time of the real (random-weight) teacher built by the harness
    teach: dict[tuple[str, int, str], dict[str, float]] = {}
    timed = {tuple(v.split(":")) for v in args.time_teachers.split(",") if v}

    def teacher_row(role, size, tap, extra=()):
        row = {"gflop_per_image": round(_teacher_flops(role, size, tap) / 1e9, 2)}
        if timing and (role == "perceptual" or (str(size), tap) in timed):
            m = build("dtda-no-daa", [f"method.teachers.{'generative' if role == 'perceptual' else 'perceptual'}.enabled=false",
                                      *extra])
            t = m.teachers[role]
            with torch.no_grad():
                row["seconds_per_step"] = round(_seconds(lambda: t.features(batch["image"], names=(tap,)),
                                                         max(1, args.repeats)), 3)
        label = f"  teacher: {'IR-101' if role == 'perceptual' else 'VQ-f4 encoder'} at {size} px, tap {tap}"
        teach[(role, size, tap)] = show(label, row)

    teacher_row("perceptual", 112, "embedding")
    for size in [int(v) for v in args.gen_sizes.split(",") if v]:
        for tap in [t for t in args.taps.split(",") if t]:
            teacher_row("generative", size, tap, [f"method.teachers.generative.input_size={size}",
                                                  f"method.teachers.generative.teacher_feature={tap}"])
    keys = ["gflop_per_image"] + (["seconds_per_step"] if timing else [])
    published = {k: no_teachers[k] + teach[("perceptual", 112, "embedding")][k] + teach[("generative", 256, "mid")][k]
                 for k in keys if all(k in r for r in (teach[("perceptual", 112, "embedding")], teach[("generative", 256, "mid")]))}
    table = []
    every = [int(v) for v in args.every.split(",") if v]
    print("\nDTDA step / ERM step in FLOPs, composed: (dtda without teachers + (IR-101 + VQ encoder) / teacher_every) / erm")
    print(f"{'generative size, tap':22s} " + " ".join(f"{'every ' + str(k):>9s}" for k in every))
    arc = teach[("perceptual", 112, "embedding")]
    for (role, size, tap), gp in teach.items():
        if role != "generative":
            continue
        cells = []
        for k in every:
            r = {key: (no_teachers[key] + (arc[key] + gp[key]) / k) / erm[key] for key in keys if key in gp and key in arc}
            table.append({"generative_input_size": size, "generative_tap": tap, "teacher_every": k,
                          **{f"ratio_{key}": round(v, 2) for key, v in r.items()}})
            cells.append(f"{r['gflop_per_image']:9.2f}")
        print(f"{str(size) + ' px, ' + tap:22s} " + " ".join(cells))
    print(f"without teachers: {no_teachers['gflop_per_image'] / erm['gflop_per_image']:.2f}x ERM FLOPs; published "
          f"sizes, every step: {published['gflop_per_image'] / erm['gflop_per_image']:.2f}x", flush=True)
    chosen = None
    if args.default:
        on_real = args.default == "real"
        extra = [] if on_real else [o for o in args.default.split(",") if o]
        m = build("dtda", extra, on_real=on_real)
        k = int(m.teacher_every)
        gen = composed["method"].teachers.generative
        label = "the real-data defaults" if on_real else " ".join(extra)
        chosen = measure(f"dtda ({label}): mean step over {k}", lambda: [step_fn(m)() for _ in range(k)], k)
        chosen = {"overrides": ["data=real"] if on_real else extra, "teacher_every": k,
                  "generative_input_size": gen.input_size, "generative_tap": gen.teacher_feature,
                  **chosen, **{f"ratio_{key}": round(chosen[key] / erm[key], 2) for key in keys if key in chosen}}
        print(f"measured: {chosen}")
    result = {
        "benchmark": "dtda_step_cost", "mode": "real-size", "device": "cpu", "batch_size": b,
        "torch_threads": torch.get_num_threads(), "load_average_1min": round(os.getloadavg()[0], 1),
        "student": f"resnet18 at {REAL_CROP} px", "attack": f"{steps} steps, stop_kl=0 (upper bound)",
        "python": sys.version.split()[0], "torch": torch.__version__, "parts": rows, "composed": table,
        "ratio_without_teachers": {k: round(no_teachers[k] / erm[k], 2) for k in keys},
        "ratio_published": {k: round(v / erm[k], 2) for k, v in published.items()}, "measured_default": chosen,
    }
    shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
