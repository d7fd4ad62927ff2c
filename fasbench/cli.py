"""The ``fasbench`` command line: argparse subcommands, contributed through the
``register_commands`` hook (built-ins included, see :mod:`fasbench.commands`); a plugin whose
hook raises loses its commands, never the CLI (:func:`fasbench.plugins.add_commands`).
Tokens a subcommand does not know are Hydra overrides for the commands that take them
(``fasbench run erm trainer.max_steps=600``).
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from fasbench import __version__
from fasbench.errors import FasbenchError
from fasbench.util import env_flag


def build_parser() -> argparse.ArgumentParser:
    from fasbench import plugins

    parser = argparse.ArgumentParser(
        prog="fasbench",
        description="Benchmark harness for cross-domain face anti-spoofing (plugins: `fasbench plugins`).",
        epilog="Example: fasbench run erm --protocol MICO --data synthetic trainer.max_steps=600",
    )
    parser.add_argument("--version", action="version", version=f"fasbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    plugins.add_commands(sub)  # each plugin's register_commands on its own, built-ins first
    return parser


def _terminate_like_ctrl_c() -> Callable[[], None]:
    """SIGTERM raises :class:`fasbench.errors.Terminated` in the main thread, so a run stopped by
    ``kill``, ``docker stop`` or a scheduler (SLURM signals SIGTERM at a time limit or a
    preemption) unwinds like Ctrl-C: the run directory's lease is released at once (a hard kill
    leaves it to expire, up to two minutes for a requeued job on another node), logs are closed
    and the message says what ``--resume`` continues from. A handler someone else installed
    (submitit, a host program) is left alone. Returns the function that puts the default back."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return lambda: None
    from fasbench.errors import Terminated

    def handler(signum, frame):
        raise Terminated("terminated (SIGTERM)")

    signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    restore = _terminate_like_ctrl_c()
    try:
        return _main(argv)
    finally:
        restore()


def _main(argv: list[str]) -> int:
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        if not getattr(args, "command", None):
            parser.print_help()
            return 2
        if extra:
            if not getattr(args, "accepts_overrides", False) or any(t.startswith("-") and "=" not in t for t in extra):
                bad = [t for t in extra if not getattr(args, "accepts_overrides", False) or t.startswith("-")]
                parser.error(f"unrecognized arguments: {' '.join(bad)}")
        args.overrides = extra
        rc = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe surfaces here, inside the handler below, not at exit
        return rc
    except FasbenchError as exc:
        print(f"fasbench: error: {exc}", file=sys.stderr)
        if env_flag("FASBENCH_DEBUG"):
            raise
        return 2
    except BrokenPipeError:  # `fasbench ls methods | head`: stop quietly, like other CLI tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt as exc:  # fasbench.errors.Interrupted says what --resume continues from
        print(f"fasbench: {exc or 'interrupted'}", file=sys.stderr)
        return 128 + int(getattr(exc, "signum", 2))  # 130 for Ctrl-C, 143 for SIGTERM


def entry() -> None:  # console script
    sys.exit(main())
