"""A tiny fake Hugging Face Hub on 127.0.0.1, so tests exercise the real download path of
``huggingface_hub.hf_hub_download`` (HEAD for metadata, GET for the bytes, its cache layout).

It serves what ``hf_hub_download`` asks for:

- ``HEAD``/``GET /{org}/{repo}/resolve/{revision}/{path}``: ``X-Repo-Commit`` (the commit the
  revision resolves to), ``ETag`` (the file's sha256, as for LFS files), ``Content-Length``,
  ``Accept-Ranges``; ``GET`` honours ``Range: bytes=a-[b]`` (206), which huggingface_hub uses
  to resume. The revision arrives percent-encoded (``refs%2Fpr%2F7``). No ``X-Xet-*`` header
  is ever sent, so huggingface_hub uses plain HTTP, never Xet storage.
- errors the way the Hub signals them: 404 with ``X-Error-Code: RepoNotFound`` /
  ``RevisionNotFound`` / ``EntryNotFound`` (the last with ``X-Repo-Commit``).
- ``FakeHub(cdn=True)``: like the real Hub for LFS files, ``/resolve`` answers 302 with
  ``X-Linked-Etag``/``X-Linked-Size``/``X-Repo-Commit`` to a second server (another origin,
  as a CDN) that serves ``/blobs/{sha256}``.
- ``GET /api/agent-harnesses``: an empty registry (huggingface_hub asks for it when it builds
  its user agent).

In a test::

    from fakehub import fake_hub  # noqa: F401  (the fixture)

    def test_x(fake_hub):
        pub = fake_hub.publish_tensors("org/net", {"w": torch.ones(2)}, revision="main")
        resolved = fasbench.weights.resolve(pub.uri)           # in-process
        proc = run_cli("weights", "pull", pub.uri, env=fake_hub.env())  # a subprocess

``fake_hub`` points ``HF_ENDPOINT`` at the server and ``HF_HOME``/``HF_HUB_CACHE`` at a
temporary folder (environment and the ``huggingface_hub.constants`` read at import), clears
``HF_HUB_OFFLINE`` and tokens; ``fake_hub.env()`` is the same as environment variables for a
subprocess.
"""
from __future__ import annotations

import hashlib
import http.server
import json
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_RANGE_RE = re.compile(r"^bytes=(\d+)-(\d*)$")


def safetensors_bytes(tensors: Mapping[str, Any], metadata: Mapping[str, str] | None = None) -> bytes:
    """The bytes of a safetensors file holding ``tensors`` (name -> torch tensor)."""
    from safetensors.torch import save

    return save(dict(tensors), metadata=dict(metadata) if metadata else None)


@dataclass(frozen=True)
class Published:
    """One file published on the fake Hub."""

    repo: str
    revision: str
    path: str
    commit: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def uri(self) -> str:
        """The explicit ``hf-hub:`` URI of this file (revision and path spelled out)."""
        return f"hf-hub:{self.repo}@{self.revision}/{self.path}"


@dataclass
class _Repo:
    refs: dict[str, str] = field(default_factory=dict)  # branch/tag/refs/pr/N -> commit
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit -> {path: bytes}


@dataclass(frozen=True)
class Request:
    server: str  # "hub" or "cdn"
    method: str
    path: str  # as received (still percent-encoded)
    headers: dict[str, str]


class FakeHub:
    """A fake Hub serving ``repos``: ``{repo_id: {revision_or_commit: {path: bytes}}}`` (a
    revision that is 40 hex digits is that commit; any other name gets a made-up commit).
    Start it with ``with FakeHub(home) as hub:`` (or use the ``fake_hub`` fixture)."""

    def __init__(self, home: str | Path, repos: Mapping[str, Mapping[str, Mapping[str, bytes]]] | None = None,
                 *, cdn: bool = False) -> None:
        self.home = Path(home)
        self.cache_dir = self.home / "hub"
        self.cdn = cdn
        self.requests: list[Request] = []
        self._repos: dict[str, _Repo] = {}
        self._lock = threading.Lock()
        self._servers: list[http.server.ThreadingHTTPServer] = []
        self.url = ""
        self.cdn_url = ""
        for repo_id, revisions in (repos or {}).items():
            for revision, files in revisions.items():
                self.publish(repo_id, files, revision=revision)

    # ---------------------------------------------------------------------------- content

    def publish(self, repo_id: str, files: Mapping[str, bytes], *, revision: str = "main", replace: bool = False) -> str:
        """Commit ``files`` ({path: bytes}) to ``revision`` of ``repo_id`` (on top of what the
        revision held unless ``replace``) and return the new commit (40 hex digits). A revision
        of 40 hex digits creates exactly that commit instead of moving a branch."""
        with self._lock:
            repo = self._repos.setdefault(repo_id, _Repo())
            if _COMMIT_RE.match(revision):
                repo.commits[revision] = dict(files)
                return revision
            parent = repo.refs.get(revision)
            tree = {} if replace or parent is None else dict(repo.commits[parent])
            tree.update({p: bytes(b) for p, b in files.items()})
            h = hashlib.sha1(f"{repo_id}\0{revision}\0{parent}\0{len(repo.commits)}".encode())
            for p in sorted(tree):
                h.update(p.encode() + b"\0" + hashlib.sha256(tree[p]).digest())
            commit = h.hexdigest()
            repo.commits[commit] = tree
            repo.refs[revision] = commit
            return commit

    def publish_tensors(self, repo_id: str, tensors: Mapping[str, Any], *, path: str = "model.safetensors",
                        revision: str = "main") -> Published:
        """Publish a safetensors file made from ``tensors`` at ``path``; returns what was published."""
        return self.publish_bytes(repo_id, safetensors_bytes(tensors), path=path, revision=revision)

    def publish_bytes(self, repo_id: str, data: bytes, *, path: str = "model.safetensors",
                      revision: str = "main") -> Published:
        """Publish raw bytes (e.g. a ``torch.save`` pickle) at ``path``."""
        commit = self.publish(repo_id, {path: data}, revision=revision)
        return Published(repo=repo_id, revision=revision, path=path, commit=commit, data=data)

    def commit_of(self, repo_id: str, revision: str = "main") -> str:
        return self._repos[repo_id].refs[revision]

    def resolve_requests(self) -> list[Request]:
        """The ``/resolve/`` requests received so far (what ``hf_hub_download`` sent)."""
        return [r for r in self.requests if "/resolve/" in r.path or r.server == "cdn"]

    # ------------------------------------------------------------------------ environment

    def env(self) -> dict[str, str]:
        """Environment variables that point huggingface_hub (in a subprocess) at this Hub and an
        empty cache under ``home``."""
        return {
            "HF_ENDPOINT": self.url,
            "HF_HOME": str(self.home),
            "HF_HUB_CACHE": str(self.cache_dir),
            "HF_HUB_OFFLINE": "0",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }

    def patch(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Point this process's huggingface_hub at the fake Hub: the environment and the values
        ``huggingface_hub.constants`` read at import."""
        for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE", "HUGGINGFACE_HUB_CACHE",
                    "TRANSFORMERS_OFFLINE", "HF_HUB_OFFLINE", "HF_HUB_ETAG_TIMEOUT"):
            monkeypatch.delenv(var, raising=False)
        for var, value in self.env().items():
            monkeypatch.setenv(var, value)
        from huggingface_hub import constants

        values = {
            "ENDPOINT": self.url,
            "HUGGINGFACE_CO_URL_TEMPLATE": self.url + "/{repo_id}/resolve/{revision}/{filename}",
            "HF_HOME": str(self.home),
            "HF_HUB_CACHE": str(self.cache_dir),
            "HUGGINGFACE_HUB_CACHE": str(self.cache_dir),
            "HF_ASSETS_CACHE": str(self.home / "assets"),
            "HF_XET_CACHE": str(self.home / "xet"),
            "HF_TOKEN_PATH": str(self.home / "token"),
            "HF_STORED_TOKENS_PATH": str(self.home / "stored_tokens"),
            "AGENT_HARNESSES_PATH": str(self.home / ".agent_harnesses.json"),
            "HF_HUB_OFFLINE": False,
            "HF_HUB_DISABLE_TELEMETRY": True,
        }
        for name, value in values.items():
            if hasattr(constants, name):
                monkeypatch.setattr(constants, name, value)

    # ----------------------------------------------------------------------------- server

    def __enter__(self) -> FakeHub:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        hub = self._serve("hub")
        self.url = f"http://127.0.0.1:{hub.server_address[1]}"
        if self.cdn:
            cdn = self._serve("cdn")
            self.cdn_url = f"http://127.0.0.1:{cdn.server_address[1]}"

    def close(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()

    def _serve(self, role: str) -> http.server.ThreadingHTTPServer:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self, role))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, name=f"fakehub-{role}",
                         daemon=True).start()
        self._servers.append(server)
        return server

    def _blob(self, sha256: str) -> bytes | None:
        with self._lock:
            for repo in self._repos.values():
                for tree in repo.commits.values():
                    for data in tree.values():
                        if hashlib.sha256(data).hexdigest() == sha256:
                            return data
        return None

    def _lookup(self, repo_id: str, revision: str, path: str) -> tuple[int, dict[str, str], bytes | None]:
        """(status, headers, file bytes) for a /resolve request."""
        with self._lock:
            repo = self._repos.get(repo_id)
            if repo is None:
                return 404, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"}, None
            commit = repo.refs.get(revision) or (revision if revision in repo.commits else None)
            if commit is None:
                return 404, {"X-Error-Code": "RevisionNotFound", "X-Error-Message": "Invalid rev id"}, None
            data = repo.commits[commit].get(path)
        if data is None:
            return 404, {"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found",
                         "X-Repo-Commit": commit}, None
        return 200, {"X-Repo-Commit": commit}, data


def _make_handler(hub: FakeHub, role: str) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def do_HEAD(self) -> None:
            self._handle(body=False)

        def do_GET(self) -> None:
            self._handle(body=True)

        def _send(self, status: int, headers: Mapping[str, str], payload: bytes = b"", body: bool = True) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if body and payload:
                self.wfile.write(payload)

        def _send_file(self, data: bytes, headers: dict[str, str], body: bool) -> None:
            sha = hashlib.sha256(data).hexdigest()
            headers = {**headers, "ETag": f'"{sha}"', "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
            rng = self.headers.get("Range")
            m = _RANGE_RE.match(rng or "")
            if body and m and int(m.group(1)) < len(data):
                start = int(m.group(1))
                end = min(int(m.group(2)), len(data) - 1) if m.group(2) else len(data) - 1
                headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
                self._send(206, headers, data[start:end + 1], body)
            else:
                self._send(200, headers, data, body)

        def _handle(self, body: bool) -> None:
            raw_path = urlsplit(self.path).path
            hub.requests.append(Request(role, self.command, raw_path, dict(self.headers.items())))
            parts = raw_path.split("/")[1:]  # the revision keeps its %2F: split before unquoting
            if role == "cdn":
                data = hub._blob(parts[1]) if len(parts) == 2 and parts[0] == "blobs" else None
                if data is None:
                    self._send(404, {}, b"no such blob", body)
                else:
                    self._send_file(data, {}, body)
                return
            if raw_path == "/api/agent-harnesses" and self.command == "GET":
                payload = json.dumps({"standardEnvVars": [], "harnesses": {}}).encode()
                self._send(200, {"Content-Type": "application/json"}, payload, body)
                return
            if len(parts) < 5 or parts[2] != "resolve":
                self._send(404, {}, b"not found", body)
                return
            repo_id = f"{unquote(parts[0])}/{unquote(parts[1])}"
            revision = unquote(parts[3])
            path = "/".join(unquote(p) for p in parts[4:])
            status, headers, data = hub._lookup(repo_id, revision, path)
            if data is None:
                payload = json.dumps({"error": headers.get("X-Error-Message", "")}).encode()
                self._send(status, {**headers, "Content-Type": "application/json"}, payload, body)
            elif hub.cdn:
                sha = hashlib.sha256(data).hexdigest()
                self._send(302, {**headers, "Location": f"{hub.cdn_url}/blobs/{sha}", "X-Linked-Etag": f'"{sha}"',
                                 "X-Linked-Size": str(len(data)), "ETag": '"pointer"'}, b"", body)
            else:
                self._send_file(data, headers, body)

    return Handler


@pytest.fixture
def fake_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """A running :class:`FakeHub` with an empty cache under ``tmp_path``; huggingface_hub in
    this process (and subprocesses started with ``fake_hub.env()``) talks to it."""
    with FakeHub(tmp_path / "hf-home") as hub:
        hub.patch(monkeypatch)
        yield hub
