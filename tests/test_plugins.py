"""Plugin discovery and isolation.

In-process tests fake installed distributions (a ``*.dist-info`` with an ``entry_points.txt``
on sys.path) and call ``fasbench.cli.main``; the end-to-end tests pip-install real plugin
packages (a throwaway one built here and ``examples/plugin-example``) into a target
directory and drive the ``fasbench`` CLI in subprocesses with ``PYTHONPATH`` pointing there.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fasbench import cli, plugins
from fasbench.contract import TINY_WORLD
from fasbench.errors import DuplicateComponentError, PluginLoadError
from fasbench.registry import KINDS

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "plugin-example"

THROWAWAY_PLUGIN = '''
from fasbench.hookspecs import hookimpl


@hookimpl
def register_methods(register):
    register("throwaway-erm", "fasbench_throwaway.method:Throwaway", version=2,
             description="ERM with a scaled loss (test plugin)", config={"scale": 1.0})


@hookimpl
def register_metrics(register):
    # a plugin metric: computed only when a run names it in eval.metrics
    register("spoof-mean", "fasbench_throwaway.metric:spoof_mean", version=1, uses_threshold=False,
             higher_is_better=False, description="mean score of the spoof presentations, in percent")
'''

THROWAWAY_METRIC = '''
def spoof_mean(s, threshold):
    return 100.0 * float(s.scores[s.labels == 0].mean())
'''

THROWAWAY_METHOD = '''
import torch.nn.functional as F

from fasbench.api import Method


class Throwaway(Method):
    def __init__(self, cfg, ctx):
        super().__init__()
        self.student = ctx.build_student()
        self.scale = float(cfg.scale)

    def training_step(self, batch):
        logits = self.student.logits(batch["image"])
        return {"ce": self.scale * F.cross_entropy(logits, batch["label"])}
'''


# --- fake installed distributions (in-process) ------------------------------------------

def fake_dist(site: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str],
              version: str = "0.1.0") -> None:
    """Make ``dist`` look installed in ``site``: a dist-info with ``fasbench`` entry points
    plus the modules (``{module name: source}``)."""
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    eps = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[fasbench]\n{eps}")
    for mod, source in modules.items():
        (site / f"{mod}.py").write_text(textwrap.dedent(source))


def method_plugin(method: str, hook: str = "register_methods", arg: str = "register") -> str:
    return f'''
        from fasbench.hookspecs import hookimpl

        @hookimpl
        def {hook}({arg}):
            {arg}("{method}", "fasbench_nowhere:Nothing", version=1)
    '''


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A site directory on sys.path for fake plugins, a clean plugin state and environment."""
    site = tmp_path / "site"
    site.mkdir()
    for var in ("FASBENCH_LOAD_PLUGINS", "FASBENCH_STRICT_PLUGINS", "FASBENCH_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.syspath_prepend(str(site))
    before = set(sys.modules)
    plugins.reset()
    yield site
    plugins.reset()
    for name in set(sys.modules) - before:
        if name.startswith("fasbench_fake"):
            del sys.modules[name]


def ls(capsys, kind: str = "methods") -> tuple[int, list[str] | None, str]:
    """``fasbench ls KIND --json`` in-process: (exit code, names or None, stderr)."""
    code = cli.main(["ls", kind, "--json"])
    out, err = capsys.readouterr()
    names = [e["name"] for e in json.loads(out)] if code == 0 else None
    return code, names, err


def assert_one_line(err: str, *needles: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], f"{n!r} not in {lines[0]!r}"
    return lines[0]


BROKEN = {
    "raises": 'raise RuntimeError("boom: the GPU library is missing\\nsecond line of detail")',
    "missing-dependency": "import fasbench_no_such_dependency_xyz",
    "syntax-error": "def broken(:\n    pass",
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_plugin_that_fails_to_import_is_skipped(sandbox, capsys, kind):
    fake_dist(sandbox, "fasbench-fake-broken", {"broken": "fasbench_fake_broken"}, {"fasbench_fake_broken": BROKEN[kind]})
    code, names, err = ls(capsys)
    assert code == 0 and "erm" in names
    line = assert_one_line(err, "warning", "'broken'", "fasbench-fake-broken", "FASBENCH_STRICT_PLUGINS")
    assert "second line" not in line
    assert "broken" in plugins.failed_plugins()
    assert "broken" not in {i.name for i in plugins.plugin_infos()}
    # `fasbench plugins --json` reports it as failed, next to the loaded ones.
    plugins.reset()
    assert cli.main(["plugins", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["broken"]["status"] == "failed" and rows["broken"]["error"]
    assert rows["baselines"]["status"] == "loaded"


def test_broken_plugin_is_fatal_in_strict_mode(sandbox, capsys, monkeypatch):
    fake_dist(sandbox, "fasbench-fake-broken", {"broken": "fasbench_fake_broken"}, {"fasbench_fake_broken": BROKEN["raises"]})
    monkeypatch.setenv("FASBENCH_STRICT_PLUGINS", "1")
    with pytest.raises(PluginLoadError, match="'broken'"):
        plugins.state()
    plugins.reset()
    code = cli.main(["ls", "methods"])
    err = capsys.readouterr().err
    assert code != 0
    assert_one_line(err, "fasbench: error:", "'broken'", "fasbench-fake-broken", "boom")


def test_strict_mode_in_a_real_process_has_no_traceback(tmp_path, run_cli):
    site = tmp_path / "site"
    fake_dist(site, "fasbench-fake-broken", {"broken": "fasbench_fake_broken"}, {"fasbench_fake_broken": BROKEN["raises"]})
    lenient = run_cli("ls", "methods", pythonpath=site)
    assert lenient.returncode == 0 and "erm" in lenient.stdout
    assert_one_line(lenient.stderr, "warning", "'broken'")
    strict = run_cli("ls", "methods", pythonpath=site, env={"FASBENCH_STRICT_PLUGINS": "1"})
    assert strict.returncode != 0 and strict.stdout == ""
    assert_one_line(strict.stderr, "fasbench: error:", "'broken'", "boom")


@pytest.mark.parametrize("hook, arg, needle", [
    ("register_method", "register", "register_method"),  # misspelled hook name
    ("register_methods", "reg", "'reg'"),  # argument not in the hook spec
])
def test_misspelled_hook_is_skipped(sandbox, capsys, monkeypatch, hook, arg, needle):
    fake_dist(sandbox, "fasbench-fake-typo", {"typo": "fasbench_fake_typo"},
              {"fasbench_fake_typo": method_plugin("typo-method", hook, arg)})
    code, names, err = ls(capsys)
    assert code == 0 and "erm" in names and "typo-method" not in names
    assert_one_line(err, "warning", "'typo'", "fasbench-fake-typo", needle)
    assert "typo" not in {i.name for i in plugins.plugin_infos()}
    # Strict: fatal, one line.
    monkeypatch.setenv("FASBENCH_STRICT_PLUGINS", "1")
    plugins.reset()
    assert cli.main(["ls", "methods"]) != 0
    assert_one_line(capsys.readouterr().err, "fasbench: error:", "'typo'", needle)


def test_good_plugin_next_to_broken_ones_still_loads(sandbox, capsys):
    fake_dist(sandbox, "fasbench-fake-broken", {"broken": "fasbench_fake_broken"}, {"fasbench_fake_broken": BROKEN["raises"]})
    fake_dist(sandbox, "fasbench-fake-good", {"good": "fasbench_fake_good"},
              {"fasbench_fake_good": method_plugin("good-method")}, version="2.5.0")
    code, names, err = ls(capsys)
    assert code == 0 and {"erm", "good-method"} <= set(names)
    assert_one_line(err, "'broken'")
    info = {i.name: i for i in plugins.plugin_infos()}["good"]
    assert (info.distribution, info.version, info.module, info.hooks) == (
        "fasbench-fake-good", "2.5.0", "fasbench_fake_good", ["register_methods"])
    assert plugins.registry("methods").get("good-method").plugin == "good"


def test_duplicate_method_across_plugins_names_both(sandbox, capsys):
    fake_dist(sandbox, "fasbench-fake-a", {"alpha": "fasbench_fake_alpha"}, {"fasbench_fake_alpha": method_plugin("twin")})
    fake_dist(sandbox, "fasbench-fake-b", {"beta": "fasbench_fake_beta"}, {"fasbench_fake_beta": method_plugin("twin")})
    with pytest.raises(DuplicateComponentError) as info:
        plugins.registry("methods")
    assert "'twin'" in str(info.value) and "'alpha'" in str(info.value) and "'beta'" in str(info.value)
    plugins.reset()
    code, _, err = ls(capsys)
    assert code == 2
    assert_one_line(err, "fasbench: error:", "'twin'", "'alpha'", "'beta'", "FASBENCH_LOAD_PLUGINS")
    # Other kinds are unaffected.
    assert ls(capsys, "datasets")[:2] == (0, ["casia_fasd", "celeba_spoof", "msu_mfsd", "oulu_npu", "real",
                                              "replay_attack", "synthetic"])


def test_duplicate_of_a_baseline_names_both(sandbox, capsys):
    fake_dist(sandbox, "fasbench-fake-c", {"copycat": "fasbench_fake_copycat"}, {"fasbench_fake_copycat": method_plugin("erm")})
    code, _, err = ls(capsys)
    assert code == 2
    assert_one_line(err, "'erm'", "'baselines'", "'copycat'")


@pytest.mark.parametrize("selection, methods, loaded", [
    ("baselines", ["dat", "erm"], ["fasbench", "baselines"]),
    ("fasbench-baselines", ["dat", "erm"], ["fasbench", "baselines"]),  # a distribution name works too
    (" baselines , nothing-called-this ", ["dat", "erm"], ["fasbench", "baselines"]),
    ("", [], ["fasbench"]),  # empty: built-ins only
    ("good", ["good-method"], ["fasbench", "good"]),
])
def test_load_plugins_selection(sandbox, capsys, monkeypatch, selection, methods, loaded):
    fake_dist(sandbox, "fasbench-fake-broken", {"broken": "fasbench_fake_broken"}, {"fasbench_fake_broken": BROKEN["raises"]})
    fake_dist(sandbox, "fasbench-fake-good", {"good": "fasbench_fake_good"}, {"fasbench_fake_good": method_plugin("good-method")})
    monkeypatch.setenv("FASBENCH_LOAD_PLUGINS", selection)
    code, names, err = ls(capsys)
    assert code == 0 and names == methods
    assert err == ""  # the broken plugin was never imported
    assert "fasbench_fake_broken" not in sys.modules
    assert [i.name for i in plugins.plugin_infos()] == loaded
    assert "synthetic" in plugins.registry("datasets")  # built-ins always load


def test_no_methods_message(sandbox, capsys, monkeypatch):
    monkeypatch.setenv("FASBENCH_LOAD_PLUGINS", "")
    assert cli.main(["ls", "methods"]) == 0
    assert "no methods registered" in capsys.readouterr().out


# --- real installed packages, driven through the CLI in subprocesses ----------------------

def _write_throwaway(root: Path) -> Path:
    src = root / "throwaway-src"
    (src / "fasbench_throwaway").mkdir(parents=True)
    (src / "pyproject.toml").write_text(textwrap.dedent('''
        [build-system]
        requires = ["setuptools>=64"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "fasbench-throwaway-plugin"
        version = "0.3.0"
        dependencies = ["fasbench"]

        [project.entry-points.fasbench]
        throwaway = "fasbench_throwaway.plugin"

        [tool.setuptools.packages.find]
        include = ["fasbench_throwaway*"]
    '''))
    (src / "fasbench_throwaway" / "__init__.py").write_text("")
    (src / "fasbench_throwaway" / "plugin.py").write_text(THROWAWAY_PLUGIN)
    (src / "fasbench_throwaway" / "method.py").write_text(THROWAWAY_METHOD)
    (src / "fasbench_throwaway" / "metric.py").write_text(THROWAWAY_METRIC)
    return src


@pytest.fixture(scope="module")
def installed(module_tmp) -> Path:
    """The throwaway plugin and examples/plugin-example, pip-installed into one target dir."""
    root = module_tmp("plugin-install")
    throwaway = _write_throwaway(root)
    # Build from a copy: an in-tree build would leave build/ and *.egg-info in the repository.
    example = root / "example-src"
    shutil.copytree(EXAMPLE, example, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = root / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--quiet", "--target", str(target), str(throwaway), str(example)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return target


@pytest.fixture(scope="module")
def runs(installed, cli_env, module_tmp) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """``fasbench run`` of each installed method on a tiny world (both at once: one thread each)."""
    out = module_tmp("plugin-runs")
    jobs = {
        "throwaway-erm": ["method.scale=0.5", "eval.metrics=[HTER,AUC,spoof-mean]"],
        "example-center-loss": ["method.center_weight=0.2"],
    }
    procs = {}
    for method, extra in jobs.items():
        args = [sys.executable, "-m", "fasbench", "run", method, "--protocol", "MC->I", "--data", "synthetic",
                "--no-progress", "--out", str(out / method), *TINY_WORLD, "trainer=smoke", *extra]
        procs[method] = subprocess.Popen(args, env=cli_env(installed), cwd=str(out), stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True)
    results = {}
    for method, p in procs.items():
        stdout, stderr = p.communicate(timeout=300)
        results[method] = (subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr), out / method)
    return results


def test_installed_plugins_listed(installed, run_cli):
    proc = run_cli("plugins", "--json", pythonpath=installed)
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["throwaway"] == {
        "name": "throwaway", "distribution": "fasbench-throwaway-plugin", "version": "0.3.0",
        "module": "fasbench_throwaway.plugin", "hooks": ["register_methods", "register_metrics"], "status": "loaded",
    }
    assert rows["example"]["distribution"] == "fasbench-example-plugin"
    assert rows["example"]["version"] == "0.1.0" and rows["example"]["hooks"] == ["register_methods"]
    assert {"fasbench", "baselines"} <= set(rows)
    assert proc.stderr == ""
    table = run_cli("plugins", pythonpath=installed)
    assert table.returncode == 0 and re.search(r"throwaway\s+fasbench-throwaway-plugin\s+0\.3\.0\s+methods", table.stdout)


def test_installed_methods_listed(installed, run_cli):
    proc = run_cli("ls", "methods", "--json", pythonpath=installed)
    assert proc.returncode == 0, proc.stderr
    entries = {e["name"]: e for e in json.loads(proc.stdout)}
    assert {"erm", "throwaway-erm", "example-center-loss"} <= set(entries)
    t = entries["throwaway-erm"]
    assert (t["plugin"], t["version"], t["factory"]) == ("throwaway", 2, "fasbench_throwaway.method:Throwaway")
    assert t["meta"] == {"config": {"scale": 1.0}}
    ex = entries["example-center-loss"]
    assert ex["plugin"] == "example" and ex["version"] == 1 and ex["description"]
    assert ex["factory"] == "fasbench_example.method:ExampleMethod"
    table = run_cli("ls", "methods", pythonpath=installed)
    assert "throwaway-erm" in table.stdout and "example-center-loss" in table.stdout


@pytest.mark.parametrize("method, plugin, dist, dist_version, version, cfg", [
    ("throwaway-erm", "throwaway", "fasbench-throwaway-plugin", "0.3.0", 2, {"scale": 0.5}),
    ("example-center-loss", "example", "fasbench-example-plugin", "0.1.0", 1, {"center_weight": 0.2}),
])
def test_installed_method_runs(runs, method, plugin, dist, dist_version, version, cfg):
    proc, out = runs[method]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    records = list(out.rglob("record.json"))
    assert len(records) == 1, records
    rec = json.loads(records[0].read_text())
    assert rec["status"] == "complete" and rec["method"] == method
    assert rec["task"]["name"] == "MC->I"
    assert rec["components"]["method"] == {"name": method, "version": version, "plugin": plugin}
    assert rec["versions"]["plugins"][dist] == dist_version
    assert rec["config"]["method"] == {"name": method, **cfg}  # registered defaults + override
    for block in (rec["val"], *rec["target"].values()):
        for key in ("HTER", "AUC"):
            assert 0 <= block["metrics"][key] <= 100
    assert "MC->I" in proc.stdout


def test_plugin_metric_reaches_record_score_and_leaderboard(runs, installed, run_cli, tmp_path):
    """A metric registered by a plugin and named in eval.metrics is computed into the record (val and
    target blocks, with its CI), recomputed by `fasbench score RUN_DIR`, and becomes leaderboard columns."""

    import numpy as np
    import pandas as pd

    proc, out = runs["throwaway-erm"]
    assert proc.returncode == 0, proc.stderr
    (path,) = out.rglob("record.json")
    rec = json.loads(path.read_text())
    assert rec["metric_names"] == ["HTER", "AUC", "spoof-mean"]
    scores = pd.read_csv(path.parent / "scores.csv.gz", keep_default_na=False)
    for split, block in (("val", rec["val"]), ("target", rec["target"]["source-val-threshold"])):
        assert list(block["metrics"]) == ["HTER", "AUC", "spoof-mean"]
        d = scores[scores["split"] == split]
        per_video = d.groupby("video", sort=False).agg(score=("score", "mean"), label=("label", "first"))
        expected = 100 * per_video.loc[per_video["label"] == 0, "score"].mean()
        assert block["metrics"]["spoof-mean"] == pytest.approx(expected, rel=1e-12)
        assert "spoof-mean" in block["ci"]
    rescored = run_cli("score", path.parent, "--json", pythonpath=installed)
    assert rescored.returncode == 0, rescored.stdout + rescored.stderr
    assert json.loads(rescored.stdout)["reproduced"] is True
    # without the plugin the metric cannot be recomputed: one clear line
    bare = run_cli("score", path.parent, env={"FASBENCH_LOAD_PLUGINS": ""})
    assert bare.returncode == 2 and "unknown metric 'spoof-mean'" in bare.stderr
    board = tmp_path / "board"
    lb = run_cli("leaderboard", "--runs", out, "--out", board, "--metrics", "HTER,spoof-mean", pythonpath=installed)
    assert lb.returncode == 0, lb.stderr
    csv = pd.read_csv(board / "MC_to_I.csv") if (board / "MC_to_I.csv").exists() else pd.read_csv(next(board.glob("*.csv")))
    col = next(c for c in csv.columns if c.endswith("spoof-mean mean"))
    assert np.isclose(csv[col].dropna().iloc[0], rec["target"]["source-val-threshold"]["metrics"]["spoof-mean"])
    md = next(board.glob("*.md")).read_text()
    assert "spoof-mean" in md


def test_plugin_loading_is_lazy(installed, cli_env):
    """Listing commands import neither torch nor the plugins' method modules."""
    code = textwrap.dedent(f"""
        import sys
        from fasbench.cli import main

        def run(*argv):
            try:
                code = main(list(argv))
            except SystemExit as exc:  # --help
                code = exc.code
            assert code == 0, (argv, code)

        run("--help")
        run("plugins")
        run("plugins", "--json")
        for kind in {list(KINDS)!r}:
            run("ls", kind)
            run("ls", kind, "--json")
        heavy = sorted(m for m in ("torch", "timm", "torchvision", "fasbench.api", "fasbench_baselines.erm",
                                   "fasbench_example.method", "fasbench_throwaway.method") if m in sys.modules)
        assert not heavy, heavy
        assert "fasbench_example.plugin" in sys.modules  # the plugins were loaded, just not their methods
        print("LAZY-OK")
    """)
    proc = subprocess.run([sys.executable, "-c", code], env=cli_env(installed), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "LAZY-OK" in proc.stdout, proc.stdout[-2000:] + proc.stderr


def test_plugin_whose_register_hook_raises_is_skipped(sandbox, capsys):
    fake_dist(sandbox, "fasbench-fake-hookraise", {"hookraise": "fasbench_fake_hookraise"}, {"fasbench_fake_hookraise": '''
        from fasbench.hookspecs import hookimpl

        @hookimpl
        def register_methods(register):
            raise RuntimeError("kaboom while registering")
    '''})
    code, names, err = ls(capsys)
    assert code == 0 and "erm" in names
    assert_one_line(err, "warning", "'hookraise'", "kaboom")


COMMANDS_RAISE = '''
    from fasbench.hookspecs import hookimpl

    @hookimpl
    def register_commands(subparsers):
        p = subparsers.add_parser("half-added", help="added before the hook raised")
        p.set_defaults(func=lambda args: 0)
        raise RuntimeError("kaboom while adding commands")
'''


def test_plugin_whose_register_commands_raises_leaves_the_cli_working(sandbox, capsys, monkeypatch):
    fake_dist(sandbox, "fasbench-fake-cmdraise", {"cmdraise": "fasbench_fake_cmdraise"},
              {"fasbench_fake_cmdraise": COMMANDS_RAISE})
    fake_dist(sandbox, "fasbench-fake-good", {"good": "fasbench_fake_good"}, {"fasbench_fake_good": '''
        from fasbench.hookspecs import hookimpl

        @hookimpl
        def register_commands(subparsers):
            subparsers.add_parser("good-cmd").set_defaults(func=lambda args: print("GOOD-CMD") or 0)
    '''})
    assert cli.main(["ls", "methods"]) == 0
    out, err = capsys.readouterr()
    assert "erm" in out
    line = assert_one_line(err, "fasbench: warning:", "'cmdraise'", "register_commands", "kaboom",
                           "FASBENCH_STRICT_PLUGINS")
    assert "second" not in line
    assert "cmdraise" in plugins.failed_plugins()
    # The half-added subcommand is gone; the other plugin's command still works.
    parser = cli.build_parser()
    capsys.readouterr()
    assert "half-added" not in parser.format_help()
    assert list(parser._subparsers._group_actions[0].choices)[:2] == ["run", "validate"]  # built-ins first
    with pytest.raises(SystemExit) as exc:
        cli.main(["half-added"])
    assert exc.value.code == 2 and "invalid choice: 'half-added'" in capsys.readouterr().err
    assert cli.main(["good-cmd"]) == 0
    assert "GOOD-CMD" in capsys.readouterr().out
    # Strict: a one-line fatal error, no traceback.
    monkeypatch.setenv("FASBENCH_STRICT_PLUGINS", "1")
    plugins.reset()
    assert cli.main(["ls", "methods"]) != 0
    out, err = capsys.readouterr()
    assert out == ""
    assert_one_line(err, "fasbench: error:", "'cmdraise'", "register_commands", "kaboom")


def test_register_commands_failure_in_a_real_process(tmp_path, run_cli):
    site = tmp_path / "site"
    fake_dist(site, "fasbench-fake-cmdraise", {"cmdraise": "fasbench_fake_cmdraise"},
              {"fasbench_fake_cmdraise": COMMANDS_RAISE})
    lenient = run_cli("ls", "methods", pythonpath=site)
    assert lenient.returncode == 0 and "erm" in lenient.stdout
    assert_one_line(lenient.stderr, "warning", "'cmdraise'", "kaboom")
    strict = run_cli("ls", "methods", pythonpath=site, env={"FASBENCH_STRICT_PLUGINS": "1"})
    assert strict.returncode != 0 and strict.stdout == ""
    assert_one_line(strict.stderr, "fasbench: error:", "'cmdraise'", "kaboom")


DATA_DEFAULTS_PLUGIN = '''
from fasbench.hookspecs import hookimpl
from fasbench.options import Options


class CostOptions(Options):
    every: int = 1
    size: int = 256


@hookimpl
def register_methods(register):
    register("fake-costly", "fasbench_nowhere:Nothing", version=1, options="fasbench_fake_dd:CostOptions",
             data_defaults={"synthetic": {}, "*": {"every": 4}, "msu_mfsd": {"every": 2, "size": 128}})
    register("fake-misspelt-defaults", "fasbench_nowhere:Nothing", version=1, options="fasbench_fake_dd:CostOptions",
             data_defaults={"*": {"evry": 4}})
'''


def test_a_method_s_data_defaults_apply_to_their_dataset_and_the_command_line_wins(sandbox, capsys):
    from fasbench import config

    fake_dist(sandbox, "fasbench-fake-dd", {"dd": "fasbench_fake_dd"}, {"fasbench_fake_dd": DATA_DEFAULTS_PLUGIN})

    def method(*overrides):
        m = config.compose(list(overrides)).method
        return m.every, m.size

    assert method("method=fake-costly", "data=synthetic") == (1, 256)  # "synthetic": {} keeps the declared ones
    assert method("method=fake-costly", "data=real") == (4, 256)  # "*": any other dataset
    assert method("method=fake-costly", "data=casia_fasd") == (4, 256)
    assert method("method=fake-costly", "data=msu_mfsd") == (2, 128)  # a dataset's own entry
    assert method("method=fake-costly", "data=msu_mfsd", "method.every=3") == (3, 128)
    assert config.method_data_defaults(plugins.registry("methods").get("fake-costly"), "oulu_npu") == {"every": 4}
    capsys.readouterr()
    # a misspelt key is caught once, said in one line, and that method runs on its declared defaults
    config._stored.discard(("method_data", "fake-misspelt-defaults"))
    assert method("method=fake-misspelt-defaults", "data=real") == (1, 256)
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "fake-misspelt-defaults" in err and "evry" in err and "ignores its data_defaults" in err
    assert "Traceback" not in err
