"""Weight URIs (hf-hub:, local-dir:, file:, plugin schemes), downloads through a fake Hub on
127.0.0.1 (the real ``hf_hub_download`` path), offline use of the cache, the safetensors-only
rule, loading into modules, and ``fasbench weights pull``."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fakehub import FakeHub, fake_hub, safetensors_bytes  # noqa: F401  (fake_hub is a fixture)
from torch import nn

from fasbench import weights
from fasbench.errors import FasbenchError


def tensors(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"0.weight": torch.randn(3, 4, generator=g), "0.bias": torch.randn(3, generator=g)}


def torch_save_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "pickled.pt"
    torch.save(tensors(), path)
    return path.read_bytes()


# ------------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    "uri, repo, revision, filename",
    [
        ("hf-hub:org/repo", "org/repo", "main", "model.safetensors"),
        ("hf-hub:org/repo@v1.0", "org/repo", "v1.0", "model.safetensors"),
        ("hf-hub:org/repo@v1.0/model.safetensors", "org/repo", "v1.0", "model.safetensors"),
        ("hf-hub:org/repo/sub/dir", "org/repo", "main", "sub/dir/model.safetensors"),
        ("hf-hub:org/repo/sub/w.safetensors", "org/repo", "main", "sub/w.safetensors"),
        ("hf-hub:CompVis/ldm-celebahq-256@refs/pr/7/vqvae/diffusion_pytorch_model.safetensors",
         "CompVis/ldm-celebahq-256", "refs/pr/7", "vqvae/diffusion_pytorch_model.safetensors"),
        ("hf-hub:org/repo@refs/pr/12", "org/repo", "refs/pr/12", "model.safetensors"),
        ("hf-hub:org/repo@refs/convert/parquet/a.safetensors", "org/repo", "refs/convert/parquet", "a.safetensors"),
        ("hf-hub:org/repo@feature%2Fx/a.safetensors", "org/repo", "feature/x", "a.safetensors"),
        ("hf-hub:org/repo@" + "a" * 40, "org/repo", "a" * 40, "model.safetensors"),
    ],
)
def test_parse_hf_hub(uri, repo, revision, filename):
    assert weights.parse_hf_hub(uri) == weights.HubRef(repo, revision, filename)


@pytest.mark.parametrize(
    "uri, why",
    [
        ("org/repo/model.safetensors", "no scheme"),
        ("/abs/model.safetensors", "no scheme"),
        ("hf-hub:", "ORG/REPO"),
        ("hf-hub:org", "ORG/REPO"),
        ("hf-hub:org/repo@", "empty revision"),
        ("hf-hub:org/re po", "not a valid repository id"),
        ("hf-hub:org/repo/../x.safetensors", "'..'"),
        ("hf-hub:org/repo@refs/pr/x/a.safetensors", "pull-request number"),
        ("file:", "empty path"),
    ],
)
def test_malformed_uris_name_the_uri_and_the_accepted_forms(uri, why):
    with pytest.raises(FasbenchError) as info:
        weights.resolve(uri)
    msg = str(info.value)
    assert repr(uri) in msg and why in msg and "hf-hub:ORG/REPO[@REVISION]" in msg and "\n" not in msg


#: URIs whose revision or file path could leave the Hugging Face cache once percent-decoded
#: (huggingface_hub writes ``refs/<revision>`` and ``snapshots/<commit>/<filename>``), with a
#: piece of the reason each must give.
HOSTILE_HUB_URIS = [
    ("hf-hub:org/net@..%2F..%2Fescaped/model.safetensors", "'..' segment"),
    ("hf-hub:org/net@%2e%2e%2F%2E%2E%2Fescaped/model.safetensors", "'..' segment"),
    ("hf-hub:org/net@..", "'..' segment"),
    ("hf-hub:org/net@.", "'.' segment"),
    ("hf-hub:org/net@%2e", "'.' segment"),
    ("hf-hub:org/net@feature%2F..%2F..%2Fx", "'..' segment"),
    ("hf-hub:org/net@refs%2F..%2F..%2Fx", "'..' segment"),
    ("hf-hub:org/net@refs/convert/../x.safetensors", "'..' segment"),
    ("hf-hub:org/net@refs/convert/%2e%2e/x.safetensors", "'..' segment"),
    ("hf-hub:org/net@%2Ftmp%2Fescaped", "absolute path"),
    ("hf-hub:org/net@..%5C..%5Cescaped", "backslash"),
    ("hf-hub:org/net@..%5c..%5cescaped", "backslash"),
    ("hf-hub:org/net@main%00x", "control character"),
    ("hf-hub:org/net@main%0Ax", "control character"),
    ("hf-hub:org/net@feature%2F%2Fx", "empty segment"),
    ("hf-hub:org/net@feature%2F", "empty segment"),
    ("hf-hub:org/net@a..b", "not a valid branch, tag or commit name"),
    ("hf-hub:org/net@C:%5Cx", "backslash"),
    ("hf-hub:org/net@C:x", "not a valid branch, tag or commit name"),
    ("hf-hub:org/net/..%2F..%2Fescaped.safetensors", "file path"),
    ("hf-hub:org/net/%2e%2e/escaped.safetensors", "file path"),
    ("hf-hub:org/net/%2E%2E%2Fescaped.safetensors", "file path"),
    ("hf-hub:org/net/sub%5C..%5C..%5Cescaped.safetensors", "backslash"),
    ("hf-hub:org/net/..\\..\\escaped.safetensors", "backslash"),
    ("hf-hub:org/net/%2Ftmp%2Fescaped.safetensors", "absolute path"),
    ("hf-hub:org/net/a%00.safetensors", "control character"),
    ("hf-hub:org/net/a\x01.safetensors", "control character"),
    ("hf-hub:org/net@main/sub%2F%2Fw.safetensors", "empty segment"),
    ("hf-hub:org/net@refs/pr/7/%2e%2e%2F%2e%2e%2Fescaped.safetensors", "file path"),
]


@pytest.mark.parametrize("uri, why", HOSTILE_HUB_URIS)
def test_hostile_revision_or_path_is_refused_by_the_parser(uri, why):
    with pytest.raises(FasbenchError) as info:
        weights.parse_hf_hub(uri)
    msg = str(info.value)
    assert repr(uri) in msg and why in msg and "\n" not in msg, msg


@pytest.mark.parametrize(
    "uri, revision, filename",
    [
        ("hf-hub:org/repo@feature%2Fx%2Fy/a.safetensors", "feature/x/y", "a.safetensors"),
        ("hf-hub:org/repo@refs%2Fpr%2F7", "refs/pr/7", "model.safetensors"),
        ("hf-hub:org/repo@v1.0.2-rc_1", "v1.0.2-rc_1", "model.safetensors"),
        ("hf-hub:org/repo@abc1234", "abc1234", "model.safetensors"),
        ("hf-hub:org/repo@main/.hidden/w.safetensors", "main", ".hidden/w.safetensors"),
        ("hf-hub:org/repo@main/a..b.safetensors", "main", "a..b.safetensors"),
    ],
)
def test_legit_revisions_and_paths_still_parse(uri, revision, filename):
    ref = weights.parse_hf_hub(uri)
    assert (ref.revision, ref.filename) == (revision, filename)


def _tree(root: Path) -> set[Path]:
    return {Path(d) / name for d, dirs, files in os.walk(root) for name in dirs + files}


@pytest.mark.parametrize(
    "revision",
    ["../../../../escaped", "refs/../../../../../escaped", "ABSOLUTE"],
    ids=["dotdot", "refs-dotdot", "absolute"],
)
@pytest.mark.parametrize("encode", [str.upper, str.lower], ids=["%2F", "%2f"])
def test_hostile_revision_writes_nothing_outside_the_cache(fake_hub, tmp_path, revision, encode):
    """The revision is where huggingface_hub writes ``refs/<revision>``: percent-decoded to
    ``../..`` or an absolute path, it used to create a file beside the cache (here: in
    ``tmp_path``, the parent of HF_HOME). The Hub serves that revision, so only the parser
    stands in the way."""
    from urllib.parse import quote

    if revision == "ABSOLUTE":
        revision = str(tmp_path / "escaped")
    assert fake_hub.cache_dir.parent.parent == tmp_path
    fake_hub.publish_tensors("org/net", tensors(1), revision=revision)
    encoded = quote(revision, safe="").replace("%2F", encode("%2f")).replace(".", "%2e" if encode is str.lower else ".")
    uri = f"hf-hub:org/net@{encoded}/model.safetensors"
    before = _tree(tmp_path)

    with pytest.raises(FasbenchError) as info:
        weights.resolve(uri, progress=False)
    msg = str(info.value)
    assert msg.startswith(f"malformed weights URI {uri!r}: revision ") and "\n" not in msg, msg

    cache = fake_hub.cache_dir
    outside = sorted(p for p in _tree(tmp_path) - before if p != cache and cache not in p.parents)
    assert outside == [] and not (tmp_path / "escaped").exists()
    assert fake_hub.resolve_requests() == []  # refused before any download


def test_cli_refuses_a_hostile_revision_in_one_line(fake_hub, tmp_path, run_cli, one_line_error):
    fake_hub.publish_tensors("org/net", tensors(1), revision="../../../../escaped")
    uri = "hf-hub:org/net@..%2F..%2F..%2F..%2Fescaped/model.safetensors"
    line = one_line_error(run_cli("weights", "pull", uri, env=fake_hub.env()))
    assert repr(uri) in line and "'..' segment" in line
    assert not (tmp_path / "escaped").exists() and fake_hub.resolve_requests() == []


def test_module_import_is_light():
    code = "import sys, fasbench.weights; print(sorted(m for m in ('torch', 'huggingface_hub') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------------------------- the fake Hub


def test_hub_download_lands_in_the_cache_with_commit_and_sha256(fake_hub, capfd):
    pub = fake_hub.publish_tensors("org/net", tensors(1))
    resolved = weights.resolve("hf-hub:org/net", progress=False)

    path = Path(resolved.path)
    assert path.is_file() and fake_hub.cache_dir.resolve() in path.parents
    assert path.parent.name == pub.commit and path.parts[-4] == "models--org--net"
    assert resolved.commit == pub.commit == fake_hub.commit_of("org/net", "main")
    assert resolved.sha256 == hashlib.sha256(pub.data).hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (resolved.scheme, resolved.repo, resolved.revision, resolved.filename, resolved.size) == (
        "hf-hub", "org/net", "main", "model.safetensors", len(pub.data))
    assert json.loads(json.dumps(resolved.as_dict())) == resolved.as_dict()
    assert [(r.method, r.path) for r in fake_hub.resolve_requests()] == [
        ("HEAD", "/org/net/resolve/main/model.safetensors"), ("GET", "/org/net/resolve/main/model.safetensors")]
    assert capfd.readouterr().err == ""  # progress=False: no bar

    state, again = weights.load_state_dict(resolved)
    assert again is resolved and state.keys() == tensors(1).keys()
    assert all(torch.equal(state[k], v) for k, v in tensors(1).items())


def test_pr_revision_and_a_file_in_a_folder(fake_hub):
    fake_hub.publish_tensors("CompVis/ldm", tensors(0), path="vqvae/diffusion_pytorch_model.safetensors")
    pub = fake_hub.publish_tensors("CompVis/ldm", tensors(7), path="vqvae/diffusion_pytorch_model.safetensors",
                                   revision="refs/pr/7")
    uri = "hf-hub:CompVis/ldm@refs/pr/7/vqvae/diffusion_pytorch_model.safetensors"
    state, resolved = weights.load_state_dict(uri)

    assert resolved.revision == "refs/pr/7" and resolved.filename == "vqvae/diffusion_pytorch_model.safetensors"
    assert resolved.commit == pub.commit != fake_hub.commit_of("CompVis/ldm", "main")
    assert resolved.path.endswith(f"/snapshots/{pub.commit}/vqvae/diffusion_pytorch_model.safetensors")
    assert torch.equal(state["0.weight"], tensors(7)["0.weight"])  # the PR's file, not main's
    assert fake_hub.resolve_requests()[0].path == "/CompVis/ldm/resolve/refs%2Fpr%2F7/vqvae/diffusion_pytorch_model.safetensors"


def test_commit_revision(fake_hub):
    old = fake_hub.publish_tensors("org/net", tensors(1))
    fake_hub.publish_tensors("org/net", tensors(2))  # main moves on
    resolved = weights.resolve(f"hf-hub:org/net@{old.commit}", progress=False)
    assert resolved.commit == old.commit and resolved.sha256 == old.sha256


def test_fake_hub_from_a_dict_and_a_branch_with_a_slash(tmp_path, monkeypatch):
    pinned = "c" * 40
    repos = {"org/net": {"main": {"model.safetensors": safetensors_bytes(tensors(1))},
                         "feature/x": {"a.safetensors": safetensors_bytes(tensors(2))},
                         pinned: {"model.safetensors": safetensors_bytes(tensors(3))}}}
    with FakeHub(tmp_path / "home", repos) as hub:
        hub.patch(monkeypatch)
        branch = weights.resolve("hf-hub:org/net@feature%2Fx/a.safetensors", progress=False)
        assert branch.revision == "feature/x" and branch.commit == hub.commit_of("org/net", "feature/x")
        assert branch.sha256 == hashlib.sha256(repos["org/net"]["feature/x"]["a.safetensors"]).hexdigest()
        assert weights.resolve(f"hf-hub:org/net@{pinned}", progress=False).commit == pinned


def test_lfs_style_redirect_to_another_origin(tmp_path, monkeypatch):
    with FakeHub(tmp_path / "home", cdn=True) as hub:
        hub.patch(monkeypatch)
        pub = hub.publish_tensors("org/net", tensors(3), revision="v1")
        resolved = weights.resolve("hf-hub:org/net@v1", progress=False)
        assert (resolved.commit, resolved.sha256) == (pub.commit, pub.sha256)
        assert [(r.server, r.method) for r in hub.resolve_requests()] == [("hub", "HEAD"), ("cdn", "GET")]


def test_offline_uses_the_cache_and_pins_the_cached_commit(fake_hub, monkeypatch):
    pub = fake_hub.publish_tensors("org/net", tensors(1))
    online = weights.resolve("hf-hub:org/net", progress=False)
    fake_hub.publish_tensors("org/net", tensors(2))  # main moves on while we are offline
    sent = len(fake_hub.requests)

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    offline = weights.resolve("hf-hub:org/net", progress=False)
    assert offline == online and offline.commit == pub.commit
    assert len(fake_hub.requests) == sent  # not a single request

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert weights.resolve("hf-hub:org/net", progress=False).commit == fake_hub.commit_of("org/net")


def test_offline_without_the_file_says_how_to_prefetch(fake_hub, monkeypatch):
    fake_hub.publish_tensors("org/net", tensors(1))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    uri = "hf-hub:org/net@main/model.safetensors"
    with pytest.raises(FasbenchError) as info:
        weights.resolve(uri)
    msg = str(info.value)
    assert uri in msg and f"fasbench weights pull {uri}" in msg and "HF_HUB_OFFLINE" in msg
    assert "file:" in msg and "local-dir:" in msg and "\n" not in msg
    assert fake_hub.requests == []


def test_endpoint_that_is_not_a_hub_says_how_to_prefetch(fake_hub, monkeypatch):
    fake_hub.publish_tensors("org/net", tensors(1))
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url + "/not-a-hub")
    with pytest.raises(FasbenchError, match=r"did not answer like a Hub.*fasbench weights pull hf-hub:org/net"):
        weights.resolve("hf-hub:org/net", progress=False)


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("hf-hub:org/nope", "repository org/nope not found"),
        ("hf-hub:org/net@nope", "revision 'nope' not found in org/net"),
        ("hf-hub:org/net@refs/pr/9", "revision 'refs/pr/9' not found in org/net"),
        ("hf-hub:org/net/sub/w.safetensors", "file 'sub/w.safetensors' not found in org/net at revision 'main'"),
    ],
)
def test_missing_repo_revision_or_file(fake_hub, uri, expected):
    fake_hub.publish_tensors("org/net", tensors(1))
    with pytest.raises(FasbenchError) as info:
        weights.resolve(uri, progress=False)
    assert str(info.value).startswith(uri + ":") and expected in str(info.value)


def test_corrupted_cache_is_detected(fake_hub, monkeypatch):
    fake_hub.publish_tensors("org/net", tensors(1))
    resolved = weights.resolve("hf-hub:org/net", progress=False)
    blob = Path(os.path.realpath(resolved.path))
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF  # a flipped bit in a tensor
    blob.write_bytes(bytes(data))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FasbenchError, match=f"does not match its Hub checksum.*delete {blob} .*fasbench weights pull"):
        weights.resolve("hf-hub:org/net", progress=False)
    blob.write_bytes(b"garbage")  # also when the header itself is gone
    with pytest.raises(FasbenchError, match="does not match its Hub checksum"):
        weights.resolve("hf-hub:org/net", progress=False)


# ------------------------------------------------------------------------------ safetensors only


def test_pickles_are_refused_as_files(tmp_path):
    pickled = torch_save_bytes(tmp_path)
    with pytest.raises(FasbenchError, match=r"pickle-based checkpoint.*pickles can run code.*weights_only=True"):
        weights.resolve(f"file:{tmp_path / 'pickled.pt'}")
    disguised = tmp_path / "model.safetensors"
    disguised.write_bytes(pickled)  # a torch.save zip under a safetensors name
    with pytest.raises(FasbenchError, match=r"not a valid safetensors file \(it is a zip archive.*save_file"):
        weights.resolve(f"file:{disguised}")
    (tmp_path / "junk.safetensors").write_bytes(b"\x80\x04" + b"x" * 100)  # a raw pickle
    with pytest.raises(FasbenchError, match=r"\(it is a pickle\)"):
        weights.resolve(f"file:{tmp_path / 'junk.safetensors'}")


def test_pickles_are_refused_via_the_hub(fake_hub, tmp_path):
    pickled = torch_save_bytes(tmp_path)
    fake_hub.publish_bytes("org/net", pickled, path="pytorch_model.bin")
    with pytest.raises(FasbenchError, match="pickle-based checkpoint"):
        weights.resolve("hf-hub:org/net/pytorch_model.bin")
    assert fake_hub.resolve_requests() == []  # refused by name, before any download

    fake_hub.publish_bytes("org/net", pickled, path="model.safetensors")
    with pytest.raises(FasbenchError, match="not a valid safetensors file.*zip archive"):
        weights.resolve("hf-hub:org/net", progress=False)


# ---------------------------------------------------------------------------- local-dir: and file:


def test_local_dir_and_file(tmp_path):
    folder = tmp_path / "hub-style"
    folder.mkdir()
    data = safetensors_bytes(tensors(4))
    (folder / "model.safetensors").write_bytes(data)
    (folder / "config.json").write_text("{}")
    resolved = weights.resolve(f"local-dir:{folder}")
    assert (resolved.scheme, resolved.path, resolved.filename) == ("local-dir", str(folder / "model.safetensors"), "model.safetensors")
    assert resolved.sha256 == hashlib.sha256(data).hexdigest() and resolved.commit is None and resolved.repo is None

    for uri in (f"file:{folder / 'model.safetensors'}", f"file://{folder / 'model.safetensors'}"):
        as_file = weights.resolve(uri)
        assert (as_file.scheme, as_file.path, as_file.sha256, as_file.size) == ("file", resolved.path, resolved.sha256, len(data))

    single = tmp_path / "single"
    single.mkdir()
    (single / "teacher.safetensors").write_bytes(data)
    assert weights.resolve(f"local-dir:{single}").filename == "teacher.safetensors"
    (single / "other.safetensors").write_bytes(data)
    with pytest.raises(FasbenchError, match="several .safetensors files"):
        weights.resolve(f"local-dir:{single}")

    pickles = tmp_path / "pickles"
    pickles.mkdir()
    (pickles / "pytorch_model.bin").write_bytes(torch_save_bytes(tmp_path))
    with pytest.raises(FasbenchError, match="pickle-based checkpoint"):
        weights.resolve(f"local-dir:{pickles}")
    with pytest.raises(FasbenchError, match="is a file, not a folder; write file:"):
        weights.resolve(f"local-dir:{folder / 'model.safetensors'}")
    with pytest.raises(FasbenchError, match="is a folder; write local-dir:"):
        weights.resolve(f"file:{folder}")
    with pytest.raises(FasbenchError, match="no such file"):
        weights.resolve(f"file:{tmp_path / 'missing.safetensors'}")


@pytest.fixture
def builtins_only(monkeypatch):
    from fasbench import plugins

    monkeypatch.setenv("FASBENCH_LOAD_PLUGINS", "")
    plugins.reset()
    yield plugins.get_plugin_manager()
    plugins.reset()


def test_plugin_schemes(builtins_only, tmp_path):
    from fasbench.hookspecs import hookimpl

    target = tmp_path / "mem.safetensors"
    target.write_bytes(safetensors_bytes(tensors(5)))

    class MemScheme:
        @hookimpl
        def resolve_weights(self, uri):
            return target if uri.startswith("mem:") else None

    builtins_only.register(MemScheme())
    resolved = weights.resolve("mem:teacher")
    assert (resolved.scheme, resolved.path, resolved.sha256) == ("mem", str(target), weights.sha256_file(target))
    with pytest.raises(FasbenchError, match=r"unknown weights URI scheme 's3' in 's3:bucket/x' .*hf-hub:ORG/REPO"):
        weights.resolve("s3:bucket/x")


# ------------------------------------------------------------------------------------- loading


def test_prefix_selects_and_strips(tmp_path):
    path = tmp_path / "w.safetensors"
    path.write_bytes(safetensors_bytes({"encoder.a": torch.ones(2), "encoder.b.c": torch.zeros(1), "head.w": torch.ones(3)}))
    state, _ = weights.load_state_dict(f"file:{path}", prefix="encoder.")
    assert sorted(state) == ["a", "b.c"]
    with pytest.raises(FasbenchError, match=r"no tensor name starts with 'decoder.'.*encoder\., head\."):
        weights.load_state_dict(f"file:{path}", prefix="decoder.")


def test_load_into_fits_or_says_what_does_not(tmp_path):
    path = tmp_path / "w.safetensors"
    path.write_bytes(safetensors_bytes(tensors(6)))
    uri = f"file:{path}"

    net = nn.Sequential(nn.Linear(4, 3))
    assert weights.load_into(net, uri).sha256 == weights.sha256_file(path)
    assert torch.equal(net[0].weight, tensors(6)["0.weight"])

    with pytest.raises(FasbenchError) as info:
        weights.load_into(nn.Sequential(nn.Linear(4, 2)), uri)
    msg = str(info.value)
    assert msg.startswith(f"{uri} does not fit the architecture of Sequential")
    assert "0.weight: checkpoint [3, 4] vs model [2, 4]" in msg and "0.bias: checkpoint [3] vs model [2]" in msg

    with pytest.raises(FasbenchError) as info:
        weights.load_into(nn.Sequential(nn.Identity(), nn.Linear(4, 3)), uri)
    msg = str(info.value)
    assert "2 missing (1.weight [3, 4], 1.bias [3])" in msg and "2 unexpected (0.bias [3], 0.weight [3, 4])" in msg

    prefixed = tmp_path / "prefixed.safetensors"
    prefixed.write_bytes(safetensors_bytes({f"encoder.{k}": v for k, v in tensors(6).items()}))
    with pytest.raises(FasbenchError, match=r"try prefix='encoder\.'"):
        weights.load_into(nn.Sequential(nn.Linear(4, 3)), f"file:{prefixed}")
    weights.load_into(net, f"file:{prefixed}", prefix="encoder.")

    partial = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 1))
    weights.load_into(partial, uri, strict=False)  # missing names tolerated, shapes still checked
    assert torch.equal(partial[0].bias, tensors(6)["0.bias"])


# ------------------------------------------------------------------------------------------ CLI


def test_cli_weights_pull(fake_hub, run_cli, one_line_error):
    a = fake_hub.publish_tensors("org/net", tensors(1))
    b = fake_hub.publish_tensors("org/net", tensors(2), path="vqvae/w.safetensors", revision="refs/pr/7")

    proc = run_cli("weights", "pull", "hf-hub:org/net", b.uri, env=fake_hub.env())
    assert proc.returncode == 0, proc.stderr
    for pub in (a, b):
        local = fake_hub.cache_dir.resolve() / "models--org--net" / "snapshots" / pub.commit / pub.path
        assert local.is_file() and local.read_bytes() == pub.data
        assert f"path:   {local}" in proc.stdout and f"commit: {pub.commit}" in proc.stdout
        assert f"sha256: {pub.sha256}" in proc.stdout and f"size:   {len(pub.data)} bytes" in proc.stdout

    offline = {**fake_hub.env(), "HF_HUB_OFFLINE": "1"}
    proc = run_cli("weights", "pull", "--json", "hf-hub:org/net", b.uri, env=offline)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [(r["uri"], r["commit"], r["sha256"], r["size"]) for r in rows] == [
        ("hf-hub:org/net", a.commit, a.sha256, len(a.data)), (b.uri, b.commit, b.sha256, len(b.data))]

    line = one_line_error(run_cli("weights", "pull", "hf-hub:org/other", env=offline))
    assert "hf-hub:org/other is not in the Hugging Face cache" in line and "fasbench weights pull hf-hub:org/other" in line
