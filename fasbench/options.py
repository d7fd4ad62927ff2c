"""Typed component options, declared once beside the component (docs/architecture.md).

A component registers an :class:`Options` subclass with its factory::

    register("erm", "fasbench_baselines.erm:ERM", options="fasbench_baselines.options:ERMOptions")

The class is the single declaration of the component's config keys, their types, defaults
and constraints. The harness derives the Hydra defaults from it, validates the composed
config against it before any data loads (a bad value is one line naming the key and the
expected type), and hands the factory the validated instance.

A component that picks another component by name (DTDA's aligner and teachers) declares the
field as a :class:`ComponentRef` subclass; the named component's own options are validated
with its own class, under the parent's key (``method.aligner.epsilon``).

This module imports pydantic only (no torch): plugins import their options at `fasbench run`
before anything heavy is loaded.
"""
from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError, model_serializer

from fasbench.errors import FasbenchError


class OptionsError(FasbenchError):
    """A config value of the wrong type or out of range (one line: key, value, expected)."""


class Options(BaseModel):
    """Base class of a component's options: typed fields with defaults, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    def get(self, key: str, default: Any = None) -> Any:
        """Mapping-style access, so code written for a config dict keeps working."""
        value = getattr(self, key, default)
        return default if value is None else value


class ComponentRef(Options):
    """A component chosen by name inside another component's options:
    ``{name: NAME, **options of NAME}``. ``kind`` is the registry it is looked up in."""

    model_config = ConfigDict(extra="allow", frozen=True)
    component_kind: ClassVar[str] = ""  # not ``kind``: a referring slot may declare a field of that name
    #: keys that belong to the referring component (the slot), not to the named component
    own_keys: ClassVar[tuple[str, ...]] = ()

    name: str
    _options: Any = PrivateAttr(default=None)

    @property
    def options(self) -> Any:
        """The named component's validated options (its Options instance, or the raw mapping
        when it declares none)."""
        if self._options is None:
            raise RuntimeError(f"{type(self).__name__}({self.name!r}) was not validated with fasbench.options.validate")
        return self._options

    @model_serializer(mode="wrap")
    def _dump(self, handler):  # the named component's options with their defaults filled in
        data = handler(self)
        if isinstance(self._options, BaseModel):
            own = {k: v for k, v in data.items() if k in type(self).model_fields}
            return {**own, **self._options.model_dump(mode="json")}
        return data


class TeacherOptions(Options):
    """Options every teacher has; a teacher's own Options class subclasses this (``fasbench.api``
    re-exports it; it lives here so a plugin's options module stays torch-free)."""

    weights: str | None = None  # a weights URI; null: the teacher's registered default for this dataset


class AlignerRef(ComponentRef):
    """An aligner chosen by name in a method's options: ``{name: dtda.daa, epsilon: ...}``."""

    component_kind = "aligners"
    name: str = "none"


class TeacherRef(ComponentRef):
    """A teacher chosen by name in a method's options: ``{name: dtda.arcface, weights: ...}``."""

    component_kind = "teachers"


def options_class(entry: Any) -> type[Options] | None:
    """The Options class a registry entry declares (``options=`` in its registration), or None."""
    spec = entry.meta.get("options")
    if spec is None:
        if entry.kind == "datasets" and (entry.meta.get("real") is not None or entry.name == "real"):
            from fasbench.data.real_options import RealDataOptions  # shared by every real dataset

            return RealDataOptions
        return None
    if isinstance(spec, str):
        from fasbench.registry import import_object

        spec = import_object(spec, f"{entry.kind[:-1]} {entry.name!r} (plugin {entry.plugin!r}) options")
        if callable(spec) and not isinstance(spec, type):  # a function that builds the class
            spec = spec()
        entry.meta["options"] = spec
    if not (isinstance(spec, type) and issubclass(spec, Options)):
        raise FasbenchError(
            f"{entry.kind[:-1]} {entry.name!r} (plugin {entry.plugin!r}) registers options={spec!r}; "
            "it must be a subclass of fasbench.options.Options (or a 'module:Class' string naming one)"
        )
    return spec


def defaults(entry: Any) -> dict[str, Any]:
    """``{"name": NAME, **declared defaults}`` of a registry entry (its Hydra config node)."""
    cls = options_class(entry)
    if cls is None:  # older registrations: a plain ``config={...}`` mapping
        return {"name": entry.name, **dict(entry.meta.get("config") or {})}
    try:
        inst = cls()
    except ValidationError as exc:
        raise FasbenchError(
            f"{entry.kind[:-1]} {entry.name!r} (plugin {entry.plugin!r}): options {cls.__name__} need a default "
            f"for every field ({one_line(exc, entry.kind[:-1])})"
        ) from None
    for field in type(inst).model_fields:  # components named in it (an aligner, teachers): their defaults too
        _resolve_refs(getattr(inst, field), f"{entry.kind[:-1]}.{field}")
    return {"name": entry.name, **inst.model_dump(mode="json")}


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(tp))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    return getattr(tp, "__name__", str(tp))


def _expected(cls: type[BaseModel], loc: tuple) -> str | None:
    """The declared type of the field at ``loc`` (None when it is not a plain field path)."""
    model: Any = cls
    ann = None
    for part in loc:
        if typing.get_origin(model) in (dict, Mapping) and len(typing.get_args(model)) == 2:
            ann = model = typing.get_args(model)[1]  # ``part`` is a key of a mapping field: its value type
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return None if ann is None else _type_name(ann)
        ann = model.model_fields[part].annotation
        model = ann
    return None if ann is None else _type_name(ann)


def one_line(exc: ValidationError, where: str, cls: type[BaseModel] | None = None,
             also_known: tuple[str, ...] = ()) -> str:
    """A pydantic ValidationError as one line: ``key=value: expected TYPE (why)``; an unknown
    key lists the known ones (``also_known``: keys valid at that level from elsewhere, such as
    the slot keys beside a named component's own options)."""
    errs = exc.errors(include_url=False)
    e = errs[0]
    loc = tuple(str(p) for p in e["loc"])
    key = ".".join((where, *loc)) if where else ".".join(loc)
    more = f" (+{len(errs) - 1} more)" if len(errs) > 1 else ""
    if e["type"] == "extra_forbidden":
        known = ", ".join(sorted({*cls.model_fields, *also_known})) if cls is not None and len(loc) == 1 else ""
        return f"{key}: unknown key" + (f"; known keys: {known}" if known else "") + more
    if e["type"] == "missing":
        return f"{key}: required, but not set{more}"
    if e["type"] == "value_error":  # a validator's own sentence: it names the fix
        text = str(e.get("ctx", {}).get("error") or e["msg"]).removeprefix("Value error, ")
        value = e.get("input")
        shown = f"={value!r}" if loc and not isinstance(value, (dict, list)) else ""
        return f"{key}{shown}: {text}{more}"
    expected = _expected(cls, e["loc"]) if cls is not None else None
    value = e.get("input")
    shown = f"={value!r}" if not isinstance(value, (dict, list)) else ""
    msg = str(e["msg"]).rstrip(".")
    return f"{key}{shown}: " + (f"expected {expected} ({msg[0].lower()}{msg[1:]})" if expected else msg) + more


def _plain(data: Any) -> Any:
    """An omegaconf node (or anything mapping-like) as plain Python containers."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(data, (DictConfig, ListConfig)):
        return OmegaConf.to_container(data, resolve=True)
    return dict(data) if isinstance(data, Mapping) else data


def validate(cls: type[Options], data: Any, where: str, also_known: tuple[str, ...] = ()) -> Options:
    """``cls`` validated from ``data`` (a mapping or DictConfig); nested :class:`ComponentRef`
    fields are validated against their named component's options. Errors: one line."""
    data = _plain(data if data is not None else {})
    try:
        inst = cls.model_validate(data)
    except ValidationError as exc:
        raise OptionsError(one_line(exc, where, cls, also_known)) from None
    for field in type(inst).model_fields:
        _resolve_refs(getattr(inst, field), f"{where}.{field}" if where else field)
    return inst


def _resolve_refs(value: Any, where: str) -> None:
    if isinstance(value, ComponentRef):
        resolve_ref(value, where)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            _resolve_refs(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _resolve_refs(v, f"{where}.{i}")


def resolve_ref(ref: ComponentRef, where: str) -> ComponentRef:
    """Validate the named component's own options (the ref's extra keys) with its class."""
    from fasbench import plugins

    entry = plugins.registry(ref.component_kind).get(ref.name)
    cls = options_class(entry)
    extra = dict(ref.model_extra or {})
    if cls is None:
        ref._options = extra
    else:
        ref._options = validate(cls, extra, where, also_known=tuple(type(ref).model_fields))
    return ref


def check_entry_options(entry: Any, data: Any, where: str) -> Any:
    """Validate ``data`` (without its ``name``) against an entry's declared options; entries
    that declare none get their mapping back unchanged."""
    cls = options_class(entry)
    plain = _plain(data if data is not None else {})
    if cls is None:
        return {k: v for k, v in dict(plain).items() if k != "name"}
    if "name" not in cls.model_fields:
        plain = {k: v for k, v in dict(plain).items() if k != "name"}
    return validate(cls, plain, where)
