"""Time to a one-line error for a wrong config value (target: under 2 s).

A mistyped value must fail before torch or any data is loaded. This runs `fasbench run`
with bad values in fresh processes (as a user would) and reports the wall time of each,
the best and median of ``--repeats`` runs, and the error line.

    python benchmarks/config_errors.py [--repeats 5]

Prints a table, then one JSON object on the last line.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time

CASES = (
    ("erm", "trainer.max_steps=abc"),
    ("erm", "method.label_smoothing=abc"),
    ("dat", "method.single_side=maybe"),
    ("erm", "data.subjects=abc"),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as out:
        for method, override in CASES:
            times, line, rc = [], "", 0
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                proc = subprocess.run([sys.executable, "-m", "fasbench", "run", method, "--out", out, override],
                                      capture_output=True, text=True)
                times.append(time.perf_counter() - t0)
                rc, lines = proc.returncode, [ln for ln in proc.stderr.splitlines() if ln.strip()]
                line = lines[-1] if lines else ""
            results.append({"case": f"{method} {override}", "returncode": rc, "stderr_lines": len(lines),
                            "best_s": round(min(times), 3), "median_s": round(statistics.median(times), 3),
                            "error": line})
    for r in results:
        print(f"{r['case']:<34} rc={r['returncode']} best {r['best_s']:.2f} s median {r['median_s']:.2f} s  {r['error']}")
    worst = max(r["median_s"] for r in results)
    ok = all(r["returncode"] != 0 and r["stderr_lines"] == 1 for r in results)
    print(json.dumps({"benchmark": "config_errors", "repeats": args.repeats, "worst_median_s": worst,
                      "target_s": 2.0, "one_line_nonzero": ok, "cases": results}))


if __name__ == "__main__":
    main()
