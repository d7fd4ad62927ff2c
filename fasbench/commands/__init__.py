"""CLI subcommands: each module provides ``add_parser(subparsers)`` and ``main(args)``.

:func:`add_builtin_commands` is what fasbench's own ``register_commands`` hook
(:mod:`fasbench.builtins`) adds, exactly as a plugin would add its commands.
"""
from __future__ import annotations


def add_builtin_commands(subparsers) -> None:
    from fasbench.commands import compare, data, info, leaderboard, run, score, sweep, weights

    run.add_parser(subparsers)
    run.add_validate_parser(subparsers)
    info.add_ls_parser(subparsers)
    info.add_plugins_parser(subparsers)
    leaderboard.add_parser(subparsers)
    from fasbench.commands import plot
    plot.add_parser(subparsers)
    compare.add_parser(subparsers)
    score.add_parser(subparsers)
    data.add_parser(subparsers)
    weights.add_parser(subparsers)
    sweep.add_parser(subparsers)
    from fasbench.commands import export, hub, predict
    predict.add_parser(subparsers)
    export.add_parser(subparsers)
    hub.add_push_parser(subparsers)
    hub.add_eval_parser(subparsers)
