"""Running a method through a protocol: every task x seed, one record each, then a table."""
from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fasbench import plugins
from fasbench.errors import FasbenchError
from fasbench.protocols import Protocol, looks_adhoc, parse_adhoc
from fasbench.util import slug


def resolve_protocol(name: str) -> tuple[Protocol, Any]:
    """A registered protocol by name (entry returned for its version), or an ad-hoc one."""
    if looks_adhoc(name):
        return parse_adhoc(name), None
    entry = plugins.registry("protocols").get(name)
    proto = entry.build()
    if not isinstance(proto, Protocol):
        raise FasbenchError(f"protocol {name!r} (plugin {entry.plugin!r}) did not build a fasbench.protocols.Protocol")
    return proto, entry


def run_dir_for(cfg: DictConfig, protocol: Protocol, task_name: str) -> Path:
    return Path(str(cfg.out)) / slug(protocol.name) / slug(str(cfg.method.name)) / slug(task_name) / f"seed{int(cfg.seed)}"


def _selected_tasks(protocol: Protocol, tasks: Any) -> list:
    if not tasks:
        return list(protocol.tasks)
    wanted = [tasks] if isinstance(tasks, str) else list(tasks)
    out: list = []
    for t in wanted:
        exact = [x for x in protocol.tasks if x.name == str(t) or (x.variant and x.variant == str(t))]
        # a target letter selects every task testing on it (several in CrossAttack)
        for x in exact or [x for x in protocol.tasks if x.target == str(t)] or [protocol.task(str(t))]:
            if x not in out:
                out.append(x)
    return out


def _build_frames(ds_entry, cfg: DictConfig, protocol: Protocol, tasks: list, progress: bool):
    """The dataset's FrameSet; real datasets (a ``roots`` key in their config) build only the
    domains the selected tasks need, and name the missing roots when there are some."""
    if "roots" in cfg.data and not cfg.data.get("domains"):
        needed: list[str] = []
        for t in tasks:
            for d in (*t.sources, t.target):
                if d not in needed:
                    needed.append(d)
        return ds_entry.build(cfg.data, progress=progress, domains=needed, purpose=f"protocol {protocol.name}")
    return ds_entry.build(cfg.data, progress=progress)


def check_run_dir(rdir: Path, config: dict, resume: bool = False) -> None:
    """A run directory holds one configuration: a record or checkpoint of another one there is
    an error (never silently kept by --resume, continued from, or overwritten). Under
    ``resume``, a damaged record or checkpoint there is an error too, before any data loads."""
    from fasbench.engine import checkpoint as ckpt
    from fasbench.engine.identity import check_same_config

    rec_path = rdir / "record.json"
    if rec_path.exists():
        try:
            saved = json.loads(rec_path.read_text())
        except (OSError, ValueError):
            saved = None  # unreadable: validate_record names it on --resume; a fresh run replaces it
        if isinstance(saved, dict):
            check_same_config(saved, config, str(rec_path))
    if resume:
        from fasbench.records import read_record

        if rec_path.exists():
            try:
                complete = read_record(rec_path).status == "complete"
            except FasbenchError as exc:
                raise FasbenchError(f"{exc}; delete it to run the task again") from None
            if complete:
                return
        ckpt.check(rdir / "checkpoint")
    state = ckpt.read_state(rdir / "checkpoint")  # None when absent or damaged (--resume names it)
    if isinstance(state, dict):
        check_same_config(state, config, f"checkpoint {rdir / 'checkpoint' / ckpt.unit_name(int(state.get('step', 0)))}")


def check_optimizer(name: str) -> None:
    from timm.optim import list_optimizers

    known = list_optimizers()
    if name.lower() not in known:
        close = [k for k in known if k.startswith(name.lower()[:3])][:6]
        raise FasbenchError(f"optim.name={name!r} is not a timm optimizer; use one of {close or known[:8]} "
                              "(`timm.optim.list_optimizers()`)")


def save_outputs(rdir: Path, rec: Any, files: dict[str, bytes], echo=print) -> Path:
    """Write a run's files and record into ``rdir``; if that fails (disk full, folder gone
    read-only), write them to a fallback folder under the cache and say where, so a finished
    run is never lost. Returns the record's path."""
    from datetime import datetime, timezone

    from fasbench.records import write_record
    from fasbench.util import atomic_write_bytes, cache_root

    def write(folder: Path) -> Path:
        for name, blob in files.items():
            atomic_write_bytes(folder / name, blob)
        return write_record(folder, rec)

    try:
        return write(rdir)
    except OSError as first:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        rel = slug(str(rdir.resolve()).strip("/").replace("/", "__"))
        import tempfile

        for base in (cache_root() / "unsaved-runs", Path(tempfile.gettempdir()) / "fasbench-unsaved-runs"):
            try:
                path = write(base / f"{rel}-{stamp}")
            except OSError:
                continue
            print(f"fasbench: warning: could not write the record to {rdir} ({first.strerror or first}); it was written to "
                  f"{path.parent} instead: move that folder's files into {rdir}", file=sys.stderr)
            return path
        raise FasbenchError(f"could not write the record of {rdir} ({first.strerror or first}), nor to a fallback folder "
                            "under the cache or the temp folder; free some space and rerun with --resume") from None


def run_protocol(cfg: DictConfig, *, seeds: list[int] | None = None, resume: bool = False,
                 progress: bool = True, echo=print) -> list:
    """Run ``cfg.method`` on every task of ``cfg.protocol`` for every seed; return the records."""
    protocol, proto_entry = resolve_protocol(str(cfg.protocol))
    plugins.registry("methods").get(str(cfg.method.name))  # unknown names: fail before any work
    from fasbench.metrics import resolve_metrics

    resolve_metrics(cfg.eval.get("metrics") or None)
    resolve_metrics([str(cfg.eval.get("selection_metric", "EER"))])
    tasks = _selected_tasks(protocol, cfg.get("tasks"))
    ds_entry = plugins.registry("datasets").get(str(cfg.data.name))
    check_optimizer(str(cfg.optim.name))
    from fasbench.engine.logs import check_available, parse_loggers

    check_available(parse_loggers(cfg.trainer.get("logger", "csv")))  # tensorboard asked for and missing: one line now
    from fasbench.engine.trainer import check_writable

    check_writable(Path(str(cfg.out)))  # before any data loads: a wrong --out costs seconds, not a run
    from fasbench.engine import distributed

    world = distributed.init(str(cfg.device))  # under torchrun: join the run's processes (else a no-op)
    world.check_batch(int(cfg.trainer.batch_size))  # the global batch splits evenly, before any data loads
    if not world.is_main:  # rank 0 reports and writes; the other ranks train with it
        echo, progress = (lambda *_a, **_k: None), False

    from fasbench.engine.identity import check_same_identity
    from fasbench.engine.lease import run_lease
    from fasbench.engine.sweep import FAILED, write_failed
    from fasbench.engine.trainer import TaskRunner
    from fasbench.records import identity_fields, read_record

    seeds = list(seeds) if seeds else [int(cfg.seed)]
    jobs = []
    for seed in seeds:
        for task in tasks:
            tcfg = cfg.copy()
            OmegaConf.set_struct(tcfg, False)
            tcfg.seed = int(seed)
            rdir = run_dir_for(tcfg, protocol, task.name)
            check_run_dir(rdir, OmegaConf.to_container(tcfg, resolve=True), resume=resume)  # before any data loads
            jobs.append((seed, task, tcfg, rdir))

    try:
        frames = _build_frames(ds_entry, cfg, protocol, tasks, progress)
    except Exception as exc:  # every run of this call failed: each run folder says why
        for *_, rdir in (jobs if world.is_main else []):
            rdir.mkdir(parents=True, exist_ok=True)
            write_failed(rdir, exc)
        raise
    from fasbench.data.real_dataset import task_view
    records = []
    for seed, task, tcfg, rdir in jobs:
        rec_path = rdir / "record.json"
        task_frames, task_protocol, convention = task_view(frames, protocol, task)
        extra: dict[str, Any] = {"split_convention": convention}
        if getattr(frames, "preparation", None) is not None:
            doms = {*task.sources, task.target}
            prep = {d: p for d, p in frames.preparation.items() if d in doms}
            extra["preparation"] = prep
            extra["skipped_videos"] = int(sum(p["skipped_count"] for p in prep.values()))
        runner = TaskRunner(tcfg, task_protocol, task, task_frames, rdir, resume=resume, progress=progress,
                            protocol_entry=proto_entry, dataset_entry=ds_entry, data_extra=extra)
        if resume and rec_path.exists():
            rec = read_record(rec_path)
            if rec.status == "complete":
                # kept only if it is this very run setting (components, weights, data, precision...)
                check_same_identity(identity_fields(rec), runner.run_identity(), str(rec_path))
                echo(f"{task.name} seed {seed}: complete, kept {rec_path}")
                records.append(rec)
                continue
        # two live processes never train one run (under torchrun rank 0 holds the lease for all)
        with distributed.on_main(world, partial(run_lease, rdir, f"{task.name} seed {seed}"), "taking the lease"):
            try:
                rec = runner.run()
                path = save_outputs(rdir, rec, runner.outputs) if world.is_main else None
            except Exception as exc:  # failed.json says where, when and why (sweep status reads it)
                if world.is_main:
                    write_failed(rdir, exc)
                if isinstance(exc, distributed.RanksFailed):
                    world.barrier()  # all ranks failed together: none exits before failed.json is written
                raise
            if world.is_main:
                (rdir / FAILED).unlink(missing_ok=True)
                from fasbench.engine import checkpoint as ckpt

                # the record, scores and selected student are written: keep trainer.keep_checkpoints step checkpoints
                ckpt.finish(rdir / "checkpoint", int(tcfg.trainer.get("keep_checkpoints", 0) or 0))
            world.barrier()
        echo(f"{task.name} seed {seed}: record written to {path}")
        records.append(rec)
    return records


def _ci_cell(block, name: str) -> str:
    value = block.metrics.get(name)
    if value is None:
        return "—"
    ci = block.ci.get(name)
    return f"{value:.2f} [{ci[0]:.1f}, {ci[1]:.1f}]" if ci else f"{value:.2f}"


def results_table(records: list) -> str:
    """Per task x seed: the source-val split's own EER, then target numbers under both
    threshold policies with their bootstrap CI over target videos, then the average."""
    from tabulate import tabulate

    from fasbench.records import SOURCE_VAL_THRESHOLD, TARGET_EER_THRESHOLD

    rows, sums = [], []
    for r in records:
        sv, te = r.target[SOURCE_VAL_THRESHOLD], r.target[TARGET_EER_THRESHOLD]
        vals = [r.val.metrics.get("EER"), sv.metrics.get("HTER"), te.metrics.get("HTER"), te.metrics.get("AUC")]
        sums.append(vals)
        rows.append([r.task.name, r.seed, _num(vals[0]), _ci_cell(sv, "HTER"), _ci_cell(te, "HTER"),
                     _ci_cell(te, "AUC"), sv.n_videos, _secs(r.timings.get("total_s"))])
    if len(rows) > 1:
        avg = []
        for col in zip(*sums):
            present = [v for v in col if v is not None]
            avg.append(_num(sum(present) / len(present)) if present else "—")
        rows.append(["average", "", avg[0], avg[1], avg[2], avg[3], "",
                     _secs(sum(r.timings.get("total_s") or 0 for r in records))])
    return tabulate(
        rows,
        headers=["task", "seed", "val EER% (source data)", "target HTER% @source-val thr [95% CI]",
                 "target HTER% @target-EER thr (idealized)", "target AUC% [95% CI]", "target videos", "time s"],
        floatfmt=".2f", tablefmt="github", disable_numparse=True,
    )


def _secs(value) -> str:
    return "—" if value is None else f"{value:.1f}"


def _num(value) -> str:
    return "—" if value is None else f"{value:.2f}"


def dump_json(records: list) -> str:
    return json.dumps([{"task": r.task.name, "seed": r.seed, "val": r.val.model_dump(mode="json"),
                        "target": {p: b.model_dump(mode="json") for p, b in r.target.items()}}
                       for r in records], indent=2)


def stderr(msg: str) -> None:
    print(msg, file=sys.stderr)
