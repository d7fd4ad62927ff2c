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
    p.add_argument("method", help="a registered method (`fasbench ls methods`); with -m, several separated by commas "
                                  "(erm,dat,dtda) sweep them")
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
                   help="Hydra sweep over comma-separated overrides (e.g. optim.lr=1e-3,3e-4 seed=0,1,2); jobs always "
                        "resume; parallel or on SLURM with hydra/launcher=joblib|submitit_slurm (docs/sweeps.md)")
    p.add_argument("--cfg", action="store_true",
                   help="print the composed config (YAML, with --protocol/--seed/--out/--tasks applied; every job's with -m) "
                        "and exit without running")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON instead of a table")
    p.set_defaults(func=main, accepts_overrides=True)


def _has_key(overrides, key: str) -> bool:
    return any(str(o).split("=", 1)[0].lstrip("+~") == key for o in overrides or [])


def _base_overrides(args) -> list[str]:
    # a -m sweep's method=erm,dat override replaces METHOD; METHOD itself may list several (erm,dat)
    ov = [] if args.multirun and _has_key(getattr(args, "overrides", None), "method") else [f"method={args.method}"]
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

    methods = [m.strip() for m in str(args.method).split(",")]
    if len(methods) > 1 and not args.multirun:
        raise FasbenchError(f"METHOD {args.method!r} names several methods: sweep them with -m "
                            f"(fasbench run {args.method} -m ...), or run one at a time")
    if not (args.multirun and _has_key(getattr(args, "overrides", None), "method")):
        for m in methods:
            plugins.registry("methods").get(m)
    if args.data:
        plugins.registry("datasets").get(args.data)
    if args.protocol:
        from fasbench.engine.run import resolve_protocol

        resolve_protocol(args.protocol)


def main(args) -> int:
    from fasbench import config
    from fasbench.engine.identity import process_git
    from fasbench.engine.run import dump_json, results_table, run_protocol

    _check_names(args)
    process_git()  # the commit this process runs, before anything trains (a commit made meanwhile is not ours)
    if args.multirun:
        return _multirun(args)
    cfg = config.compose(_base_overrides(args) + list(args.overrides))
    _apply_args(cfg, args)
    config.check_root(cfg)
    seeds = _seeds(args.seeds) if args.seeds else None
    for s in seeds or ():
        config.check_root({**{k: cfg.get(k) for k in ("protocol", "tasks", "out", "device")}, "seed": s})
    if args.cfg:  # like Hydra's --cfg job: what would run, nothing run
        from omegaconf import OmegaConf

        if seeds:
            print(f"# one run per task for each of the seeds {','.join(map(str, seeds))} (seed below: the first)")
            cfg.seed = seeds[0]
        print(OmegaConf.to_yaml(cfg, resolve=True), end="")
        return 0
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


#: the launcher plugins of the ``sweep`` extra: Hydra's name -> (module, distribution)
LAUNCHERS = {"joblib": ("hydra_plugins.hydra_joblib_launcher", "hydra-joblib-launcher"),
             "submitit_local": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher"),
             "submitit_slurm": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher")}


def _check_launcher(overrides: list[str]) -> None:
    import importlib.util

    for o in overrides:
        key, _, value = str(o).partition("=")
        if key.lstrip("+~") != "hydra/launcher" or value not in LAUNCHERS:
            continue
        module, dist = LAUNCHERS[value]
        try:
            found = importlib.util.find_spec(module) is not None and (
                not value.startswith("submitit") or importlib.util.find_spec("submitit") is not None)
        except ImportError:  # the hydra_plugins namespace itself is missing
            found = False
        if not found:
            raise FasbenchError(f"hydra/launcher={value} needs {dist}: pip install 'fasbench[sweep]'")


def _multirun(args) -> int:
    """Sweep through Hydra's launcher mechanism: the basic launcher (one job after the other) by
    default; joblib (``hydra/launcher=joblib``: parallel jobs on this machine) and submitit
    (``submitit_local``, ``submitit_slurm``) with the ``sweep`` extra (docs/sweeps.md).

    Every job is composed and checked, and the plan written, before the first one starts; jobs
    whose runs are all complete are dropped before they are queued; the jobs run in whatever
    processes the launcher picks (:class:`fasbench.engine.sweep.SweepJob`) and report to files,
    which give the summary and the exit status (1 when a job failed or left no result)."""
    import json

    import hydra

    from fasbench.config import store_plugin_configs
    from fasbench.engine.sweep import SweepJob, install_sweeper, result_path, write_plan

    store_plugin_configs()
    overrides = _base_overrides(args)
    if args.protocol:
        overrides.append(f"protocol='{args.protocol}'")
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    if args.seeds:
        overrides.append(f"seed={','.join(str(s) for s in _seeds(args.seeds))}")
    if args.out:
        overrides.append(f"out={args.out}")
    if args.tasks:
        overrides.append(f"tasks=[{args.tasks}]")
    out = args.out or "runs"
    _check_launcher(list(args.overrides))
    jobs = _check_sweep([*overrides, *args.overrides], show=args.cfg)
    if args.cfg:
        return 0
    todo = [j for j in jobs if not j["complete"]]
    plan = write_plan(Path(out) / "multirun", jobs)
    n_runs = sum(len(j["run_dirs"]) for j in jobs)
    skipped = len(jobs) - len(todo)
    print(f"sweep of {len(jobs)} job(s), {n_runs} run(s)"
          + (f"; {skipped} job(s) complete, skipped" if skipped else "")
          + f"; plan {plan}; status: fasbench sweep status --out {out}", file=sys.stderr)
    if not todo:
        print(f"fasbench: every job of this sweep is complete; records under {out}/multirun", file=sys.stderr)
        return 0
    results = plan.with_suffix("").resolve()  # absolute: a cluster job may start elsewhere
    results.mkdir(parents=True, exist_ok=True)
    hydra_overrides = [f"hydra.sweep.dir={out}/multirun",
                       # named by the overrides that are not already in the run path (PROTOCOL/METHOD/TASK/seedN),
                       # hashed when too long for a file name; each job keeps its own .hydra folder
                       "hydra.sweep.subdir='${fasbench_jobdir:${hydra.overrides.task}}'",
                       "hydra.output_subdir='.hydra/${fasbench_jobkey:${hydra.overrides.task}}'",
                       "hydra.job.name=fasbench"]
    if not _has_key(args.overrides, "hydra/sweeper"):
        hydra_overrides.append(install_sweeper([j["key"] for j in jobs if j["complete"]]))
    argv = ["fasbench", "--multirun", *overrides, *args.overrides, *hydra_overrides]
    app = hydra.main(version_base="1.3", config_path="pkg://fasbench.conf", config_name="config")(
        SweepJob(progress=not args.no_progress, results=str(results)))
    saved, stopped = sys.argv, None
    sys.argv = argv
    try:
        app()
    except SystemExit as exc:  # Hydra printed its error (a launcher that failed, a job that raised past us)
        stopped = exc.code
    finally:
        sys.argv = saved
    failed, missing = [], []
    for job in todo:
        path = result_path(results, job["overrides"])
        try:
            res = json.loads(path.read_text())
        except (OSError, ValueError):
            missing.append(job)
            continue
        if res.get("status") != "complete":
            failed.append(f"{' '.join(job['overrides'])}] {res.get('message', '')[:300]}")
    if failed:
        print(f"fasbench: {len(failed)} of {len(jobs)} sweep job(s) failed (each wrote failed.json in its run directory):",
              file=sys.stderr)
        for f in failed:
            print(f"  [{f}", file=sys.stderr)
    if missing:
        print(f"fasbench: {len(missing)} of {len(jobs)} sweep job(s) left no result (killed, timed out, or the launcher "
              f"failed{'' if stopped in (None, 0) else ': see the error above'}); `fasbench sweep status --out {out}` "
              "shows where each run stands, and the same command again resumes them:", file=sys.stderr)
        for job in missing:
            print(f"  [{' '.join(job['overrides'])}]", file=sys.stderr)
    return 1 if failed or missing or stopped not in (None, 0) else 0


def _job_methods(jobs: list[list[str]]) -> list[str]:
    names: list[str] = []
    for job in jobs:
        for o in job:
            key, _, value = o.partition("=")
            if key.lstrip("+~") == "method" and value not in names:
                names.append(value)
    return names


def _check_sweep(overrides: list[str], show: bool = False) -> list[dict]:
    """Compose and check every job of a sweep before any is launched (Hydra's own expansion of
    the overrides), so a bad value in one job is one line and exit 2, not a failure hours in.
    Returns the plan: per job, its overrides, key, the run directories it will write, and
    whether they all hold a complete record of this configuration already (then it is skipped).
    ``show``: print every job's composed config (``--cfg``)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    from fasbench import config, plugins
    from fasbench.engine.identity import config_hash
    from fasbench.engine.run import check_optimizer, resolve_protocol
    from fasbench.engine.trainer import check_writable

    plain = [o for o in overrides if not o.lstrip("+~").startswith("hydra")]
    try:
        (jobs,) = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(plain), None)
    except HydraException as exc:
        raise FasbenchError(f"bad sweep override: {str(exc).splitlines()[0]}") from None
    for name in _job_methods(jobs):  # every method name, before anything is composed or launched
        plugins.registry("methods").get(name)
    from fasbench.engine.run import _selected_tasks, run_dir_for
    from fasbench.engine.sweep import is_complete, job_dirname, job_key

    seen: set[tuple[str, str, str]] = set()
    plan = []
    composed: dict[tuple[str, ...], object] = {}  # jobs that differ in their seed alone are composed once
    for job in jobs:
        rest = tuple(o for o in job if o.split("=", 1)[0] != "seed")
        seed = [o.split("=", 1)[1] for o in job if o.split("=", 1)[0] == "seed"]
        try:
            if rest not in composed:
                composed[rest] = config.compose(list(rest))
            cfg = composed[rest].copy()
            if seed:  # a plain top-level int: set and checked like --seed
                OmegaConf.set_struct(cfg, False)
                cfg.seed = int(seed[-1]) if seed[-1].lstrip("-").isdigit() else seed[-1]
                config.check_root(cfg)
        except FasbenchError as exc:
            raise FasbenchError(f"sweep job [{' '.join(job)}]: {exc}") from None
        protocol, _ = resolve_protocol(str(cfg.protocol))
        key = (str(cfg.protocol), str(cfg.optim.name), str(cfg.out))
        if key not in seen:
            seen.add(key)
            check_optimizer(str(cfg.optim.name))
            check_writable(Path(str(cfg.out)))
        OmegaConf.set_struct(cfg, False)
        cfg.out = str(Path(str(cfg.out)) / "multirun" / job_dirname(job))
        if show:
            print(f"# sweep job [{' '.join(job)}]\n{OmegaConf.to_yaml(cfg, resolve=True)}---")
        run_dirs = [str(run_dir_for(cfg, protocol, t.name)) for t in _selected_tasks(protocol, cfg.get("tasks"))]
        done = is_complete(run_dirs, config_hash(OmegaConf.to_container(cfg, resolve=True)))
        plan.append({"overrides": list(job), "key": job_key(job), "job_dir": str(cfg.out), "run_dirs": run_dirs,
                     "complete": done})
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
