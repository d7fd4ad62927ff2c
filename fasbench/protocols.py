"""Protocols: named lists of tasks, each ``sources -> target`` over domain letters.

Domain letters are dataset-independent, so ``MICO`` runs on the synthetic world (whose
domains are named M, C, I, O) and on the real MSU-MFSD / CASIA-FASD / Replay-Attack /
OULU-NPU datasets alike.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from fasbench.errors import FasbenchError

#: Default splits of a cross-domain task: train on the sources' train split, pick the
#: ``source-val`` threshold (and checkpoint) on the sources' dev split, test on the whole
#: target domain (as SSDG-CVPR2020 does).
CROSS_DOMAIN_SPLITS = {"source_train": ("train",), "source_val": ("dev",), "target": ("train", "dev", "test")}
#: Intra-domain tasks test on the held-out test subjects of the same domain.
INTRA_DOMAIN_SPLITS = {"source_train": ("train",), "source_val": ("dev",), "target": ("test",)}


@dataclass(frozen=True)
class Task:
    sources: tuple[str, ...]
    target: str
    intra: bool = False

    def __post_init__(self) -> None:
        if not self.sources:
            raise FasbenchError(f"task ->{self.target} has no source domain")
        if len(set(self.sources)) != len(self.sources):
            raise FasbenchError(f"task {self.name!r} lists a source domain twice")
        if self.intra:
            if self.sources != (self.target,):
                raise FasbenchError(f"intra-domain task {self.name!r} must have the target as its only source")
        elif self.target in self.sources:
            raise FasbenchError(
                f"task {self.name!r}: target domain {self.target!r} is also a source; a cross-domain task "
                f"must test on an unseen domain (use --protocol Intra for intra-domain results)"
            )

    @property
    def name(self) -> str:
        return f"{''.join(self.sources)}->{self.target}"

    def as_dict(self) -> dict:
        return {"name": self.name, "sources": list(self.sources), "target": self.target, "intra": self.intra}


@dataclass(frozen=True)
class Protocol:
    name: str
    tasks: tuple[Task, ...]
    description: str = ""
    splits: dict = field(default_factory=lambda: dict(CROSS_DOMAIN_SPLITS))

    @property
    def domains(self) -> list[str]:
        seen: dict[str, None] = {}
        for t in self.tasks:
            for d in (*t.sources, t.target):
                seen.setdefault(d, None)
        return list(seen)

    def task(self, name: str) -> Task:
        for t in self.tasks:
            if t.name == name or t.target == name:
                return t
        raise FasbenchError(
            f"protocol {self.name!r} has no task {name!r}; its tasks: {', '.join(t.name for t in self.tasks)}"
        )


def _cross(spec: str) -> Task:
    src, tgt = spec.split("->")
    return Task(tuple(src), tgt)


def mico() -> Protocol:
    """Leave-one-domain-out over MSU-MFSD (M), CASIA-FASD (C), Replay-Attack (I), OULU-NPU (O)."""
    return Protocol(
        "MICO",
        tuple(_cross(s) for s in ("OCI->M", "OMI->C", "OCM->I", "ICM->O")),
        "O&C&I->M, O&M&I->C, O&C&M->I, I&C&M->O",
    )


def limited_source() -> Protocol:
    """Limited source domains: M&I->C and M&I->O."""
    return Protocol("LimitedSource", (_cross("MI->C"), _cross("MI->O")), "M&I->C, M&I->O")


def intra() -> Protocol:
    """Intra-domain reference: train and test on disjoint subjects of the same domain."""
    return Protocol(
        "Intra",
        tuple(Task((d,), d, intra=True) for d in "MCIO"),
        "M->M, C->C, I->I, O->O (train split -> test split)",
        dict(INTRA_DOMAIN_SPLITS),
    )


_ADHOC = re.compile(r"^\s*([A-Za-z0-9&,+ ]+?)\s*->\s*([A-Za-z0-9]+)\s*$")


def looks_adhoc(spec: str) -> bool:
    return "->" in spec


def parse_adhoc(spec: str) -> Protocol:
    """Parse ``"OCI->M"``, ``"O&C&I->M"`` or several tasks separated by ``;``."""
    tasks = []
    for part in spec.split(";"):
        if not part.strip():
            continue
        m = _ADHOC.match(part)
        if not m:
            raise FasbenchError(
                f"cannot parse protocol {part.strip()!r}; write sources->target with one letter per domain, "
                f"e.g. 'OCI->M' or 'O&C&I->M' (several tasks: 'MI->C;MI->O')"
            )
        raw_src, tgt = m.group(1), m.group(2)
        src = [s for s in re.split(r"[&,+ ]+", raw_src) if s]
        sources = tuple(src) if len(src) > 1 else tuple(src[0])
        tasks.append(Task(sources, tgt))
    if not tasks:
        raise FasbenchError(f"protocol {spec!r} has no task")
    name = ";".join(t.name for t in tasks)
    return Protocol(name, tuple(tasks), "ad-hoc protocol from the command line")
