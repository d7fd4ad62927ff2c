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
from collections.abc import Sequence

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
        return 130


def entry() -> None:  # console script
    sys.exit(main())
