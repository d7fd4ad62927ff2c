"""Shared fixtures: an isolated synthetic-world cache and a ``fasbench`` subprocess runner."""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

#: Environment variables of fasbench that a developer's shell could set and that would change
#: what the tests see; subprocesses start without them unless a test sets them.
FASBENCH_ENV = ("FASBENCH_LOAD_PLUGINS", "FASBENCH_STRICT_PLUGINS", "FASBENCH_DEBUG")


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
