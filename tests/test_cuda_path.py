"""The CUDA path, checked on the CPU: the autocast dtype choice (bfloat16 only where native, else
float16 with a gradient scaler), one training step through the harness's autocast plumbing
(CPU bfloat16 standing in for CUDA), evaluation in float32, data workers by device, and
normalisation constants kept on the device."""
from __future__ import annotations

import gzip
import io
from unittest import mock

import numpy as np
import pandas as pd
import pytest
import torch

from fasbench import config
from fasbench.contract import TINY_WORLD
from fasbench.engine import trainer
from fasbench.engine.run import run_protocol
from fasbench.errors import FasbenchError
from fasbench.options import validate
from fasbench.settings import TrainerSettings

CUDA = torch.device("cuda")


@pytest.mark.parametrize("native, precision, dtype", [(True, "cuda-bf16", torch.bfloat16), (False, "cuda-fp16", torch.float16)])
def test_autocast_dtype_is_bf16_only_where_native(native, precision, dtype):
    with mock.patch("torch.cuda.is_bf16_supported", return_value=native) as probe:
        assert trainer.precision_of(CUDA, amp=True) == (precision, dtype)
    probe.assert_called_once_with(including_emulation=False)  # emulated bf16 (pre-Ampere) is not bf16
    with mock.patch("torch.cuda.is_bf16_supported", return_value=native):
        assert trainer.precision_of(CUDA, amp=False) == ("cuda-fp32", None)
        assert trainer.precision_of(torch.device("cpu"), amp=True) == ("cpu-fp32", None)


def test_float16_gets_a_grad_scaler_bfloat16_none():
    # this machine may have no GPU: GradScaler would then disable itself, so say CUDA is there
    with mock.patch("torch.cuda.amp.common.amp_definitely_not_available", return_value=False):
        assert trainer.grad_scaler(torch.float16).is_enabled()
        assert not trainer.grad_scaler(torch.bfloat16).is_enabled()
        assert not trainer.grad_scaler(None).is_enabled()


def test_num_workers_auto_is_0_on_cpu_and_2_on_cuda(one_line_error, run_cli):
    assert trainer.num_workers_of("auto", torch.device("cpu")) == 0
    assert trainer.num_workers_of("auto", CUDA) == 2
    assert trainer.num_workers_of(3, CUDA) == 3 and trainer.num_workers_of(0, CUDA) == 0
    cfg = config.compose(["method=erm"])
    assert cfg.trainer.num_workers == "auto"  # the default preset
    assert validate(TrainerSettings, cfg.trainer, "trainer").num_workers == "auto"
    cfg.trainer.num_workers = "many"
    with pytest.raises(FasbenchError, match=r"trainer\.num_workers='many': use a number of DataLoader workers >= 0, or auto"):
        validate(TrainerSettings, cfg.trainer, "trainer")
    line = one_line_error(run_cli("run", "erm", "trainer.num_workers=-2", "--out", "x"))
    assert "trainer.num_workers=-2: use a number of DataLoader workers >= 0, or auto (0 on the CPU, 2 on CUDA)" in line


def test_one_step_under_bf16_autocast_then_float32_scores(tmp_path, monkeypatch):
    """The harness's autocast plumbing with CPU bfloat16 in place of CUDA: the method's forward
    runs under autocast (bf16 logits), the step updates the weights, evaluation runs without
    autocast and the scores file holds float32 scores, not bf16-rounded ones."""
    monkeypatch.setattr(trainer, "precision_of", lambda device, amp: ("cpu-bf16", torch.bfloat16))
    from fasbench_baselines.erm import ERM

    seen: dict[str, list] = {"train": [], "predict": []}
    step_of, predict_of = ERM.training_step, ERM.predict

    def training_step(self, batch):
        logits = self.student.logits(batch["image"])
        seen["train"].append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"), logits.dtype))
        return step_of(self, batch)

    def predict(self, x):
        out = predict_of(self, x)
        seen["predict"].append((torch.is_autocast_enabled("cpu"), x.dtype, out.dtype))
        return out

    monkeypatch.setattr(ERM, "training_step", training_step)
    monkeypatch.setattr(ERM, "predict", predict)
    cfg = config.compose(["method=erm", "trainer=smoke", "trainer.max_steps=1", "trainer.eval_every=0",
                          "trainer.checkpoint_every=0", *TINY_WORLD, f"data.cache_dir={tmp_path / 'cache'}",
                          "eval.bootstrap=0"])
    cfg.protocol, cfg.device, cfg.out = "MC->I", "cpu", str(tmp_path / "out")
    (rec,) = run_protocol(cfg, progress=False, echo=lambda *_: None)
    assert seen["train"] == [(True, torch.bfloat16, torch.bfloat16)]  # one step, under bf16 autocast
    assert seen["predict"] and all(p == (False, torch.float32, torch.float32) for p in seen["predict"])
    assert rec.precision == "cpu-bf16" and rec.timings["steps_this_session"] == 1
    with gzip.open(tmp_path / "out" / "MC_to_I" / "erm" / "MC_to_I" / "seed0" / "scores.csv.gz") as fh:
        scores = pd.read_csv(io.BytesIO(fh.read()))["score"].to_numpy()
    as32 = torch.from_numpy(scores.astype(np.float32))
    assert np.array_equal(as32.double().numpy(), scores)  # float32 values, written exactly
    assert not torch.equal(as32.to(torch.bfloat16).float(), as32)  # more precision than bf16 has


def test_student_normalisation_constants_stay_on_the_device():
    """mean/std are made once per device and dtype (no host-to-device copy per step), and the
    ones made during an evaluation (inference mode) serve training too."""
    from fasbench.api import Context

    cfg = config.compose(["method=erm", "trainer=smoke", *TINY_WORLD])
    cfg.device = "cpu"
    method = Context(cfg=cfg, domains=["M", "C"]).build_method()
    student = method.student
    x = torch.rand(2, 3, 40, 40)
    made = []
    real = torch.tensor

    def counting(*args, **kwargs):
        made.append(args[0])
        return real(*args, **kwargs)

    with mock.patch("torch.tensor", counting):
        with torch.inference_mode():  # an evaluation makes them first; training then uses them
            method.eval().predict(x)
        for _ in range(3):
            method.train()
            method.training_step({"image": x, "label": torch.tensor([0, 1]), "domain": torch.tensor([0, 1])})["ce"].backward()
    assert made.count(list(student.mean)) + made.count(tuple(student.mean)) == 1
    assert made.count(list(student.std)) + made.count(tuple(student.std)) == 1
    expect = (x - real(student.mean).view(1, 3, 1, 1)) / real(student.std).view(1, 3, 1, 1)
    assert torch.equal(student.normalize(x), expect)  # the same numbers as before the cache


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU: pinned non-blocking copy of the draws")
def test_augmentation_on_cuda_equals_cpu():
    from fasbench.data.loader import Preprocess

    images = torch.randint(0, 256, (8, 48, 48, 3), dtype=torch.uint8)
    pre = Preprocess(40, color_jitter=0.3)
    cpu = pre(images, torch.device("cpu"), train=True, generator=torch.Generator().manual_seed(1))
    gpu = pre(images.pin_memory(), CUDA, train=True, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(gpu.cpu(), cpu)
