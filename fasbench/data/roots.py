"""Where the user's dataset copies live.

A dataset's root is looked up, first match wins, in:

1. the command line (``--root PATH`` of ``fasbench data``),
2. the config: ``data.roots.M=/path`` (domain letter) or ``data.roots.msu_mfsd=/path``,
3. the environment: ``FASBENCH_ROOT_M=/path`` or ``FASBENCH_ROOT_MSU_MFSD=/path``,
4. the user config file ``$FASBENCH_CONFIG``, else ``$XDG_CONFIG_HOME/fasbench/config.yaml``
   (``~/.config/fasbench/config.yaml``), with a ``roots:`` mapping keyed the same way.

The datasets are those registered with a ``real=`` spec (built-in or plugin), in
registration order. :func:`config_node` gives each one (and ``real``, all of them) its Hydra
config-group entry: the defaults of ``RealDataOptions`` plus its domain and a ``roots`` key for every
registered letter and name, so ``data.roots.X=...`` works for a plugin's dataset too.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fasbench.data.indexers import DatasetSpec, spec, specs
from fasbench.errors import FasbenchError


def user_config_path() -> Path:
    env = os.environ.get("FASBENCH_CONFIG")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "fasbench" / "config.yaml"


def _user_roots() -> dict[str, Any]:
    path = user_config_path()
    if not path.is_file():
        return {}
    from omegaconf import OmegaConf

    try:
        data = OmegaConf.to_container(OmegaConf.load(path), resolve=True) or {}
    except Exception as exc:
        raise FasbenchError(f"cannot read the user config file {path}: {exc}; it must be YAML with a 'roots:' mapping") from None
    roots = data.get("roots", {}) if isinstance(data, dict) else {}
    if not isinstance(roots, dict):
        raise FasbenchError(f"{path}: 'roots' must be a mapping such as 'roots: {{M: /data/MSU-MFSD}}'")
    return roots


def _pick(mapping: Mapping[str, Any] | None, s: DatasetSpec) -> Any:
    if not mapping:
        return None
    for key in (s.letter, s.name):
        val = mapping.get(key)
        if val not in (None, ""):
            return val
    return None


def env_names(s: DatasetSpec) -> tuple[str, str]:
    return f"FASBENCH_ROOT_{s.letter}", f"FASBENCH_ROOT_{s.env_name}"


def resolve(name_or_letter: str, cfg_roots: Mapping[str, Any] | None = None,
            explicit: str | Path | None = None) -> tuple[Path | None, str]:
    """``(root or None, where it came from)`` for one dataset."""
    s = spec(name_or_letter)
    if explicit:
        return Path(explicit).expanduser(), "--root"
    val = _pick(cfg_roots, s)
    if val is not None:
        return Path(str(val)).expanduser(), "config data.roots"
    for var in env_names(s):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser(), f"environment {var}"
    val = _pick(_user_roots(), s)
    if val is not None:
        return Path(str(val)).expanduser(), f"user config {user_config_path()}"
    return None, ""


def configured(cfg_roots: Mapping[str, Any] | None = None) -> dict[str, Path]:
    """Letter -> root of every dataset with a root from any source."""
    out = {}
    for s in specs():
        root, _ = resolve(s.name, cfg_roots)
        if root is not None:
            out[s.letter] = root
    return out


def missing_message(letters: list[str], what: str, synthetic_hint: bool = True) -> str:
    order = [s.letter for s in specs()]
    letters = sorted(letters, key=lambda L: order.index(spec(L).letter))
    names = ", ".join(f"{L} ({spec(L).name})" for L in letters)
    first = spec(letters[0])
    return (
        f"{what} needs the dataset root(s) of {names}, and none is configured. Set each one with "
        f"data.roots.{first.letter}=/path/to/{first.name} on the command line, the environment variable "
        f"{env_names(first)[0]}=/path, or 'roots: {{{first.letter}: /path}}' in {user_config_path()} "
        f"(docs/datasets.md says where each dataset is requested from)"
        + ("; `--data synthetic` runs now without any download" if synthetic_hint else "")
    )


#: The dataset that combines every real dataset with a configured root (``--data real``).
COMBINED = "real"


def roots_node() -> dict[str, None]:
    """``data.roots``: a key per registered letter and name, so each can be set from the command line."""
    out: dict[str, None] = {}
    for s in specs():
        out[s.letter] = None
        out[s.name] = None
    return out


def config_node(entry) -> dict[str, Any] | None:
    """The Hydra config-group entry (``data=NAME``) of a real dataset's registration, or None
    for other datasets: the defaults of :class:`fasbench.data.real_options.RealDataOptions`
    with its name, its domain (none for ``real``: the protocol's) and the ``roots`` mapping."""
    from fasbench.data.real_options import RealDataOptions

    real = entry.meta.get("real")
    if not isinstance(real, DatasetSpec) and entry.name != COMBINED:
        return None
    return {**RealDataOptions().model_dump(mode="json"), "name": entry.name,
            "domains": [real.letter] if isinstance(real, DatasetSpec) else None, "roots": roots_node()}
