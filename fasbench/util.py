"""Small shared helpers, each defined once: the cache root, atomic file writes, path slugs
and boolean environment flags.

Standard library only (no torch, numpy or pandas), so any module may import it cheaply.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_TRUE = frozenset({"1", "true", "yes", "on"})


def env_flag(name: str) -> bool:
    """Whether the environment variable ``name`` is set to a true value: ``1``, ``true``,
    ``yes`` or ``on`` (any case, surrounding spaces ignored). Unset, empty or anything else
    is false."""
    return (os.environ.get(name) or "").strip().lower() in _TRUE


def bar_disabled(progress: bool | None = True) -> bool | None:
    """tqdm's ``disable`` for a progress bar: off when ``progress`` is false; when it is true,
    shown in a terminal only (``None``: tqdm hides bars whose stream is not a TTY, so logs of
    batch jobs and CI stay free of carriage-return noise). ``FASBENCH_PROGRESS=1`` shows the
    bar anyway, ``FASBENCH_PROGRESS=0`` hides it everywhere."""
    if progress is False:
        return True
    forced = (os.environ.get("FASBENCH_PROGRESS") or "").strip().lower()
    if forced in _TRUE:
        return False
    if forced in ("0", "false", "no", "off"):
        return True
    return None


def cache_root(override: str | os.PathLike | None = None) -> Path:
    """The root of fasbench's caches (generated worlds, prepared datasets, teachers):
    ``override`` when given, else ``$FASBENCH_CACHE``, else ``~/.cache/fasbench``."""
    if override is not None and str(override) != "":
        return Path(override).expanduser()
    env = os.environ.get("FASBENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "fasbench"


def slug(name: str) -> str:
    """``name`` as one path component: ``->`` becomes ``_to_``, runs of other characters
    than letters, digits, ``.``, ``_`` and ``-`` become ``_`` (``OCI->M`` -> ``OCI_to_M``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name.replace("->", "_to_")).strip("_")


# --------------------------------------------------------------------------- atomic writes


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


def fsync_dir(directory: str | os.PathLike) -> None:
    """Make a rename or creation inside ``directory`` durable (no-op where unsupported)."""
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


def fsync_file(path: str | os.PathLike) -> None:
    """Flush a written file's content to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", socket.gethostname() or "host")[:40] or "host"


#: ``.NAME.HOST.PID.TOKEN.tmp`` (and ``.NAME.PID.TOKEN.tmp`` of older versions)
_TEMP = re.compile(r"^\.(?P<name>.+?)\.(?:(?P<host>[A-Za-z0-9_-]+)\.)?(?P<pid>\d+)\.(?P<token>[0-9a-f]{8})\.tmp$")
#: a temp entry of another host is taken as abandoned after this long without a change
FOREIGN_TEMP_AGE_S = 24 * 3600


def temp_name(name: str) -> str:
    """A unique hidden temp name beside ``name``: ``.NAME.HOST.PID.TOKEN.tmp``, so that writers
    on several machines sharing a folder never collide and leftovers can be told apart."""
    return f".{name}.{_host()}.{os.getpid()}.{secrets.token_hex(4)}.tmp"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def clean_leftovers(directory: str | os.PathLike) -> list[Path]:
    """Remove the temp files and folders (:func:`temp_name`) in ``directory`` whose writer is
    gone: a dead process of this host, or (another host) untouched for a day. Returns them."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    me = _host()
    for p in directory.iterdir():
        m = _TEMP.match(p.name)
        if not m:
            continue
        host, pid = m.group("host"), int(m.group("pid"))
        if host in (None, me):
            if pid == os.getpid() or _alive(pid):
                continue
        else:
            try:
                if time.time() - p.lstat().st_mtime < FOREIGN_TEMP_AGE_S:
                    continue
            except OSError:
                continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_write_bytes`)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_target(path: str | os.PathLike) -> Iterator[Path]:
    """A temp path beside ``path`` for a writer that needs a file name (``safetensors``,
    ``torch.save``): on a clean exit the file is fsynced and ``os.replace``-d onto ``path``
    (a reader sees the old file or the new one, never a partial one); on any failure the temp
    file is removed and ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / temp_name(path.name)
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, *, replace: bool = False) -> Iterator[Path]:
    """A temp sibling directory to fill; on a clean exit it is renamed onto ``path`` in one
    step, so readers never see a partial directory. If ``path`` exists by then, ``replace=True``
    moves the old one aside and deletes it; ``replace=False`` keeps it (another writer of the
    same content won the race). The temp directory is removed on any failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / temp_name(path.name)
    tmp.mkdir()
    try:
        yield tmp
        if replace and path.exists():
            trash = path.parent / temp_name(path.name + "-old")
            os.replace(path, trash)
            shutil.rmtree(trash, ignore_errors=True)
        try:
            os.replace(tmp, path)
        except OSError:  # a non-empty directory is already there
            if replace:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (:func:`atomic_target`)."""
    path = Path(path)
    with atomic_target(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # honours the umask
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
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
