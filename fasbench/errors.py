"""User-facing errors: the CLI prints their message (no traceback) and exits non-zero."""
from __future__ import annotations


class FasbenchError(Exception):
    """An error caused by the user's input or environment, with a message that says the fix."""


class UnknownComponentError(FasbenchError, KeyError):
    """A component name that no plugin registered."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class DuplicateComponentError(FasbenchError):
    """Two plugins registered the same component name."""


class PluginLoadError(FasbenchError):
    """A plugin failed to import (fatal only with FASBENCH_STRICT_PLUGINS=1)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM during a run, with what survives it: the message says whether
    and from which step ``--resume`` continues; ``signum`` is the signal (the CLI exits 128 + it)."""

    def __init__(self, message: str = "", signum: int = 2) -> None:
        super().__init__(message)
        self.signum = signum


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread by the CLI's handler, so that ``kill``, ``docker stop``
    or a scheduler's time limit stops a run the way Ctrl-C does: its lease released, its log
    closed, a message saying what ``--resume`` continues from, exit code 143."""

    signum = 15
