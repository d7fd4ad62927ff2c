"""A third-party real dataset registered through ``register_datasets``: examples/dataset-example
(Wren-PAD, a made-up dataset, domain W) pip-installed into a target directory, a tiny fake copy
of its official layout built on the fly, then `fasbench data check|prepare`, its roots
(data.roots.X, FASBENCH_ROOT_X, the user config file), the Hydra entry of `--data wren_pad`,
and `fasbench run` on an ad-hoc protocol mixing it with fake copies of built-in datasets.
Letter clashes and malformed registrations are tested in-process on fake distributions."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("av")
pytest.importorskip("skimage.data")
from test_plugins import assert_one_line, fake_dist, sandbox  # noqa: E402,F401  (sandbox: a fixture)
from test_real_datasets import fake_roots, write_list, write_video  # noqa: E402,F401  (fake_roots: a fixture)

from fasbench import cli, plugins  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "dataset-example"
#: The fake copy: subject -> official split (lists/train.txt, lists/test.txt), three videos each.
SUBJECTS = {"S001": "train", "S002": "train", "S003": "test"}
VIDEOS = ("bonafide_cam1", "print_cam1", "screen_cam2")
#: Official counts of Wren-PAD, as the example registers them.
OFFICIAL = {"videos": 180, "live": 60, "spoof": 120, "subjects": 30,
            "splits": {"train": 108, "test": 72}, "attacks": {"print": 60, "screen": 60}}
SMALL = ["data.preprocess.size=64", "data.crop_size=56"]


def make_wren(root: Path) -> Path:
    """Wren-PAD's official layout, 3 subjects x (bonafide cam1, print cam1, screen cam2)."""
    for i, subject in enumerate(SUBJECTS):
        for v in VIDEOS:
            write_video(root / "clips" / subject / f"{subject}_{v}.mp4", "face", i)
    for split in ("train", "test"):
        write_list(root / "lists" / f"{split}.txt", [s for s, sp in SUBJECTS.items() if sp == split])
    return root


@pytest.fixture(scope="module")
def installed(module_tmp) -> Path:
    """examples/dataset-example pip-installed into a target dir (built from a copy, so no
    build/ or *.egg-info lands in the repository)."""
    root = module_tmp("dataset-plugin")
    src = root / "src"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = root / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--quiet", "--target", str(target), str(src)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return target


@pytest.fixture(scope="module")
def wren_root(module_tmp) -> Path:
    return make_wren(module_tmp("fake-wren") / "WrenPAD")


@pytest.fixture
def no_roots(tmp_path) -> dict[str, str]:
    """Environment of a subprocess that sees no user config file."""
    return {"FASBENCH_CONFIG": str(tmp_path / "none.yaml")}


# --- the registration ---------------------------------------------------------------------

def test_registered_dataset_is_listed_with_its_spec(installed, run_cli):
    proc = run_cli("ls", "datasets", "--json", pythonpath=installed)
    assert proc.returncode == 0, proc.stderr
    entries = {e["name"]: e for e in json.loads(proc.stdout)}
    w = entries["wren_pad"]
    assert (w["plugin"], w["version"], w["factory"]) == ("wren", 1, "fasbench.data.real_dataset:build")
    real = w["meta"]["real"]
    assert (real["letter"], real["index"], real["official"]) == ("W", "fasbench_wren.indexer:index_wren", OFFICIAL)
    assert real["layout"].startswith("clips/<subject>/") and real["title"].startswith("Wren-PAD")
    assert entries["msu_mfsd"]["meta"]["real"]["letter"] == "M"  # the built-ins are registered the same way
    helptext = run_cli("data", "check", "--help", pythonpath=installed)
    assert helptext.returncode == 0
    listed = " ".join(helptext.stdout.split())
    assert "msu_mfsd|M, casia_fasd|C, replay_attack|I, oulu_npu|O, celeba_spoof|A, wren_pad|W" in listed


def test_listing_imports_neither_pandas_nor_the_indexer(installed, cli_env):
    code = textwrap.dedent("""
        import sys
        from fasbench.cli import main

        for argv in (["--help"], ["ls", "datasets"], ["ls", "datasets", "--json"], ["data", "check", "--help"]):
            try:
                code = main(argv)
            except SystemExit as exc:  # --help
                code = exc.code
            assert code == 0, (argv, code)
        heavy = sorted(m for m in ("torch", "pandas", "fasbench_wren.indexer") if m in sys.modules)
        assert not heavy, heavy
        assert "fasbench_wren.plugin" in sys.modules
        print("LAZY-OK")
    """)
    proc = subprocess.run([sys.executable, "-c", code], env=cli_env(installed), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "LAZY-OK" in proc.stdout, proc.stdout[-2000:] + proc.stderr


# --- fasbench data check --------------------------------------------------------------------

def test_data_check_json_counts_vs_official(installed, wren_root, run_cli, no_roots):
    proc = run_cli("data", "check", "wren_pad", "--root", wren_root, "--json", pythonpath=installed, env=no_roots)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert {k: out[k] for k in ("videos", "live", "spoof", "subjects", "splits", "attacks")} == {
        "videos": 9, "live": 3, "spoof": 6, "subjects": 3, "splits": {"test": 3, "train": 6},
        "attacks": {"print": 3, "screen": 3}}
    assert (out["dataset"], out["domain"], out["plugin"], out["root"]) == ("wren_pad", "W", "wren", str(wren_root))
    assert out["official"] == OFFICIAL and out["unrecognised"] == []
    assert {"what": "videos", "found": 9, "official": 180, "ok": False} in out["differences"]
    assert {"what": "split train", "found": 6, "official": 108, "ok": False} in out["differences"]
    # by letter, root from FASBENCH_ROOT_<NAME>
    by_env = run_cli("data", "check", "W", "--json", pythonpath=installed,
                     env={**no_roots, "FASBENCH_ROOT_WREN_PAD": str(wren_root)})
    assert by_env.returncode == 0, by_env.stderr
    assert json.loads(by_env.stdout)["videos"] == 9


def test_data_check_text_shows_differences_and_misnamed_files(installed, wren_root, run_cli, tmp_path):
    root = tmp_path / "wren"
    shutil.copytree(wren_root, root)
    write_video(root / "clips" / "S001" / "S001_photo_cam1.mp4")  # not an official presentation name
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"roots:\n  W: {root}\n")  # the user config file, keyed by letter
    proc = run_cli("data", "check", "wren_pad", "--probe", "--no-progress", pythonpath=installed,
                   env={"FASBENCH_CONFIG": str(cfg)})
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("Wren-PAD (a made-up face presentation-attack database) (wren_pad, domain W, plugin wren)")
    assert f"at {root} (user config {cfg})" in out
    rows = {" ".join(ln.split()[:2]) if ln.startswith(("split", "attack")) else ln.split()[0]: ln.split()
            for ln in out.splitlines() if ln.strip()}
    assert rows["videos"][1:4] == ["9", "180", "DIFFERS"]
    assert rows["attack screen"][2:5] == ["3", "60", "DIFFERS"]
    assert "clips/S001/S001_photo_cam1.mp4" in out and "do not follow the official naming (clips/<subject>/" in out
    assert "count(s) differ from the official ones" in out


def test_data_check_without_root_names_the_plugin_letter(installed, run_cli, one_line_error, no_roots):
    line = one_line_error(run_cli("data", "check", "wren_pad", pythonpath=installed, env=no_roots))
    assert "W (wren_pad)" in line and "FASBENCH_ROOT_W" in line and "--root PATH" in line


# --- roots and the Hydra entry, in-process ----------------------------------------------------

def _forget_real_config_entries() -> None:
    """The `--data` entries of real datasets hold a root key per registered dataset: have the next
    compose store them again for the plugins loaded then (a process normally loads plugins once)."""
    from fasbench import config

    for key in [k for k in config._stored if k[0] == "data" and k[1] != "synthetic"]:
        config._stored.discard(key)


@pytest.fixture
def with_example(installed, monkeypatch, tmp_path):
    """The installed example visible to this process, no other root configured."""
    import os

    monkeypatch.syspath_prepend(str(installed))
    monkeypatch.setenv("FASBENCH_CONFIG", str(tmp_path / "none.yaml"))
    for k in list(os.environ):
        if k.startswith("FASBENCH_ROOT_") or k in ("FASBENCH_LOAD_PLUGINS", "FASBENCH_STRICT_PLUGINS"):
            monkeypatch.delenv(k)
    plugins.reset()
    _forget_real_config_entries()
    yield
    plugins.reset()
    _forget_real_config_entries()
    for name in [m for m in sys.modules if m.startswith("fasbench_wren")]:
        del sys.modules[name]


def test_roots_of_a_plugin_dataset(with_example, monkeypatch, tmp_path):
    from fasbench.data import indexers, roots

    assert indexers.letters() == ["M", "C", "I", "O", "A", "W"]  # registration order, built-ins first
    s = indexers.spec("w")
    assert (s.name, s.plugin) == ("wren_pad", "wren") and indexers.spec("wren_pad") is s
    assert roots.resolve("W") == (None, "")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("roots:\n  wren_pad: /from/file\n")
    monkeypatch.setenv("FASBENCH_CONFIG", str(cfg))
    assert roots.resolve("W") == (Path("/from/file"), f"user config {cfg}")
    monkeypatch.setenv("FASBENCH_ROOT_W", "/from/env")
    assert roots.resolve("wren_pad") == (Path("/from/env"), "environment FASBENCH_ROOT_W")
    assert roots.resolve("W", {"wren_pad": "/from/cfg"})[0] == Path("/from/cfg")
    assert roots.configured({"M": "/m"}) == {"M": Path("/m"), "W": Path("/from/env")}
    msg = roots.missing_message(["W", "C"], "protocol WC->I")
    assert "root(s) of C (casia_fasd), W (wren_pad)" in msg  # registration order
    assert "data.roots.W=/path/to/wren_pad" in roots.missing_message(["W"], "x")


def test_hydra_entry_of_a_plugin_dataset(with_example):
    from fasbench import config

    cfg = config.compose(["method=erm", "data=wren_pad", "data.roots.W=/w", "data.preprocess.size=64", "data.crop_size=56"])
    d = cfg.data
    assert (d.name, list(d.domains), d.roots.W, d.roots.wren_pad, d.preprocess.size) == ("wren_pad", ["W"], "/w", None, 64)
    assert d.split_convention == "whole" and d.roots.M is None  # every key of RealDataOptions applies
    cfg = config.compose(["method=erm", "data=wren_pad", "data.roots.wren_pad=/by-name"])
    assert cfg.data.roots.wren_pad == "/by-name"
    cfg = config.compose(["method=erm", "data=real", "data.roots.W=/w"])  # --data real: every registered root
    assert (cfg.data.name, cfg.data.domains, cfg.data.roots.W, cfg.data.roots.wren_pad) == ("real", None, "/w", None)


# --- clashes and malformed registrations --------------------------------------------------------

def _dataset_plugin(name: str, spec: str) -> str:
    return f'''
        from fasbench.data.indexers import DatasetSpec
        from fasbench.hookspecs import hookimpl

        @hookimpl
        def register_datasets(register):
            register("{name}", "fasbench.data.real_dataset:build", version=1, real={spec})
    '''


def test_letter_clash_is_one_line_naming_both_plugins(sandbox, capsys):  # noqa: F811
    fake_dist(sandbox, "fasbench-fake-clash", {"clash": "fasbench_fake_clash"},
              {"fasbench_fake_clash": _dataset_plugin("my_msu", 'DatasetSpec("M", "My MSU", "x.y:index")')})
    code = cli.main(["ls", "datasets"])
    assert code == 2
    line = assert_one_line(capsys.readouterr().err, "fasbench: error:", "domain letter 'M'", "'msu_mfsd'",
                           "plugin 'fasbench'", "'my_msu'", "plugin 'clash'")
    assert "FASBENCH_LOAD_PLUGINS" in line
    plugins.reset()
    assert cli.main(["data", "check", "M"]) == 2  # every command that reads the datasets says the same
    assert_one_line(capsys.readouterr().err, "domain letter 'M'", "'clash'")


@pytest.mark.parametrize("spec, needle", [
    ('DatasetSpec("w", "Lower", "x.y:index")', "domain letter 'w'"),
    ('DatasetSpec("Q", "No index", "not_a_reference")', "index='not_a_reference'"),
    ('DatasetSpec("Q", "Typo", "x.y:index", official={"vidoes": 3})', "official count vidoes=3"),
    ('{"letter": "Q", "title": "Mapping", "index": "x.y:index", "layouts": ""}', "real={...}"),
    ("42", "real=42"),
])
def test_malformed_registration_skips_the_plugin(sandbox, capsys, spec, needle):  # noqa: F811
    fake_dist(sandbox, "fasbench-fake-bad", {"bad": "fasbench_fake_bad"},
              {"fasbench_fake_bad": _dataset_plugin("bad_ds", spec)})
    code = cli.main(["ls", "datasets", "--json"])
    out, err = capsys.readouterr()
    assert code == 0 and "msu_mfsd" in {e["name"] for e in json.loads(out)}
    assert "bad_ds" not in {e["name"] for e in json.loads(out)}
    assert_one_line(err, "warning", "'bad'", "register_datasets", needle)


def test_a_mapping_spec_is_accepted(sandbox):  # noqa: F811
    fake_dist(sandbox, "fasbench-fake-map", {"mapped": "fasbench_fake_map"}, {"fasbench_fake_map": _dataset_plugin(
        "mapped_ds", '{"letter": "Q", "title": "Mapped", "index": "x.y:index", "official": {"videos": 3}}')})
    from fasbench.data import indexers

    s = indexers.spec("Q")
    assert (s.name, s.plugin, s.title, dict(s.official)) == ("mapped_ds", "mapped", "Mapped", {"videos": 3})


# --- prepare and run ---------------------------------------------------------------------------

@pytest.mark.slow
def test_prepare_and_run_with_a_plugin_dataset(installed, wren_root, fake_roots, run_cli, tmp_path, no_roots):  # noqa: F811
    env = {**no_roots, "FASBENCH_PREPARE_WORKERS": "1"}
    proc = run_cli("data", "prepare", "W", "--root", wren_root, "--json", "--no-progress", *SMALL,
                   pythonpath=installed, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    assert (s["dataset"], s["videos"], s["prepared"], s["frames"], s["skipped"]) == ("wren_pad", 9, 9, 18, [])
    assert s["faces_found"] == 18
    # WC->I: the plugin's domain and CASIA-FASD as sources, Replay-Attack as the target; no --data: the
    # real datasets are the default once roots are configured (W on the command line, C and I in the env)
    out = tmp_path / "runs"
    env.update(FASBENCH_ROOT_C=str(fake_roots["C"]), FASBENCH_ROOT_I=str(fake_roots["I"]))
    proc = run_cli("run", "erm", "--protocol", "WC->I", "--no-progress", "--out", out, "trainer=smoke",
                   "trainer.max_steps=2", "trainer.eval_every=2", "eval.bootstrap=0", *SMALL,
                   "data.split_convention=official", f"data.roots.W={wren_root}",
                   pythonpath=installed, env=env, timeout=400)
    assert proc.returncode == 0, proc.stderr
    assert "(real)" in proc.stdout
    (path,) = out.rglob("record.json")
    rec = json.loads(path.read_text())
    assert rec["status"] == "complete" and rec["task"]["name"] == "WC->I"
    d = rec["data"]
    assert d["dataset"] == "real" and rec["components"]["dataset"]["name"] == "real"
    assert {L: v["dataset"] for L, v in d["identity"]["datasets"].items()} == {
        "W": "wren_pad", "C": "casia_fasd", "I": "replay_attack"}
    assert d["preparation"]["W"]["dataset"] == "wren_pad" and d["preparation"]["W"]["videos"] == 9
    # the split conventions apply to the plugin's dataset: official = the sources' train lists
    assert d["split_convention"]["convention"] == "official"
    assert d["frames"]["source_train"] + d["frames"]["source_val"] == 2 * (6 + 4)  # W: S001, S002; C: train_release
    assert d["frames"]["target"] == 2 * 5  # Replay-Attack's official test split
    assert rec["val"]["n_videos"] == 3  # one held-out train subject of W (C's train split has one subject)
