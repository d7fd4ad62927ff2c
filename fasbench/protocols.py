"""Protocols: named lists of tasks, each ``sources -> target`` over domain letters.

Domain letters are dataset-independent, so ``MICO`` runs on the synthetic world (whose
domains are named M, C, I, O) and on the real MSU-MFSD / CASIA-FASD / Replay-Attack /
OULU-NPU datasets alike.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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
    variant: str = ""  # tells apart tasks over the same domains (OULU-NPU protocol folds, held-out attacks)

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
        return f"{''.join(self.sources)}->{self.target}" + (f"[{self.variant}]" if self.variant else "")

    def as_dict(self) -> dict:
        d = {"name": self.name, "sources": list(self.sources), "target": self.target, "intra": self.intra}
        if self.variant:
            d["variant"] = self.variant
        return d


@dataclass(frozen=True)
class Protocol:
    name: str
    tasks: tuple[Task, ...]
    description: str = ""
    splits: dict = field(default_factory=lambda: dict(CROSS_DOMAIN_SPLITS))
    #: Optional ``assign(manifest, task) -> split per row`` for protocols whose tasks choose
    #: their own rows (official list files, held-out attack types); rows it marks with a
    #: split name the protocol's ``splits`` do not select (e.g. ``"unused"``) are left out.
    assign: Callable[[Any, Task], Any] | None = field(default=None, compare=False)

    @property
    def domains(self) -> list[str]:
        seen: dict[str, None] = {}
        for t in self.tasks:
            for d in (*t.sources, t.target):
                seen.setdefault(d, None)
        return list(seen)

    def task(self, name: str) -> Task:
        for t in self.tasks:
            if t.name == name or t.target == name or (t.variant and t.variant == name):
                return t
        raise FasbenchError(
            f"protocol {self.name!r} has no task {name!r}; its tasks: {', '.join(t.name for t in self.tasks)}"
        )


def parse_task_name(name: str) -> tuple[tuple[str, ...], str] | None:
    """``(sources, target)`` of a task name, or None when it has no ``->`` (nor ``→``).

    Sources are one letter per domain (``OCI->M``) or names separated by ``&``, ``,``, ``+``
    or spaces (``O&C&I->M``, ``O, C, I -> M``, ``MSU&CASIA->OULU``); the target is the rest,
    stripped. The one parser of task names: protocols and the leaderboard both use it.
    """
    name = name.replace("→", "->")
    if "->" not in name:
        return None
    lhs, rhs = name.split("->", 1)
    tokens = [t for t in re.split(r"[&,+\s]+", lhs.strip()) if t]
    if len(tokens) == 1:
        tokens = list(tokens[0])
    return tuple(tokens), rhs.strip()


def _cross(spec: str) -> Task:
    sources, target = parse_task_name(spec)
    return Task(sources, target)


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


def _oulu_assign(manifest, task: Task):
    col = f"oulu_{task.variant.lower()}"
    if col not in manifest.columns:
        have = "OULU-NPU without its Protocols/ list files" if "official_split" in manifest.columns else "this dataset"
        raise FasbenchError(
            f"protocol task {task.name} needs the official OULU-NPU list files Protocols/Protocol_"
            f"{task.variant[1]}/{{Train,Dev,Test}}{task.variant[2:]}.txt, and {have} has none; put the Protocols/ folder "
            f"that ships with OULU-NPU under the oulu_npu root (data.roots.O) and run with --data real"
        )
    values = manifest[col].astype(str)
    return values.where(values != "", "unused")


def oulu_npu(which: str = "all") -> Protocol:
    """OULU-NPU intra-dataset protocols 1-4 on the official Train/Dev/Test lists (threshold
    on Dev, APCER/BPCER/ACER on Test); protocols 3 and 4 have six leave-one-phone-out folds."""
    variants = {"1": ["P1"], "2": ["P2"], "3": [f"P3_{k}" for k in range(1, 7)], "4": [f"P4_{k}" for k in range(1, 7)]}
    keys = list(variants) if which == "all" else [which]
    tasks = tuple(Task(("O",), "O", intra=True, variant=v) for k in keys for v in variants[k])
    name = "OULU-NPU" if which == "all" else f"OULU-NPU-P{which}"
    return Protocol(name, tasks, f"OULU-NPU protocol(s) {', '.join(keys)} on the official lists",
                    dict(INTRA_DOMAIN_SPLITS), assign=_oulu_assign)


def oulu_p1() -> Protocol:
    return oulu_npu("1")


def oulu_p2() -> Protocol:
    return oulu_npu("2")


def oulu_p3() -> Protocol:
    return oulu_npu("3")


def oulu_p4() -> Protocol:
    return oulu_npu("4")


#: Coarse attack kinds shared by every dataset's manifest (``attack`` column).
CROSS_ATTACK_KINDS = ("print", "replay")


def _cross_attack_assign(manifest, task: Task):
    held = task.variant.removeprefix("unseen-")
    attack = manifest["attack"].astype(str)
    if not (attack == held).any():
        raise FasbenchError(f"task {task.name}: the data has no {held!r} attack to hold out "
                            f"(attack types: {sorted(set(attack) - {'none'})})")
    split = manifest["split"].astype(str).copy()
    is_live = manifest["label"].to_numpy() == 1
    seen = ~is_live & (attack != held).to_numpy()
    unseen = ~is_live & (attack == held).to_numpy()
    train_like = split.isin(["train", "dev"]).to_numpy()
    split[train_like & unseen] = "unused"            # the held-out attack is never trained or tuned on
    split[(split == "test").to_numpy() & seen] = "unused"  # and is the only attack tested
    return split


def cross_attack() -> Protocol:
    """Cross-attack: per domain, train (and pick the threshold) on live + all attack types but
    one, test on live + the held-out type (the test split's subjects)."""
    tasks = tuple(Task((d,), d, intra=True, variant=f"unseen-{a}") for d in "MCIO" for a in CROSS_ATTACK_KINDS)
    return Protocol("CrossAttack", tasks, "per domain: train without one attack type (print or replay), "
                    "test on live + that type", dict(INTRA_DOMAIN_SPLITS), assign=_cross_attack_assign)


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
        sources, target = parse_task_name(part)
        tasks.append(Task(sources, target))
    if not tasks:
        raise FasbenchError(f"protocol {spec!r} has no task")
    name = ";".join(t.name for t in tasks)
    return Protocol(name, tuple(tasks), "ad-hoc protocol from the command line")
