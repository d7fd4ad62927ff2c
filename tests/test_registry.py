"""fasbench.registry: names -> lazy factories, origin plugin, version; clear errors."""
from __future__ import annotations

import sys
import textwrap

import pytest

from fasbench import plugins
from fasbench.errors import DuplicateComponentError, FasbenchError, UnknownComponentError
from fasbench.registry import KINDS, Registry


def _factory(*args, **kwargs):
    """A factory that echoes its arguments."""
    return args, kwargs


@pytest.fixture
def lazy_module(tmp_path, monkeypatch):
    """A module on sys.path that records when it is imported (name unique per test)."""
    name = f"fasbench_lazy_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent("""
        IMPORTED = True

        class Thing:
            def __init__(self, x=1):
                self.x = x

        class Outer:
            class Inner:
                pass
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_register_and_get():
    reg = Registry("methods")
    entry = reg.register("erm", _factory, plugin="baselines", version=3, description="d", config={"a": 1})
    got = reg.get("erm")
    assert got is entry
    assert (got.kind, got.name, got.plugin, got.version, got.description) == ("methods", "erm", "baselines", 3, "d")
    assert got.meta == {"config": {"a": 1}}
    assert got.build(1, k=2) == ((1,), {"k": 2})
    assert "erm" in reg and "other" not in reg and len(reg) == 1
    assert reg.names() == ["erm"]
    d = got.as_dict()
    assert d["name"] == "erm" and d["plugin"] == "baselines" and d["version"] == 3
    assert d["factory"].endswith(":_factory") and d["meta"] == {"config": {"a": 1}}


def test_description_defaults_to_factory_docstring():
    reg = Registry("metrics")
    assert reg.register("m", _factory).description == "A factory that echoes its arguments."
    assert reg.register("n", "pkg.mod:attr").description == ""  # lazy: nothing imported to find one


def test_iteration_is_sorted_by_name():
    reg = Registry("datasets")
    for n in ("b", "C", "a"):
        reg.register(n, _factory)
    assert [e.name for e in reg] == ["C", "a", "b"] == reg.names()


def test_unknown_kind_rejected():
    with pytest.raises(ValueError, match="unknown component kind"):
        Registry("method")
    for kind in KINDS:
        Registry(kind)


def test_lazy_factory_imported_on_first_use(lazy_module):
    reg = Registry("students")
    entry = reg.register("thing", f"{lazy_module}:Thing", plugin="p")
    assert lazy_module not in sys.modules  # registering and listing import nothing
    assert entry.as_dict()["factory"] == f"{lazy_module}:Thing"
    assert [e.name for e in reg] == ["thing"]
    assert lazy_module not in sys.modules
    obj = reg.get("thing").build(x=5)
    assert lazy_module in sys.modules and obj.x == 5
    assert entry.factory is sys.modules[lazy_module].Thing  # resolved once, then cached
    assert entry.load() is entry.factory


def test_lazy_factory_dotted_attribute(lazy_module):
    reg = Registry("aligners")
    assert reg.register("inner", f"{lazy_module}:Outer.Inner").load() is sys.modules[lazy_module].Outer.Inner


@pytest.mark.parametrize("factory, match", [
    ("no_colon_here", "package.module:attribute"),
    ("fasbench_no_such_module_xyz:Thing", "could not load"),
    ("fasbench.registry:NoSuchAttribute", "could not load"),
])
def test_bad_lazy_factory_is_a_clear_error(factory, match):
    reg = Registry("methods")
    entry = reg.register("broken", factory, plugin="someplugin")
    with pytest.raises(FasbenchError, match=match) as info:
        entry.load()
    assert "'broken'" in str(info.value) and "someplugin" in str(info.value)


def test_duplicate_names_both_plugins():
    reg = Registry("methods")
    reg.register("erm", _factory, plugin="baselines")
    with pytest.raises(DuplicateComponentError) as info:
        reg.register("erm", _factory, plugin="my-plugin")
    msg = str(info.value)
    assert "'erm'" in msg and "'baselines'" in msg and "'my-plugin'" in msg
    assert isinstance(info.value, FasbenchError)
    assert reg.get("erm").plugin == "baselines"  # the first registration is kept


@pytest.mark.parametrize("kind, names, asked, suggested", [
    ("protocols", ["MICO", "LimitedSource", "Intra"], "MCIO", "MICO"),
    ("protocols", ["MICO", "LimitedSource", "Intra"], "mico", "MICO"),
    ("protocols", ["MICO", "LimitedSource", "Intra"], "limitedsource", "LimitedSource"),
    ("methods", ["erm", "ssdg"], "er", "erm"),
    ("methods", ["erm", "ssdg"], "emr", "erm"),
    ("methods", ["erm", "ssdg"], "sddg", "ssdg"),
])
def test_unknown_name_suggests_close_match(kind, names, asked, suggested):
    reg = Registry(kind)
    for n in names:
        reg.register(n, _factory)
    with pytest.raises(UnknownComponentError) as info:
        reg.get(asked)
    msg = str(info.value)
    assert "did you mean" in msg
    assert repr(suggested) in msg.split("did you mean", 1)[1].split("?")[0]
    assert f"fasbench ls {kind}" in msg
    assert isinstance(info.value, FasbenchError) and isinstance(info.value, KeyError)
    assert not msg.startswith('"')  # str() is the message, not KeyError's repr


def test_unknown_name_without_close_match_lists_known():
    reg = Registry("methods")
    reg.register("erm", _factory)
    with pytest.raises(UnknownComponentError) as info:
        reg.get("zzzzzz")
    msg = str(info.value)
    assert "did you mean" not in msg and "'zzzzzz'" in msg and "erm" in msg


def test_unknown_name_in_empty_registry():
    with pytest.raises(UnknownComponentError, match="none registered"):
        Registry("teachers").get("dino")


@pytest.mark.parametrize("version", [0, -1, 1.0, "1", True, None])
def test_version_must_be_positive_int(version):
    reg = Registry("methods")
    with pytest.raises(FasbenchError, match="version") as info:
        reg.register("m", _factory, plugin="p", version=version)
    assert "'m'" in str(info.value) and "'p'" in str(info.value)
    assert "m" not in reg


@pytest.mark.parametrize("name", ["", None, 3])
def test_name_must_be_nonempty_string(name):
    with pytest.raises(FasbenchError, match="name"):
        Registry("methods").register(name, _factory, plugin="p")


# --- the registries filled by the installed plugins (in-process) -------------------------

@pytest.fixture
def fresh_plugins(monkeypatch):
    for var in ("FASBENCH_LOAD_PLUGINS", "FASBENCH_STRICT_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    plugins.reset()
    yield plugins
    plugins.reset()


def test_builtin_and_baseline_registries(fresh_plugins):
    regs = fresh_plugins.all_registries()
    assert set(regs) == set(KINDS)
    assert "synthetic" in regs["datasets"]
    assert {"MICO", "LimitedSource", "Intra"} <= set(regs["protocols"].names())
    assert "timm" in regs["students"] and "none" in regs["aligners"]
    assert "HTER" in regs["metrics"]
    erm = regs["methods"].get("erm")
    assert erm.plugin == "baselines" and erm.version == 1
    assert isinstance(erm.factory, str)  # still lazy: listing imported nothing
    assert regs["protocols"].get("MICO").plugin == "fasbench"


def test_every_registered_component_has_valid_metadata(fresh_plugins):
    for kind, reg in fresh_plugins.all_registries().items():
        for entry in reg:
            assert entry.kind == kind and entry.name
            assert isinstance(entry.version, int) and entry.version >= 1
            assert entry.plugin in {i.name for i in fresh_plugins.plugin_infos()}


def test_registry_is_cached_until_reset(fresh_plugins):
    reg = fresh_plugins.registry("methods")
    assert fresh_plugins.registry("methods") is reg
    fresh_plugins.reset()
    assert fresh_plugins.registry("methods") is not reg
