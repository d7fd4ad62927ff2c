"""``fasbench ls KIND`` and ``fasbench plugins``: what is installed (no torch import)."""
from __future__ import annotations

import json

from fasbench.registry import KINDS


def add_ls_parser(subparsers) -> None:
    p = subparsers.add_parser("ls", help="list registered components of one kind",
                              description="List registered components (name, version, plugin, description).")
    p.add_argument("kind", choices=KINDS)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=ls_main)


def ls_main(args) -> int:
    from tabulate import tabulate

    from fasbench import plugins

    entries = [e.as_dict() for e in plugins.registry(args.kind)]
    if args.json:
        print(json.dumps(entries, indent=2))
    elif not entries:
        print(f"no {args.kind} registered (install a plugin that provides some; see `fasbench plugins`)")
    else:
        print(tabulate([[e["name"], e["version"], e["plugin"], e["description"]] for e in entries],
                       headers=["name", "version", "plugin", "description"], tablefmt="simple"))
    return 0


def add_plugins_parser(subparsers) -> None:
    p = subparsers.add_parser("plugins", help="list loaded plugins",
                              description="List loaded plugins: entry point, distribution, version, hooks.")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=plugins_main)


def plugins_main(args) -> int:
    from tabulate import tabulate

    from fasbench import plugins

    infos = [i.as_dict() for i in plugins.plugin_infos()]
    failed = plugins.failed_plugins()
    if args.json:
        rows = [{**i, "status": "loaded"} for i in infos]
        rows += [{"name": n, "status": "failed", "error": r} for n, r in failed.items()]
        print(json.dumps(rows, indent=2))
        return 0
    print(tabulate([[i["name"], i["distribution"], i["version"], ", ".join(h.replace("register_", "") for h in i["hooks"])]
                    for i in infos], headers=["plugin", "distribution", "version", "hooks"], tablefmt="simple"))
    for name, reason in failed.items():
        print(f"failed to load: {name}: {reason}")
    return 0
