"""Run records: one ``record.json`` per task run, the only input of the leaderboard.

A record says what ran (method, protocol, task, seed, the resolved config and the name and
version of every component), on what (data fingerprint, library versions, git state), and
what came out (metrics per threshold policy, in percent; timings).  The layout is
versioned by the ``schema`` key (:data:`SCHEMA`).

Loading policy (:func:`load_records`): by default a malformed record is *skipped with a
warning* (:class:`RecordWarning`, which the CLI prints as ``warning: ...``) so that one
broken run does not hide a whole leaderboard; pass ``strict=True`` (CLI ``--strict``) to
turn it into a :class:`~fasbench.errors.FasbenchError`.  Records whose ``status`` is not
``"complete"`` are always skipped with a warning; a record without a ``status`` key counts
as complete (``status`` is not a required key).

This module imports neither torch nor numpy.
"""
from __future__ import annotations

import json
import math
import os
import secrets
import subprocess
import warnings
from pathlib import Path
from typing import Any, Iterable

from fasbench.errors import FasbenchError

SCHEMA = "fasbench.record/1"
RECORD_FILENAME = "record.json"

#: Keys every record must have (``status``, ``run_id``, ``created`` and
#: ``checkpoint_selection`` are optional).
REQUIRED_KEYS = (
    "method",
    "protocol",
    "task",
    "seed",
    "config",
    "versions",
    "git",
    "data",
    "metrics",
    "timings",
    "components",
    "schema",
)

#: Component roles every record names, in the order used by :func:`component_key`.
COMPONENT_ROLES = ("method", "student", "aligner", "teachers", "dataset", "protocol")

#: Keys starting with this prefix are annotations added by :func:`load_records`
#: (``_source``: the file the record came from); they are never written to disk.
ANNOTATION_PREFIX = "_"


class RecordWarning(UserWarning):
    """A run record was skipped or replaced (malformed, incomplete, duplicate)."""


# --------------------------------------------------------------------------- validation


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _bad(source: str, key: str, what: str, value: Any) -> FasbenchError:
    return FasbenchError(
        f"{source}: key '{key}' must be {what}, got {_type_name(value)} {value!r:.60}"
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_str(rec: dict, key: str, source: str, *, dotted: str | None = None) -> None:
    value = rec.get(key)
    if not isinstance(value, str) or not value:
        raise _bad(source, dotted or key, "a non-empty string", value)


def _check_dict(value: Any, key: str, source: str) -> dict:
    if not isinstance(value, dict):
        raise _bad(source, key, "an object (dict)", value)
    return value


def _check_component(comp: Any, key: str, source: str) -> None:
    _check_dict(comp, key, source)
    for sub in ("name", "version"):
        if sub not in comp:
            raise FasbenchError(f"{source}: missing key '{key}.{sub}'")
    if not isinstance(comp["name"], str) or not comp["name"]:
        raise _bad(source, f"{key}.name", "a non-empty string", comp["name"])
    if not (_is_int(comp["version"]) or isinstance(comp["version"], str)):
        raise _bad(source, f"{key}.version", "an int or a string", comp["version"])


def validate_record(rec: dict, source: str = "record") -> dict:
    """Check that ``rec`` is a well-formed run record and return it unchanged.

    Raises :class:`FasbenchError` whose message starts with ``source`` (the file name, when
    there is one) and names the missing or malformed key (dotted, e.g. ``task.target``).
    """
    if not isinstance(rec, dict):
        raise FasbenchError(
            f"{source}: a run record must be a JSON object, got {_type_name(rec)}"
        )
    missing = [k for k in REQUIRED_KEYS if k not in rec]
    if missing:
        raise FasbenchError(
            f"{source}: missing required key '{missing[0]}'"
            + (f" (also missing: {', '.join(missing[1:])})" if len(missing) > 1 else "")
            + f"; a {SCHEMA} record needs {', '.join(REQUIRED_KEYS)}"
        )
    if rec["schema"] != SCHEMA:
        raise FasbenchError(
            f"{source}: key 'schema' is {rec['schema']!r}; this fasbench reads {SCHEMA!r} "
            "records (re-run the task, or use the fasbench version that wrote it)"
        )
    _check_str(rec, "method", source)
    _check_str(rec, "protocol", source)

    task = _check_dict(rec["task"], "task", source)
    _check_str(task, "name", source, dotted="task.name")
    _check_str(task, "target", source, dotted="task.target")
    sources = task.get("sources")
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        raise _bad(source, "task.sources", "a list of strings", sources)

    if not _is_int(rec["seed"]):
        raise _bad(source, "seed", "an int", rec["seed"])
    _check_dict(rec["config"], "config", source)
    _check_dict(rec["timings"], "timings", source)

    versions = _check_dict(rec["versions"], "versions", source)
    _check_str(versions, "fasbench", source, dotted="versions.fasbench")

    git = _check_dict(rec["git"], "git", source)
    for sub, ok, what in (
        ("commit", lambda v: v is None or isinstance(v, str), "a string or null"),
        ("dirty", lambda v: v is None or isinstance(v, bool), "a bool or null"),
    ):
        if sub not in git:
            raise FasbenchError(f"{source}: missing key 'git.{sub}'")
        if not ok(git[sub]):
            raise _bad(source, f"git.{sub}", what, git[sub])

    data = _check_dict(rec["data"], "data", source)
    _check_str(data, "dataset", source, dotted="data.dataset")
    _check_str(data, "fingerprint", source, dotted="data.fingerprint")

    metrics = _check_dict(rec["metrics"], "metrics", source)
    if not metrics:
        raise FasbenchError(
            f"{source}: key 'metrics' is empty; expected one block per threshold policy "
            "(e.g. 'source-val', 'target-eer')"
        )
    for policy, block in metrics.items():
        _check_dict(block, f"metrics.{policy}", source)
        for name, value in block.items():
            if value is not None and not _is_number(value):
                raise _bad(source, f"metrics.{policy}.{name}", "a number or null", value)

    comps = _check_dict(rec["components"], "components", source)
    for role in COMPONENT_ROLES:
        if role not in comps:
            raise FasbenchError(f"{source}: missing key 'components.{role}'")
        if role == "teachers":
            if not isinstance(comps[role], list):
                raise _bad(source, "components.teachers", "a list", comps[role])
            for i, teacher in enumerate(comps[role]):
                _check_component(teacher, f"components.teachers[{i}]", source)
        else:
            _check_component(comps[role], f"components.{role}", source)

    for key in ("status", "run_id", "created", "checkpoint_selection"):
        if key in rec and rec[key] is not None and not isinstance(rec[key], str):
            raise _bad(source, key, "a string", rec[key])
    return rec


# --------------------------------------------------------------------------- identity


def _component_str(comp: dict) -> str:
    return f"{comp['name']}@{comp['version']}"


def component_key(rec: dict) -> str:
    """A stable string naming every component and its version.

    Example: ``method=erm@1;student=resnet18@1;aligner=none@1;teachers=[];``
    ``dataset=synthetic@1;protocol=MICO@1``.  Records whose keys differ are never
    averaged together.  Teachers keep their configured order (it can matter).
    """
    comps = rec["components"]
    parts = []
    for role in COMPONENT_ROLES:
        if role == "teachers":
            inner = ",".join(_component_str(t) for t in comps.get("teachers", []))
            parts.append(f"teachers=[{inner}]")
        else:
            parts.append(f"{role}={_component_str(comps[role])}")
    return ";".join(parts)


# --------------------------------------------------------------------------- writing


def _json_default(obj: Any) -> Any:
    """Convert the non-JSON types a trainer commonly produces; reject everything else."""
    # numpy scalars / arrays and torch tensors (duck-typed: no numpy/torch import here).
    if hasattr(obj, "dtype") and callable(getattr(obj, "tolist", None)):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=repr)
    if hasattr(obj, "isoformat") and callable(obj.isoformat):  # datetime / date
        return obj.isoformat()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def dumps_json(obj: Any) -> str:
    """Serialise ``obj`` as records are written: indent 2, key order kept, final newline."""
    return json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically.

    The bytes go to a hidden temp file in the same directory, are flushed and fsynced, and
    the temp file is then ``os.replace``-d onto ``path``: a reader sees either the old file
    or the new one, never a partial one.  The temp file is removed on any failure.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8")
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # honours the umask
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically (see :func:`atomic_write_text`).

    numpy scalars/arrays (and tensors) become plain ints/floats/lists, paths become strings.
    The object is serialised *before* any file is touched, so if serialisation fails
    (``TypeError`` for an unsupported object) an existing file keeps its old content and no
    temp file is left behind.  Non-finite floats are written as ``NaN``/``Infinity``, which
    Python's ``json`` reads back.
    """
    return atomic_write_text(path, dumps_json(obj))


def _strip_annotations(rec: dict) -> dict:
    return {k: v for k, v in rec.items() if not k.startswith(ANNOTATION_PREFIX)}


def write_record(run_dir: str | os.PathLike, rec: dict) -> Path:
    """Validate ``rec`` and write it atomically to ``run_dir/record.json``; return the path."""
    path = Path(run_dir) / RECORD_FILENAME
    rec = _strip_annotations(rec)
    validate_record(rec, source=str(path))
    return atomic_write_json(path, rec)


# --------------------------------------------------------------------------- loading


def _warn(message: str) -> None:
    warnings.warn(message, RecordWarning, stacklevel=3)


def _record_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    if not root.is_dir():
        return []
    return sorted(root.rglob(RECORD_FILENAME), key=lambda p: p.relative_to(root).as_posix())


def is_complete(rec: dict) -> bool:
    """True unless the record carries a ``status`` other than ``"complete"``."""
    return rec.get("status", "complete") == "complete"


def load_records(root: str | os.PathLike, strict: bool = False) -> list[dict]:
    """Load every ``**/record.json`` under ``root`` (or ``root`` itself if it is a file).

    Files are read in sorted relative-path order, so the result is deterministic.  Each
    returned dict carries ``_source`` (the file path as a string).  A malformed file (bad
    JSON or a failed :func:`validate_record`) raises :class:`FasbenchError` naming the path
    when ``strict``; otherwise (default) it is skipped with a :class:`RecordWarning` naming
    the path and the problem.  Records with ``status`` other than ``"complete"`` are skipped
    with a warning.  A missing ``root`` gives an empty list.
    """
    root = Path(root)
    out: list[dict] = []
    for path in _record_files(root):
        source = str(path)
        try:
            try:
                with open(path, encoding="utf-8") as fh:
                    rec = json.load(fh)
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                raise FasbenchError(f"{source}: not a readable JSON file ({exc})") from exc
            validate_record(rec, source=source)
        except FasbenchError as exc:
            if strict:
                raise
            _warn(f"skipping malformed run record: {exc}")
            continue
        if not is_complete(rec):
            _warn(f"skipping {source}: status is {rec.get('status')!r}, not 'complete'")
            continue
        rec = dict(rec)
        rec["_source"] = source
        out.append(rec)
    return out


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


def finite_or_none(value: Any) -> float | None:
    """``float(value)`` if it is a finite number, else ``None`` (used for metric cells)."""
    if not _is_number(value):
        return None
    value = float(value)
    return value if math.isfinite(value) else None
