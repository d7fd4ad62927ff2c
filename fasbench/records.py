"""Run records: one ``record.json`` per task run, the only input of the leaderboard.

A record says what ran (method, protocol, task, seed, the resolved config, every component
with its version and weights), on what (data fingerprint, library versions, git state, the
effective precision), how the checkpoint was selected, and what came out, each number named
by the data it was computed on:

* ``val``: the **source-val split's own** metrics (its EER threshold, EER, AUC, ...).
  Computed from source-domain validation scores only; never from the target.
* ``target``: metrics on the **target test data**, one block per *threshold policy*:
  ``source-val-threshold`` (the threshold chosen on the source-val split, applied unchanged:
  deployable) and ``target-eer-threshold`` (the target's own EER threshold: idealized, it
  uses target labels). Each block holds the metrics the run's ``eval.metrics`` names, the
  threshold, the counts and a bootstrap confidence interval over target videos.
* ``scores``: the per-frame score file beside the record (``scores.csv.gz``) and its sha256;
  ``fasbench score RUN_DIR`` recomputes ``val`` and ``target`` from it exactly.

There is one record type, :class:`RunRecord` (a frozen pydantic model): the engine builds
it once, and it is validated on write and on load. Its JSON Schema is published in
``docs/record.schema.json`` (:func:`json_schema`). Run identity is defined once, by
:func:`run_key`: resume checks, leaderboard grouping and row labels all use it.

Types are strict: every declared string, integer, boolean and number of the schema must be
one in the JSON (``"seed": "0"``, ``"seed": true``, ``"config_hash": 123``, ``"HTER": "12.5"``
and a string where an object belongs are malformed, not converted), so what parses is what
the leaderboard, run keys and ``compare`` expect. Free-form blocks (``config``, ``versions``,
``timings``, ``curve``, the extra keys of a component or its weights) are not checked.

Loading policy (:func:`load_records`): by default a malformed record is *skipped with a
warning* (:class:`RecordWarning`) so that one broken run does not hide a whole leaderboard;
``strict=True`` (CLI ``--strict``) turns it into a :class:`~fasbench.errors.FasbenchError`.
Records whose ``status`` is not ``"complete"`` are skipped with a warning.

This module imports neither torch nor numpy.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_serializer,
)

from fasbench.errors import FasbenchError
from fasbench.util import atomic_write_bytes, atomic_write_json, atomic_write_text, dumps_json  # noqa: F401 (re-exported)

SCHEMA = "fasbench.record/2"
RECORD_FILENAME = "record.json"
SCORES_FILENAME = "scores.csv.gz"

#: Component roles every record names, in the order :func:`run_key` lists them.
COMPONENT_ROLES = ("method", "student", "aligner", "teachers", "dataset", "protocol")

#: Threshold policies on the target, in display order.
SOURCE_VAL_THRESHOLD = "source-val-threshold"
TARGET_EER_THRESHOLD = "target-eer-threshold"
POLICIES = (SOURCE_VAL_THRESHOLD, TARGET_EER_THRESHOLD)

#: Checkpoint selection rules. Only ``target-oracle`` reads target labels (and says so).
SELECTIONS = ("last", "source-val", "target-oracle")

#: Effective numeric precision of training (evaluation always runs in float32).
PRECISIONS = ("cpu-fp32", "cuda-fp32", "cuda-bf16", "cuda-fp16", "mps-fp32")


class RecordWarning(UserWarning):
    """A run record was skipped or replaced (malformed, incomplete, duplicate)."""


# --------------------------------------------------------------------------- the model

_FROZEN = ConfigDict(frozen=True, extra="forbid")
_OPEN = ConfigDict(frozen=True, extra="allow")


class WeightsInfo(BaseModel):
    """Where a component's weights came from (``fasbench.weights``)."""

    model_config = _OPEN
    uri: StrictStr | None = None
    sha256: StrictStr | None = None


class Component(BaseModel):
    """A registered component as it ran: name, integer version, plugin (and weights)."""

    model_config = _OPEN
    name: StrictStr = Field(min_length=1)
    version: StrictInt | StrictStr
    plugin: StrictStr | None = None
    kind: StrictStr | None = None
    weights: WeightsInfo | None = None

    @model_serializer(mode="wrap")
    def _drop_unset(self, handler):  # a component without weights is written without the key
        return {k: v for k, v in handler(self).items() if not (k in ("plugin", "kind", "weights") and v is None)}


class Components(BaseModel):
    model_config = _FROZEN
    method: Component
    student: Component
    aligner: Component
    teachers: list[Component] = Field(default_factory=list)
    dataset: Component
    protocol: Component


class TaskInfo(BaseModel):
    model_config = _FROZEN
    name: StrictStr = Field(min_length=1)
    sources: list[StrictStr]
    target: StrictStr = Field(min_length=1)
    intra: StrictBool = False
    variant: StrictStr | None = None


class GitInfo(BaseModel):
    model_config = _FROZEN
    commit: StrictStr | None
    dirty: StrictBool | None


class DataInfo(BaseModel):
    """What the numbers were computed on."""

    model_config = _OPEN
    dataset: StrictStr = Field(min_length=1)
    fingerprint: StrictStr = Field(min_length=1)
    identity: dict[str, Any] = Field(default_factory=dict)
    #: split names per role: ``source_train``, ``source_val``, ``target``
    splits: dict[str, list[StrictStr]] = Field(default_factory=dict)
    #: evaluated/trained frame counts per role
    frames: dict[str, StrictInt] = Field(default_factory=dict)
    split_convention: dict[str, Any] | None = None
    preparation: dict[str, Any] | None = None
    skipped_videos: StrictInt | None = None


class Selection(BaseModel):
    """Which checkpoint the reported numbers come from, and on what data it was chosen."""

    model_config = _FROZEN
    rule: Literal["last", "source-val", "target-oracle"]
    #: the metric the rule minimises/maximises (``None`` for ``last``)
    metric: StrictStr | None = None
    #: the data the rule read: ``none`` (last), ``source-val`` or ``target`` (oracle)
    data: Literal["none", "source-val", "target"]
    uses_target_labels: StrictBool
    selected_step: StrictInt
    #: the evaluated steps the rule chose among
    candidates: list[StrictInt] = Field(default_factory=list)


class MetricBlock(BaseModel):
    """Metrics of one data split at one threshold (percent, except ``threshold``)."""

    model_config = _FROZEN
    #: the data the numbers were computed on: ``source-val`` or ``target``
    data: Literal["source-val", "target"]
    #: where the threshold came from: ``source-val`` (EER of the source-val split),
    #: ``target`` (EER of the target itself: idealized)
    threshold_from: Literal["source-val", "target"]
    threshold: StrictFloat
    #: ``video`` (frame scores averaged per video) or ``frame``
    level: Literal["video", "frame"]
    n_videos: StrictInt
    n_live: StrictInt
    n_spoof: StrictInt
    #: metric name -> value in percent (``None``: undefined for this data)
    metrics: dict[str, StrictFloat | None]
    #: metric name -> [low, high] percentile bootstrap interval over videos (see ``ci``)
    ci: dict[str, list[StrictFloat]] = Field(default_factory=dict)
    #: how ``ci`` was computed: level, resamples, resampling unit, seed
    ci_method: dict[str, Any] | None = None

    @field_validator("metrics")
    @classmethod
    def _finite(cls, v: dict[str, float | None]) -> dict[str, float | None]:
        for name, value in v.items():
            if value is not None and not math.isfinite(value):
                raise ValueError(f"metric {name!r} is {value}; write null for an undefined value")
        return v


class DistributedInfo(BaseModel):
    """How many processes trained the run (``torchrun``; DistributedDataParallel).

    A record without this block was trained by one process. Runs of more than one process are
    another run setting than one process (their own leaderboard row): BatchNorm statistics,
    dropout masks and the floating-point order of the gradient sum differ
    (docs/distributed.md)."""

    model_config = _FROZEN
    world_size: StrictInt = Field(ge=1)
    #: ``gloo`` (CPU) or ``nccl`` (CUDA); ``None`` for one process
    backend: StrictStr | None = None
    #: images each process trains on per step (the global batch is ``trainer.batch_size``)
    per_rank_batch: StrictInt = Field(ge=1)


class ScoresFile(BaseModel):
    model_config = _FROZEN
    file: StrictStr
    sha256: StrictStr
    rows: StrictInt
    columns: list[StrictStr]


class RunRecord(BaseModel):
    """One run of one method on one task with one seed (``record.json``)."""

    model_config = _FROZEN
    schema_: Literal["fasbench.record/2"] = Field(SCHEMA, alias="schema")
    run_id: StrictStr
    created: StrictStr
    status: Literal["complete", "running", "failed"] = "complete"
    method: StrictStr = Field(min_length=1)
    protocol: StrictStr = Field(min_length=1)
    task: TaskInfo
    seed: StrictInt
    config: dict[str, Any]
    #: hash of the result-relevant config (seed, output places, device... left out)
    config_hash: StrictStr
    components: Components
    #: effective training precision, e.g. ``cpu-fp32``, ``cuda-bf16``
    precision: StrictStr
    #: processes that trained the run (absent: one process)
    distributed: DistributedInfo | None = None
    versions: dict[str, Any]
    git: GitInfo
    data: DataInfo
    selection: Selection
    #: the metrics this run reports (``eval.metrics``), in order
    metric_names: list[StrictStr]
    #: the source-val split's own metrics at its own EER threshold (source data only)
    val: MetricBlock
    #: target metrics per threshold policy (``source-val-threshold``, ``target-eer-threshold``)
    target: dict[str, MetricBlock]
    scores: ScoresFile | None = None
    #: evaluation curve: per evaluated step, losses and ``val/...`` / ``target/...`` values
    curve: list[dict[str, Any]] = Field(default_factory=list)
    timings: dict[str, Any] = Field(default_factory=dict)

    _source: str | None = PrivateAttr(default=None)

    @field_validator("target")
    @classmethod
    def _policies(cls, v: dict[str, MetricBlock]) -> dict[str, MetricBlock]:
        if not v:
            raise ValueError("needs at least one threshold policy block")
        for policy, block in v.items():
            if block.data != "target":
                raise ValueError(f"block {policy!r} holds {block.data} data; only target data belongs here")
        return v

    @field_validator("val")
    @classmethod
    def _val_is_source(cls, v: MetricBlock) -> MetricBlock:
        if v.data != "source-val" or v.threshold_from != "source-val":
            raise ValueError("the val block must be computed on source-val data at a source-val threshold")
        return v

    # -- access ---------------------------------------------------------------------
    @property
    def source(self) -> str:
        """The file this record was loaded from (or its run id)."""
        return self._source or self.run_id

    def with_source(self, source: str) -> RunRecord:
        self._source = source
        return self

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    @property
    def run_dir(self) -> Path | None:
        return Path(self._source).parent if self._source else None


def json_schema() -> dict[str, Any]:
    """The JSON Schema of :class:`RunRecord` (published as ``docs/record.schema.json``)."""
    schema = RunRecord.model_json_schema(by_alias=True)
    schema["$id"] = "https://fasbench.invalid/schema/record-2.json"
    schema["title"] = "fasbench run record (fasbench.record/2)"
    return schema


def _shown(value: Any) -> str:
    """The start of ``value`` as JSON, for an error line (never raises)."""
    try:
        return json.dumps(value, default=str)[:60]
    except (TypeError, ValueError, RecursionError):
        return type(value).__name__


def _describe(exc: ValidationError, source: str) -> FasbenchError:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "(record)"
    more = f" (+{len(exc.errors()) - 1} more problem(s))" if len(exc.errors()) > 1 else ""
    shown = "" if err.get("type") == "missing" else f", got {_shown(err.get('input'))}"
    return FasbenchError(f"{source}: key '{where}': {err.get('msg')}{shown}{more}")


def parse_record(obj: Any, source: str = "record") -> RunRecord:
    """Validate a decoded ``record.json`` into a :class:`RunRecord` (one clear error line)."""
    if isinstance(obj, RunRecord):
        return obj
    if not isinstance(obj, dict):
        raise FasbenchError(f"{source}: a run record must be a JSON object, got {type(obj).__name__}")
    schema = obj.get("schema")
    if schema != SCHEMA:
        raise FasbenchError(
            f"{source}: key 'schema' is {schema!r}; this fasbench reads {SCHEMA!r} records "
            "(re-run the task with this fasbench, or use the fasbench version that wrote it)"
        )
    try:
        return RunRecord.model_validate(obj).with_source(source)
    except ValidationError as exc:
        raise _describe(exc, source) from None
    except RecursionError:
        raise FasbenchError(f"{source}: a value is nested too deeply to be a run record") from None


# --------------------------------------------------------------------------- identity


def _comp_id(comp: Component) -> str:
    text = f"{comp.name}@{comp.version}"
    if comp.weights is not None and comp.weights.sha256:
        text += f"#{comp.weights.sha256}"
    return text


def distributed_id(info: DistributedInfo | dict | None) -> str | None:
    """The identity part of a multi-process run (``ddp:2x6:gloo``); ``None`` for one process,
    so records written before the field existed keep their run key."""
    if info is None:
        return None
    d = info if isinstance(info, DistributedInfo) else DistributedInfo.model_validate(info)
    if d.world_size == 1:
        return None
    return f"ddp:{d.world_size}x{d.per_rank_batch}:{d.backend or '?'}"


def identity_of(components: Components | dict, fingerprint: str, precision: str, selection: tuple[str, str | None],
                config_hash: str, distributed: DistributedInfo | dict | None = None) -> dict[str, str]:
    """The parts of a run's identity, by name (ordered): what :func:`run_key` joins.

    The engine calls this before training (resume checks); :func:`identity_fields` calls it
    on a record, so both see one definition. ``distributed`` adds a part only for runs of
    more than one process (world size x per-rank batch : backend).
    """
    comps = components if isinstance(components, Components) else Components.model_validate(components)
    out = {}
    for role in COMPONENT_ROLES:
        if role == "teachers":
            out[role] = "[" + ",".join(_comp_id(t) for t in comps.teachers) + "]"
        else:
            out[role] = _comp_id(getattr(comps, role))
    rule, metric = selection
    out["data"] = fingerprint
    out["precision"] = precision
    out["selection"] = rule + (f":{metric}" if rule != "last" and metric else "")
    out["config"] = config_hash
    ddp = distributed_id(distributed)
    if ddp is not None:
        out["distributed"] = ddp
    return out


def identity_fields(rec: RunRecord) -> dict[str, str]:
    """:func:`identity_of` for a record."""
    return identity_of(rec.components, rec.data.fingerprint, rec.precision,
                       (rec.selection.rule, rec.selection.metric), rec.config_hash, rec.distributed)


def key_of(fields: dict[str, str]) -> str:
    return ";".join(f"{k}={v}" for k, v in fields.items())


def fields_diff(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """``["precision: cpu-fp32 -> cuda-bf16", ...]``: the identity parts that differ (a part
    only one side has counts: ``distributed: <unset> -> ddp:2x6:gloo``)."""
    keys = [*new, *(k for k in old if k not in new)]
    return [f"{k}: {old.get(k, '<unset>')} -> {new.get(k, '<unset>')}" for k in keys if old.get(k) != new.get(k)]


def run_key(rec: RunRecord) -> str:
    """The one definition of "the same run setting" (everything but task and seed).

    Method and every component with name@version and weights sha256 (teachers in their
    configured order), data fingerprint, effective precision, checkpoint selection and the
    result-relevant config hash. Records with equal keys are seeds of one setting and merge
    on the leaderboard; different keys never do. Resume checks use it too. A run of several
    processes (``distributed``) adds its world size, per-rank batch and backend.
    """
    return key_of(identity_fields(rec))


def run_key_id(rec: RunRecord) -> str:
    """A short, stable id of :func:`run_key` (8 hex digits), shown beside leaderboard rows."""
    return hashlib.sha256(run_key(rec).encode()).hexdigest()[:8]


def run_label(rec: RunRecord) -> str:
    """A human-readable label of :func:`run_key` (weights and hashes shortened)."""
    comps = rec.components

    def short(c: Component) -> str:
        sha = c.weights.sha256 if c.weights is not None and c.weights.sha256 else None
        return f"{c.name}@{c.version}" + (f"#{sha[:8]}" if sha else "")

    parts = [short(comps.method), short(comps.student)]
    if comps.aligner.name != "none":
        parts.append(short(comps.aligner))
    if comps.teachers:
        parts.append("teachers:" + "+".join(short(t) for t in comps.teachers))
    parts.append(rec.precision)
    f = identity_fields(rec)
    if "distributed" in f:
        parts.append(f["distributed"])
    if rec.selection.rule != "last":
        parts.append(f"ckpt={f['selection']}")
    parts.append(f"cfg={rec.config_hash[:8]}")
    return " ".join(parts)


def key_diff(a: RunRecord, b: RunRecord) -> list[str]:
    """The identity parts that differ between two records."""
    return fields_diff(identity_fields(a), identity_fields(b))


# --------------------------------------------------------------------------- loading


def _warn(message: str) -> None:
    warnings.warn(message, RecordWarning, stacklevel=3)


def _record_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    if not root.is_dir():
        return []
    return sorted(root.rglob(RECORD_FILENAME), key=lambda p: p.relative_to(root).as_posix())


def read_record(path: str | os.PathLike) -> RunRecord:
    """Read and validate one ``record.json`` (a :class:`FasbenchError` naming the file and key)."""
    source = str(path)
    try:
        with open(path, encoding="utf-8") as fh:
            obj = json.load(fh)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise FasbenchError(f"{source}: not a readable JSON file ({exc})") from exc
    except RecursionError:
        raise FasbenchError(f"{source}: not a readable JSON file (nested too deeply)") from None
    return parse_record(obj, source)


def load_records(root: str | os.PathLike, strict: bool = False) -> list[RunRecord]:
    """Load every ``**/record.json`` under ``root`` (or ``root`` itself if it is a file).

    Files are read in sorted relative-path order, so the result is deterministic; each
    record knows its file (:attr:`RunRecord.source`). A malformed file raises
    :class:`FasbenchError` naming the path when ``strict``; otherwise it is skipped with a
    :class:`RecordWarning` naming the path and the problem. Records whose ``status`` is not
    ``"complete"`` are skipped with a warning. A missing ``root`` gives an empty list.
    """
    out: list[RunRecord] = []
    for path in _record_files(Path(root)):
        try:
            rec = read_record(path)
        except FasbenchError as exc:
            if strict:
                raise
            _warn(f"skipping malformed run record: {exc}")
            continue
        if rec.status != "complete":
            _warn(f"skipping {path}: status is {rec.status!r}, not 'complete'")
            continue
        out.append(rec)
    return out


def write_record(run_dir: str | os.PathLike, rec: RunRecord) -> Path:
    """Write ``rec`` atomically to ``run_dir/record.json``; return the path."""
    path = Path(run_dir) / RECORD_FILENAME
    if not isinstance(rec, RunRecord):
        raise TypeError(f"write_record takes a RunRecord, got {type(rec).__name__}")
    atomic_write_json(path, rec.to_json())
    return rec.with_source(str(path)) and path


# --------------------------------------------------------------------------- git


def _git(args: Iterable[str], cwd: str | os.PathLike) -> str | None:
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=os.fspath(cwd),
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):  # git missing, bad cwd, timeout
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout


def git_info(path: str | os.PathLike = ".") -> dict:
    """``{"commit": sha or None, "dirty": bool or None}`` for the git checkout at ``path``.

    ``None`` values when ``path`` is not in a git work tree, git is missing, or (for
    ``commit``) the repository has no commit yet.  ``dirty`` follows ``git status
    --porcelain``: untracked, not-ignored files count as changes.
    """
    head = _git(["rev-parse", "HEAD"], path)
    status = _git(["status", "--porcelain"], path)
    commit = head.strip() if head and head.strip() else None
    dirty = None if status is None else bool(status.strip())
    return {"commit": commit, "dirty": dirty}
