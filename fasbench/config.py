"""Hydra configuration: the built-in tree (``fasbench/conf``) plus ConfigStore entries for
every registered method, student and dataset, composed with the command line's leftover
tokens, then checked against the declared types (``fasbench.settings`` for the harness's
sections, each component's registered options for ``method.*`` and ``student.*``)."""
from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

from fasbench import plugins
from fasbench.errors import FasbenchError

CONFIG_MODULE = "fasbench.conf"
_stored: set[tuple[str, str]] = set()


def _has_yaml(group: str, name: str) -> bool:
    return resources.files(CONFIG_MODULE).joinpath(group, f"{name}.yaml").is_file()


def store_plugin_configs() -> None:
    """Give every registered method, student (and dataset without a YAML file) a config-group entry.

    A component declares its options once (``register(name, factory, options=OptionsClass)``);
    the entry is ``{"name": name, **defaults}``, so ``fasbench run NAME key=value`` overrides
    them. Older registrations with a plain ``config={...}`` mapping still work.
    """
    from hydra.core.config_store import ConfigStore

    from fasbench.data.roots import config_node as real_config_node
    from fasbench.options import defaults

    cs = ConfigStore.instance()
    for group, kind, base in (("method", "methods", {}), ("student", "students", {}),
                              ("data", "datasets", {"crop_size": 112})):
        for entry in plugins.registry(kind):
            if (group, entry.name) in _stored or _has_yaml(group, entry.name):
                continue
            try:
                # a real dataset (``real=`` spec): RealDataOptions defaults + its domain and every root key
                node = (kind == "datasets" and real_config_node(entry)) or {**base, **defaults(entry)}
            except FasbenchError as exc:  # a broken plugin's options must not break other runs
                print(f"fasbench: warning: {exc}; `fasbench run` cannot use it", file=sys.stderr)
                continue
            cs.store(group=group, name=entry.name, node=node, provider=entry.plugin)
            _stored.add((group, entry.name))
    _store_data_defaults(cs)


def method_data_defaults(entry: Any, dataset: str) -> dict[str, Any]:
    """A method's own defaults for one dataset, from its registration's ``data_defaults=``:
    ``{"synthetic": {...}, "*": {...}}`` by dataset name, ``*`` = any other dataset (the rule of
    a teacher's ``weights=``). Empty when the method declares none for ``dataset``."""
    from fasbench.registry import per_dataset

    dd = entry.meta.get("data_defaults")
    if dd is None:
        return {}
    if not isinstance(dd, Mapping) or not all(isinstance(v, Mapping) for v in dd.values()):
        raise FasbenchError(f"method {entry.name!r} (plugin {entry.plugin!r}): data_defaults must map a dataset "
                            f"name (or '*') to a mapping of method options, got {dd!r}")
    return _plain_dict(per_dataset(dd, dataset) or {})


def _plain_dict(node: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _plain_dict(v) if isinstance(v, Mapping) else v for k, v in node.items()}


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else v
    return out


def _store_data_defaults(cs: Any) -> None:
    """Store every method's per-dataset defaults as ``method_data/<method>_<dataset>`` (package
    ``method``); the root config's ``optional method_data: ${method}_${data}`` picks the one of the
    composed method and dataset, after the method's own node and before the command line's
    overrides (Hydra's "specializing configuration" pattern). Each is validated once, merged
    with the method's defaults, against the method's options."""
    from fasbench.options import check_entry_options, defaults

    datasets = [d.name for d in plugins.registry("datasets")]
    for entry in plugins.registry("methods"):
        if ("method_data", entry.name) in _stored:
            continue
        _stored.add(("method_data", entry.name))
        try:
            nodes = {d: method_data_defaults(entry, d) for d in datasets}
            for dataset, node in nodes.items():
                if node:
                    check_entry_options(entry, _merge(defaults(entry), node), f"method (data_defaults for {dataset})")
        except FasbenchError as exc:  # OptionsError included; one line per method, not per dataset
            print(f"fasbench: warning: {exc}; `fasbench run {entry.name}` ignores its data_defaults", file=sys.stderr)
            continue
        for dataset, node in nodes.items():
            if node:
                cs.store(group="method_data", name=f"{entry.name}_{dataset}", node=node, package="method",
                         provider=entry.plugin)


def _set(cfg: Any, key: str, value: Any) -> None:
    from omegaconf import OmegaConf, open_dict

    with open_dict(cfg):
        cfg[key] = OmegaConf.create(value) if isinstance(value, dict) else value


def check_config(cfg: Any) -> Any:
    """Validate a composed config against the declared types, in place: the harness sections,
    the method's and the student's options (defaults filled in, values normalised, nested
    components such as DTDA's aligner and teachers checked against their own options).
    A wrong key or value raises one :class:`fasbench.options.OptionsError` line."""
    from omegaconf import OmegaConf

    from fasbench.options import check_entry_options, validate
    from fasbench.settings import SECTIONS

    for section, model in SECTIONS.items():
        if section in cfg:
            validate(model, cfg[section], section)
    check_root(cfg)
    for key, kind in (("method", "methods"), ("student", "students")):
        node = cfg.get(key)
        if node is None or node.get("name") is None:
            continue
        entry = plugins.registry(kind).get(str(node["name"]))
        opts = check_entry_options(entry, node, key)
        if entry.options() is not None:
            _set(cfg, key, {"name": entry.name, **opts.model_dump(mode="json")})
    data = cfg.get("data")
    if data is not None and data.get("name") is not None:
        entry = plugins.registry("datasets").get(str(data["name"]))
        if entry.options() is not None:  # validated only: the dataset reads its own keys
            check_entry_options(entry, data, "data")
    OmegaConf.set_struct(cfg, True)
    return cfg


def check_root(cfg: Any) -> None:
    """Validate the top-level keys (``seed``, ``out``, ``device``, ...), also after the command
    line's ``--seed``/``--out``/``--protocol`` were applied to a composed config."""
    from fasbench.options import validate
    from fasbench.settings import RootSettings

    validate(RootSettings, {k: cfg.get(k) for k in RootSettings.model_fields}, "")


def compose(overrides: Sequence[str] = (), check: bool = True) -> Any:
    """Compose the config; a malformed or unknown override, or a value of the wrong type,
    becomes one clear FasbenchError (``check=False``: compose only, no type check)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    store_plugin_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
            cfg = hydra_compose(config_name="config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException, ValueError) as exc:
        msg = str(exc).strip().splitlines()
        first = next((m for m in msg if m.strip()), type(exc).__name__)
        raise FasbenchError(
            f"bad configuration override: {first.strip().rstrip('.')}. Overrides look like "
            "key=value (e.g. trainer.max_steps=600), +key=value to add a key, group=option to pick a config"
        ) from exc
    return check_config(cfg) if check else cfg
