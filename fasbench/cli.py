"""The ``fasbench`` command line: argparse subcommands, contributed through the
``register_commands`` hook (built-ins included). Tokens a subcommand does not know are
Hydra overrides for the commands that take them (``fasbench run erm trainer.max_steps=600``).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from fasbench import __version__
from fasbench.errors import FasbenchError


def add_builtin_commands(subparsers) -> None:
    from fasbench.commands import compare, info, leaderboard, run, score

    run.add_parser(subparsers)
    run.add_validate_parser(subparsers)
    info.add_ls_parser(subparsers)
    info.add_plugins_parser(subparsers)
    leaderboard.add_parser(subparsers)
    compare.add_parser(subparsers)
    score.add_parser(subparsers)
    from fasbench.commands import data as data_command; data_command.add_parser(subparsers)  # noqa: E702
    from fasbench.commands import weights as weights_command; weights_command.add_parser(subparsers)  # noqa: E702


def build_parser() -> argparse.ArgumentParser:
    from fasbench import plugins

    parser = argparse.ArgumentParser(
        prog="fasbench",
        description="Benchmark harness for cross-domain face anti-spoofing (plugins: `fasbench plugins`).",
        epilog="Example: fasbench run erm --protocol MICO --data synthetic trainer.max_steps=600",
    )
    parser.add_argument("--version", action="version", version=f"fasbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    plugins.get_plugin_manager().hook.register_commands(subparsers=sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
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
        return int(args.func(args) or 0)
    except FasbenchError as exc:
        print(f"fasbench: error: {exc}", file=sys.stderr)
        if os.environ.get("FASBENCH_DEBUG"):
            raise
        return 2
    except BrokenPipeError:  # `fasbench ls methods | head`: stop quietly, like other CLI tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print("fasbench: interrupted (rerun with --resume to continue from the last checkpoint)", file=sys.stderr)
        return 130


def entry() -> None:  # console script
    sys.exit(main())
