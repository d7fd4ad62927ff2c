"""``fasbench weights pull URI [URI ...]``: fetch weights into the Hugging Face cache now
(for example on a machine with internet, before copying the cache to an offline one) and
print, per URI, the local path, the resolved commit, the sha256 and the size.

URIs: hf-hub:ORG/REPO[@REVISION][/PATH.safetensors], local-dir:FOLDER, file:PATH.safetensors
(or a scheme a plugin resolves). Only safetensors files are accepted.
"""
from __future__ import annotations

import argparse
import json
from typing import Any

from fasbench.errors import FasbenchError


def add_parser(subparsers: Any) -> None:
    """Register ``weights`` (with its ``pull`` subcommand) on an argparse subparsers object."""
    p = subparsers.add_parser(
        "weights",
        help="pre-fetch and check weight files (hf-hub:, local-dir:, file:)",
        description="Weight files: resolve URIs, download them into the Hugging Face cache, check them.",
    )
    sub = p.add_subparsers(dest="weights_command", metavar="SUBCOMMAND", required=True)
    pull = sub.add_parser(
        "pull",
        help="download weights into the Hugging Face cache and print path, commit, sha256, size",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pull.add_argument("uris", nargs="+", metavar="URI", help="weight URI (e.g. hf-hub:org/repo@main/model.safetensors)")
    pull.add_argument("--json", action="store_true", help="print a JSON list of the resolved weights")
    pull.add_argument("--no-progress", action="store_true", help="no download progress bar")
    pull.set_defaults(func=pull_main)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{n} bytes" if unit == "B" else f"{n} bytes ({value:.1f} {unit})"
        value /= 1024
    return f"{n} bytes"  # pragma: no cover


def pull_main(args: argparse.Namespace) -> int:
    from fasbench import weights

    done: list[weights.ResolvedWeights] = []
    failed: list[FasbenchError] = []
    for uri, result in weights.iter_resolve(list(args.uris), progress=not args.no_progress):
        if isinstance(result, FasbenchError):
            failed.append(result)
            continue
        done.append(result)
        if not args.json:
            if len(done) > 1:
                print()
            print(uri)
            print(f"  path:   {result.path}")
            if result.scheme == "hf-hub":
                print(f"  repo:   {result.repo} @ {result.revision}")
            print(f"  commit: {result.commit or '-'}")
            print(f"  sha256: {result.sha256}")
            print(f"  size:   {_size(result.size)}", flush=True)
    if args.json:
        print(json.dumps([r.as_dict() for r in done], indent=2))
    if len(failed) == 1:
        raise failed[0]
    if failed:
        raise FasbenchError(f"{len(failed)} of {len(args.uris)} weights could not be pulled: "
                            + " | ".join(str(e) for e in failed))
    return 0
