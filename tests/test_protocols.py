"""Protocols: the registered MICO / LimitedSource / Intra tasks and ad-hoc parsing."""
from __future__ import annotations

import pytest

from fasbench import plugins
from fasbench.errors import FasbenchError
from fasbench.protocols import (
    CROSS_DOMAIN_SPLITS,
    INTRA_DOMAIN_SPLITS,
    Protocol,
    Task,
    intra,
    limited_source,
    looks_adhoc,
    mico,
    parse_adhoc,
)


def _tasks(protocol: Protocol) -> list[tuple[frozenset, str]]:
    """Tasks as (set of sources, target): the order of the source letters carries no meaning."""
    return [(frozenset(t.sources), t.target) for t in protocol.tasks]


def test_mico_is_leave_one_domain_out():
    p = mico()
    assert p.name == "MICO"
    # O&C&I->M, O&M&I->C, O&C&M->I, I&C&M->O, exactly and in this order.
    assert _tasks(p) == [
        (frozenset("OCI"), "M"),
        (frozenset("OMI"), "C"),
        (frozenset("OCM"), "I"),
        (frozenset("ICM"), "O"),
    ]
    for t in p.tasks:
        assert len(t.sources) == 3 and t.target not in t.sources and not t.intra
    assert sorted(p.domains) == sorted("MCIO")
    assert p.splits == CROSS_DOMAIN_SPLITS
    assert p.splits["target"] == ("train", "dev", "test")  # the whole unseen domain


def test_limited_source():
    p = limited_source()
    assert p.name == "LimitedSource"
    assert _tasks(p) == [(frozenset("MI"), "C"), (frozenset("MI"), "O")]
    assert p.splits == CROSS_DOMAIN_SPLITS


def test_intra():
    p = intra()
    assert [(t.sources, t.target, t.intra) for t in p.tasks] == [((d,), d, True) for d in "MCIO"]
    assert p.splits == INTRA_DOMAIN_SPLITS and p.splits["target"] == ("test",)


def test_task_lookup_by_name_or_target():
    p = mico()
    assert p.task("M").target == "M"
    assert p.task(p.tasks[2].name) is p.tasks[2]
    with pytest.raises(FasbenchError, match="no task 'X'") as info:
        p.task("X")
    assert p.tasks[0].name in str(info.value)  # lists the tasks it has


def test_registered_protocols_build_the_same(monkeypatch):
    monkeypatch.delenv("FASBENCH_LOAD_PLUGINS", raising=False)
    plugins.reset()
    try:
        reg = plugins.registry("protocols")
        for name, fn in (("MICO", mico), ("LimitedSource", limited_source), ("Intra", intra)):
            built = reg.get(name).build()
            assert isinstance(built, Protocol) and built.name == name
            assert built.tasks == fn().tasks
    finally:
        plugins.reset()


@pytest.mark.parametrize("spec, expected", [
    ("OCI->M", [("OCI", "M")]),
    ("O&C&I->M", [("OCI", "M")]),
    ("  O & C & I  ->  M ", [("OCI", "M")]),
    ("O,C,I->M", [("OCI", "M")]),
    ("O+C+I->M", [("OCI", "M")]),
    ("MI->C;MI->O", [("MI", "C"), ("MI", "O")]),
    ("M&I->C; M&I->O;", [("MI", "C"), ("MI", "O")]),
    ("MC->I", [("MC", "I")]),
])
def test_parse_adhoc(spec, expected):
    assert looks_adhoc(spec)
    p = parse_adhoc(spec)
    assert [(t.sources, t.target) for t in p.tasks] == [(tuple(s), t) for s, t in expected]
    assert p.name == ";".join(f"{s}->{t}" for s, t in expected)
    assert p.splits == CROSS_DOMAIN_SPLITS
    assert not any(t.intra for t in p.tasks)


def test_adhoc_equals_registered_task():
    assert parse_adhoc("O&C&I->M").tasks[0] == mico().tasks[0]
    assert parse_adhoc("MI->C;MI->O").tasks == limited_source().tasks


def test_multi_letter_domain_names_with_separators():
    p = parse_adhoc("MSU&CASIA->OULU")
    assert p.tasks[0].sources == ("MSU", "CASIA") and p.tasks[0].target == "OULU"


@pytest.mark.parametrize("spec", ["OCM->M", "O&C&M->M", "MC->M", "MI->C;MC->C"])
def test_target_also_a_source(spec):
    with pytest.raises(FasbenchError) as info:
        parse_adhoc(spec)
    msg = str(info.value)
    assert "also a source" in msg and "unseen domain" in msg
    assert "Intra" in msg  # says what to use instead


@pytest.mark.parametrize("spec", [
    "->M",            # no source
    "OCI->",          # no target
    "OCI->M->C",      # two arrows
    "O C I",          # no arrow at all
    "OC#I->M",        # stray character
    ";",              # nothing
    "",               # nothing
    "OCI=>M",         # wrong arrow
    "OO->M",          # a source twice
    "O&O->M",         # a source twice
])
def test_garbage_is_a_fasbench_error(spec):
    with pytest.raises(FasbenchError) as info:
        parse_adhoc(spec)
    assert str(info.value)  # a message, not a bare exception
    assert not isinstance(info.value, (ValueError, KeyError))  # not a stray parsing crash


def test_task_validation():
    with pytest.raises(FasbenchError, match="no source"):
        Task((), "M")
    with pytest.raises(FasbenchError, match="twice"):
        Task(("M", "M"), "C")
    with pytest.raises(FasbenchError, match="only source"):
        Task(("M", "C"), "M", intra=True)
    assert Task(("M",), "M", intra=True).name == "M->M"
    assert Task(("O", "C", "I"), "M").as_dict() == {"name": "OCI->M", "sources": ["O", "C", "I"], "target": "M",
                                                     "intra": False}
