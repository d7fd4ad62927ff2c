"""The harness-owned loop: one task (sources -> target) of one method with one seed.

The method supplies named losses; the harness owns everything else: balanced sampling,
batched on-device augmentation, optimiser and schedule, AMP on CUDA, periodic evaluation on
the source validation split and the target, checkpoint selection, checkpoints and resume,
and the run record.

Under ``torchrun`` (:mod:`fasbench.engine.distributed`) the same loop runs in every process:
each trains on its slice of the global batch through DistributedDataParallel, and rank 0 alone
evaluates and writes (docs/distributed.md).
"""
from __future__ import annotations

import math
import os
import random
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from fasbench import plugins
from fasbench.api import Context, check_losses
from fasbench.data.frames import FrameSet
from fasbench.data.loader import FrameDataset, Preprocess, make_loader
from fasbench.data.sampler import BalancedBatchSampler
from fasbench.engine import checkpoint as ckpt
from fasbench.engine import distributed, rng
from fasbench.engine.identity import _versions, check_same_code, check_same_config, check_same_identity, code_identity, config_hash
from fasbench.engine.logs import RunLogger, parse_loggers
from fasbench.engine.scoring import encode_scores, score_rows
from fasbench.errors import FasbenchError, Interrupted
from fasbench.metrics import ScoreSet, evaluate, resolve_metrics
from fasbench.options import validate
from fasbench.protocols import Protocol, Task
from fasbench.records import SCHEMA, RunRecord, identity_of
from fasbench.settings import EvalSettings, TrainerSettings
from fasbench.util import bar_disabled


def resolve_device(name: str) -> torch.device:
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise FasbenchError(f"device={name!r} asked for CUDA but torch sees no GPU; use device=cpu or device=auto")
    return dev


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def task_splits(protocol: Protocol, cfg: DictConfig) -> dict[str, tuple[str, ...]]:
    splits = dict(protocol.splits)
    for key, value in (cfg.get("splits") or {}).items():
        if value is not None:
            splits[key] = tuple([value] if isinstance(value, str) else list(value))
    return splits


@dataclass
class TaskData:
    train: np.ndarray
    source_val: np.ndarray
    target: np.ndarray
    splits: dict[str, tuple[str, ...]] = field(default_factory=dict)


def select_task_rows(frames: FrameSet, task: Task, splits: dict[str, tuple[str, ...]]) -> TaskData:
    have = set(frames.domains)
    missing = [d for d in (*task.sources, task.target) if d not in have]
    if missing:
        raise FasbenchError(
            f"task {task.name}: domain(s) {missing} are not in the dataset (it has {sorted(have)})"
        )
    parts = {
        "source_train": frames.select(task.sources, splits["source_train"]),
        "source_val": frames.select(task.sources, splits["source_val"]),
        "target": frames.select([task.target], splits["target"]),
    }
    for key, rows in parts.items():
        doms = task.sources if key != "target" else (task.target,)
        if len(rows) == 0:
            raise FasbenchError(f"task {task.name}: no frames for {key} (domains {list(doms)}, splits {list(splits[key])})")
        labels = set(frames.manifest["label"].to_numpy()[rows].tolist())
        if labels != {0, 1}:
            raise FasbenchError(
                f"task {task.name}: {key} (domains {list(doms)}, splits {list(splits[key])}) has only "
                f"{'live' if labels == {1} else 'spoof'} frames; metrics need both classes"
            )
    return TaskData(parts["source_train"], parts["source_val"], parts["target"], splits)


def _lr_lambda(kind: str, warmup: int, total: int):
    def f(step: int) -> float:
        if warmup > 0 and step < warmup:
            return (step + 1) / warmup
        if kind == "cosine":
            p = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, p)))
        if kind == "constant":
            return 1.0
        raise FasbenchError(f"unknown schedule {kind!r}; use optim.schedule=cosine or constant")

    return f


def precision_of(device: torch.device, amp: bool) -> tuple[str, torch.dtype | None]:
    """The effective training precision (``cpu-fp32``, ``cuda-bf16``, ``cuda-fp16``, ...) and the
    autocast dtype behind it (None: no autocast). bfloat16 where the GPU computes it natively
    (not emulated: torch would report bf16 on pre-Ampere GPUs too, and run it slowly), else
    float16, whose gradients the harness scales (:func:`grad_scaler`)."""
    if not amp or device.type != "cuda":
        return f"{device.type}-fp32", None
    if torch.cuda.is_bf16_supported(including_emulation=False):
        return "cuda-bf16", torch.bfloat16
    return "cuda-fp16", torch.float16


def grad_scaler(amp_dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """Loss scaling for float16 autocast (bfloat16 has float32's range and needs none)."""
    return torch.amp.GradScaler("cuda", enabled=amp_dtype is torch.float16)


def num_workers_of(setting: int | str, device: torch.device) -> int:
    """DataLoader workers per process: ``auto`` is 0 on the CPU (the in-memory world is fastest
    read in the training process) and 2 on CUDA (batches gathered while the GPU trains)."""
    if setting in (None, "auto"):
        return 2 if device.type == "cuda" else 0
    return int(setting)


class TaskRunner:
    """Trains and evaluates one (method, task, seed) and builds its record."""

    def __init__(self, cfg: DictConfig, protocol: Protocol, task: Task, frames: FrameSet, run_dir: Path,
                 *, resume: bool = False, progress: bool = True, protocol_entry=None, dataset_entry=None,
                 data_extra: dict[str, Any] | None = None) -> None:
        self.cfg, self.protocol, self.task, self.frames = cfg, protocol, task, frames
        self.run_dir, self.resume, self.progress = Path(run_dir), resume, progress
        self.protocol_entry, self.dataset_entry = protocol_entry, dataset_entry
        self.data_extra = dict(data_extra or {})
        # typed once in fasbench.settings; checked again here for configs edited after composing
        t = validate(TrainerSettings, cfg.trainer, "trainer")
        e = validate(EvalSettings, cfg.eval, "eval")
        self.max_steps, self.eval_every = t.max_steps, t.eval_every
        self.selection = e.checkpoint
        self.metrics = resolve_metrics(e.metrics or None)  # unknown names fail before any work
        self.selection_metric = resolve_metrics([e.selection_metric])[0]
        self.n_boot, self.ci_level = e.bootstrap, e.ci_level
        self.config_dict = OmegaConf.to_container(cfg, resolve=True)
        self.config_hash = config_hash(self.config_dict)
        self._built = False

    def _build(self):
        if self._built:
            return
        cfg = self.cfg
        self.world = distributed.current()
        self.device = distributed.device_of(self.world, resolve_device(str(cfg.device)))
        self.world.check_batch(int(cfg.trainer.batch_size))
        self.precision, self.amp_dtype = precision_of(self.device, bool(cfg.trainer.amp))
        seed_everything(int(cfg.seed))
        side = min(self.frames.images.shape[1:3])
        if int(cfg.data.crop_size) > side:
            raise FasbenchError(f"data.crop_size={int(cfg.data.crop_size)} is larger than the frames of {cfg.data.name} "
                                f"({self.frames.images.shape[1]}x{self.frames.images.shape[2]}); use data.crop_size<={side}")
        self.data = select_task_rows(self.frames, self.task, task_splits(self.protocol, cfg))
        self.dataset = FrameDataset(self.frames, {d: i for i, d in enumerate(self.task.sources)})
        self.method_entry = plugins.registry("methods").get(str(cfg.method.name))
        self.ctx = Context(cfg=cfg, domains=list(self.task.sources), device=self.device)
        self.method = self.ctx.build_method().to(self.device)
        if self.world.enabled and self.device.type == "cuda":  # batch statistics over the global batch
            distributed.convert_sync_batchnorm(self.method)
        channels_last = bool(cfg.trainer.channels_last) and self.device.type == "cuda"
        if channels_last:
            self.method.to(memory_format=torch.channels_last)
        aug = cfg.augment
        self.pre = Preprocess(  # RGB in [0, 1]: the student normalises its own input
            crop_size=int(cfg.data.crop_size),
            hflip=bool(aug.hflip), random_crop=bool(aug.random_crop), color_jitter=float(aug.color_jitter),
            channels_last=channels_last,
        )
        from timm.optim import create_optimizer_v2

        o = cfg.optim
        self.optimizer = create_optimizer_v2(
            self.method.param_groups(), opt=str(o.name), lr=float(o.lr), weight_decay=float(o.weight_decay),
            momentum=float(o.momentum),
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, _lr_lambda(str(o.schedule), int(o.warmup_steps), self.max_steps)
        )
        self.scaler = grad_scaler(self.amp_dtype)
        self.components = self._components()
        w = self.world
        self.distributed = {"world_size": w.world_size, "backend": w.backend,
                            "per_rank_batch": w.per_rank_batch(int(cfg.trainer.batch_size))}
        from fasbench.engine.identity import process_git

        self.git = process_git()  # the code this process runs: the checkout as it was when the process began
        self.identity = identity_of(self.components, self.frames.fingerprint(), self.precision,
                                    (self.selection, self._selection_metric_name()), self.config_hash,
                                    self.distributed)
        self._built = True

    def _selection_metric_name(self) -> str | None:
        return {"last": None, "source-val": f"val/{self.selection_metric.name}",
                "target-oracle": "target/HTER@target-eer-threshold"}[self.selection]

    def _components(self) -> dict[str, Any]:
        comps = dict(self.ctx.components)
        comps.setdefault("aligner", {"name": "none", "version": 1, "plugin": "fasbench"})
        comps.setdefault("teachers", [])
        for role, entry in (("method", self.method_entry), ("protocol", self.protocol_entry), ("dataset", self.dataset_entry)):
            if entry is not None:
                comps[role] = {"name": entry.name, "version": entry.version, "plugin": entry.plugin}
        if self.protocol_entry is None:  # ad-hoc protocol from the command line
            comps["protocol"] = {"name": self.protocol.name, "version": 1, "plugin": "(ad hoc)"}
        if self.dataset_entry is None:
            comps["dataset"] = {"name": str(self.cfg.data.name), "version": 1, "plugin": "?"}
        return comps

    def run_identity(self) -> dict[str, str]:
        """The identity fields of this run (:func:`fasbench.records.identity_of`); builds the method."""
        self._build()
        return self.identity

    # -- evaluation -------------------------------------------------------------------
    def evaluate(self) -> tuple[ScoreSet, ScoreSet]:
        """Frame scores of the source-val split and of the target, in float32."""
        bs = int(self.cfg.eval.batch_size)
        sv = score_rows(self.method, self.dataset, self.frames, self.data.source_val, self.pre, self.device, bs)
        tg = score_rows(self.method, self.dataset, self.frames, self.data.target, self.pre, self.device, bs)
        return sv, tg

    def _results(self, sv: ScoreSet, tg: ScoreSet, n_boot: int = 0) -> dict[str, Any]:
        e = self.cfg.eval
        return evaluate(sv, tg, self.metrics, ssdg=bool(e.ssdg), video_level=bool(e.video_level),
                        n_boot=n_boot, level=self.ci_level, seed=int(self.cfg.seed))

    def _eval_point(self, step, running, history, best, postfix, bar, ckpt_dir):
        """Evaluate now, append to the curve, track the best checkpoint for selection.

        ``val/...`` values come from source-val scores only; ``target/...`` from the target.
        The ``source-val`` rule reads ``val/...`` only; ``target-oracle`` (labelled as such in
        the record) reads the target.
        """
        sv, tg = self.evaluate()
        r = self._results(sv, tg)
        v, t = r["val"]["metrics"], r["target"]
        point = {"step": step, **{f"loss/{k}": val for k, val in running.items()}}
        for name in dict.fromkeys(("EER", "AUC", "HTER", self.selection_metric.name)):
            if name in v:
                point[f"val/{name}"] = v[name]
        point["target/HTER@source-val-threshold"] = t["source-val-threshold"]["metrics"].get("HTER")
        point["target/HTER@target-eer-threshold"] = t["target-eer-threshold"]["metrics"].get("HTER")
        point["target/AUC"] = t["target-eer-threshold"]["metrics"].get("AUC")
        history.append(point)
        if self._logger is not None:
            self._logger.eval(point)
        if bar is not None:
            postfix.update({"valEER": _fmt(point.get("val/EER")), "tgtHTER": _fmt(point["target/HTER@source-val-threshold"])})
            bar.set_postfix(postfix)
        key = self._selection_metric_name()
        if key is not None and point.get(key) is not None:
            higher = self.selection_metric.higher_is_better and self.selection == "source-val"
            score = -point[key] if higher else point[key]
            if best["score"] is None or score < best["score"]:  # strictly better: the earliest tie wins
                best = {"score": score, "step": step}
                self._write(lambda s=step: ckpt.save_best(ckpt_dir, self.method, s), step, ckpt_dir)
        return best, (sv, tg)

    # -- output and checkpoints -------------------------------------------------------
    def _check_output(self, ckpt_dir: Path) -> None:
        """Before the first step: the run directory is writable and its disk has room for the
        checkpoints this run will write (so a full or read-only --out never costs a run)."""
        import shutil

        from fasbench.util import atomic_write_bytes

        check_writable(self.run_dir, "the run directory")
        probe = self.run_dir / ".write-probe"
        try:
            atomic_write_bytes(probe, b"ok")
            probe.unlink(missing_ok=True)
        except OSError as exc:
            raise FasbenchError(f"the run directory {self.run_dir} cannot be written ({exc.strerror or exc}); "
                                "free some space or pick another --out") from None
        if int(self.cfg.trainer.checkpoint_every or 0) or self.selection != "last":
            need = ckpt.estimate_bytes(self.method)
            free = shutil.disk_usage(self.run_dir).free
            if free < need:
                raise FasbenchError(
                    f"{self.run_dir}: {free / 2**20:.0f} MiB free, this run's checkpoints need about {need / 2**20:.0f} MiB; "
                    "free some space, pick another --out, or set trainer.checkpoint_every=0 (no resume)"
                )

    def _write(self, fn, step: int, ckpt_dir: Path):
        """Run a checkpoint write; a disk error becomes one line that says what survived."""
        try:
            return fn()
        except OSError as exc:
            kept = (f"the checkpoint of step {self._last_ckpt} is intact (--resume continues from it)"
                    if self._last_ckpt is not None else "no earlier checkpoint exists")
            raise FasbenchError(
                f"could not write the checkpoint of step {step} under {ckpt_dir} ({exc.strerror or exc}); {kept}; "
                "free some space (or pick another --out) and rerun"
            ) from None

    def _loop_state(self, step, history, best, running) -> dict[str, Any]:
        """The loop state of a checkpoint; a collective under torchrun (every rank's random
        state is gathered: a method may draw a different amount on each rank)."""
        self._rng_states = self.world.gather(rng.capture(self.method))
        extra = {"rng_ranks": self._rng_states} if self.world.enabled else {}
        return {**extra,
            "step": step, "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(), "rng": self._rng_states[0], "running": dict(running),
            "history": history, "best": best, "config": self.config_dict, "config_hash": self.config_hash,
            "identity": self.identity, "code": self.code,
        }

    def _restore(self, ckpt_dir: Path) -> tuple[int, list, dict, dict, dict | None]:
        """Continue from the newest complete checkpoint, after checking it is this very run
        (config, identity, code); returns (step, curve, best, running losses, random state)."""
        state = ckpt.latest(ckpt_dir, self.method)  # every rank loads the weights
        self.world.barrier()  # all have read it before rank 0 cleans up
        main = self.world.is_main
        if state is None:
            if main:
                ckpt.clean(ckpt_dir, keep_best_upto=0)  # best weights of a run killed before its first checkpoint
            return 0, [], {"score": None, "step": None}, {}, None
        where = f"checkpoint {ckpt_dir / ckpt.unit_name(int(state['step']))}"
        check_same_config(state, self.config_dict, where)
        check_same_identity(state.get("identity"), self.identity, where)
        check_same_code(state.get("code"), self.code, where)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        step = int(state["step"])
        if main:
            ckpt.clean(ckpt_dir, keep_best_upto=step)
        self._last_ckpt = step
        rng_state = state["rng_ranks"][self.world.rank] if self.world.enabled else state["rng"]
        return step, list(state["history"]), dict(state["best"]), dict(state.get("running") or {}), rng_state

    # -- main loop --------------------------------------------------------------------
    def run(self) -> RunRecord:
        """Train, select, evaluate; the record (scores in ``self.outputs``, written by the caller).

        Ctrl-C or SIGTERM becomes :class:`fasbench.errors.Interrupted`, whose message says from which
        checkpoint ``--resume`` continues.
        """
        self._last_ckpt: int | None = None
        self._step = 0
        self._logger: RunLogger | None = None
        try:
            return self._run()
        except KeyboardInterrupt as exc:
            if isinstance(exc, Interrupted):
                raise
            signum = int(getattr(exc, "signum", 2))
            how = "interrupted" if signum == 2 else f"stopped by {signal.Signals(signum).name}"
            desc = f"{self.cfg.method.name} {self.task.name} seed {self.cfg.seed}"
            on_disk = ckpt.units(self.run_dir / "checkpoint")  # the truth, also when Ctrl-C hit a write
            self._last_ckpt = on_disk[0][0] if on_disk else None
            if self._last_ckpt is not None:
                hint = f"rerun with --resume to continue from the checkpoint of step {self._last_ckpt}"
            elif int(self.cfg.trainer.checkpoint_every or 0):
                hint = (f"no checkpoint was written yet (trainer.checkpoint_every={int(self.cfg.trainer.checkpoint_every)}): "
                        "a rerun starts the task again")
            else:
                hint = "checkpoints are off (trainer.checkpoint_every=0): a rerun starts the task again"
            raise Interrupted(f"{desc} {how} at step {self._step}; {hint}", signum) from None
        finally:
            if self._logger is not None:
                self._logger.close()

    def _run(self) -> RunRecord:
        t0 = time.perf_counter()
        self._build()
        self.code = code_identity()
        world, main = self.world, self.world.is_main
        ckpt_dir = self.run_dir / "checkpoint"
        if main:
            self._check_output(ckpt_dir)
        start, history, best, running, rng_state = 0, [], {"score": None, "step": None}, {}, None
        if self.resume:
            start, history, best, running, rng_state = self._restore(ckpt_dir)
        elif ckpt_dir.exists() and main:
            import shutil

            shutil.rmtree(ckpt_dir)  # a fresh run never inherits an old checkpoint
        self._step = start
        batch_size = int(self.cfg.trainer.batch_size)
        full = distributed.full_batch()
        sampler = BalancedBatchSampler(
            self.data.train, self.dataset.domains[self.data.train], self.dataset.labels[self.data.train],
            batch_size, seed=int(self.cfg.seed), start_step=start, max_steps=self.max_steps,
            num_replicas=1 if full else world.world_size, rank=0 if full else world.rank,
        )
        rows = world.rows(batch_size)  # this rank's rows of the global batch (and of its augmentation draws)
        loader = make_loader(self.dataset, sampler, num_workers=num_workers_of(self.cfg.trainer.num_workers, self.device),
                             pin_memory=self.device.type == "cuda", seed=int(self.cfg.seed))
        # the method's training step: under DDP through DistributedDataParallel (gradients averaged
        # over the ranks during backward), else the method itself
        train_step = distributed.wrap(self.method, world, self.device) if world.enabled else self.method.training_step
        gen = torch.Generator()
        log_every = max(1, int(self.cfg.trainer.log_every))
        ckpt_every = int(self.cfg.trainer.checkpoint_every or 0)
        keep = max(1, int(self.cfg.trainer.get("keep_checkpoints", 0) or 0))  # while training: resume needs one
        train_s = eval_s = 0.0
        desc = f"{self.cfg.method.name} {self.task.name} s{self.cfg.seed}"
        bar = tqdm(total=self.max_steps, initial=start, desc=desc, disable=bar_disabled(self.progress and main),
                   dynamic_ncols=True, leave=True)
        if main:  # RUN_DIR/log.csv (+ TensorBoard): rows past a resumed checkpoint are dropped
            self._logger = RunLogger(self.run_dir, parse_loggers(self.cfg.trainer.logger), start_step=start)
        postfix: dict[str, str] = {}
        self.method.train()
        if rng_state is not None:  # last, after everything that draws from the global generators
            rng.restore(rng_state, self.method)
        t_train = time.perf_counter()
        step = start
        last_scores = None
        for batch in loader:
            gen.manual_seed(int(self.cfg.seed) * 1_000_003 + step)
            b = {
                "image": self.pre(batch["image"], self.device, train=True, generator=gen, draw_for=batch_size, rows=rows),
                "label": batch["label"].to(self.device, non_blocking=True),
                "domain": batch["domain"].to(self.device, non_blocking=True),
            }
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                losses = train_step(b)
            if step == start:
                check_losses(losses, str(self.cfg.method.name))
            loss = sum(losses.values())
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            clip = float(self.cfg.trainer.grad_clip or 0)
            if clip > 0:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.method.parameters(), clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            step += 1
            self._step = step
            if step % log_every == 0 or step == self.max_steps:
                running = self._logged_losses(losses, step, desc)
                if self._logger is not None:
                    self._logger.train(step, running, lr=self.scheduler.get_last_lr()[0])
                postfix.update({k: f"{v:.3f}" for k, v in running.items()})
                bar.set_postfix(postfix, refresh=False)
            bar.update(1)
            if self.eval_every and step % self.eval_every == 0 and step < self.max_steps:
                train_s += time.perf_counter() - t_train
                te = time.perf_counter()
                if main:  # rank 0 alone evaluates; the others wait for it
                    best, _ = self._eval_point(step, running, history, best, postfix, bar, ckpt_dir)
                world.barrier()
                eval_s += time.perf_counter() - te
                t_train = time.perf_counter()
            if ckpt_every and (step % ckpt_every == 0 or step == self.max_steps):
                state = self._loop_state(step, history, best, running)  # every rank: gathers the random states
                if main:
                    self._write(lambda s=state: ckpt.save(ckpt_dir, self.method, s, keep=keep), step, ckpt_dir)
                self._last_ckpt = step
        bar.close()
        train_s += time.perf_counter() - t_train
        trained = step - start
        if not main:  # rank 0 selects, evaluates and builds the record; every rank returns it
            self.outputs = {}
            return RunRecord.model_validate(world.broadcast(None))

        te = time.perf_counter()
        if trained or not history or history[-1]["step"] != step:
            best, last_scores = self._eval_point(step, running, history, best, postfix, None, ckpt_dir)
        selected = step
        if self.selection != "last" and best["step"] is not None:
            selected = int(best["step"])
            if selected != step:
                ckpt.load_best(ckpt_dir, self.method, selected)
                last_scores = None
        sv, tg = last_scores if last_scores is not None else self.evaluate()
        results = self._results(sv, tg, n_boot=self.n_boot)
        eval_s += time.perf_counter() - te
        frame_no = self.frames.manifest["frame"].to_numpy()
        blob, scores = encode_scores([("val", sv, frame_no[self.data.source_val]),
                                      ("target", tg, frame_no[self.data.target])])
        self.outputs = {scores["file"]: blob}
        from fasbench.inference import student_output  # the selected step's student, kept beside the record

        name, weights_blob, self.components["student"]["saved"] = student_output(self.method, selected)
        self.outputs[name] = weights_blob
        timings = {
            "train_s": round(train_s, 3), "eval_s": round(eval_s, 3),
            "total_s": round(time.perf_counter() - t0, 3),
            "steps": self.max_steps, "steps_this_session": trained, "resumed_from_step": start,
            "steps_per_s": round(trained / train_s, 3) if train_s > 0 else None,
            "device": str(self.device),
        }
        rec = self._record(results, history, selected, scores, timings)
        if world.enabled:
            world.broadcast(rec.to_json())
        return rec

    def _logged_losses(self, losses: dict[str, torch.Tensor], step: int, desc: str) -> dict[str, float]:
        """The losses shown and kept in the curve at a log point: averaged over the ranks under
        torchrun (each rank's mean over its slice; equal slices make it the global batch's mean).
        A non-finite loss on any rank fails every rank together, with the same message."""
        vals = {k: float(v.detach()) for k, v in losses.items()}
        per_rank = self.world.gather(vals)
        bad = [(r, v) for r, v in enumerate(per_rank) if not all(math.isfinite(x) for x in v.values())]
        if bad:
            r, v = bad[0]
            where = f" on rank {r} of {self.world.world_size}" if self.world.enabled else ""
            cls = distributed.RanksFailed if self.world.enabled else FasbenchError
            raise cls(f"{desc}: loss became non-finite at step {step}{where} ({v}); lower optim.lr or enable trainer.grad_clip")
        if not self.world.enabled:
            return vals
        return {k: sum(v[k] for v in per_rank) / len(per_rank) for k in vals}

    def _record(self, results, history, selected, scores, timings) -> RunRecord:
        frames = self.frames
        created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        rule = self.selection
        data = {
            "dataset": str(self.cfg.data.name),
            "fingerprint": frames.fingerprint(),
            "identity": frames.identity,
            "splits": {k: list(v) for k, v in self.data.splits.items()},
            "frames": {"source_train": int(len(self.data.train)), "source_val": int(len(self.data.source_val)),
                       "target": int(len(self.data.target))},
            **self.data_extra,
        }
        return RunRecord.model_validate({
            "schema": SCHEMA,
            "run_id": f"{self.cfg.method.name}-{self.protocol.name}-{self.task.name}-s{self.cfg.seed}-{created}",
            "created": created,
            "status": "complete",
            "method": str(self.cfg.method.name),
            "protocol": self.protocol.name,
            "task": self.task.as_dict(),
            "seed": int(self.cfg.seed),
            "config": self.config_dict,
            "config_hash": self.config_hash,
            "components": self.components,
            "precision": self.precision,
            "distributed": self.distributed,
            "versions": _versions(),
            "git": self.git,
            "data": data,
            "selection": {
                "rule": rule, "metric": self._selection_metric_name(),
                "data": {"last": "none", "source-val": "source-val", "target-oracle": "target"}[rule],
                "uses_target_labels": rule == "target-oracle",
                "selected_step": int(selected), "candidates": [int(p["step"]) for p in history],
            },
            "metric_names": [m.name for m in self.metrics],
            "val": results["val"],
            "target": results["target"],
            "scores": scores,
            "curve": history,
            "timings": timings,
        })


def check_writable(path: Path, what: str = "--out") -> None:
    """Create ``path`` (a directory) if needed; one line naming it when that is impossible."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        bad = next((p for p in [path, *path.parents] if p.exists() and not p.is_dir()), path)
        raise FasbenchError(f"{what} {path}: {bad} is a file, not a directory; pick another --out") from None
    except OSError as exc:
        raise FasbenchError(f"{what} {path} cannot be created ({exc.strerror or exc}); pick another --out") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise FasbenchError(f"{what} {path} is not writable; pick another --out")


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}"
