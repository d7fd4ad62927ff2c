"""Typed component registries: name -> lazy factory, origin plugin, version.

A plugin registers a component by name with either a callable or a ``"module:attr"``
string; strings are imported only when the component is actually built, so listing
components (``fasbench ls``) never imports torch.
"""
from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from fasbench.errors import DuplicateComponentError, FasbenchError, UnknownComponentError

#: The component kinds, in the order the CLI lists them.
KINDS = ("datasets", "protocols", "students", "teachers", "aligners", "methods", "metrics")

#: Singular form of each kind, for messages.
SINGULAR = {k: k[:-1] for k in KINDS}

#: Checks of a registration's extra keywords, per kind (``"module:function"``, imported on the
#: first registration that has some): ``check(entry, registry)`` may complete ``entry.meta``
#: in place and raises on a bad value (a dataset's ``real=`` spec and its domain letter).
META_CHECKS = {"datasets": "fasbench.data.indexers:check_registration"}


def per_dataset(value: Any, dataset: str) -> Any:
    """A registration's per-dataset value: a mapping ``{"synthetic": X, "*": Y}`` gives the
    dataset's own entry, else ``*`` (any other dataset), else None; anything else is the value
    for every dataset. The one rule for a teacher's ``weights=`` and a method's ``data_defaults=``."""
    if isinstance(value, Mapping):
        return value.get(dataset, value.get("*"))
    return value


@dataclass
class Entry:
    """One registered component."""

    kind: str
    name: str
    factory: Callable[..., Any] | str
    plugin: str
    version: int = 1
    description: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def load(self) -> Callable[..., Any]:
        """The factory, importing it first when it was registered as ``"module:attr"``."""
        if callable(self.factory):
            return self.factory
        self.factory = import_object(str(self.factory), f"{SINGULAR[self.kind]} {self.name!r} (plugin {self.plugin!r})")
        return self.factory

    def options(self) -> Any:
        """The component's declared Options class (``options=`` in its registration), or None."""
        from fasbench.options import options_class

        return options_class(self)

    def build(self, *args: Any, **kwargs: Any) -> Any:
        return self.load()(*args, **kwargs)

    def as_dict(self) -> dict[str, Any]:
        factory = self.factory if isinstance(self.factory, str) else (
            f"{getattr(self.factory, '__module__', '?')}:{getattr(self.factory, '__qualname__', '?')}"
        )
        return {
            "name": self.name,
            "version": self.version,
            "plugin": self.plugin,
            "description": self.description,
            "factory": factory,
            **({"meta": {k: _meta_value(v) for k, v in self.meta.items()}} if self.meta else {}),
        }


def import_object(spec: str, what: str) -> Any:
    """``"package.module:attr.sub"`` imported; a FasbenchError naming ``what`` otherwise."""
    module_name, _, attr = str(spec).partition(":")
    if not attr:
        raise FasbenchError(f"{what} names {spec!r}; a lazy reference must be written 'package.module:attribute'")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise FasbenchError(f"{what} could not load {spec!r}: {exc}") from exc
    return obj


def _meta_value(value: Any) -> Any:
    """A registration's meta value, JSON-safe: ``as_dict()`` of a spec, ``"module:qualname"``
    of a class or function (an options class), else as is."""
    if hasattr(value, "as_dict") and not isinstance(value, type):
        return value.as_dict()
    if isinstance(value, type) or callable(value):
        return f"{getattr(value, '__module__', '?')}:{getattr(value, '__qualname__', '?')}"
    return value


class Registry:
    """Components of one kind, by name."""

    def __init__(self, kind: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown component kind {kind!r}; expected one of {KINDS}")
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(
        self,
        name: str,
        factory: Callable[..., Any] | str,
        *,
        plugin: str = "?",
        version: int = 1,
        description: str = "",
        **meta: Any,
    ) -> Entry:
        if not isinstance(name, str) or not name:
            raise FasbenchError(f"plugin {plugin!r} registered a {SINGULAR[self.kind]} with an empty or non-string name")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise FasbenchError(
                f"{SINGULAR[self.kind]} {name!r} from plugin {plugin!r} has version {version!r}; "
                "version must be a positive integer, bumped when the component's behaviour changes"
            )
        if name in self._entries:
            other = self._entries[name].plugin
            raise DuplicateComponentError(
                f"{SINGULAR[self.kind]} {name!r} is registered by two plugins: {other!r} and {plugin!r}; "
                f"uninstall one of them or limit loading with FASBENCH_LOAD_PLUGINS"
            )
        if not description and callable(factory) and factory.__doc__:
            description = factory.__doc__.strip().splitlines()[0]
        entry = Entry(self.kind, name, factory, plugin, version, description, dict(meta))
        if meta and self.kind in META_CHECKS:
            import_object(META_CHECKS[self.kind], f"the {self.kind} registry's check")(entry, self)
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownComponentError(self._unknown_message(name)) from None

    def _unknown_message(self, name: str) -> str:
        names = sorted(self._entries)
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        if not close:  # case-insensitive fallback ("mico" -> "MICO")
            close = [n for n in names if n.lower() == str(name).lower()]
        msg = f"unknown {SINGULAR[self.kind]} {name!r}"
        if close:
            msg += f"; did you mean {', '.join(repr(c) for c in close)}?"
        msg += f"{'' if close else '.'} Known {self.kind}: {', '.join(names) if names else '(none registered)'}"
        msg += f" (see `fasbench ls {self.kind}`)"
        return msg

    def drop(self, names: list[str]) -> None:
        """Forget entries (those of a plugin whose registration hook failed half-way)."""
        for n in names:
            self._entries.pop(n, None)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def __len__(self) -> int:
        return len(self._entries)

    def in_order(self) -> list[Entry]:
        """The entries in registration order (iterating sorts them by name)."""
        return list(self._entries.values())

    def names(self) -> list[str]:
        return sorted(self._entries)
