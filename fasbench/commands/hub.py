"""``fasbench push`` and ``fasbench eval`` (placeholder while being written)."""
from __future__ import annotations

from typing import Any


def add_push_parser(subparsers: Any) -> None:
    pass


def add_eval_parser(subparsers: Any) -> None:
    pass
