"""``fasbench run`` and ``fasbench validate``."""
from __future__ import annotations

import sys
from pathlib import Path

from fasbench.errors import FasbenchError


def _seeds(text: str) -> list[int]:
    try:
        out = []
        for part in text.split(","):
            part = part.strip()
            if "-" in part[1:]:
                a, b = part.split("-", 1)
                out.extend(range(int(a), int(b) + 1))
            elif part:
                out.append(int(part))
        if not out:
            raise ValueError
        return out
    except ValueError:
        raise FasbenchError(f"--seeds {text!r}: write integers separated by commas, e.g. --seeds 0,1,2 (or 0-4)") from None


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "run", help="train and evaluate a method on a protocol",
        description="Train METHOD on every task of a protocol (one run record per task and seed). "
                    "Extra key=value tokens are Hydra overrides, e.g. trainer.max_steps=600 optim.lr=3e-4.",
    )
    p.add_argument("method", help="a registered method (`fasbench ls methods`)")
    p.add_argument("--protocol", "-p", help="registered protocol (MICO, LimitedSource, Intra) or ad hoc, e.g. 'OCI->M' (default: MICO)")
    p.add_argument("--data", help="dataset (`fasbench ls datasets`): real (your copies, the default once their roots "
                                  "are configured, docs/datasets.md) or synthetic (the default otherwise)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--seed", type=int, help="training seed (default 0)")
    g.add_argument("--seeds", help="several seeds, e.g. 0,1,2 (one record per task and seed)")
    p.add_argument("--tasks", help="only these tasks, by name or target, e.g. M,C")
    p.add_argument("--out", help="runs directory (default: runs)")
    p.add_argument("--resume", action="store_true",
                   help="keep complete records and continue interrupted tasks from their last checkpoint")
    p.add_argument("--multirun", "-m", action="store_true",
                   help="Hydra sweep over comma-separated overrides (e.g. optim.lr=1e-3,3e-4 seed=0,1,2)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON instead of a table")
    p.set_defaults(func=main, accepts_overrides=True)


def _base_overrides(args) -> list[str]:
    ov = [f"method={args.method}"]
    if args.data:
        ov.append(f"data={args.data}")
    elif not any(str(o).startswith("data=") for o in getattr(args, "overrides", None) or []):
        # the real datasets are the default once their roots are configured (docs/datasets.md)
        from fasbench.data.roots import configured

        if any(str(o).startswith("data.roots.") for o in getattr(args, "overrides", None) or []) or configured():
            ov.append("data=real")
    return ov


def _apply_args(cfg, args) -> None:
    from omegaconf import OmegaConf

    OmegaConf.set_struct(cfg, False)
    if args.protocol:
        cfg.protocol = args.protocol
    if args.seed is not None:
        cfg.seed = int(args.seed)
    if args.out:
        cfg.out = args.out
    if args.tasks:
        cfg.tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]


def _check_names(args) -> None:
    from fasbench import plugins

    plugins.registry("methods").get(args.method)
    if args.data:
        plugins.registry("datasets").get(args.data)
    if args.protocol:
        from fasbench.engine.run import resolve_protocol

        resolve_protocol(args.protocol)


def main(args) -> int:
    from fasbench import config
    from fasbench.engine.run import dump_json, results_table, run_protocol

    _check_names(args)
    if args.multirun:
        return _multirun(args)
    cfg = config.compose(_base_overrides(args) + list(args.overrides))
    _apply_args(cfg, args)
    config.check_root(cfg)
    seeds = _seeds(args.seeds) if args.seeds else None
    for s in seeds or ():
        config.check_root({**{k: cfg.get(k) for k in ("protocol", "tasks", "out", "device")}, "seed": s})
    echo = (lambda m: print(m, file=sys.stderr)) if args.json else print
    records = run_protocol(cfg, seeds=seeds, resume=args.resume, progress=not args.no_progress, echo=echo)
    if args.json:
        print(dump_json(records))
    else:
        print()
        print(f"{args.method} on {records[0].protocol if records else cfg.protocol} ({cfg.data.name}); metrics in %; "
              f"val = the sources' held-out split, target = the unseen domain")
        print(results_table(records))
        print(f"\nrecords under {cfg.out}/ ; build the leaderboard with: fasbench leaderboard --runs {cfg.out}")
    return 0


def _multirun(args) -> int:
    """Sweep through Hydra's launcher mechanism (basic launcher by default; joblib or
    submitit when their hydra plugins are installed: hydra/launcher=joblib)."""
    import hydra
    from omegaconf import DictConfig

    from fasbench.config import store_plugin_configs
    from fasbench.engine.run import run_protocol

    store_plugin_configs()
    seeds = args.seeds

    @hydra.main(version_base="1.3", config_path="../conf", config_name="config")
    def app(cfg: DictConfig) -> None:
        from hydra.core.hydra_config import HydraConfig
        from omegaconf import OmegaConf

        # every job of the sweep writes its records below its own output directory, named by
        # its overrides, so jobs never overwrite each other and --resume finds them again
        OmegaConf.set_struct(cfg, False)
        hc = HydraConfig.get()
        cfg.out = hc.runtime.output_dir
        try:  # a sweep's jobs always resume (the run identity guards what is continued)
            run_protocol(cfg, resume=True, progress=not args.no_progress)
        except Exception as exc:  # one line, and the sweep goes on (Hydra would print a traceback and stop)
            text = str(exc) if isinstance(exc, FasbenchError) else f"{type(exc).__name__}: {exc}"
            print(f"fasbench: error: sweep job [{' '.join(hc.overrides.task)}]: {text}", file=sys.stderr)
            failures.append(f"{' '.join(hc.overrides.task)}] {text.splitlines()[0][:300]}")

    overrides = _base_overrides(args)
    if args.protocol:
        overrides.append(f"protocol='{args.protocol}'")
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    if seeds:
        overrides.append(f"seed={','.join(str(s) for s in _seeds(seeds))}")
    if args.out:
        overrides.append(f"out={args.out}")
    if args.tasks:
        overrides.append(f"tasks=[{args.tasks}]")
    out = args.out or "runs"
    jobs = _check_sweep([*overrides, *args.overrides])
    from omegaconf import OmegaConf

    from fasbench.engine.sweep import job_dirname, job_key, write_plan

    OmegaConf.register_new_resolver("fasbench_jobdir", lambda task: job_dirname(list(task)), replace=True)
    OmegaConf.register_new_resolver("fasbench_jobkey", lambda task: job_key(list(task)), replace=True)
    plan = write_plan(Path(out) / "multirun", jobs)
    print(f"sweep of {len(jobs)} job(s), {sum(len(j['run_dirs']) for j in jobs)} run(s); plan {plan}; "
          f"status: fasbench sweep status --out {out}", file=sys.stderr)
    argv = ["fasbench", "--multirun", *overrides, *args.overrides,
            f"hydra.sweep.dir={out}/multirun",
            # named by the overrides that are not already in the run path (PROTOCOL/METHOD/TASK/seedN),
            # hashed when too long for a file name; each job keeps its own .hydra folder
            "hydra.sweep.subdir='${fasbench_jobdir:${hydra.overrides.task}}'",
            "hydra.output_subdir='.hydra/${fasbench_jobkey:${hydra.overrides.task}}'"]
    failures.clear()
    saved = sys.argv
    sys.argv = argv
    try:
        app()
    finally:
        sys.argv = saved
    if failures:
        print(f"fasbench: {len(failures)} of {len(jobs)} sweep job(s) failed (each wrote failed.json in its run directory):",
              file=sys.stderr)
        for f in failures:
            print(f"  [{f}]", file=sys.stderr)
        return 1
    return 0


#: the jobs of the running sweep that failed (their overrides and error), for the summary
failures: list[str] = []


def _check_sweep(overrides: list[str]) -> list[dict]:
    """Compose and check every job of a sweep before any is launched (Hydra's own expansion of
    the overrides), so a bad value in one job is one line and exit 2, not a failure hours in.
    Returns the plan: per job, its overrides and the run directories it will write."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    from fasbench import config
    from fasbench.engine.run import check_optimizer, resolve_protocol
    from fasbench.engine.trainer import check_writable

    plain = [o for o in overrides if not o.lstrip("+~").startswith("hydra")]
    try:
        (jobs,) = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(plain), None)
    except HydraException as exc:
        raise FasbenchError(f"bad sweep override: {str(exc).splitlines()[0]}") from None
    from fasbench.engine.run import _selected_tasks, run_dir_for
    from fasbench.engine.sweep import job_dirname

    seen: set[tuple[str, str, str]] = set()
    plan = []
    for job in jobs:
        try:
            cfg = config.compose(job)
        except FasbenchError as exc:
            raise FasbenchError(f"sweep job [{' '.join(job)}]: {exc}") from None
        protocol, _ = resolve_protocol(str(cfg.protocol))
        key = (str(cfg.protocol), str(cfg.optim.name), str(cfg.out))
        if key not in seen:
            seen.add(key)
            check_optimizer(str(cfg.optim.name))
            check_writable(Path(str(cfg.out)))
        cfg.out = str(Path(str(cfg.out)) / "multirun" / job_dirname(job))
        run_dirs = [str(run_dir_for(cfg, protocol, t.name)) for t in _selected_tasks(protocol, cfg.get("tasks"))]
        plan.append({"overrides": list(job), "job_dir": str(cfg.out), "run_dirs": run_dirs})
    return plan


def add_validate_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "validate", help="run a method's contract test on a tiny synthetic world (seconds)",
        description="Check that METHOD honours the method contract: named finite scalar losses, gradients "
                    "reach the student, predict() in [0,1] and deterministic in eval mode, frozen teachers "
                    "stay frozen, weights round-trip through safetensors, a short run writes a valid record.",
    )
    p.add_argument("method")
    p.add_argument("--json", action="store_true", help="print the checks as JSON")
    p.set_defaults(func=validate_main, accepts_overrides=True)


def validate_main(args) -> int:
    import json

    from tabulate import tabulate

    from fasbench.contract import validate_method

    checks = validate_method(args.method, overrides=list(args.overrides))
    if args.json:
        print(json.dumps([c.__dict__ for c in checks], indent=2))
    else:
        print(tabulate([[("ok" if c.ok else "FAIL"), c.name, c.detail] for c in checks],
                       headers=["", "check", "detail"], tablefmt="simple"))
    failed = [c for c in checks if not c.ok]
    if not args.json:
        print(f"\n{args.method}: {len(checks) - len(failed)}/{len(checks)} checks passed")
    return 1 if failed else 0
