"""The core contracts of every component kind (fasbench.api, fasbench.options): what a
plugin author may rely on and what the harness checks, with small in-process components."""
from __future__ import annotations

import json
import time

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from fasbench import config, plugins
from fasbench.api import Context, Student, Teacher, TeacherOptions
from fasbench.contract import TINY_WORLD
from fasbench.errors import FasbenchError
from fasbench.options import Options, OptionsError


@pytest.fixture
def fresh_plugins():
    plugins.reset()
    yield
    plugins.reset()


def _cfg(*extra: str):
    cfg = config.compose(["method=erm", "trainer=smoke", *TINY_WORLD, *extra])
    cfg.device = "cpu"
    return cfg


# -- students -------------------------------------------------------------------------

def test_timm_student_keeps_the_student_contract():
    ctx = Context(cfg=_cfg(), domains=["M", "C"])
    s = ctx.build_student()
    assert isinstance(s, Student) and ctx.components["student"]["name"] == "timm/resnet18"
    x01 = torch.rand(2, 3, 40, 40)
    f = s.features(x01, intermediates=True)
    assert f["pooled"].shape == (2, s.num_features) and "map" in f and "stage3" in f
    assert torch.equal(s.logits(x01), s.classify(f["pooled"]))
    # the student normalises itself: features of [0, 1] images equal the backbone on normalize(x01)
    s.eval()
    with torch.no_grad():
        direct = s.backbone.forward_head(s.backbone.forward_features(s.normalize(x01)), pre_logits=True)
        assert torch.allclose(s.features(x01)["pooled"], direct)
    mean = torch.tensor(s.mean).view(1, 3, 1, 1)
    std = torch.tensor(s.std).view(1, 3, 1, 1)
    assert torch.allclose(s.normalize(x01), (x01 - mean) / std)
    s.train()
    shapes = s.feature_shapes(40)
    assert shapes["pooled"] == torch.Size([s.num_features]) and s.training  # mode restored


def test_student_factory_must_return_a_student(fresh_plugins):
    plugins.registry("students").register("not-a-student", lambda opts, ctx: nn.Linear(2, 2), plugin="thirdparty")
    ctx = Context(cfg=_cfg(), domains=["M", "C"])
    with pytest.raises(FasbenchError, match=r"student 'not-a-student' \(plugin 'thirdparty'\) built a Linear.*fasbench.api.Student"):
        ctx.build_student({"name": "not-a-student"})


def test_student_options_are_typed():
    with pytest.raises(OptionsError, match=r"^student.drop_rate=2.0: expected float"):
        _cfg("student.drop_rate=2.0")
    with pytest.raises(OptionsError, match=r"^student.pretrained='perhaps': expected bool"):
        _cfg("student.pretrained=perhaps")


# -- teachers -------------------------------------------------------------------------

class ToyOptions(TeacherOptions):
    width: int = 4


class ToyTeacher(Teacher):
    kind = "perceptual"

    def __init__(self, opts: ToyOptions, ctx: Context) -> None:
        super().__init__(16, (0.5,) * 3, (0.5,) * 3)
        self.net = nn.Conv2d(3, opts.width, 3)
        self.net.load_state_dict(self.load_weights(opts.weights))

    def forward_features(self, x):
        m = self.net(x)
        return {"map": m, "embedding": m.mean(dim=(2, 3))}


def _toy_weights(tmp_path, width=4, seed=0):
    torch.manual_seed(seed)
    conv = nn.Conv2d(3, width, 3)
    path = tmp_path / f"toy{seed}.safetensors"
    save_file({k: v.contiguous() for k, v in conv.state_dict().items()}, str(path))
    return f"file:{path}"


def test_teacher_weights_are_chosen_by_the_harness_not_the_teacher(fresh_plugins, tmp_path):
    synthetic, other = _toy_weights(tmp_path, seed=0), _toy_weights(tmp_path, seed=1)
    reg = plugins.registry("teachers")
    reg.register("toy", ToyTeacher, plugin="thirdparty", options=ToyOptions,
                 weights={"synthetic": synthetic, "*": other})
    reg.register("toy-noweights", ToyTeacher, plugin="thirdparty", options=ToyOptions)
    ctx = Context(cfg=_cfg(), domains=["M", "C"])
    t = ctx.build_teacher({"name": "toy"})
    assert t.weights_info["uri"] == synthetic  # the registration's default for data.name=synthetic
    info = ctx.components["teachers"][0]
    assert info["kind"] == "perceptual" and info["weights"]["sha256"] == t.weights_info["sha256"]
    explicit = ctx.build_teacher({"name": "toy", "weights": other})
    assert explicit.weights_info["uri"] == other and explicit.weights_info["sha256"] != t.weights_info["sha256"]
    # frozen: eval mode whatever the caller does, no gradients
    t.train()
    assert not t.training and not any(p.requires_grad for p in t.parameters())
    f = t.features(torch.rand(2, 3, 40, 40), names=["embedding"])
    assert set(f) == {"embedding"} and f["embedding"].shape == (2, 4)
    assert t.feature_shapes() == {"map": torch.Size([4, 14, 14]), "embedding": torch.Size([4])}
    with pytest.raises(FasbenchError, match=r"has no feature\(s\) \['nope'\]"):
        t.features(torch.rand(1, 3, 16, 16), names=["nope"])
    with pytest.raises(FasbenchError, match=r"teacher 'toy-noweights' \(plugin 'thirdparty'\) declares no default weights"):
        ctx.build_teacher({"name": "toy-noweights"})
    with pytest.raises(OptionsError, match=r"^method.teachers.width='wide': expected int"):
        ctx.build_teacher({"name": "toy", "width": "wide"})
    with pytest.raises(OptionsError, match=r"^method.teachers.widht: unknown key; known keys: name, weights, width$"):
        ctx.build_teacher({"name": "toy", "widht": 3})  # the ref's own keys are listed beside the teacher's


# -- options --------------------------------------------------------------------------

class _Opts(Options):
    rate: float = 0.5
    mode: str = "a"


def test_options_refuse_unknown_keys_and_fill_defaults():
    from fasbench.options import validate

    assert validate(_Opts, {"rate": "0.25"}, "method") == _Opts(rate=0.25)
    with pytest.raises(OptionsError, match=r"^method.rte: unknown key; known keys: mode, rate$"):
        validate(_Opts, {"rte": 1}, "method")


def test_config_records_declared_defaults_and_normalised_values():
    cfg = _cfg("method=dat", "method.hidden=64")
    assert dict(cfg.method) == {"name": "dat", "weight": 1.0, "max_lambda": 1.0, "gamma": 10.0, "hidden": 64,
                                "dropout": 0.5, "single_side": False}
    assert "aligner" not in cfg  # no top-level key that nothing reads (it used to change the config hash)


@pytest.mark.parametrize("overrides, needle", [
    (["data=real", "data.val_fraction=1.5"], "data.val_fraction=1.5: expected float (input should be less than 1)"),
    (["data=msu_mfsd", "data.preprocess.frames_per_video=abc"], "data.preprocess.frames_per_video='abc': expected int"),
    (["data=real", "data.split_convention=ssan"], "data.split_convention='ssan': expected 'whole' | 'official'"),
    (["data.subjects=many"], "data.subjects='many': expected int"),
])
def test_data_options_are_typed(overrides, needle):
    with pytest.raises(OptionsError) as info:
        config.compose(["method=erm", *overrides])
    assert str(info.value).startswith(needle)


@pytest.mark.parametrize("override, needle", [
    ("trainer.max_steps=abc", "trainer.max_steps='abc': expected int"),
    ("method.label_smoothing=abc", "method.label_smoothing='abc': expected float"),
    ("trainer.max_steps=-1", "trainer.max_steps=-1: expected int (input should be greater than or equal to 0)"),
    ("optim.schedule=linear", "optim.schedule='linear': expected 'cosine' | 'constant'"),
])
def test_bad_values_fail_fast_with_one_line(run_cli, one_line_error, tmp_path, override, needle):
    t0 = time.perf_counter()
    proc = run_cli("run", "erm", "--out", str(tmp_path), override)
    elapsed = time.perf_counter() - t0
    assert proc.returncode != 0
    line = one_line_error(proc)
    assert needle in line, line
    assert elapsed < 20  # generous for a loaded CI machine; benchmarks/harness_overhead.py measures it
    assert not (tmp_path / "MICO").exists()  # nothing ran


def test_ls_shows_a_components_declared_options(run_cli):
    proc = run_cli("ls", "methods", "dat")
    assert proc.returncode == 0, proc.stderr
    rows = {ln.split()[0]: ln.split()[1:] for ln in proc.stdout.splitlines()[3:] if ln.strip()}
    assert rows["method.hidden"][:2] == ["int", "256"] and rows["method.single_side"][:2] == ["bool", "false"]
    assert rows["method.dropout"][:2] == ["float", "0.5"]
    js = run_cli("ls", "students", "timm", "--json")
    assert {o["key"] for o in json.loads(js.stdout)["options"]} == {"arch", "pretrained", "drop_rate", "timm_kwargs", "weights"}


# -- methods: exact resume ------------------------------------------------------------------


class NoisyOptions(Options):
    hide_generator: bool = False


class NoisyERM:
    """A third-party method drawing input noise from a generator it owns."""

    def __new__(cls, opts, ctx):
        import torch.nn.functional as F

        from fasbench.api import Method

        class _Noisy(Method):
            def __init__(self):
                super().__init__()
                self.student = ctx.build_student()
                gen = torch.Generator().manual_seed(1)
                if opts.hide_generator:
                    self.gens = [gen]  # out of the harness's sight: not saved in checkpoints
                else:
                    self.gen = gen

            def training_step(self, batch):
                g = self.gens[0] if opts.hide_generator else self.gen
                x = (batch["image"] + 0.1 * torch.randn(batch["image"].shape, generator=g)).clamp(0, 1)
                return {"ce": F.cross_entropy(self.student.logits(x), batch["label"])}

        return _Noisy()


def test_validate_holds_a_third_party_method_to_exact_resume(fresh_plugins, fasbench_cache):
    """A method's own generators are saved with the checkpoint (Method.random_state finds
    them), so resuming equals the uninterrupted run; randomness kept out of sight fails the
    check, with the fix in the message."""
    from fasbench.contract import validate_method

    plugins.registry("methods").register("noisy-erm", NoisyERM, plugin="thirdparty", options=NoisyOptions)
    title = "resuming from a checkpoint equals the uninterrupted run"
    ok = {c.name: c for c in validate_method("noisy-erm", [f"data.cache_dir={fasbench_cache}"])}[title]
    assert ok.ok and "scores identical to the uninterrupted run" in ok.detail, ok.detail
    bad = {c.name: c for c in validate_method("noisy-erm", [f"data.cache_dir={fasbench_cache}",
                                                            "method.hide_generator=true"])}[title]
    assert not bad.ok and "resumed from step 2, the scores differ" in bad.detail and "Method.random_state" in bad.detail
