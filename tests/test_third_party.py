"""A throwaway third-party package adds one component of four kinds at once (a dataset with
its own official layout, a teacher with its own weights scheme, a metric and a method that
distils from the teacher), pip-installed next to fasbench with nothing of fasbench_dtda or
fasbench_baselines loaded, then `fasbench data check` and `fasbench run` on them.

This is the plugin author's view of docs/architecture.md: every contract they use is in the
core (fasbench.api, fasbench.options, fasbench.data.indexers, fasbench.hookspecs)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("av")
pytest.importorskip("skimage.data")
from test_real_datasets import fake_roots, write_video  # noqa: E402,F401  (fake_roots: a fixture)

FILES = {
    "pyproject.toml": '''
        [build-system]
        requires = ["setuptools>=64"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "fasbench-kit"
        version = "0.2.0"
        dependencies = ["fasbench"]

        [project.entry-points.fasbench]
        kit = "fasbench_kit.plugin"

        [tool.setuptools.packages.find]
        include = ["fasbench_kit*"]
    ''',
    "fasbench_kit/__init__.py": "",
    "fasbench_kit/plugin.py": '''
        from fasbench.data.indexers import DatasetSpec
        from fasbench.hookspecs import hookimpl

        FINCH = DatasetSpec(
            letter="F", title="Finch-FAS (a throwaway test dataset)", index="fasbench_kit.data:index_finch",
            official={"videos": 9, "live": 3, "spoof": 6, "subjects": 3, "splits": {"train": 6, "test": 3},
                      "attacks": {"paper": 3, "tablet": 3}},
            layout="<train|test>/<live|paper|tablet>/<subject>_<take>.mp4",
        )


        @hookimpl
        def register_datasets(register):
            register("finch", "fasbench.data.real_dataset:build", version=1, real=FINCH,
                     description="Finch-FAS alone (domain F)")


        @hookimpl
        def register_teachers(register):
            register("kit.edges", "fasbench_kit.teacher:EdgeTeacher", version=1, options="fasbench_kit.options:EdgeOptions",
                     weights={"*": "kit-weights:edges"}, description="a fixed edge filter bank")


        @hookimpl
        def resolve_weights(uri):
            if uri.startswith("kit-weights:"):
                from fasbench_kit.teacher import materialise

                return materialise(uri.split(":", 1)[1])
            return None


        @hookimpl
        def register_metrics(register):
            register("live-mean", "fasbench_kit.metric:live_mean", version=1, uses_threshold=False,
                     higher_is_better=True, description="mean score of the live presentations, in percent")


        @hookimpl
        def register_methods(register):
            register("kit-distil", "fasbench_kit.method:KitDistil", version=3, options="fasbench_kit.options:KitOptions",
                     description="cross-entropy + cosine distillation from one teacher")
    ''',
    "fasbench_kit/options.py": '''
        from pydantic import Field

        from fasbench.api import TeacherOptions, TeacherRef
        from fasbench.options import Options


        class EdgeOptions(TeacherOptions):
            channels: int = Field(8, ge=1)


        class KitOptions(Options):
            kd_weight: float = Field(0.5, ge=0)
            teacher: TeacherRef = Field(default_factory=lambda: TeacherRef(name="kit.edges"))
    ''',
    "fasbench_kit/data.py": '''
        import re

        from fasbench.data.indexers import IndexResult, need_dir, video_files, video_manifest
        from fasbench_kit.plugin import FINCH

        NAME = re.compile(r"^(?P<subject>F\\d\\d)_(?P<take>\\d)$")


        def index_finch(root):
            rows, odd = [], []
            for split in ("train", "test"):
                base = need_dir(root, split, "finch", FINCH.layout)
                for kind in ("live", "paper", "tablet"):
                    for p in video_files(base / kind) if (base / kind).is_dir() else []:
                        m = NAME.match(p.stem)
                        if not m:
                            odd.append(str(p.relative_to(root)))
                            continue
                        rows.append({"dataset": "finch", "domain": "F", "video_id": f"{split}_{kind}_{p.stem}",
                                     "subject": m["subject"], "split": split, "label": int(kind == "live"),
                                     "attack": {"live": "none", "paper": "print", "tablet": "replay"}[kind],
                                     "attack_type": "none" if kind == "live" else kind,
                                     "path": str(p.relative_to(root))})
            return IndexResult(video_manifest(rows), odd)
    ''',
    "fasbench_kit/teacher.py": '''
        import os
        from pathlib import Path

        import torch
        from torch import nn

        from fasbench.api import Teacher
        from fasbench.util import atomic_write_bytes, cache_root


        def materialise(name):
            """The kit's weights source: deterministic weights written once into the cache."""
            path = cache_root() / "kit" / f"{name}.safetensors"
            if not path.is_file():
                from safetensors.torch import save

                g = torch.Generator().manual_seed(7)
                sd = {"weight": torch.randn(8, 3, 3, 3, generator=g), "bias": torch.zeros(8)}
                atomic_write_bytes(path, save(sd))
            return path


        class EdgeTeacher(Teacher):
            kind = "texture"

            def __init__(self, opts, ctx):
                super().__init__(32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
                self.conv = nn.Conv2d(3, opts.channels, 3)
                self.conv.load_state_dict(self.load_weights(opts.weights))

            def forward_features(self, x):
                m = torch.relu(self.conv(x))
                return {"map": m, "embedding": m.mean(dim=(2, 3))}
    ''',
    "fasbench_kit/metric.py": '''
        def live_mean(s, threshold):
            return 100.0 * float(s.scores[s.labels == 1].mean())
    ''',
    "fasbench_kit/method.py": '''
        import torch
        import torch.nn.functional as F
        from torch import nn

        from fasbench.api import Method


        class KitDistil(Method):
            def __init__(self, opts, ctx):
                super().__init__()
                self.student = ctx.build_student()
                self.teacher = ctx.build_teacher(opts.teacher, where="method.teacher")
                dim = self.teacher.feature_shapes()["embedding"][0]
                self.proj = nn.Linear(self.student.num_features, dim)
                self.kd_weight = opts.kd_weight

            def training_step(self, batch):
                f = self.student.features(batch["image"])["pooled"]
                with torch.no_grad():
                    t = self.teacher.features(batch["image"], names=["embedding"])["embedding"]
                kd = (1 - F.cosine_similarity(self.proj(f), t, dim=1)).mean()
                return {"ce": F.cross_entropy(self.student.classify(f), batch["label"]), "kd": self.kd_weight * kd}
    ''',
}


@pytest.fixture(scope="module")
def kit(module_tmp) -> Path:
    root = module_tmp("kit")
    src = root / "src"
    for rel, text in FILES.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(textwrap.dedent(text).lstrip())
    assert "fasbench_dtda" not in "".join(FILES.values()) and "fasbench_baselines" not in "".join(FILES.values())
    target = root / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                           "--disable-pip-version-check", "--quiet", "--target", str(target), str(src)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return target


@pytest.fixture(scope="module")
def finch_root(module_tmp) -> Path:
    root = module_tmp("finch") / "Finch"
    for i, (subject, split) in enumerate((("F01", "train"), ("F02", "train"), ("F03", "test"))):
        for kind in ("live", "paper", "tablet"):
            write_video(root / split / kind / f"{subject}_1.mp4", "face", i)
    return root


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    # only the kit (and the built-ins): nothing of fasbench_dtda or fasbench_baselines is loaded
    return {"FASBENCH_LOAD_PLUGINS": "kit", "FASBENCH_CONFIG": str(tmp_path / "none.yaml"),
            "FASBENCH_PREPARE_WORKERS": "1", **extra}


def test_kit_components_are_listed_with_their_options(kit, run_cli, tmp_path):
    env = _env(tmp_path)
    for kind, name in (("datasets", "finch"), ("teachers", "kit.edges"), ("metrics", "live-mean"),
                       ("methods", "kit-distil")):
        proc = run_cli("ls", kind, "--json", pythonpath=kit, env=env)
        assert proc.returncode == 0, proc.stderr
        assert {e["name"]: e["plugin"] for e in json.loads(proc.stdout)}[name] == "kit"
    proc = run_cli("ls", "methods", pythonpath=kit, env=env)
    assert "erm" not in proc.stdout and "dtda" not in proc.stdout  # really alone
    opts = json.loads(run_cli("ls", "methods", "kit-distil", "--json", pythonpath=kit, env=env).stdout)["options"]
    assert {o["key"]: o["default"] for o in opts}["kd_weight"] == 0.5


@pytest.mark.slow
def test_kit_data_check_and_run(kit, finch_root, fake_roots, run_cli, tmp_path, one_line_error):  # noqa: F811
    env = _env(tmp_path)
    proc = run_cli("data", "check", "finch", "--root", finch_root, "--json", "--no-progress", pythonpath=kit, env=env)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert (found["dataset"], found["domain"], found["videos"], found["subjects"]) == ("finch", "F", 9, 3)
    assert found["differences"] == [] and found["splits"] == {"test": 3, "train": 6}

    # a wrong option of the nested teacher: one line naming the key, before any data loads
    bad = run_cli("run", "kit-distil", "--protocol", "FC->I", "method.teacher.channels=0", "--out", tmp_path / "bad",
                  pythonpath=kit, env=env)
    assert bad.returncode != 0 and "method.teacher.channels=0: expected int" in one_line_error(bad)

    out = tmp_path / "runs"
    env.update(FASBENCH_ROOT_C=str(fake_roots["C"]), FASBENCH_ROOT_I=str(fake_roots["I"]))
    proc = run_cli("run", "kit-distil", "--protocol", "FC->I", "--no-progress", "--out", out, "trainer=smoke",
                   "trainer.max_steps=2", "trainer.eval_every=2", "eval.bootstrap=0", "data.preprocess.size=64",
                   "data.crop_size=56", "data.split_convention=official", f"data.roots.F={finch_root}",
                   "eval.metrics=[HTER,AUC,live-mean]", "method.kd_weight=0.25", "method.teacher.channels=8",
                   pythonpath=kit, env=env, timeout=400)
    assert proc.returncode == 0, proc.stderr
    (path,) = out.rglob("record.json")
    rec = json.loads(path.read_text())
    comps = rec["components"]
    assert comps["method"] == {"name": "kit-distil", "version": 3, "plugin": "kit"}
    (teacher,) = comps["teachers"]
    assert (teacher["name"], teacher["plugin"], teacher["kind"]) == ("kit.edges", "kit", "texture")
    assert teacher["weights"]["uri"] == "kit-weights:edges" and len(teacher["weights"]["sha256"]) == 64
    assert rec["config"]["method"] == {"name": "kit-distil", "kd_weight": 0.25,
                                       "teacher": {"name": "kit.edges", "weights": None, "channels": 8}}
    assert {L: v["dataset"] for L, v in rec["data"]["identity"]["datasets"].items()} == {
        "F": "finch", "C": "casia_fasd", "I": "replay_attack"}
    assert set(rec["curve"][-1]) >= {"loss/ce", "loss/kd"}
    live = rec["target"]["source-val-threshold"]["metrics"]["live-mean"]
    assert 0 <= live <= 100 and rec["metric_names"] == ["HTER", "AUC", "live-mean"]
    assert "fasbench_dtda" not in json.dumps(rec["versions"]["plugins"]) and "fasbench-dtda" not in rec["versions"]["plugins"]
