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

and what ``HfApi.create_repo``, ``create_branch`` and ``create_commit`` (so ``upload_file`` and
``upload_folder`` too) call, as huggingface_hub 2.x sends it (``hf_api.py``, ``_commit_api.py``,
``lfs.py``):

- ``POST /api/repos/create`` (``{"name", "organization", "visibility"}``): a new repository
  whose ``main`` holds the Hub's default ``.gitattributes``; 409 when it exists.
- ``POST /api/models/{repo}/branch/{branch}`` (``{"startingPoint"}``): a branch at that commit
  (default: ``main``'s); 409 when it exists.
- ``POST /api/validate-yaml``: the YAML front matter of a ``README.md`` must parse (400 with
  ``errors`` otherwise).
- ``POST /api/models/{repo}/preupload/{revision}``: per file ``uploadMode`` ``lfs`` (a name
  the default ``.gitattributes`` tracks, 10 MiB or more, or a NUL byte in the sample) or
  ``regular``, and the ``oid`` of the file already there (sha256 for LFS, git blob sha1
  otherwise), which the client compares to skip unchanged files.
- ``POST /{repo}.git/info/lfs/objects/batch``: the git LFS batch API, ``basic`` transfer: an
  ``upload`` action (``PUT /lfs-upload/{oid}``, whose body must hash to ``oid``) and a
  ``verify`` action (``POST /lfs-verify``), or no action for an object already stored.
- ``POST /api/models/{repo}/commit/{revision}``: the NDJSON commit (``header``, ``file`` with
  base64 content, ``lfsFile`` naming an uploaded object, ``deletedFile``); the new tree is
  served by ``/resolve`` at once, byte for byte.
- ``GET /api/models/{repo}[/revision/{revision}]``: the repository's commit and files.

Writes need ``Authorization: Bearer ...`` (401 otherwise, like the Hub), and a private
repository is served only with one. Uploads go through the LFS batch API: the fake does not
speak Xet, so :meth:`FakeHub.patch` and :meth:`FakeHub.env` set ``HF_HUB_DISABLE_XET`` (with
``hf_xet`` installed the client would otherwise upload LFS files through Xet storage).

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

import base64
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
    private: bool = False


#: The LFS patterns of the ``.gitattributes`` the Hub writes into a new model repository (file
#: name endings; the Hub's list also has ``saved_model/**/*`` and ``*tfevents*``).
LFS_SUFFIXES = (".7z", ".arrow", ".bin", ".bz2", ".ckpt", ".ftz", ".gz", ".h5", ".joblib", ".lfs", ".mlmodel", ".model",
                ".msgpack", ".npy", ".npz", ".onnx", ".ot", ".parquet", ".pb", ".pickle", ".pkl", ".pt", ".pth", ".rar",
                ".safetensors", ".tar", ".tflite", ".tgz", ".wasm", ".xz", ".zip", ".zst")
GITATTRIBUTES = "".join(f"*{s} filter=lfs diff=lfs merge=lfs -text\n" for s in LFS_SUFFIXES).encode()
LFS_SIZE = 10 * 1024 * 1024


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a file's content (what the Hub reports for a regular file)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def is_lfs(path: str, size: int, sample: bytes = b"") -> bool:
    """Whether the Hub would store ``path`` with LFS (see the module docstring)."""
    return path.lower().endswith(LFS_SUFFIXES) or ".tar." in path.lower() or size >= LFS_SIZE or b"\0" in sample


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
        self._lfs: dict[str, bytes] = {}  # uploaded LFS objects by sha256
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

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """The tree of ``revision`` (a branch, tag or commit) of ``repo_id``: {path: bytes}."""
        with self._lock:
            repo = self._repos[repo_id]
            return dict(repo.commits[repo.refs.get(revision, revision)])

    def is_private(self, repo_id: str) -> bool:
        return self._repos[repo_id].private

    def api_requests(self) -> list[tuple[str, str]]:
        """``(method, path)`` of the requests other than downloads, in order (what the client called)."""
        return [(r.method, r.path) for r in self.requests if "/resolve/" not in r.path and r.server == "hub"]

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
            "HF_HUB_DISABLE_XET": "1",
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
            "HF_HUB_DISABLE_XET": True,
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

    def _lookup(self, repo_id: str, revision: str, path: str, authorized: bool = True) -> tuple[int, dict[str, str], bytes | None]:
        """(status, headers, file bytes) for a /resolve request."""
        with self._lock:
            repo = self._repos.get(repo_id)
            if repo is None or (repo.private and not authorized):
                return (404 if repo is None else 401), {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"}, None
            commit = repo.refs.get(revision) or (revision if revision in repo.commits else None)
            if commit is None:
                return 404, {"X-Error-Code": "RevisionNotFound", "X-Error-Message": "Invalid rev id"}, None
            data = repo.commits[commit].get(path)
        if data is None:
            return 404, {"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found",
                         "X-Repo-Commit": commit}, None
        return 200, {"X-Repo-Commit": commit}, data

    # ------------------------------------------------------------------- the write API

    def _repo_rev(self, repo_id: str, revision: str) -> tuple[_Repo | None, str | None, tuple[int, dict] | None]:
        repo = self._repos.get(repo_id)
        if repo is None:
            return None, None, (404, {"X-Error-Code": "RepoNotFound", "error": f"Repository {repo_id} not found"})
        commit = repo.refs.get(revision) or (revision if revision in repo.commits else None)
        if commit is None:
            return repo, None, (404, {"X-Error-Code": "RevisionNotFound", "error": f"Invalid rev id: {revision}"})
        return repo, commit, None

    def api(self, method: str, path: str, query: str, body: bytes) -> tuple[int, dict[str, str], Any]:
        """(status, headers, JSON payload) of a write-API request (see the module docstring)."""
        parts = [unquote(p) for p in path.split("/")[1:]]
        if method == "POST" and path == "/api/repos/create":
            req = json.loads(body or b"{}")
            repo_id = f"{req.get('organization')}/{req['name']}"
            if req.get("type") not in (None, "model"):
                return 400, {}, {"error": "this fake Hub serves model repositories only"}
            with self._lock:
                if repo_id in self._repos:
                    return 409, {}, {"error": "You already created this model repo", "url": f"{self.url}/{repo_id}"}
                self._repos[repo_id] = _Repo(private=req.get("visibility") == "private" or bool(req.get("private")))
            self.publish(repo_id, {".gitattributes": GITATTRIBUTES})
            return 200, {}, {"url": f"{self.url}/{repo_id}", "name": repo_id}
        if method == "POST" and path == "/api/validate-yaml":
            import yaml

            text = json.loads(body or b"{}").get("content", "")
            m = re.match(r"^---\n(.*?)\n---\n", text, re.S)
            try:
                meta = yaml.safe_load(m.group(1)) if m else {}
            except yaml.YAMLError as exc:
                return 400, {}, {"errors": [{"message": f"invalid YAML: {exc}"}], "warnings": []}
            if m and not isinstance(meta, dict):
                return 400, {}, {"errors": [{"message": "the metadata must be a mapping"}], "warnings": []}
            return 200, {}, {"errors": [], "warnings": []}
        if method == "POST" and len(parts) == 6 and parts[:2] == ["api", "models"] and parts[4] in ("preupload", "commit", "branch"):
            repo_id, action, revision = f"{parts[2]}/{parts[3]}", parts[4], parts[5]
            if action == "branch":
                return self._create_branch(repo_id, revision, json.loads(body or b"{}"))
            with self._lock:
                repo, commit, err = self._repo_rev(repo_id, revision)
                if err is not None:
                    return err[0], {"X-Error-Code": err[1]["X-Error-Code"]}, {"error": err[1]["error"]}
                tree = dict(repo.commits[commit])
            if action == "preupload":
                files = []
                for f in json.loads(body)["files"]:
                    old = tree.get(f["path"])
                    lfs = is_lfs(f["path"], int(f["size"]), base64.b64decode(f.get("sample", "")))
                    oid = None if old is None else (hashlib.sha256(old).hexdigest() if lfs else git_blob_sha1(old))
                    files.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                                  "oid": oid})
                return 200, {}, {"files": files, "commitOid": commit}
            return self._commit(repo_id, revision, commit, body)
        if method == "POST" and len(parts) == 6 and parts[1].endswith(".git") and parts[2:] == ["info", "lfs", "objects", "batch"]:
            if f"{parts[0]}/{parts[1][:-4]}" not in self._repos:
                return 404, {"X-Error-Code": "RepoNotFound"}, {"message": "Repository not found"}
            req = json.loads(body)
            objects = []
            for o in req.get("objects", []):
                entry = {"oid": o["oid"], "size": o["size"], "authenticated": True}
                with self._lock:
                    have = o["oid"] in self._lfs
                if not have:
                    entry["actions"] = {"upload": {"href": f"{self.url}/lfs-upload/{o['oid']}"},
                                        "verify": {"href": f"{self.url}/lfs-verify"}}
                objects.append(entry)
            return 200, {"Content-Type": "application/vnd.git-lfs+json"}, {"transfer": "basic", "objects": objects}
        if method == "PUT" and len(parts) == 2 and parts[0] == "lfs-upload":
            if hashlib.sha256(body).hexdigest() != parts[1]:
                return 400, {}, {"error": "the uploaded content does not hash to its oid"}
            with self._lock:
                self._lfs[parts[1]] = bytes(body)
            return 200, {}, {}
        if method == "POST" and path == "/lfs-verify":
            req = json.loads(body)
            with self._lock:
                data = self._lfs.get(req.get("oid"))
            if data is None or len(data) != req.get("size"):
                return 404, {}, {"error": "object not found"}
            return 200, {}, {}
        if method == "GET" and len(parts) >= 4 and parts[:2] == ["api", "models"]:
            repo_id = f"{parts[2]}/{parts[3]}"
            revision = parts[5] if len(parts) >= 6 and parts[4] == "revision" else "main"
            with self._lock:
                repo, commit, err = self._repo_rev(repo_id, revision)
                if err is not None:
                    return err[0], {"X-Error-Code": err[1]["X-Error-Code"]}, {"error": err[1]["error"]}
                tree = repo.commits[commit]
                private = repo.private
            return 200, {}, {"id": repo_id, "modelId": repo_id, "sha": commit, "private": private,
                             "siblings": [{"rfilename": p} for p in sorted(tree)]}
        return 404, {}, {"error": f"the fake Hub does not serve {method} {path}"}

    def _create_branch(self, repo_id: str, branch: str, req: dict) -> tuple[int, dict[str, str], Any]:
        with self._lock:
            repo, start, err = self._repo_rev(repo_id, req.get("startingPoint") or "main")
            if err is not None:
                return err[0], {"X-Error-Code": err[1]["X-Error-Code"]}, {"error": err[1]["error"]}
            if branch in repo.refs:
                return 409, {}, {"error": f"Reference already exists: refs/heads/{branch}"}
            repo.refs[branch] = start
        return 200, {}, {}

    def _commit(self, repo_id: str, revision: str, head: str, body: bytes) -> tuple[int, dict[str, str], Any]:
        """Apply an NDJSON commit to ``revision`` (whose head is ``head``)."""
        files: dict[str, bytes] = {}
        deleted: list[str] = []
        summary = ""
        for line in body.decode().splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                summary = value.get("summary", "")
                parent = value.get("parentCommit")
                if parent is not None and parent != head:
                    return 412, {}, {"error": f"A commit has happened since {parent}: the parent commit is outdated"}
            elif key == "file":
                if value.get("encoding") != "base64":
                    return 400, {}, {"error": f"unsupported encoding {value.get('encoding')!r}"}
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "lfsFile":
                with self._lock:
                    data = self._lfs.get(value["oid"])
                if data is None or ("size" in value and len(data) != value["size"]):
                    return 422, {}, {"error": f"Your push was rejected because an LFS pointer pointed to a file that does "
                                              f"not exist ({value['path']}: {value['oid']})"}
                files[value["path"]] = data
            elif key in ("deletedFile", "deletedFolder"):
                deleted.append(value["path"])
            else:
                return 400, {}, {"error": f"unknown commit operation {key!r}"}
        if not summary:
            return 400, {}, {"error": "a commit needs a summary"}
        tree = self.files(repo_id, head)
        for p in deleted:
            for q in [q for q in tree if q == p or q.startswith(p.rstrip("/") + "/")]:
                del tree[q]
        tree.update(files)
        commit = self.publish(repo_id, tree, revision=revision, replace=True)
        return 200, {}, {"commitUrl": f"{self.url}/{repo_id}/commit/{commit}", "commitOid": commit, "pullRequestUrl": None}


def _make_handler(hub: FakeHub, role: str) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def do_HEAD(self) -> None:
            self._handle(body=False)

        def do_GET(self) -> None:
            self._handle(body=True)

        def do_POST(self) -> None:
            self._write()

        def do_PUT(self) -> None:
            self._write()

        def _read_body(self) -> bytes:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                out = bytearray()
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return bytes(out)
                    out += self.rfile.read(size)
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _write(self) -> None:
            split = urlsplit(self.path)
            hub.requests.append(Request(role, self.command, split.path, dict(self.headers.items())))
            body = self._read_body()
            public = split.path.startswith(("/lfs-upload/", "/lfs-verify")) or split.path == "/api/validate-yaml"
            if not public and not (self.headers.get("Authorization") or "").startswith("Bearer "):
                payload = json.dumps({"error": "Invalid credentials in Authorization header"}).encode()
                self._send(401, {"Content-Type": "application/json"}, payload)
                return
            status, headers, obj = hub.api(self.command, split.path, split.query, body)
            payload = json.dumps(obj).encode()
            self._send(status, {"Content-Type": "application/json", **headers}, payload)

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
            if raw_path.startswith("/api/models/") and self.command == "GET":
                status, headers, obj = hub.api("GET", raw_path, "", b"")
                self._send(status, {"Content-Type": "application/json", **headers}, json.dumps(obj).encode(), body)
                return
            if len(parts) < 5 or parts[2] != "resolve":
                self._send(404, {}, b"not found", body)
                return
            repo_id = f"{unquote(parts[0])}/{unquote(parts[1])}"
            revision = unquote(parts[3])
            path = "/".join(unquote(p) for p in parts[4:])
            authorized = (self.headers.get("Authorization") or "").startswith("Bearer ")
            status, headers, data = hub._lookup(repo_id, revision, path, authorized)
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
