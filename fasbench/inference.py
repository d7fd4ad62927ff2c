"""Using a finished run's student outside the harness: its weights file, rebuilding it from the
record, and scoring face images and videos the way the run's own data was prepared and evaluated.

**The weights a run keeps.** At the end of every run the engine writes ``student.safetensors``
beside ``record.json``: the student's tensors at the *selected* step (the checkpoint the
record's numbers come from, ``selection.selected_step``), whatever happens to the
``checkpoint/`` folder afterwards. The record names the file in ``components.student.saved``
(file, sha256, bytes, step), so a copy can be checked against the record that reports it.

**Scoring a file** (:func:`score_file`) takes the path preparation takes
(:func:`fasbench.data.prepare.run_video`): frames decoded upright, sampled like the run's data
(``data.preprocess`` of a real-data run: sampling, frames per video, MTCNN crop size, margin,
alignment, thresholds; the synthetic world's stored frame size otherwise), faces found by
MTCNN and cropped; then the evaluation's centre crop to ``data.crop_size`` and the student's own
normalisation. The live probability of a video is the mean over its sampled frames, as in
video-level evaluation. ``detect=False`` takes the whole picture as the face crop (its centred
square, preparation's ``center`` fallback), for frames that already are face crops.

Only the student is rebuilt (never the method's teachers or heads): the live probability is
``softmax(student.logits(x))[:, 1]``, :meth:`fasbench.api.Method.predict`, which every
method that does not override ``predict`` reports. A run whose method overrides it is marked
``"predict": "method"`` in ``components.student.saved`` and refused here.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fasbench.errors import FasbenchError

STUDENT_FILENAME = "student.safetensors"


# ------------------------------------------------------------------------- writing (the engine)


def _unwrap(module: Any) -> Any:
    """The module inside a DistributedDataParallel / DataParallel wrapper (itself otherwise)."""
    from torch.nn.parallel import DataParallel, DistributedDataParallel

    return module.module if isinstance(module, (DataParallel, DistributedDataParallel)) else module


def student_output(method: Any, step: int) -> tuple[str, bytes, dict[str, Any]]:
    """The student of ``method`` as it is now (the selected step ``step``): the file name, the
    safetensors bytes and its record entry ``{file, sha256, bytes, step, predict}``."""
    from safetensors.torch import save

    from fasbench.api import Method

    method = _unwrap(method)
    student = _unwrap(method.student)
    # detached contiguous copies: tensors that share storage would make safetensors refuse
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in student.state_dict().items()}
    blob = save(tensors, metadata={"format": "pt", "step": str(int(step))})
    overrides = getattr(type(method), "predict", None) is not Method.predict
    return STUDENT_FILENAME, blob, {
        "file": STUDENT_FILENAME, "sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob),
        "step": int(step), "predict": "method" if overrides else "student",
    }


# ------------------------------------------------------------------------- reading a run


def resolve_device(name: str | None) -> Any:
    import torch

    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise FasbenchError(f"--device {name!r} is not a device; use cpu, cuda, cuda:N or auto") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise FasbenchError(f"--device {name!r} asked for CUDA but torch sees no GPU; use --device cpu")
    return dev


def read_run_record(run_dir: str | Path) -> Any:
    """The complete record of ``run_dir`` (a run directory or its ``record.json``)."""
    from fasbench.records import RECORD_FILENAME, read_record

    path = Path(run_dir)
    if path.is_dir():
        path = path / RECORD_FILENAME
    if not path.is_file():
        raise FasbenchError(f"{run_dir}: no {RECORD_FILENAME} here; give a finished run directory "
                            "(runs/PROTOCOL/METHOD/TASK/seedN)")
    rec = read_record(path)
    if rec.status != "complete":
        raise FasbenchError(f"{path}: the run is {rec.status!r}, not complete; finish it first (fasbench run ... --resume)")
    return rec


def saved_student(rec: Any) -> dict[str, Any]:
    """The record's ``components.student.saved`` entry (a FasbenchError if it has none)."""
    extra = rec.components.student.model_extra or {}
    saved = extra.get("saved")
    if not isinstance(saved, dict) or not saved.get("file") or not saved.get("sha256"):
        raise FasbenchError(f"{rec.source}: the record names no saved student weights (a run of an older fasbench, "
                            f"before runs kept {STUDENT_FILENAME}); run the task again with this fasbench")
    if saved.get("predict") == "method":
        raise FasbenchError(f"{rec.source}: method {rec.method!r} overrides predict(), so the student alone does not give "
                            "the scores its record reports; use the method itself (fasbench.api.Method.predict)")
    return saved


def student_file(rec: Any) -> Path:
    """The run's ``student.safetensors``, checked against the sha256 its record names."""
    from fasbench.weights import sha256_file

    saved = saved_student(rec)
    path = Path(rec.source).parent / str(saved["file"])
    if not path.is_file():
        raise FasbenchError(f"{path} is missing (the record {rec.source} names it); it is written with the record at the "
                            "end of a run: run the task again")
    digest = sha256_file(path)
    if digest != saved["sha256"]:
        raise FasbenchError(f"{path}: sha256 {digest[:12]}... differs from the record's {str(saved['sha256'])[:12]}...; "
                            "the file was changed or replaced after the run")
    return path


def build_student(config: dict[str, Any], device: Any = "cpu") -> Any:
    """The run's student, built from its recorded config (random weights; no pretrained download)."""
    import torch
    from omegaconf import OmegaConf

    from fasbench.api import Context

    cfg = OmegaConf.create(config)
    scfg = OmegaConf.to_container(cfg.student, resolve=True)
    if "pretrained" in scfg:  # every tensor is replaced by the run's weights: no download
        scfg["pretrained"] = False
    scfg.pop("weights", None)  # the weights are loaded by the caller
    ctx = Context(cfg=cfg, domains=list(cfg.get("domains") or []), device=torch.device(device))
    return ctx.build_student(OmegaConf.create(scfg))


@dataclass
class LoadedStudent:
    """A run's student in eval mode with what scoring needs to know about the run."""

    record: Any
    student: Any
    device: Any
    crop_size: int
    prep: Any  # fasbench.data.prepare.PrepConfig: how the run's frames were cut
    weights: Path
    threshold: float
    level: str


def prep_config(config: dict[str, Any]) -> Any:
    """How the run's frames were prepared: a real-data run's ``data.preprocess``; for a dataset
    without one (the synthetic world) the default preparation at the dataset's stored frame size
    (``data.image_size``) and its frames per video."""
    from fasbench.data.prepare import PrepConfig

    data = dict(config.get("data") or {})
    if isinstance(data.get("preprocess"), dict):
        return PrepConfig.from_mapping(data["preprocess"])
    keys: dict[str, Any] = {}
    size = data.get("image_size") or data.get("crop_size")
    if isinstance(size, int):
        keys["size"] = max(16, int(size))
    if isinstance(data.get("frames_per_video"), int) and data["frames_per_video"] >= 1:
        keys["frames_per_video"] = int(data["frames_per_video"])
    return PrepConfig.from_mapping(keys)


def load_student(run_dir: str | Path, device: str | None = "cpu") -> LoadedStudent:
    """Rebuild a finished run's student with the weights of its selected step."""
    from safetensors.torch import load_file

    rec = read_run_record(run_dir)
    path = student_file(rec)
    dev = resolve_device(device)
    student = build_student(rec.config, dev)
    state = load_file(str(path), device="cpu")
    try:
        student.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise FasbenchError(f"{path} does not fit the student the record describes "
                            f"({str(exc).splitlines()[0][:160]})") from None
    student.to(dev).eval()
    crop = int(rec.config["data"]["crop_size"])
    return LoadedStudent(rec, student, dev, crop, prep_config(rec.config), path,
                         float(rec.val.threshold), rec.val.level)


# ------------------------------------------------------------------------- scoring


def live_probability(student: Any, x01: Any) -> Any:
    """``softmax(logits)[:, 1]`` of [0, 1] RGB images (:meth:`fasbench.api.Method.predict`)."""
    import torch

    with torch.inference_mode(), torch.autocast(x01.device.type, enabled=False):
        return student.logits(x01).float().softmax(dim=1)[:, 1]


def to_input(crops: Any, crop_size: int, device: Any) -> Any:
    """uint8 (N, S, S, 3) crops -> the evaluation input: centre crop to ``crop_size``, [0, 1] NCHW."""
    import numpy as np
    import torch

    from fasbench.data.loader import Preprocess

    pre = Preprocess(crop_size=int(crop_size), hflip=False, random_crop=False, color_jitter=0.0)
    return pre(torch.from_numpy(np.ascontiguousarray(crops)), device, train=False)


@dataclass
class FileScore:
    """What :func:`score_file` found for one image or video."""

    path: str
    ok: bool
    error: str = ""
    frames: list[int] = field(default_factory=list)  # sampled frame indices
    frame_probabilities: list[float] = field(default_factory=list)
    live_probability: float | None = None
    faces: int = 0  # sampled frames with a face found
    no_face: int = 0
    fallback: str = ""  # how frames without a face were cropped (nearest, center), as in preparation
    detect: bool = True
    rotation: int = 0
    flip: bool = False


def _crops_without_detection(path: str, prep: Any) -> dict[str, Any]:
    """Preparation's decoding and frame sampling, each frame's centred square as the crop."""
    import numpy as np

    from fasbench.data import faces
    from fasbench.data.prepare import sample_indices
    from fasbench.data.video import VideoError, decode, is_image, probe_frames

    rec: dict[str, Any] = {"status": "ok", "reason": "", "faces": 0, "no_face": 0, "fallback": "", "sampled": []}
    try:
        want = [0] if is_image(path) else sample_indices(probe_frames(path), prep)
        dec = decode(path, want)
        if not dec.frames:
            raise VideoError("no frame could be decoded")
        have = sorted(dec.frames)
        sampled = [k if k in dec.frames else min(have, key=lambda h: abs(h - k)) for k in want]
        rec.update(sampled=sampled, rotation=dec.rotation, flip=dec.flip,
                   crops=np.stack([faces.crop(dec.frames[k], None, prep.face) for k in sampled]))
    except VideoError as exc:
        rec.update(status="skipped", reason=str(exc))
    return rec


def score_file(loaded: LoadedStudent, path: str | Path, *, detect: bool = True, frames: int | None = None) -> FileScore:
    """Score one image or video (see the module docstring); never raises for a bad file."""
    from fasbench.data.prepare import run_video
    from fasbench.data.video import VideoError, is_image, probe_frames

    path = str(path)
    out = FileScore(path=path, ok=False, detect=detect)
    if not Path(path).is_file():
        out.error = "no such file"
        return out
    prep = loaded.prep if frames is None else replace(loaded.prep, frames_per_video=int(frames))
    if detect:
        try:
            n = 1 if is_image(path) else probe_frames(path)
        except VideoError as exc:
            out.error = f"cannot be read ({exc})"
            return out
        rec = run_video(path, n, 1 if is_image(path) else prep.frames_per_video, prep)
    else:
        rec = _crops_without_detection(path, prep)
    if rec["status"] != "ok":
        out.error = f"cannot be read ({rec['reason']})"
        return out
    out.frames = [int(k) for k in rec["sampled"]]
    out.faces, out.no_face, out.fallback = int(rec["faces"]), int(rec["no_face"]), str(rec["fallback"])
    out.rotation, out.flip = int(rec.get("rotation", 0)), bool(rec.get("flip", False))
    if detect and out.faces == 0:
        f = prep.face
        out.error = (f"no face found in {'the image' if len(out.frames) == 1 else f'any of the {len(out.frames)} sampled frames'} "
                     f"(MTCNN, probability >= {f.threshold}, faces >= {f.min_face} px at <= {f.detect_max_side} px); "
                     "if the picture already is a face crop, score it with --no-detect")
        return out
    x = to_input(rec["crops"], loaded.crop_size, loaded.device)
    probs = live_probability(loaded.student, x).double().cpu().numpy()
    out.frame_probabilities = [float(p) for p in probs]
    out.live_probability = float(probs.mean()) if len(probs) else None
    out.ok = out.live_probability is not None
    return out
