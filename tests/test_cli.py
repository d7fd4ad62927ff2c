"""The ``fasbench`` command line, driven in subprocesses (``python -m fasbench ...``)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fasbench.contract import TINY_WORLD
from fasbench.registry import KINDS


@pytest.fixture(scope="session")
def tiny_world_args() -> list[str]:
    return [*TINY_WORLD, "trainer=smoke"]


def test_help(run_cli):
    proc = run_cli("--help")
    assert proc.returncode == 0, proc.stderr
    for command in ("run", "validate", "ls", "plugins", "leaderboard", "compare", "score"):
        assert command in proc.stdout
    assert proc.stderr == ""


def test_no_command_prints_help(run_cli):
    proc = run_cli()
    assert proc.returncode == 2 and "usage: fasbench" in proc.stdout


def test_version(run_cli):
    from fasbench import __version__

    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"fasbench {__version__}"


@pytest.mark.parametrize("command", ["run", "validate", "ls", "plugins", "leaderboard", "compare"])
def test_subcommand_help(run_cli, command):
    proc = run_cli(command, "--help")
    assert proc.returncode == 0 and f"usage: fasbench {command}" in proc.stdout


def test_console_script(tmp_path):
    """The installed ``fasbench`` script is the same entry point as ``python -m fasbench``."""
    exe = Path(sys.executable).parent / "fasbench"
    if not exe.exists():
        pytest.skip("no fasbench console script next to this interpreter")
    proc = subprocess.run([str(exe), "--version"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith("fasbench ")


EXPECTED = {
    "datasets": {"synthetic"},
    "protocols": {"MICO", "LimitedSource", "Intra"},
    "students": {"timm"},
    "aligners": {"none"},
    "methods": {"erm"},
    "metrics": {"HTER", "AUC", "EER", "ACER", "APCER", "BPCER"},
    "teachers": set(),
}


@pytest.mark.parametrize("kind", KINDS)
def test_ls_json(run_cli, kind):
    proc = run_cli("ls", kind, "--json")
    assert proc.returncode == 0, proc.stderr
    entries = json.loads(proc.stdout)
    assert isinstance(entries, list)
    names = [e["name"] for e in entries]
    assert EXPECTED[kind] <= set(names), names
    assert names == sorted(names)
    for e in entries:
        assert {"name", "version", "plugin", "description", "factory"} <= set(e)
        assert isinstance(e["version"], int) and e["version"] >= 1
    assert proc.stderr == ""


def test_ls_table(run_cli):
    proc = run_cli("ls", "methods")
    assert proc.returncode == 0
    header, *rows = proc.stdout.splitlines()
    assert header.split() == ["name", "version", "plugin", "description"]
    assert any(r.split()[:3] == ["erm", "1", "baselines"] for r in rows)


def test_plugins_json(run_cli):
    proc = run_cli("plugins", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["fasbench"]["status"] == "loaded" and "register_commands" in rows["fasbench"]["hooks"]
    assert rows["baselines"]["distribution"] == "fasbench-baselines"
    assert rows["baselines"]["hooks"] == ["register_methods"]


@pytest.mark.parametrize("args", [["ls", "metrics", "--json"], ["plugins"]])
def test_closed_stdout_is_quiet(cli_env, args):
    """``fasbench ls metrics --json | head -1``: a closed pipe is no traceback."""
    read, write = os.pipe()
    os.close(read)  # every write to the pipe now fails with EPIPE
    try:
        proc = subprocess.run([sys.executable, "-m", "fasbench", *args], stdout=write, stderr=subprocess.PIPE,
                              env=cli_env(), text=True, timeout=60)
    finally:
        os.close(write)
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr, proc.stderr


# --- errors: one clear line on stderr, exit code 2, no traceback ---------------------------

@pytest.mark.parametrize("method, suggestion", [("emr", "erm"), ("er", "erm"), ("ERM", "erm")])
def test_unknown_method_suggests(run_cli, one_line_error, method, suggestion):
    line = one_line_error(run_cli("run", method))
    assert f"unknown method {method!r}" in line and f"did you mean {suggestion!r}" in line
    assert "fasbench ls methods" in line


@pytest.mark.parametrize("protocol, needle", [
    ("NOPE", "unknown protocol 'NOPE'"),
    ("mico", "did you mean 'MICO'"),  # more close-match cases: test_registry.py
])
def test_unknown_protocol(run_cli, one_line_error, protocol, needle):
    line = one_line_error(run_cli("run", "erm", "--protocol", protocol, "--no-progress"))
    assert needle in line and "MICO" in line and "LimitedSource" in line


@pytest.mark.parametrize("override, needle", [
    ("trainer.max_steps==", "trainer.max_steps=="),
    ("nonexistent.key=3", "nonexistent.key"),
    ("optim=nope", "optim/nope"),
    ("trainer.max_steps", "trainer.max_steps"),
])
def test_malformed_override(run_cli, one_line_error, override, needle):
    line = one_line_error(run_cli("run", "erm", "--no-progress", override))
    assert "override" in line and needle in line and "key=value" in line


def test_unknown_dataset(run_cli, one_line_error):
    line = one_line_error(run_cli("run", "erm", "--data", "nope"))
    assert "unknown dataset 'nope'" in line and "synthetic" in line and "fasbench ls datasets" in line


@pytest.mark.parametrize("seeds", ["a,b", "1,x", "3-1", ","])
def test_bad_seeds(run_cli, one_line_error, seeds):
    line = one_line_error(run_cli("run", "erm", "--seeds", seeds, "--no-progress"))
    assert "--seeds" in line and "0,1,2" in line


def test_target_is_source(run_cli, one_line_error):
    line = one_line_error(run_cli("run", "erm", "--protocol", "MC->M", "--no-progress"))
    assert "also a source" in line and "Intra" in line


def test_unparseable_protocol(run_cli, one_line_error):
    line = one_line_error(run_cli("run", "erm", "--protocol", "OC#I->M", "--no-progress"))
    assert "cannot parse protocol" in line and "OCI->M" in line


def test_protocol_domain_missing_from_dataset(run_cli, tiny_world_args):
    proc = run_cli("run", "erm", "--protocol", "MC->O", "--no-progress", *tiny_world_args)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("fasbench: error:")]
    assert len(errors) == 1 and "'O'" in errors[0]  # the tiny world has domains M, C, I only


def test_no_progress_silences_world_generation(run_cli, tmp_path, tiny_world_args):
    proc = run_cli("run", "erm", "--protocol", "MC->O", "--no-progress", *tiny_world_args,
                   env={"FASBENCH_CACHE": str(tmp_path / "fresh-cache")})  # the world is generated here
    assert proc.returncode == 2
    assert "video/s" not in proc.stderr, proc.stderr


def test_unknown_task(run_cli, one_line_error):
    line = one_line_error(run_cli("run", "erm", "--protocol", "LimitedSource", "--tasks", "M", "--no-progress"))
    assert "no task 'M'" in line and "MI->C" in line


def test_unknown_method_in_validate(run_cli, one_line_error):
    line = one_line_error(run_cli("validate", "emr"))
    assert "did you mean 'erm'" in line


def test_unrecognised_flag_is_an_argparse_error(run_cli):
    proc = run_cli("ls", "methods", "--bogus")
    assert proc.returncode == 2 and "unrecognized arguments: --bogus" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_overrides_rejected_where_not_accepted(run_cli):
    proc = run_cli("plugins", "trainer.max_steps=3")
    assert proc.returncode == 2 and "unrecognized arguments" in proc.stderr
    proc = run_cli("ls", "methods", "erm", "trainer.max_steps=3")
    assert proc.returncode == 2 and "unrecognized arguments" in proc.stderr


def test_ls_unknown_kind(run_cli):
    proc = run_cli("ls", "method")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr and "methods" in proc.stderr


def test_validate_erm(run_cli):
    proc = run_cli("validate", "erm", timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "erm: 8/8 checks passed" in proc.stdout
    assert "resumed: scores identical to the uninterrupted run" in proc.stdout
    assert "FAIL" not in proc.stdout


def test_multirun_sweep_gives_every_job_its_own_records(run_cli, tmp_path):
    args = ["run", "erm", "--protocol", "MC->I", "-m", "--no-progress", "--out", str(tmp_path), "trainer=smoke",
            "trainer.max_steps=2", *TINY_WORLD, "optim.lr=1e-3,3e-4"]
    proc = run_cli(*args, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    paths = sorted(tmp_path.glob("multirun/*/MC_to_I/erm/MC_to_I/seed0/record.json"))
    assert len(paths) == 2, proc.stdout + proc.stderr
    recs = [json.loads(p.read_text()) for p in paths]
    assert sorted(r["config"]["optim"]["lr"] for r in recs) == [0.0003, 0.001]
    # each job folder is the one the sweep's plan names for its overrides (sweep status reads it)
    rows = json.loads(run_cli("sweep", "status", "--out", str(tmp_path), "--json").stdout)
    planned = {r["run_dir"]: r["overrides"] for r in rows}
    assert all(f"optim.lr={r['config']['optim']['lr']}" in planned[str(p.parent)] for p, r in zip(paths, recs))
    assert all(len(p.relative_to(tmp_path / "multirun").parts[0].encode()) <= 200 for p in paths)
    # the sweep's directories are named by its overrides: a relaunch finds both runs complete
    # and drops their jobs before anything is launched
    again = run_cli(*args, "--resume", timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "2 job(s) complete, skipped" in again.stderr and "every job of this sweep is complete" in again.stderr
    assert [json.loads(p.read_text())["created"] for p in paths] == [r["created"] for r in recs]
