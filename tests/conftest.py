"""Shared fixtures: an isolated synthetic-world cache and a ``fasbench`` subprocess runner."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

#: Environment variables of fasbench that a developer's shell could set and that would change
#: what the tests see; subprocesses start without them unless a test sets them.
FASBENCH_ENV = ("FASBENCH_LOAD_PLUGINS", "FASBENCH_STRICT_PLUGINS", "FASBENCH_DEBUG")


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``module_tmp(name)``: a fresh directory for a module-scoped fixture, removed when the
    module's tests are done (``FASBENCH_KEEP_TEST_DIRS=1`` keeps it).

    Every run a test trains keeps its student (about 45 MB for the tiny world's ResNet-18);
    kept until the session ends, a full suite's module folders filled 5.8 GB of scratch disk,
    more than a small CI machine has left beside the 5.5 GB of torch. Function-level
    ``tmp_path`` folders go the same way through ``tmp_path_retention_policy = "failed"``
    (pyproject.toml)."""
    made: list[Path] = []

    def make(name: str) -> Path:
        path = tmp_path_factory.mktemp(name)
        made.append(path)
        return path

    yield make
    if os.environ.get("FASBENCH_KEEP_TEST_DIRS") != "1":
        for path in made:
            shutil.rmtree(path, ignore_errors=True)


#: Free scratch disk (MiB) at the start and at its lowest after a test, for the summary line.
_SCRATCH: dict[str, object] = {}


def _free_mib() -> int:
    return shutil.disk_usage(tempfile.gettempdir()).free // 2**20


def pytest_sessionstart(session: pytest.Session) -> None:
    free = _free_mib()
    _SCRATCH.update(start=free, low=free, after="the start")


def pytest_runtest_logfinish(nodeid: str, location) -> None:
    free = _free_mib()
    if free < _SCRATCH.get("low", free + 1):
        _SCRATCH.update(low=free, after=nodeid)


def pytest_terminal_summary(terminalreporter) -> None:
    """One line on the scratch disk: a suite that runs out of it fails in confusing places."""
    if "low" in _SCRATCH:
        terminalreporter.write_line(
            f"scratch disk {tempfile.gettempdir()}: {_SCRATCH['start']} MiB free at the start, "
            f"{_SCRATCH['low']} MiB at the lowest (after {_SCRATCH['after']})"
        )


@pytest.fixture(scope="session")
def fasbench_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One synthetic-world cache for the whole session (the tiny world is generated once)."""
    return tmp_path_factory.mktemp("fasbench-cache")


@pytest.fixture(scope="session")
def cli_env(fasbench_cache: Path) -> Callable[..., dict[str, str]]:
    """``cli_env(pythonpath=None, **extra)``: the environment of a ``fasbench`` subprocess."""

    def make(pythonpath: Sequence[str | Path] | str | Path | None = None, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in FASBENCH_ENV and k != "PYTHONPATH"}
        env["FASBENCH_CACHE"] = str(fasbench_cache)
        # One intra-op thread per process: on a small, busy CPU torch's thread pool otherwise
        # oversubscribes the cores and a 4-step smoke run takes 5x longer.
        env.setdefault("OMP_NUM_THREADS", "1")
        if pythonpath is not None:
            paths = [pythonpath] if isinstance(pythonpath, (str, Path)) else list(pythonpath)
            env["PYTHONPATH"] = os.pathsep.join(str(p) for p in paths)
        env.update(extra)
        return env

    return make


@pytest.fixture(scope="session")
def run_cli(cli_env, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., subprocess.CompletedProcess]:
    """``run_cli(*args, pythonpath=None, env=None, cwd=None, timeout=120)``: run
    ``python -m fasbench ARGS`` in a subprocess (cwd: a scratch directory, so nothing lands
    in the repository) and return the CompletedProcess (text stdout/stderr)."""
    scratch = tmp_path_factory.mktemp("cli-cwd")

    def run(*args: str, pythonpath=None, env: Mapping[str, str] | None = None, cwd: str | Path | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "fasbench", *map(str, args)],
            env=cli_env(pythonpath, **dict(env or {})),
            cwd=str(cwd or scratch),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{proc.stderr}"
    assert lines[0].startswith("fasbench: error: "), lines[0]
    return lines[0]


@pytest.fixture(scope="session")
def one_line_error() -> Callable[[subprocess.CompletedProcess], str]:
    """``one_line_error(proc)``: assert the process failed the way user errors must (exit 2,
    exactly one ``fasbench: error: ...`` line on stderr, no traceback); return that line."""
    return _one_line_error
