"""Teachers for the synthetic world, pretrained on tasks of their own kind.

The real DTDA teachers were trained on large face corpora for other tasks (face recognition,
face generation) and never saw anti-spoofing labels nor the benchmark's datasets. Their
synthetic-world stand-ins follow the same rule:

- The **corpus** is the synthetic world's teacher domain ``T``
  (:data:`fasbench.data.synthetic.TEACHER_DOMAINS`): its own camera, light and people, listed
  by no protocol; live videos only (no print, no replay, no live/spoof label). No frame of a
  benchmark domain (M, C, I, O) reaches pretraining; :func:`_corpus` refuses any other domain.
  A fifth of its identities (``heldout_subjects``) is never trained on: the reported metrics
  are measured on them.
- **Input size.** Frames are rendered at ``frame_size`` (128) and the teachers see random
  ``image_size`` crops (112) with horizontal flips, made by the student's own
  :class:`fasbench.data.loader.Preprocess`: the demo world (``data.image_size=128``,
  ``data.crop_size=112``) hands the teachers 112-px crops, which they take without resizing.
- The **perceptual** teacher, a scaled-down IResNet, learns identity recognition with the
  ArcFace additive angular margin loss. Reported: top-1 identification of new identities
  (gallery: one video per identity; probes: the frames of its other videos).
- The **generative** teacher, a scaled-down diffusers ``VQModel``, learns image reconstruction
  (L1 + VQ commitment loss). Reported: PSNR of encoder + decoder on the held-out identities.

:func:`teacher_quality` (``fasbench teachers quality``) measures both again from the saved
weights, on the teacher domain's held-out identities and, for information, on live faces of the
benchmark domains (never used in training).

Both are written as hub-style folders (``model.safetensors`` + ``config.json`` with the
architecture + ``pretrain.json`` with the metrics) under ``$FASBENCH_CACHE/teachers/<key>/``,
where the key hashes the recipe below. They are weights like any other: the URIs
``dtda-synthetic:perceptual`` and ``dtda-synthetic:generative`` (the teachers' registered
defaults on the synthetic dataset) resolve to their ``model.safetensors`` through this
plugin's ``resolve_weights`` hook (:func:`resolve_synthetic_uri`), pretraining them on the
first resolve. A file lock beside the folder makes concurrent first resolves (two runs on one
cache) pretrain once.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: Bumped when the recipe or the code behind it changes what is produced. 3: the teacher domain
#: T of the synthetic world (no benchmark domain), 112-px crops of 128-px frames, metrics on
#: identities never trained on.
PRETRAIN_VERSION = 3
#: The weights URI scheme of the stand-ins: ``dtda-synthetic:<stand-in>``.
SCHEME = "dtda-synthetic"
#: The stand-ins (the task each was pretrained on: identity recognition, reconstruction).
STAND_INS = ("perceptual", "generative")


@dataclass
class PretrainConfig:
    # corpus: the teacher domain T of a world of its own (no protocol lists T; its people are new)
    world_seed: int = 9001
    domains: str = "T"
    subjects: int = 160  # identities
    heldout_subjects: int | None = None  # never trained on, for the metrics; None: a fifth (32 of 160)
    live_videos: int = 3  # per subject
    frames_per_video: int = 4
    #: the teachers' input side: the demo's crop (data.crop_size=112), so they take its crops as they are
    image_size: int = 112
    #: the rendered frame side; None: image_size * 8 / 7 (128 for 112: data.image_size of the demo)
    frame_size: int | None = None
    # perceptual teacher: IResNet-18 at quarter width, ArcFace loss
    arc_depth: int = 18
    arc_width: float = 0.25
    arc_embed_dim: int = 128
    arc_margin: float = 0.5
    arc_scale: float = 30.0
    arc_steps: int = 300
    arc_batch: int = 64
    arc_lr: float = 2e-3
    # generative teacher: small VQ-VAE, reconstruction
    vq_width: int = 16
    vq_steps: int = 300
    vq_batch: int = 16
    vq_lr: float = 1e-3
    seed: int = 0
    # CPU float reductions depend on the thread count: a fixed count gives the same teachers (and so
    # the same sha256 in every DTDA record) on machines with any number of cores of one CPU type
    threads: int = 2

    @property
    def frame_side(self) -> int:
        return int(self.frame_size) if self.frame_size is not None else int(round(self.image_size * 8 / 7))

    @property
    def heldout(self) -> int:
        if self.heldout_subjects is not None:
            return int(self.heldout_subjects)
        return max(1, int(round(self.subjects / 5)))

    def key(self) -> str:
        blob = json.dumps({"version": PRETRAIN_VERSION, **asdict(self)}, sort_keys=True).encode()
        return f"synthetic-v{PRETRAIN_VERSION}-{hashlib.sha256(blob).hexdigest()[:12]}"


def default_root(cache_dir: str | os.PathLike | None = None) -> Path:
    from fasbench.util import cache_root

    return cache_root(cache_dir)


def teacher_dirs(cfg: PretrainConfig | None = None, cache_dir=None) -> dict[str, Path]:
    base = default_root(cache_dir) / "teachers" / (cfg or PretrainConfig()).key()
    return {"perceptual": base / "perceptual", "generative": base / "generative"}


def synthetic_uri(stand_in: str) -> str:
    """``"perceptual"`` -> ``"dtda-synthetic:perceptual"``."""
    return f"{SCHEME}:{stand_in}"


def ensure_synthetic_teachers(cfg: PretrainConfig | None = None, cache_dir=None, progress: bool | None = None,
                              force: bool = False) -> dict[str, Path]:
    """The teacher folders, pretraining them first if they are not cached.

    Pretraining holds a file lock (``<key>.lock`` beside the folder): a second process that
    finds the teachers missing waits for the first and then uses its result.
    """
    cfg = cfg or PretrainConfig()
    dirs = teacher_dirs(cfg, cache_dir)

    def missing() -> list[str]:
        return [r for r, d in dirs.items() if force or not (d / "model.safetensors").is_file()]

    if not missing():
        return dirs
    from filelock import FileLock, Timeout

    base = dirs["perceptual"].parent
    base.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(base.with_name(f"{base.name}.lock")))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"fasbench-dtda: another process is pretraining the synthetic-world teachers in {base}; waiting ...",
              file=sys.stderr)
        lock.acquire()
    try:
        todo = missing()
        if todo:
            print(f"fasbench-dtda: pretraining the synthetic-world {' and '.join(todo)} teacher(s) once "
                  f"(cached in {base}) ...", file=sys.stderr)
            pretrain(cfg, cache_dir=cache_dir, roles=todo, progress=progress)
    finally:
        lock.release()
    return dirs


def resolve_synthetic_uri(uri: str) -> str | None:
    """``dtda-synthetic:perceptual`` / ``dtda-synthetic:generative`` -> the local
    ``model.safetensors`` of that stand-in (default recipe, cache root :func:`default_root`),
    pretrained first if missing; None for any other scheme (the ``resolve_weights`` hook)."""
    scheme, sep, stand_in = str(uri).strip().partition(":")
    if not sep or scheme.lower() != SCHEME:
        return None
    if stand_in not in STAND_INS:
        from fasbench.errors import FasbenchError

        raise FasbenchError(
            f"{uri}: no synthetic-world teacher {stand_in!r}; "
            f"{SCHEME}: has {', '.join(synthetic_uri(s) for s in STAND_INS)}"
        )
    return str(ensure_synthetic_teachers()[stand_in] / "model.safetensors")


@dataclass
class Corpus:
    """The teachers' pretraining frames: live videos of the teacher domain only."""

    images: Any  # uint8 (N, frame, frame, 3)
    manifest: Any  # pandas DataFrame, one row per frame (fasbench manifest columns)
    labels: Any  # int64 (N,): identity index 0..n_ids-1 of trained identities, -1 for held-out ones
    train: Any  # bool (N,): frames of trained identities
    heldout: Any  # bool (N,): frames of held-out identities (never trained on)
    n_ids: int  # trained identities


def corpus_world(cfg: PretrainConfig):
    """The :class:`fasbench.data.synthetic.SyntheticConfig` of the pretraining corpus; a domain
    that a protocol uses is refused (one line)."""
    from fasbench.data.synthetic import TEACHER_DOMAINS, SyntheticConfig

    bad = [d for d in cfg.domains if d not in TEACHER_DOMAINS]
    if bad or not cfg.domains:
        from fasbench.errors import FasbenchError

        raise FasbenchError(
            f"teacher pretraining: domains={cfg.domains!r}; the synthetic teachers are pretrained on the "
            f"teacher domain(s) {', '.join(TEACHER_DOMAINS)} only (no benchmark domain may reach them)"
        )
    return SyntheticConfig(seed=cfg.world_seed, domains=cfg.domains, subjects=cfg.subjects,
                           live_videos=cfg.live_videos, print_videos=0, replay_videos=0,
                           frames_per_video=cfg.frames_per_video, image_size=cfg.frame_side)


def _corpus(cfg: PretrainConfig, progress: bool | None, cache_dir=None) -> Corpus:
    import numpy as np

    from fasbench.data.synthetic import load_or_generate

    if not 1 <= cfg.heldout < cfg.subjects:
        from fasbench.errors import FasbenchError

        raise FasbenchError(f"teacher pretraining: heldout_subjects={cfg.heldout} must be in [1, subjects - 1] "
                            f"(subjects={cfg.subjects})")
    world = corpus_world(cfg)
    fs = load_or_generate(world, cache_dir=cache_dir,
                          progress=bool(progress) if progress is not None else sys.stderr.isatty())
    m = fs.manifest
    # the subject index within its domain ("T-s007" -> 6): the last `heldout` subjects are held out
    index = m["subject"].str.rsplit("-s", n=1).str[1].astype(int).to_numpy() - 1
    heldout = index >= cfg.subjects - cfg.heldout
    train = ~heldout
    ident = (m["domain"] + ":" + m["subject"]).to_numpy()
    names, inverse = np.unique(ident[train], return_inverse=True)
    labels = np.full(len(m), -1, dtype=np.int64)
    labels[train] = inverse
    return Corpus(images=fs.images, manifest=m, labels=labels, train=train, heldout=heldout, n_ids=len(names))


def _batches(rng, idx, batch):
    while True:
        perm = rng.permutation(idx)
        for i in range(0, len(perm) - batch + 1, batch):
            yield perm[i:i + batch]


def _views(images, size: int, train: bool, gen=None):
    """uint8 NHWC frames -> float NCHW in [0, 1] at ``size``: the student's own preprocessing (a
    random crop and a horizontal flip in training, the centre crop otherwise)."""
    import numpy as np
    import torch

    from fasbench.data.loader import Preprocess

    return Preprocess(size)(torch.from_numpy(np.ascontiguousarray(images)), torch.device("cpu"), train=train,
                            generator=gen)


def _save(folder: Path, module, config: dict[str, Any], metrics: dict[str, Any]) -> None:
    from safetensors.torch import save_model

    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_model(module, str(tmp / "model.safetensors"))
    (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    (tmp / "pretrain.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)


def pretrain(cfg: PretrainConfig | None = None, cache_dir=None, roles=("perceptual", "generative"),
             progress: bool | None = None) -> dict[str, dict[str, Any]]:
    """Pretrain the requested synthetic teachers; returns their metrics."""
    import torch

    cfg = cfg or PretrainConfig()
    dirs = teacher_dirs(cfg, cache_dir)
    corpus = _corpus(cfg, progress, cache_dir)
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    # pretraining seeds torch's global generator; the caller's state (a run being built, whose
    # student is initialised next) must not depend on whether the teachers were cached already
    with torch.random.fork_rng(devices=[]):
        return _pretrain_roles(cfg, dirs, corpus, roles, progress, threads)


def _pretrain_roles(cfg, dirs, corpus: Corpus, roles, progress, threads) -> dict[str, dict[str, Any]]:
    import torch

    out = {}
    try:
        if "perceptual" in roles:
            out["perceptual"] = _pretrain_arcface(cfg, corpus, dirs["perceptual"], progress)
        if "generative" in roles:
            out["generative"] = _pretrain_vq(cfg, corpus, dirs["generative"], progress)
    finally:
        torch.set_num_threads(threads)
    return out


class ArcMarginHead:
    """ArcFace additive angular margin (Deng et al., CVPR 2019): logits s*cos(theta + m) for the
    true class, s*cos(theta) for the others, over L2-normalised embeddings and class centres."""

    def __init__(self, dim: int, classes: int, margin: float, scale: float, gen) -> None:
        import torch

        self.weight = torch.nn.Parameter(torch.randn(classes, dim, generator=gen) * 0.01)
        self.margin, self.scale = margin, scale

    def __call__(self, emb, labels):
        import torch
        import torch.nn.functional as F

        cos = F.linear(F.normalize(emb), F.normalize(self.weight)).clamp(-1 + 1e-7, 1 - 1e-7)
        theta = torch.acos(cos)
        target = torch.cos(theta + self.margin)
        # keep the margin logit monotonic past theta > pi - m (standard "easy margin" fallback)
        target = torch.where(theta < math.pi - self.margin, target, cos - self.margin * math.sin(self.margin))
        onehot = F.one_hot(labels, cos.shape[1]).bool()
        return self.scale * torch.where(onehot, target, cos)


def identification(emb, subjects, videos) -> dict[str, Any]:
    """Closed-set identification by nearest gallery identity (cosine).

    ``emb`` (N, D) embeddings with their ``subjects`` and ``videos`` (N,). The gallery of a subject
    is the normalised mean embedding of the frames of its first video (sorted by video id); every
    frame of its other videos is a probe. Returns top-1, the identity and probe counts, chance."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    emb = F.normalize(torch.as_tensor(emb, dtype=torch.float32), dim=1)
    subjects, videos = np.asarray(subjects), np.asarray(videos)
    names = np.unique(subjects)
    gallery, probe = [], np.zeros(len(subjects), dtype=bool)
    for s in names:
        mine = subjects == s
        first = np.unique(videos[mine])[0]
        g = mine & (videos == first)
        gallery.append(F.normalize(emb[torch.from_numpy(g)].mean(0), dim=0))
        probe |= mine & (videos != first)
    if not probe.any():
        return {"top1": None, "identities": int(len(names)), "probes": 0, "chance": round(1 / len(names), 4)}
    pred = (emb[torch.from_numpy(probe)] @ torch.stack(gallery).T).argmax(1).numpy()
    top1 = float((names[pred] == subjects[probe]).mean())
    return {"top1": round(top1, 4), "identities": int(len(names)), "probes": int(probe.sum()),
            "chance": round(1 / len(names), 4)}


def _embed(net, images, size: int, batch: int = 128):
    import torch

    with torch.no_grad():
        return torch.cat([net((_views(images[i:i + batch], size, train=False) - 0.5) / 0.5)
                          for i in range(0, len(images), batch)])


def _pretrain_arcface(cfg, corpus: Corpus, folder: Path, progress) -> dict[str, Any]:
    import numpy as np
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    from fasbench_dtda.iresnet import IResNet

    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    arch = {"depth": cfg.arc_depth, "width": cfg.arc_width, "embed_dim": cfg.arc_embed_dim, "input_size": cfg.image_size}
    net = IResNet(**arch)
    head = ArcMarginHead(cfg.arc_embed_dim, corpus.n_ids, cfg.arc_margin, cfg.arc_scale, gen)
    params = list(net.parameters()) + [head.weight]
    opt = torch.optim.AdamW(params, lr=cfg.arc_lr, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.arc_lr, total_steps=cfg.arc_steps, pct_start=0.1)
    train_idx = np.flatnonzero(corpus.train)
    it = _batches(rng, train_idx, min(cfg.arc_batch, len(train_idx)))
    net.train()
    t0 = time.perf_counter()
    bar = tqdm(range(cfg.arc_steps), desc="perceptual teacher (ArcFace)", disable=_disable(progress), leave=False)
    for _ in bar:
        b = np.sort(next(it))
        x = (_views(corpus.images[b], cfg.image_size, train=True, gen=gen) - 0.5) / 0.5
        y = torch.from_numpy(corpus.labels[b])
        loss = F.cross_entropy(head(net(x), y), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{float(loss.detach()):.3f}", refresh=False)
    net.eval()
    hi = np.flatnonzero(corpus.heldout)
    m = corpus.manifest.iloc[hi]
    ident = identification(_embed(net, corpus.images[hi], cfg.image_size), m["subject"].to_numpy(),
                           m["video_id"].to_numpy())
    metrics = {"task": "identity recognition (ArcFace loss)", "domains": cfg.domains, "identities": int(corpus.n_ids),
               "train_images": int(len(train_idx)), "heldout_identities": ident["identities"],
               "heldout_probes": ident["probes"], "heldout_top1": ident["top1"], "chance": ident["chance"],
               "input_size": cfg.image_size, "final_loss": round(float(loss.detach()), 4),
               "steps": cfg.arc_steps, "seconds": round(time.perf_counter() - t0, 1), "recipe": asdict(cfg),
               "version": PRETRAIN_VERSION}
    _save(folder, net, {"architecture": "iresnet", **arch}, metrics)
    return metrics


def reconstruction_psnr(model, images, size: int, batch: int = 64) -> float:
    """PSNR (dB, pixels in [0, 1]) of a ``VQModel``'s reconstruction (encoder, codebook, decoder)
    of the centre ``size`` crops of uint8 frames."""
    import torch

    se, n = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = _views(images[i:i + batch], size, train=False) * 2 - 1
            se += float(((model(x).sample.clamp(-1, 1) - x) / 2).pow(2).sum())
            n += x.numel()
    return 10 * math.log10(1 / max(se / max(n, 1), 1e-12))


def _pretrain_vq(cfg, corpus: Corpus, folder: Path, progress) -> dict[str, Any]:
    import numpy as np
    import torch
    import torch.nn.functional as F
    from diffusers import VQModel
    from tqdm.auto import tqdm

    from fasbench_dtda.vq import small_vq_config

    torch.manual_seed(cfg.seed + 1)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    rng = np.random.default_rng(cfg.seed + 1)
    config = small_vq_config(width=cfg.vq_width, sample_size=cfg.image_size)
    model = VQModel(**config)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.vq_lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.vq_lr, total_steps=cfg.vq_steps, pct_start=0.1)
    train_idx = np.flatnonzero(corpus.train)
    it = _batches(rng, train_idx, min(cfg.vq_batch, len(train_idx)))
    t0 = time.perf_counter()
    with torch.no_grad():  # codebook from encoder outputs (a tiny random codebook collapses to the mean image)
        pick = np.sort(rng.choice(train_idx, size=min(len(train_idx), 256), replace=False))
        z = model.encode(_views(corpus.images[pick], cfg.image_size, train=False) * 2 - 1).latents
        z = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        emb = model.quantize.embedding.weight
        emb.copy_(z[torch.randperm(len(z), generator=gen)[: emb.shape[0]]])
    model.eval()
    hi = np.flatnonzero(corpus.heldout)
    hi = hi[np.linspace(0, len(hi) - 1, min(len(hi), 256)).round().astype(int)]  # spread over the identities
    psnr_init = reconstruction_psnr(model, corpus.images[hi], cfg.image_size)
    model.train()
    bar = tqdm(range(cfg.vq_steps), desc="generative teacher (VQ-VAE)", disable=_disable(progress), leave=False)
    for _ in bar:
        b = np.sort(next(it))
        x = _views(corpus.images[b], cfg.image_size, train=True, gen=gen) * 2 - 1
        out = model(x)
        rec = F.l1_loss(out.sample, x)
        loss = rec + out.commit_loss.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(l1=f"{float(rec.detach()):.3f}", refresh=False)
    model.eval()
    psnr = reconstruction_psnr(model, corpus.images[hi], cfg.image_size)
    mean_img = sum(_views(corpus.images[train_idx[i:i + 256]], cfg.image_size, train=False).sum(0)
                   for i in range(0, len(train_idx), 256)) / len(train_idx)
    x_held = _views(corpus.images[hi], cfg.image_size, train=False)
    mse_mean = float((mean_img[None] - x_held).pow(2).mean())  # reference: predict the mean training image
    metrics = {"task": "image reconstruction (VQ-VAE, L1 + commitment)", "domains": cfg.domains,
               "train_images": int(len(train_idx)), "heldout_identities": int(corpus.manifest["subject"].iloc[hi].nunique()),
               "heldout_images": int(len(hi)), "heldout_psnr_db": round(psnr, 2), "untrained_psnr_db": round(psnr_init, 2),
               "mean_image_psnr_db": round(10 * math.log10(1 / max(mse_mean, 1e-12)), 2),
               "input_size": cfg.image_size, "final_l1": round(float(rec.detach()), 4),
               "steps": cfg.vq_steps, "seconds": round(time.perf_counter() - t0, 1), "recipe": asdict(cfg),
               "version": PRETRAIN_VERSION}
    _save(folder, model, dict(config), metrics)
    return metrics


def teacher_quality(cfg: PretrainConfig | None = None, cache_dir=None, benchmark_subjects: int = 32,
                    benchmark_seed: int = 0, progress: bool | None = None) -> dict[str, Any]:
    """The stand-ins' quality, measured from their saved weights (pretrained first if missing).

    - ``teacher_domain``: the held-out identities of the teacher domain (never trained on):
      identification top-1 of the perceptual teacher (:func:`identification`: gallery = an
      identity's first video, probes = the frames of its other videos) and reconstruction PSNR
      of the generative one (its full ``VQModel``: encoder, codebook, decoder).
    - ``benchmark_domains``, for information: the same two figures on the live videos of the first
      ``benchmark_subjects`` subjects of each benchmark domain of the world ``benchmark_seed``
      (the default world's seed is 0; a subject's frames do not depend on the world's size, so these
      are the default world's frames). Never used in training.

    The perceptual teacher runs through :class:`fasbench_dtda.teachers.ArcFaceTeacher`, as DTDA
    runs it, on the centre ``image_size`` crops of the frames.
    """
    import numpy as np
    import torch
    from diffusers import VQModel
    from safetensors.torch import load_model

    from fasbench.data.synthetic import BENCHMARK_DOMAINS, SyntheticConfig, load_or_generate
    from fasbench_dtda.options import ArcFaceOptions
    from fasbench_dtda.teachers import ArcFaceTeacher

    cfg = cfg or PretrainConfig()
    dirs = ensure_synthetic_teachers(cfg, cache_dir=cache_dir, progress=progress)
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        arc = ArcFaceTeacher(ArcFaceOptions(weights=f"local-dir:{dirs['perceptual']}"))
        vq = VQModel(**json.loads((dirs["generative"] / "config.json").read_text()))
        load_model(vq, str(dirs["generative"] / "model.safetensors"))
        vq.eval()

        def measure(images, manifest) -> dict[str, Any]:
            with torch.no_grad():
                emb = torch.cat([arc.features(_views(images[i:i + 128], cfg.image_size, train=False),
                                              names=("embedding",))["embedding"] for i in range(0, len(images), 128)])
            ident = identification(emb, manifest["subject"].to_numpy(), manifest["video_id"].to_numpy())
            return {"perceptual": ident,
                    "generative": {"psnr_db": round(reconstruction_psnr(vq, images, cfg.image_size), 2),
                                   "images": int(len(images))}}

        corpus = _corpus(cfg, progress, cache_dir)
        hi = np.flatnonzero(corpus.heldout)
        out: dict[str, Any] = {
            "teachers": {r: {"folder": str(d), "sha256": hashlib.sha256((d / "model.safetensors").read_bytes()).hexdigest()}
                         for r, d in dirs.items()},
            "input_size": cfg.image_size, "frame_size": cfg.frame_side,
            "teacher_domain": {"domains": cfg.domains, "world_seed": cfg.world_seed,
                               "trained_identities": int(corpus.n_ids),
                               **measure(corpus.images[hi], corpus.manifest.iloc[hi])},
        }
        world = SyntheticConfig(seed=benchmark_seed, domains="".join(BENCHMARK_DOMAINS), subjects=benchmark_subjects,
                                live_videos=2, print_videos=0, replay_videos=0, frames_per_video=cfg.frames_per_video,
                                image_size=cfg.frame_side)
        fs = load_or_generate(world, cache_dir=cache_dir,
                              progress=bool(progress) if progress is not None else sys.stderr.isatty())
        bench: dict[str, Any] = {}
        for d in BENCHMARK_DOMAINS:
            rows = np.flatnonzero((fs.manifest["domain"] == d).to_numpy())
            bench[d] = measure(fs.images[rows], fs.manifest.iloc[rows])
        out["benchmark_domains"] = {"world_seed": benchmark_seed, "subjects_per_domain": benchmark_subjects, **bench}
        out["benchmark_mean"] = {
            "perceptual_top1": round(float(np.mean([bench[d]["perceptual"]["top1"] for d in BENCHMARK_DOMAINS])), 4),
            "generative_psnr_db": round(float(np.mean([bench[d]["generative"]["psnr_db"] for d in BENCHMARK_DOMAINS])), 2),
        }
    finally:
        torch.set_num_threads(threads)
    return out


def _disable(progress: bool | None) -> bool | None:
    return None if progress is None else not progress
