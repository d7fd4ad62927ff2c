"""Weights: resolve a weight URI to a local safetensors file, record what was loaded, load it.

URIs (as in timm, plus a file path inside the repository):

- ``hf-hub:ORG/REPO[@REVISION][/PATH]`` -- a file of a Hugging Face Hub model repository,
  downloaded with ``huggingface_hub`` into its cache (``HF_HOME`` / ``HF_HUB_CACHE``; progress
  bar; ``HF_HUB_OFFLINE=1`` uses the cache only; ``HF_ENDPOINT`` picks the Hub).
  ``PATH`` defaults to ``model.safetensors``; a ``PATH`` whose last segment has no file
  extension is a folder and gets ``/model.safetensors`` appended. ``REVISION`` (a branch,
  tag or commit; default ``main``) is one path segment, except the Hub's own references
  ``refs/pr/N`` and ``refs/convert/NAME``, which take three; any other revision that contains
  ``/`` is written with ``%2F`` (``@feature%2Fx``). So
  ``hf-hub:CompVis/ldm-celebahq-256@refs/pr/7/vqvae/diffusion_pytorch_model.safetensors`` is
  revision ``refs/pr/7``, file ``vqvae/diffusion_pytorch_model.safetensors``, and
  ``@v1.0/model.safetensors`` is tag ``v1.0``. huggingface_hub turns the revision and the path
  into cache paths (``refs/REVISION``, ``snapshots/COMMIT/PATH``), so both are checked after
  percent-decoding: no empty, ``.`` or ``..`` segment, no absolute path, backslash or control
  character; a revision must also be a valid git ref name (``git check-ref-format``).
- ``local-dir:FOLDER`` -- a Hub-style folder: its ``model.safetensors``, or its only
  ``*.safetensors`` file (a ``config.json`` beside it is allowed and ignored here).
- ``file:PATH`` -- one safetensors file (``file:///abs/path`` works too).

Any other scheme is offered to the plugins' ``resolve_weights(uri)`` hook (first result
wins; it returns a local path or None).

Only safetensors are loaded: pickles (``torch.save`` files, ``.bin``/``.pt``/``.pth``/
``.ckpt``/``.pkl``) can run code when loaded and are refused, by name and by content.
:func:`resolve` records the file's sha256 and size and, for the Hub, the commit the revision
resolved to (:meth:`ResolvedWeights.as_dict` goes into run records).

This module imports neither torch nor huggingface_hub until a function needs them.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from fasbench.errors import FasbenchError
from fasbench.util import env_flag

if TYPE_CHECKING:  # pragma: no cover
    import torch

BUILTIN_SCHEMES = ("hf-hub", "local-dir", "file")
ACCEPTED_FORMS = (
    "hf-hub:ORG/REPO[@REVISION][/PATH.safetensors], local-dir:FOLDER, file:PATH.safetensors, "
    "or a scheme a plugin resolves"
)
DEFAULT_FILENAME = "model.safetensors"
DEFAULT_REVISION = "main"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
CONVERT_HINT = (
    "fasbench loads safetensors only because pickles can run code when loaded; convert it once with "
    "safetensors.torch.save_file(torch.load(f, weights_only=True), 'model.safetensors')"
)
HASH_CHUNK = 8 * 1024 * 1024
_MAX_HEADER = 100 * 1024 * 1024

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(.*)$", re.S)
_REPO_PART_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
#: characters git refuses in ref names (``git check-ref-format``), besides the ones checked apart
_GIT_REF_BAD_RE = re.compile(r"[ ~^:?*\[]|\.\.|@\{|^@$|^-|\.$")


@dataclass(frozen=True)
class ResolvedWeights:
    """A weight URI resolved to a local safetensors file.

    ``repo``/``revision``/``commit`` are set for ``hf-hub:`` (``commit``: the git commit the
    revision resolved to); ``filename`` is the file's path inside the repository (hf-hub) or
    its name (other schemes).
    """

    uri: str
    scheme: str
    path: str
    sha256: str
    size: int
    repo: str | None = None
    revision: str | None = None
    commit: str | None = None
    filename: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-able record of what was loaded (for run records)."""
        return asdict(self)


@dataclass(frozen=True)
class HubRef:
    """The parts of an ``hf-hub:`` URI."""

    repo: str
    revision: str
    filename: str


# --------------------------------------------------------------------------------------- parsing


def _malformed(uri: str, why: str) -> FasbenchError:
    return FasbenchError(f"malformed weights URI {uri!r}: {why}; accepted forms: {ACCEPTED_FORMS}")


def split_scheme(uri: str) -> tuple[str, str]:
    """``"hf-hub:org/repo"`` -> ``("hf-hub", "org/repo")``; a FasbenchError if there is no scheme."""
    if not isinstance(uri, str):
        raise FasbenchError(f"a weights URI must be a string, got {type(uri).__name__} {uri!r}; accepted forms: {ACCEPTED_FORMS}")
    m = _SCHEME_RE.match(uri.strip())
    if m is None or len(m.group(1)) == 1:  # one letter: a Windows drive, not a scheme
        raise _malformed(uri, "no scheme")
    return m.group(1).lower(), m.group(2)


def parse_hf_hub(uri: str) -> HubRef:
    """Parse ``hf-hub:ORG/REPO[@REVISION][/PATH]`` (see the module docstring for the rules)."""
    scheme, rest = split_scheme(uri)
    if scheme != "hf-hub":
        raise _malformed(uri, "not an hf-hub: URI")
    segments = rest.split("/")
    if len(segments) < 2 or not segments[0] or not segments[1]:
        raise _malformed(uri, "the repository must be ORG/REPO")
    org, repo_seg, tail = segments[0], segments[1], segments[2:]
    revision = DEFAULT_REVISION
    if "@" in repo_seg:
        name, revision = repo_seg.split("@", 1)
        if revision == "refs" and len(tail) >= 2 and tail[0] in ("pr", "convert") and tail[1]:
            if tail[0] == "pr" and not tail[1].isdigit():
                raise _malformed(uri, f"refs/pr/ needs a pull-request number, got {tail[1]!r}")
            revision = f"refs/{tail[0]}/{tail[1]}"
            tail = tail[2:]
        revision = unquote(revision)
        if not revision:
            raise _malformed(uri, "empty revision after '@'")
        _check_revision(uri, revision)
    else:
        name = repo_seg
    for part in (org, name):
        if not _REPO_PART_RE.match(part) or "--" in part or ".." in part or part.endswith("."):
            raise _malformed(uri, f"{org}/{name!s} is not a valid repository id")
    if any(s in ("", ".", "..") for s in tail[:-1]) or (tail and tail[-1] in (".", "..")):
        raise _malformed(uri, "the path inside the repository has an empty, '.' or '..' segment")
    if not tail or tail[-1] == "" or not os.path.splitext(tail[-1])[1]:
        tail = [s for s in tail if s] + [DEFAULT_FILENAME]  # a folder (or nothing): its model.safetensors
    filename = "/".join(tail)
    _check_filename(uri, filename)
    return HubRef(repo=f"{org}/{name}", revision=revision, filename=filename)


def _path_problem(text: str) -> str | None:
    """What makes ``text`` (a ``/``-separated relative path) unsafe to join to a cache folder."""
    if _CONTROL_RE.search(text):
        return "has a control character"
    if "\\" in text:
        return "has a backslash"
    if text.startswith("/"):
        return "is an absolute path"
    segments = text.split("/")
    if "" in segments:
        return "has an empty segment"
    for bad in ("..", "."):
        if bad in segments:
            return f"has a '{bad}' segment"
    return None


def _check_revision(uri: str, revision: str) -> None:
    """Refuse a (percent-decoded) revision that is not a branch, tag or commit name: huggingface_hub
    writes ``refs/REVISION`` in its cache, so ``..``, an absolute path or a backslash could land
    outside it."""
    problem = _path_problem(revision)
    if problem is not None:
        raise _malformed(uri, f"revision {revision!r} {problem}; a revision is a branch, tag or commit name")
    if _GIT_REF_BAD_RE.search(revision) or any(s.startswith(".") or s.endswith(".lock") for s in revision.split("/")):
        raise _malformed(uri, f"revision {revision!r} is not a valid branch, tag or commit name (git check-ref-format)")


def _check_filename(uri: str, filename: str) -> None:
    """Refuse a file path inside the repository that is unsafe as written or once percent-decoded
    (huggingface_hub joins it to ``snapshots/COMMIT/``; the Hub or a proxy may decode it)."""
    for form in dict.fromkeys((filename, unquote(filename))):
        problem = _path_problem(form)
        if problem is not None:
            raise _malformed(uri, f"the file path {form!r} inside the repository {problem}")


def _local_path(uri: str, rest: str) -> Path:
    if rest.startswith("//"):  # file:///abs/path (a URL with an empty host)
        rest = unquote(rest[2:])
        if not rest.startswith("/"):
            raise _malformed(uri, "file:// URLs need an absolute path (file:///abs/path)")
    if not rest:
        raise _malformed(uri, "empty path")
    return Path(os.path.expandvars(os.path.expanduser(rest))).absolute()


# ------------------------------------------------------------------------------ safetensors check


def _refuse_pickle(uri: str, what: str) -> FasbenchError:
    return FasbenchError(f"{uri}: {what} is a pickle-based checkpoint, not safetensors; {CONVERT_HINT}")


def check_safetensors(path: str | Path, uri: str | None = None) -> None:
    """Raise a FasbenchError unless ``path`` looks like a safetensors file (name and header).

    Reads only the 8-byte header length and the JSON header, never the tensors.
    """
    path = Path(path)
    uri = uri or f"file:{path}"
    if path.name.lower().endswith(PICKLE_SUFFIXES):
        raise _refuse_pickle(uri, str(path))
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            ok = 2 <= n <= min(size - 8, _MAX_HEADER)
            header_bytes = f.read(n) if ok else b""
    except OSError as exc:
        raise FasbenchError(f"{uri}: cannot read {path}: {exc.strerror or exc}") from exc
    header: Any = None
    if header_bytes[:1] == b"{":
        try:
            header = json.loads(header_bytes.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            header = None
    if not isinstance(header, dict) or not _valid_header(header, size - 8 - n):
        if head[:4] == b"PK\x03\x04":
            looks = " (it is a zip archive, the format of torch.save)"
        elif head[:1] == b"\x80":
            looks = " (it is a pickle)"
        else:
            looks = ""
        raise FasbenchError(f"{uri}: {path} is not a valid safetensors file{looks}; {CONVERT_HINT}")


def _valid_header(header: dict[str, Any], data_size: int) -> bool:
    for key, info in header.items():
        if key == "__metadata__":
            continue
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= info.keys():
            return False
        offsets = info["data_offsets"]
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            return False
        if not 0 <= offsets[0] <= offsets[1] <= data_size:
            return False
    return True


def sha256_file(path: str | Path) -> str:
    """The hex sha256 of a file, read in 8 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _finish(uri: str, scheme: str, path: Path, *, sha256: str | None = None, **extra: Any) -> ResolvedWeights:
    check_safetensors(path, uri)
    return ResolvedWeights(
        uri=uri,
        scheme=scheme,
        path=str(path),
        sha256=sha256 or sha256_file(path),
        size=path.stat().st_size,
        **{"filename": path.name, **extra},
    )


# ------------------------------------------------------------------------------------ local files


def _resolve_file(uri: str, rest: str) -> ResolvedWeights:
    path = _local_path(uri, rest)
    if path.is_dir():
        raise FasbenchError(f"{uri}: {path} is a folder; write local-dir:{path} for a Hub-style folder")
    if not path.is_file():
        raise FasbenchError(f"{uri}: no such file: {path}")
    return _finish(uri, "file", path)


def _resolve_local_dir(uri: str, rest: str) -> ResolvedWeights:
    folder = _local_path(uri, rest)
    if folder.is_file():
        raise FasbenchError(f"{uri}: {folder} is a file, not a folder; write file:{folder}")
    if not folder.is_dir():
        raise FasbenchError(f"{uri}: no such folder: {folder}")
    chosen = folder / DEFAULT_FILENAME
    if not chosen.is_file():
        found = sorted(p for p in folder.glob("*.safetensors") if p.is_file())
        if len(found) == 1:
            chosen = found[0]
        elif found:
            names = ", ".join(p.name for p in found[:5]) + (", ..." if len(found) > 5 else "")
            raise FasbenchError(
                f"{uri}: {folder} has no {DEFAULT_FILENAME} but several .safetensors files ({names}); "
                f"pick one with file:{folder}/NAME.safetensors (sharded checkpoints are not supported)"
            )
        else:
            pickles = sorted(p.name for p in folder.iterdir() if p.name.lower().endswith(PICKLE_SUFFIXES))
            if pickles:
                raise _refuse_pickle(uri, f"{folder}/{pickles[0]}")
            raise FasbenchError(f"{uri}: {folder} holds no {DEFAULT_FILENAME} (and no other .safetensors file)")
    return _finish(uri, "local-dir", chosen)


# ---------------------------------------------------------------------------------- Hugging Face


def hub_offline() -> bool:
    """Whether the Hub must not be contacted: ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) as
    set now; when neither is set, huggingface_hub's own setting (read when it was imported)."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name):
            return env_flag(name)
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def hub_cache_dir() -> str:
    """The Hugging Face hub cache as the environment says now (``HF_HUB_CACHE``, else
    ``HF_HOME/hub``, else huggingface_hub's default)."""
    env = os.environ
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env.get(var):
            return os.path.expandvars(os.path.expanduser(env[var]))
    if env.get("HF_HOME"):
        return os.path.join(os.path.expandvars(os.path.expanduser(env["HF_HOME"])), "hub")
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def hub_endpoint() -> str:
    """The Hub URL as the environment says now (``HF_ENDPOINT``, else huggingface_hub's)."""
    if os.environ.get("HF_ENDPOINT"):
        return os.environ["HF_ENDPOINT"].rstrip("/")
    from huggingface_hub import constants

    return constants.ENDPOINT


class _Offline:
    """Make huggingface_hub's offline switch (read at its import) match ``offline`` for one call."""

    def __init__(self, offline: bool) -> None:
        self.offline = offline

    def __enter__(self) -> None:
        from huggingface_hub import constants

        self.before = constants.HF_HUB_OFFLINE
        constants.HF_HUB_OFFLINE = self.offline

    def __exit__(self, *exc: Any) -> None:
        from huggingface_hub import constants

        constants.HF_HUB_OFFLINE = self.before


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def _hub_errors() -> dict[str, type[BaseException]]:
    from huggingface_hub import utils as hf_utils

    try:
        from huggingface_hub import errors as hf_errors
    except ImportError:  # pragma: no cover - huggingface_hub < 0.21
        hf_errors = hf_utils
    names = ("GatedRepoError", "RepositoryNotFoundError", "RevisionNotFoundError", "EntryNotFoundError",
             "LocalEntryNotFoundError", "OfflineModeIsEnabled", "HfHubHTTPError", "FileMetadataError")
    out: dict[str, type[BaseException]] = {}
    for name in names:
        cls = getattr(hf_errors, name, None) or getattr(hf_utils, name, None)
        out[name] = cls if isinstance(cls, type) else type(f"_Never{name}", (Exception,), {})
    return out


def _no_progress_class() -> type:
    from tqdm.auto import tqdm

    class _NoBar(tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return _NoBar


def _resolve_hf_hub(uri: str, progress: bool) -> ResolvedWeights:
    ref = parse_hf_hub(uri)
    if ref.filename.lower().endswith(PICKLE_SUFFIXES):
        raise _refuse_pickle(uri, f"{ref.repo}/{ref.filename}")
    if not ref.filename.endswith(".safetensors"):
        raise FasbenchError(f"{uri}: {ref.filename} is not a .safetensors file; {CONVERT_HINT}")

    import inspect

    from huggingface_hub import hf_hub_download

    err = _hub_errors()
    offline = hub_offline()
    cache_dir = hub_cache_dir()
    endpoint = hub_endpoint()
    kwargs: dict[str, Any] = dict(
        repo_id=ref.repo, filename=ref.filename, revision=ref.revision, cache_dir=cache_dir,
        local_files_only=offline, endpoint=endpoint,
    )
    if not progress and "tqdm_class" in inspect.signature(hf_hub_download).parameters:
        kwargs["tqdm_class"] = _no_progress_class()
    where = f"{ref.repo} at revision {ref.revision!r}"
    try:
        with _Offline(offline):
            local = hf_hub_download(**kwargs)
    except (err["LocalEntryNotFoundError"], err["OfflineModeIsEnabled"]) as exc:
        cause = exc.__cause__ or exc
        if offline:
            why = "HF_HUB_OFFLINE is set"
        elif isinstance(cause, (err["HfHubHTTPError"], err["FileMetadataError"])):
            why = f"the Hub ({endpoint}) did not answer like a Hub ({_first_line(cause)})"
        else:
            why = f"the Hub ({endpoint}) could not be reached ({_first_line(cause)})"
        raise FasbenchError(
            f"{uri} is not in the Hugging Face cache ({cache_dir}) and {why}; pre-fetch it on a machine with "
            f"internet with `fasbench weights pull {uri}` and copy that cache folder (HF_HUB_CACHE) here, or "
            "download the file and use file:PATH or local-dir:FOLDER"
        ) from exc
    except err["RevisionNotFoundError"] as exc:
        raise FasbenchError(f"{uri}: revision {ref.revision!r} not found in {ref.repo} on {endpoint}") from exc
    except err["EntryNotFoundError"] as exc:
        raise FasbenchError(f"{uri}: file {ref.filename!r} not found in {where} on {endpoint}") from exc
    except err["GatedRepoError"] as exc:
        raise FasbenchError(
            f"{uri}: {ref.repo} is gated on {endpoint}; accept its terms on the Hub and log in "
            "(`hf auth login` or HF_TOKEN)"
        ) from exc
    except err["RepositoryNotFoundError"] as exc:
        raise FasbenchError(
            f"{uri}: repository {ref.repo} not found on {endpoint} (if it is private, log in with "
            "`hf auth login` or set HF_TOKEN)"
        ) from exc
    except err["HfHubHTTPError"] as exc:
        raise FasbenchError(f"{uri}: the Hub ({endpoint}) refused the download: {_first_line(exc)}") from exc
    except ValueError as exc:  # huggingface_hub's validation of repo ids / file names
        raise _malformed(uri, _first_line(exc)) from exc
    except OSError as exc:  # consistency check, disk full, permissions
        raise FasbenchError(f"{uri}: download failed: {_first_line(exc)}") from exc
    except Exception as exc:  # the HTTP client's own errors (proxy, TLS): one line, not a traceback
        if type(exc).__module__.split(".")[0] not in {"httpx", "httpx2", "requests", "urllib3"}:
            raise
        raise FasbenchError(f"{uri}: the Hub ({endpoint}) could not be reached: {_first_line(exc)}") from exc

    path = Path(local)
    sha256 = sha256_file(path)
    blob = Path(os.path.realpath(path))
    if _SHA256_RE.match(blob.name) and blob.name != sha256:  # LFS blobs are named by their sha256
        raise FasbenchError(
            f"{uri}: the cached file {path} does not match its Hub checksum (sha256 {sha256}, expected "
            f"{blob.name}); delete {blob} and run `fasbench weights pull {uri}` again"
        )
    commit = _commit_from_snapshot_path(path, ref.filename)
    return _finish(uri, "hf-hub", path, sha256=sha256, repo=ref.repo, revision=ref.revision, commit=commit,
                   filename=ref.filename)


def _commit_from_snapshot_path(path: Path, filename: str) -> str | None:
    """``.../snapshots/<commit>/<filename>`` -> ``<commit>`` (the layout of the hub cache)."""
    depth = len(filename.split("/"))
    parts = path.parts
    if len(parts) > depth + 1 and parts[-depth - 2] == "snapshots":
        commit = parts[-depth - 1]
        return commit if _COMMIT_RE.match(commit) else None
    return None


# ------------------------------------------------------------------------------------ public API


def resolve(uri: str, *, progress: bool = True) -> ResolvedWeights:
    """Resolve a weight URI to a local, checked safetensors file (downloading ``hf-hub:`` files
    into the Hugging Face cache; ``progress=False`` hides the download bar)."""
    scheme, rest = split_scheme(uri)
    uri = uri.strip()
    if scheme == "hf-hub":
        return _resolve_hf_hub(uri, progress)
    if scheme == "local-dir":
        return _resolve_local_dir(uri, rest)
    if scheme == "file":
        return _resolve_file(uri, rest)
    from fasbench import plugins

    found = plugins.resolve_weights(uri)
    if found is None:
        raise FasbenchError(f"unknown weights URI scheme {scheme!r} in {uri!r} (no plugin resolves it); accepted forms: {ACCEPTED_FORMS}")
    if isinstance(found, ResolvedWeights):
        check_safetensors(found.path, uri)
        return found
    if not isinstance(found, (str, os.PathLike)):
        raise FasbenchError(f"{uri}: the plugin that resolved it returned {type(found).__name__}, not a path")
    path = Path(found).absolute()
    if not path.is_file():
        raise FasbenchError(f"{uri}: a plugin resolved it to {path}, which is not a file")
    return _finish(uri, scheme, path)


def _select_prefix(state: dict[str, Any], prefix: str, uri: str) -> dict[str, Any]:
    picked = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not picked:
        tops = sorted({k.split(".", 1)[0] + "." for k in state})
        raise FasbenchError(
            f"{uri}: no tensor name starts with {prefix!r}; the checkpoint's names start with "
            f"{', '.join(tops[:8])}{', ...' if len(tops) > 8 else ''}"
        )
    return picked


def load_state_dict(
    uri_or_resolved: str | ResolvedWeights,
    *,
    prefix: str | None = None,
    device: str | Any = "cpu",
) -> tuple[dict[str, torch.Tensor], ResolvedWeights]:
    """Load the tensors of a weight URI (or an already resolved one) with safetensors.

    ``prefix="encoder."`` keeps only the tensors whose names start with it, without it.
    """
    resolved = uri_or_resolved if isinstance(uri_or_resolved, ResolvedWeights) else resolve(uri_or_resolved)
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(resolved.path, device=str(device))
    except (SafetensorError, OSError) as exc:
        raise FasbenchError(f"{resolved.uri}: cannot load {resolved.path}: {_first_line(exc)}") from exc
    if prefix:
        state = _select_prefix(state, prefix, resolved.uri)
    return state, resolved


def _shape(t: Any) -> str:
    return "[" + ", ".join(str(int(d)) for d in t.shape) + "]"


def _few(items: list[str], n: int = 5) -> str:
    return ", ".join(items[:n]) + (f", ... ({len(items) - n} more)" if len(items) > n else "")


def _prefix_hint(missing: list[str], unexpected: list[str]) -> str:
    """A ``prefix=`` that would make the checkpoint's names match the model's, if there is one."""
    counts: dict[str, int] = {}
    wanted = set(missing)
    for u in unexpected:
        for i in range(len(u)):
            if u[i - 1:i] == "." and u[i:] in wanted:
                counts[u[:i]] = counts.get(u[:i], 0) + 1
                break
    if not counts:
        return ""
    best, n = max(counts.items(), key=lambda kv: kv[1])
    return f"; the checkpoint's names look prefixed: try prefix={best!r}" if n * 2 >= len(missing) else ""


def load_into(module: Any, uri: str | ResolvedWeights, *, prefix: str | None = None, strict: bool = True) -> ResolvedWeights:
    """Load a weight URI into ``module`` (an ``nn.Module``); a FasbenchError that names the
    missing, unexpected and mis-shaped tensors when the checkpoint does not fit it
    (``strict=False`` tolerates missing/unexpected names, never shape mismatches)."""
    state, resolved = load_state_dict(uri, prefix=prefix)
    expected = module.state_dict()
    missing = [k for k in expected if k not in state] if strict else []
    unexpected = [k for k in state if k not in expected] if strict else []
    mismatched = [k for k in state if k in expected and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or mismatched:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing ({_few([f'{k} {_shape(expected[k])}' for k in missing])})")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected ({_few([f'{k} {_shape(state[k])}' for k in unexpected])})")
        if mismatched:
            problems.append(f"{len(mismatched)} with another shape ("
                            + _few([f"{k}: checkpoint {_shape(state[k])} vs model {_shape(expected[k])}" for k in mismatched]) + ")")
        raise FasbenchError(
            f"{resolved.uri} does not fit the architecture of {type(module).__name__}"
            f"{f' (prefix {prefix!r})' if prefix else ''}: " + "; ".join(problems) + _prefix_hint(missing, unexpected)
        )
    module.load_state_dict(state, strict=strict)
    return resolved


def iter_resolve(uris: list[str], *, progress: bool = True) -> Iterator[tuple[str, ResolvedWeights | FasbenchError]]:
    """Resolve several URIs, yielding ``(uri, ResolvedWeights or the FasbenchError)`` for each."""
    for uri in uris:
        try:
            yield uri, resolve(uri, progress=progress)
        except FasbenchError as exc:
            yield uri, exc
