"""The method contract test behind ``fasbench validate`` (and the contract tests in tests/).

Runs on a tiny synthetic world in seconds and checks what the harness relies on.
"""
from __future__ import annotations

import math
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: A world small enough for seconds on a CPU: 3 domains, 6 subjects, 48 px frames.
TINY_WORLD = [
    "data.domains=MCI", "data.subjects=6", "data.dev_subjects=null", "data.test_subjects=null", "data.live_videos=1", "data.print_videos=1",
    "data.replay_videos=1", "data.frames_per_video=2", "data.image_size=48", "data.crop_size=40",
]


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


def validate_method(name: str, overrides: list[str] | None = None, out_dir: str | Path | None = None) -> list[Check]:
    """Run the contract checks for method ``name``; never raises for a failing check."""
    import torch
    from safetensors.torch import load_model, save_model

    from fasbench import config, plugins
    from fasbench.api import Context
    from fasbench.data.loader import FrameDataset, Preprocess
    from fasbench.engine.run import run_protocol

    entry = plugins.registry("methods").get(name)  # unknown: clear error, not a failed check
    cfg = config.compose([f"method={name}", "trainer=smoke", *TINY_WORLD, *(overrides or [])])
    cfg.protocol = "MC->I"
    cfg.device = "cpu"
    checks: list[Check] = []
    state: dict = {}

    def check(title: str, fn: Callable[[], str | None]) -> bool:
        try:
            detail = fn() or ""
            checks.append(Check(title, True, detail))
            return True
        except Exception as exc:  # a contract failure is a result, not a crash
            tb = traceback.extract_tb(exc.__traceback__)[-1]
            checks.append(Check(title, False, f"{type(exc).__name__}: {exc} ({Path(tb.filename).name}:{tb.lineno})"))
            return False

    def build():
        torch.manual_seed(0)
        frames = plugins.registry("datasets").get(str(cfg.data.name)).build(cfg.data, progress=False)
        ctx = Context(cfg=cfg, domains=["M", "C"])
        method = ctx.build_method()
        from fasbench.api import Method

        assert isinstance(method, Method), f"factory returned {type(method).__name__}, not a fasbench.api.Method"
        assert isinstance(getattr(method, "student", None), torch.nn.Module), "method has no .student module"
        rows = frames.select(["M", "C"], ["train"])[:12]
        ds = FrameDataset(frames, {"M": 0, "C": 1})
        b = ds.__getitems__(rows.tolist())
        pre = Preprocess(int(cfg.data.crop_size))
        state.update(method=method, ctx=ctx, batch={"image": pre(b["image"], torch.device("cpu"), train=True),
                                                      "label": b["label"], "domain": b["domain"]},
                     eval_x=pre(b["image"], torch.device("cpu"), train=False))
        comps = ", ".join(f"{k}={v['name']}" if isinstance(v, dict) else f"{k}={[t['name'] for t in v]}"
                          for k, v in ctx.components.items())
        return f"{type(method).__name__} (v{entry.version}, plugin {entry.plugin}); {comps}"

    if not check("builds from its config", build):
        return checks
    method, batch = state["method"], state["batch"]

    def losses():
        method.train()
        out = method.training_step(batch)
        assert isinstance(out, dict) and out, "training_step must return a non-empty dict"
        for k, v in out.items():
            assert isinstance(v, torch.Tensor) and v.ndim == 0, f"loss {k!r} is not a scalar tensor"
            assert math.isfinite(float(v.detach())), f"loss {k!r} is not finite: {float(v.detach())}"
        state["losses"] = out
        return ", ".join(f"{k}={float(v.detach()):.4f}" for k, v in out.items())

    def gradients():
        method.zero_grad(set_to_none=True)
        sum(state["losses"].values()).backward()
        ps = [p for p in method.student.parameters() if p.requires_grad]
        with_grad = [p for p in ps if p.grad is not None and float(p.grad.abs().sum()) > 0]
        assert with_grad, "no student parameter received a gradient"
        return f"{len(with_grad)}/{len(ps)} student tensors have a non-zero gradient"

    def frozen():
        method.train()
        frozen_mods = [m for m in method.modules() if getattr(m, "frozen", False)]
        for m in frozen_mods:
            assert not m.training, f"{type(m).__name__} is frozen but in training mode"
            bad = [n for n, p in m.named_parameters() if p.requires_grad or p.grad is not None]
            assert not bad, f"{type(m).__name__} is frozen but {bad[:3]} require or received gradients"
        return f"{len(frozen_mods)} frozen module(s)" if frozen_mods else "no frozen modules"

    def predict():
        method.eval()
        with torch.no_grad():
            p1, p2 = method.predict(state["eval_x"]), method.predict(state["eval_x"])
        assert p1.shape == (state["eval_x"].shape[0],), f"predict returned shape {tuple(p1.shape)}"
        assert float(p1.min()) >= 0 and float(p1.max()) <= 1, "predict must return live probabilities in [0, 1]"
        assert torch.equal(p1, p2), "predict is not deterministic in eval mode"
        state["pred"] = p1
        return f"scores in [{float(p1.min()):.3f}, {float(p1.max()):.3f}]"

    def roundtrip():
        with tempfile.TemporaryDirectory() as d:
            save_model(method, f"{d}/m.safetensors")
            torch.manual_seed(123)
            other = Context(cfg=cfg, domains=["M", "C"]).build_method()
            load_model(other, f"{d}/m.safetensors")
            other.eval()
            with torch.no_grad():
                p = other.predict(state["eval_x"])
        assert torch.allclose(p, state["pred"], atol=1e-6), "predictions differ after a safetensors round trip"
        return "identical predictions after save/load"

    def short_run():
        with tempfile.TemporaryDirectory() as d:
            cfg.out = str(out_dir or d)
            recs = run_protocol(cfg, progress=False, echo=lambda *_: None)
            rec = recs[0]
            blocks = {"val": rec.val, **{f"target {p}": b for p, b in rec.target.items()}}
            for where, block in blocks.items():
                for key in ("HTER", "AUC", "EER", "ACER"):
                    v = block.metrics[key]
                    assert v is not None and 0 <= v <= 100, f"{where} {key}={v} is not a percentage"
            t = rec.target
            return (f"{int(cfg.trainer.max_steps)} steps; val EER {rec.val.metrics['EER']:.1f}%; target HTER "
                    f"{t['source-val-threshold'].metrics['HTER']:.1f}% (source-val threshold), "
                    f"{t['target-eer-threshold'].metrics['HTER']:.1f}% (target-EER threshold, idealized)")

    def exact_resume():
        from fasbench.engine import checkpoint as ckpt

        def stop_after_first_checkpoint(point: str) -> None:
            if point == "pruned":
                raise KeyboardInterrupt

        with tempfile.TemporaryDirectory() as d:
            c = cfg.copy()
            c.eval.bootstrap = 0
            c.out = f"{d}/uninterrupted"
            (full,) = run_protocol(c, progress=False, echo=lambda *_: None)
            c.out = f"{d}/resumed"
            ckpt.FAULT_HOOK = stop_after_first_checkpoint
            try:
                run_protocol(c, progress=False, echo=lambda *_: None)
                raise AssertionError("the run was not interrupted at its first checkpoint (trainer.checkpoint_every)")
            except KeyboardInterrupt:  # expected: stopped by the hook right after the first checkpoint
                pass
            finally:
                ckpt.FAULT_HOOK = None
            (resumed,) = run_protocol(c, resume=True, progress=False, echo=lambda *_: None)
        at = resumed.timings["resumed_from_step"]
        assert at > 0, "the resumed run did not start from the checkpoint"
        assert resumed.scores.sha256 == full.scores.sha256, (
            f"resumed from step {at}, the scores differ from the uninterrupted run's (target HTER "
            f"{resumed.target['source-val-threshold'].metrics['HTER']:.2f} vs {full.target['source-val-threshold'].metrics['HTER']:.2f}): "
            "a random state the method uses is not saved (own generators: Method.random_state)")
        assert resumed.curve == full.curve, "the training curve differs after resuming"
        return f"stopped after step {at}, resumed: scores identical to the uninterrupted run (sha256 {full.scores.sha256[:12]})"

    check("training_step returns named finite scalar losses", losses)
    if checks[-1].ok:
        check("gradients reach the student", gradients)
    check("frozen modules stay frozen", frozen)
    check("predict gives deterministic live probabilities", predict)
    if checks[-1].ok:
        check("weights round-trip through safetensors", roundtrip)
    check("a short harness run writes a valid record", short_run)
    if checks[-1].ok:
        check("resuming from a checkpoint equals the uninterrupted run", exact_resume)
    return checks
