"""Hydra configuration: the built-in tree (``fasbench/conf``) plus ConfigStore entries for
every registered method and dataset, composed with the command line's leftover tokens."""
from __future__ import annotations

from importlib import resources
from typing import Any, Sequence

from fasbench import plugins
from fasbench.errors import FasbenchError

CONFIG_MODULE = "fasbench.conf"
_stored: set[tuple[str, str]] = set()


def _has_yaml(group: str, name: str) -> bool:
    return resources.files(CONFIG_MODULE).joinpath(group, f"{name}.yaml").is_file()


def store_plugin_configs() -> None:
    """Give every registered method (and dataset without a YAML file) a config-group entry.

    A plugin supplies defaults with ``register(name, factory, config={...})``; the entry is
    ``{"name": name, **config}``, so ``fasbench run NAME key=value`` overrides them.
    """
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for group, kind, base in (("method", "methods", {}), ("data", "datasets", {"crop_size": 112})):
        for entry in plugins.registry(kind):
            if (group, entry.name) in _stored or _has_yaml(group, entry.name):
                continue
            node = {**base, "name": entry.name, **dict(entry.meta.get("config") or {})}
            cs.store(group=group, name=entry.name, node=node, provider=entry.plugin)
            _stored.add((group, entry.name))


def compose(overrides: Sequence[str] = ()) -> Any:
    """Compose the config; a malformed or unknown override becomes one clear FasbenchError."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    store_plugin_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
            return hydra_compose(config_name="config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException, ValueError) as exc:
        msg = str(exc).strip().splitlines()
        first = next((m for m in msg if m.strip()), type(exc).__name__)
        raise FasbenchError(
            f"bad configuration override: {first.strip().rstrip('.')}. Overrides look like "
            "key=value (e.g. trainer.max_steps=600), +key=value to add a key, group=option to pick a config"
        ) from exc
