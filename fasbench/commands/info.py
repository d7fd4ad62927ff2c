"""``fasbench ls KIND`` and ``fasbench plugins``: what is installed (no torch import)."""
from __future__ import annotations

import json

from fasbench.registry import KINDS


def add_ls_parser(subparsers) -> None:
    p = subparsers.add_parser("ls", help="list registered components of one kind",
                              description="List registered components (name, version, plugin, description).")
    p.add_argument("kind", choices=KINDS)
    p.add_argument("name", nargs="?", help="one component: show its options (key, type, default)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=ls_main)


def options_rows(entry) -> list[dict]:
    """``[{"key", "type", "default", "constraints"}]`` of a component's declared options."""
    from fasbench.options import _type_name, defaults

    cls = entry.options()
    if cls is None:
        return [{"key": k, "type": type(v).__name__, "default": v, "constraints": ""}
                for k, v in defaults(entry).items() if k != "name"]
    values = defaults(entry)
    rows = []
    for key, f in cls.model_fields.items():
        cons = ", ".join(str(m) for m in f.metadata)
        rows.append({"key": key, "type": _type_name(f.annotation), "default": values.get(key), "constraints": cons})
    return rows


def ls_main(args) -> int:
    from tabulate import tabulate

    from fasbench import plugins

    if args.name:
        entry = plugins.registry(args.kind).get(args.name)
        rows = options_rows(entry)
        if args.json:
            print(json.dumps({**entry.as_dict(), "options": rows}, indent=2, default=str))
            return 0
        info = entry.as_dict()
        print(f"{info['name']} v{info['version']} (plugin {info['plugin']}): {info['description']}")
        prefix = {"methods": "method.", "students": "student.", "datasets": "data."}.get(args.kind, "")
        if rows:
            print(tabulate([[prefix + r["key"], r["type"], json.dumps(r["default"], default=str), r["constraints"]]
                            for r in rows], headers=["option", "type", "default", "constraints"], tablefmt="simple",
                           disable_numparse=True))
        else:
            print("no options")
        return 0
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
