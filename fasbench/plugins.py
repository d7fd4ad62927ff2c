"""The plugin manager: built-ins plus everything in the ``fasbench`` entry-point group.

Environment:
- ``FASBENCH_LOAD_PLUGINS=a,b`` loads only the named entry points (or distributions);
  set it empty to load none but the built-ins.
- ``FASBENCH_STRICT_PLUGINS=1`` makes a plugin that fails to load (import error, misspelled
  hook) fatal instead of a one-line warning.
"""
from __future__ import annotations

import importlib.metadata as md
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import pluggy

from fasbench import hookspecs
from fasbench.errors import DuplicateComponentError, PluginLoadError
from fasbench.registry import KINDS, Registry
from fasbench.util import env_flag

ENTRY_POINT_GROUP = "fasbench"
BUILTIN = "fasbench"


@dataclass
class PluginInfo:
    name: str
    distribution: str
    version: str
    module: str
    hooks: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "module": self.module,
            "hooks": self.hooks,
        }


@dataclass
class _State:
    pm: pluggy.PluginManager
    infos: dict[str, PluginInfo]
    failed: dict[str, str]
    registries: dict[str, Registry] = field(default_factory=dict)


_state: _State | None = None


def _warn(msg: str) -> None:
    print(f"fasbench: warning: {msg}", file=sys.stderr)


def _hooks_of(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    return sorted(h.name for h in (pm.get_hookcallers(plugin) or []))


def _selected(ep: md.EntryPoint) -> bool:
    wanted = os.environ.get("FASBENCH_LOAD_PLUGINS")
    if wanted is None:
        return True
    names = {n.strip() for n in wanted.split(",") if n.strip()}
    dist = ep.dist.name if ep.dist is not None else ""
    return ep.name in names or dist in names


def _entry_points() -> list[md.EntryPoint]:
    eps = md.entry_points(group=ENTRY_POINT_GROUP)
    return sorted(eps, key=lambda ep: ep.name)


def _build() -> _State:
    pm = pluggy.PluginManager("fasbench")
    pm.add_hookspecs(hookspecs)
    strict = env_flag("FASBENCH_STRICT_PLUGINS")
    infos: dict[str, PluginInfo] = {}
    failed: dict[str, str] = {}

    from fasbench import builtins

    pm.register(builtins, name=BUILTIN)
    pm.check_pending()
    infos[BUILTIN] = PluginInfo(BUILTIN, "fasbench", _dist_version("fasbench"), builtins.__name__, _hooks_of(pm, builtins))

    for ep in _entry_points():
        if not _selected(ep) or ep.name in infos:
            continue
        dist = ep.dist.name if ep.dist is not None else "?"
        version = ep.dist.version if ep.dist is not None else "?"
        try:
            module = ep.load()
            pm.register(module, name=ep.name)
            try:
                pm.check_pending()
            except pluggy.PluginValidationError:
                pm.unregister(name=ep.name)
                raise
        except Exception as exc:  # a broken plugin must not take the CLI down
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            detail = lines[0] if lines else ""
            if isinstance(exc, pluggy.PluginValidationError) and len(lines) > 1:
                detail += f": {lines[-1]}"  # pluggy puts the actual problem on its last line
            reason = f"{type(exc).__name__}: {detail}".rstrip(": ")
            msg = (
                f"plugin {ep.name!r} (distribution {dist} {version}) failed to load and was skipped: "
                f"{reason} (FASBENCH_STRICT_PLUGINS=1 makes this fatal)"
            )
            if strict:
                raise PluginLoadError(msg.replace(" and was skipped", "")) from exc
            _warn(msg)
            failed[ep.name] = reason
            continue
        infos[ep.name] = PluginInfo(ep.name, dist, version, getattr(module, "__name__", str(module)), _hooks_of(pm, module))
    return _State(pm, infos, failed)


def _dist_version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        from fasbench import __version__

        return __version__


def state() -> _State:
    global _state
    if _state is None:
        _state = _build()
    return _state


def get_plugin_manager() -> pluggy.PluginManager:
    return state().pm


def reset() -> None:
    """Forget loaded plugins and registries (tests; after installing a plugin in-process)."""
    global _state
    _state = None


def plugin_infos() -> list[PluginInfo]:
    return list(state().infos.values())


def failed_plugins() -> dict[str, str]:
    return dict(state().failed)


def registry(kind: str) -> Registry:
    """The registry of one component kind, filled by every plugin's ``register_<kind>`` hook."""
    st = state()
    if kind not in st.registries:
        reg = Registry(kind)
        caller = getattr(st.pm.hook, f"register_{kind}")
        # Call each implementation with a ``register`` bound to its plugin name, so every
        # entry knows where it came from (duplicate errors name both plugins).
        # pluggy's call order: last loaded first (entry points load after the built-ins, sorted by name)
        for impl in reversed(caller.get_hookimpls()):
            plugin = impl.plugin_name

            def register(name, factory, *, version=1, description="", _plugin=plugin, **meta):
                return reg.register(name, factory, plugin=_plugin, version=version, description=description, **meta)

            before = set(reg.names())
            try:
                impl.function(register=register)
            except Exception as exc:
                if isinstance(exc, DuplicateComponentError) or plugin == BUILTIN:
                    raise  # a name clash is the user's to resolve: never silently pick one
                reg.drop([n for n in reg.names() if n not in before])
                _hook_failed(st, plugin, kind, exc)
        st.registries[kind] = reg
    return st.registries[kind]


def _hook_failed(st: _State, plugin: str, kind: str, exc: Exception) -> None:
    """A plugin's ``register_<kind>`` hook raised: one warning line (its ``kind`` are skipped),
    or a one-line fatal :class:`PluginLoadError` under ``FASBENCH_STRICT_PLUGINS=1``."""
    reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
    msg = f"plugin {plugin!r} failed in register_{kind} and its {kind} were skipped: {reason}"
    if env_flag("FASBENCH_STRICT_PLUGINS"):
        raise PluginLoadError(msg.replace(" and its", "; its").replace(" were skipped", " were not registered")) from exc
    _warn(msg + " (FASBENCH_STRICT_PLUGINS=1 makes this fatal)")
    st.failed.setdefault(plugin, reason)


def add_commands(subparsers) -> None:
    """Fill the ``fasbench`` argparse ``subparsers`` through every plugin's ``register_commands``
    hook, built-ins first. Each plugin is called on its own: one that raises loses the
    subcommands it half-added, and the others (and the CLI) keep working."""
    st = state()
    # argparse keeps its subcommands in these two places; restoring them undoes a partial add.
    names = getattr(subparsers, "_name_parser_map", None)
    helps = getattr(subparsers, "_choices_actions", None)
    impls = st.pm.hook.register_commands.get_hookimpls()  # registration order
    for impl in sorted(impls, key=lambda i: i.plugin_name != BUILTIN):  # built-ins first
        plugin = impl.plugin_name
        names_before = dict(names) if isinstance(names, dict) else None
        helps_before = list(helps) if isinstance(helps, list) else None
        try:
            impl.function(subparsers=subparsers)
        except Exception as exc:
            if plugin == BUILTIN:
                raise
            if names_before is not None:
                names.clear()
                names.update(names_before)
            if helps_before is not None:
                helps[:] = helps_before
            _hook_failed(st, plugin, "commands", exc)


def all_registries() -> dict[str, Registry]:
    return {k: registry(k) for k in KINDS}


def plugin_of_dist_versions() -> dict[str, str]:
    """``{distribution: version}`` of every loaded plugin (for run records)."""
    return {i.distribution: i.version for i in plugin_infos()}


def resolve_weights(uri: str) -> Any:
    return get_plugin_manager().hook.resolve_weights(uri=uri)
