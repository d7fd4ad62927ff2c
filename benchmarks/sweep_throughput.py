"""Sweep throughput: 8 tiny runs through Hydra's joblib launcher (2 jobs at a time, one torch
thread each) against the same 8 runs one after the other in one process.

Both sides are ``fasbench`` commands in fresh processes with ``OMP_NUM_THREADS=1`` (torch then
uses one intra-op thread in the process and in every joblib worker), on the tiny synthetic
world (generated once beforehand, outside the timings), ERM on MC->I, seeds 0-7, the smoke
trainer with ``--steps`` steps (an evaluation and a checkpoint half-way and at the end). The
sequential side is ``fasbench run erm --seeds 0-7``; the sweep side is ``fasbench run erm -m
seed=0,...,7 hydra/launcher=joblib hydra.launcher.n_jobs=2``. Wall-clock seconds of each
command, start-up included; the two sides' records must hold the same scores (sha256), so the
work is the same. Needs the sweep extra (pip install -e '.[sweep]').

    python benchmarks/sweep_throughput.py [--steps 60] [--runs 8] [--jobs 2]

Prints a summary, then one JSON object on the last line (``ratio`` = sequential s / sweep s;
the goal on a 2-core machine is >= 1.7). The 1-minute load average before and after each side
is reported: other processes on the machine slow both sides and shrink the ratio (on a
saturated machine two processes get no more CPU than one). The CPU seconds of each side say
what the sweep costs beyond the runs themselves, whatever the load.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fasbench.contract import TINY_WORLD


def _common(steps: int) -> list[str]:
    half = max(1, steps // 2)
    return ["--protocol", "MC->I", "--no-progress", "trainer=smoke", f"trainer.max_steps={steps}",
            f"trainer.eval_every={half}", f"trainer.checkpoint_every={half}", "trainer.log_every=10",
            "eval.bootstrap=0", "device=cpu", *TINY_WORLD]


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, tuple[float, float], float]:
    """Wall seconds, the 1-minute load average before and after, and the CPU seconds (user +
    system) of the command and every process it waited for (joblib's workers included)."""
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd[:6])} ... failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, (load, os.getloadavg()[0]), cpu


def _scores(out: Path) -> dict[int, str]:
    found = {}
    for rec in out.rglob("record.json"):
        r = json.loads(rec.read_text())
        found[int(r["seed"])] = r["scores"]["sha256"]
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60, help="training steps per run (default 60)")
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--jobs", type=int, default=2, help="joblib n_jobs")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "FASBENCH_CACHE": str(Path(tmp) / "cache")}
        fasbench = [sys.executable, "-m", "fasbench", "run", "erm"]
        # the world once, outside the timings (a 1-step run generates and caches it)
        _timed([*fasbench, *_common(1), "--out", str(Path(tmp) / "warm")], env)
        seeds = list(range(args.runs))
        seq_out, sweep_out = Path(tmp) / "sequential", Path(tmp) / "sweep"
        seq_s, seq_load, seq_cpu = _timed([*fasbench, *_common(args.steps), "--seeds", f"0-{args.runs - 1}", "--out", str(seq_out)], env)
        print(f"sequential: {args.runs} runs in {seq_s:.1f} s, {seq_cpu:.1f} CPU s (load {seq_load[0]:.1f} -> {seq_load[1]:.1f})")
        sweep_s, sweep_load, sweep_cpu = _timed([*fasbench, "-m", *_common(args.steps), f"seed={','.join(map(str, seeds))}",
                                      "--out", str(sweep_out), "hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.jobs}"],
                                     env)
        print(f"joblib, {args.jobs} jobs: {args.runs} runs in {sweep_s:.1f} s, {sweep_cpu:.1f} CPU s "
              f"(load {sweep_load[0]:.1f} -> {sweep_load[1]:.1f})")
        a, b = _scores(seq_out), _scores(sweep_out)
        same = sorted(a) == sorted(b) == seeds and a == b
    result = {
        "benchmark": "sweep_throughput",
        "method": "erm", "protocol": "MC->I", "data": "synthetic tiny world (fasbench.contract.TINY_WORLD)",
        "runs": args.runs, "steps": args.steps, "n_jobs": args.jobs, "torch_threads_per_process": 1,
        "cpu_count": os.cpu_count(),
        "sequential_s": round(seq_s, 2), "joblib_s": round(sweep_s, 2), "ratio": round(seq_s / sweep_s, 3),
        "same_scores": same,
        # CPU seconds of all processes of each side: what the sweep costs beyond the same runs
        # (more start-ups, one per worker); on an idle machine the ratio is bounded by
        # n_jobs * sequential_cpu_s / joblib_cpu_s
        "sequential_cpu_s": round(seq_cpu, 2), "joblib_cpu_s": round(sweep_cpu, 2),
        "load_1min": {"sequential": [round(x, 2) for x in seq_load], "joblib": [round(x, 2) for x in sweep_load]},
    }
    print(f"sequential / joblib = {result['ratio']:.2f} (goal >= 1.7 on 2 cores); same scores: {same}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
