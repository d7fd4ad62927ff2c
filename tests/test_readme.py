"""The README stays true: its plugin example is the tested example, its commands exist."""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
EXAMPLE = REPO / "examples" / "plugin-example"


def test_plugin_example_in_readme_is_the_tested_one():
    for rel in ("pyproject.toml", "fasbench_example/plugin.py", "fasbench_example/options.py",
                "fasbench_example/method.py"):
        code = (EXAMPLE / rel).read_text().strip()
        assert code in README, f"README's copy of examples/plugin-example/{rel} is out of date"


def test_readme_names_the_demo_and_test_commands_ci_runs():
    assert "fasbench run dtda --protocol MICO --data synthetic" in README  # the main job
    assert "fasbench run erm --protocol MICO --data synthetic" in README
    ci = (REPO / ".ci" / "run").read_text()
    assert "python -m pytest -q" in README and "python -m pytest -q" in ci
    setup = "pip install -c constraints.txt -e \".[test,all]\" -e plugins/baselines -e plugins/dtda"
    assert setup in README and setup.replace("pip install", "python -m pip install --quiet") in ci


def test_readme_has_no_unfilled_sections():
    for marker in ("DEMO_RESULTS", "SYNTHETIC_WORLD", "BENCHMARKS", "PLUGIN_MODULE", "PLUGIN_METHOD", "PLUGIN_PYPROJECT", "DEMO_DTDA",
                   "DTDA_LEADERBOARD"):
        assert marker not in README
