"""Teachers for the synthetic world, pretrained on tasks of their own kind.

The real DTDA teachers were trained on large face corpora for other tasks (face recognition,
face generation) and never saw anti-spoofing labels. Their synthetic-world stand-ins follow
the same rule:

- The **corpus** is a separate synthetic world: another world seed, so different people from
  every benchmark world; live videos only (no print, no replay, no live/spoof label); all four
  capture domains, as web-scale face collections span many cameras.
- The **perceptual** teacher, a scaled-down IResNet, learns identity recognition with the
  ArcFace additive angular margin loss. Reported: top-1 identification accuracy on held-out
  videos of the training identities.
- The **generative** teacher, a scaled-down diffusers ``VQModel``, learns image reconstruction
  (L1 + VQ commitment loss). Reported: PSNR on held-out videos.

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

#: Bumped when the recipe or the code behind it changes what is produced.
PRETRAIN_VERSION = 2
#: The weights URI scheme of the stand-ins: ``dtda-synthetic:<stand-in>``.
SCHEME = "dtda-synthetic"
#: The stand-ins (the task each was pretrained on: identity recognition, reconstruction).
STAND_INS = ("perceptual", "generative")


@dataclass
class PretrainConfig:
    # corpus: a world of its own (seed 9001: people never seen in the benchmark worlds)
    world_seed: int = 9001
    domains: str = "MCIO"
    subjects: int = 32  # per domain -> 128 identities
    live_videos: int = 3  # per subject; the last one is held out for the reported metric
    frames_per_video: int = 4
    image_size: int = 64
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


def _corpus(cfg: PretrainConfig, progress: bool | None):
    import numpy as np

    from fasbench.data.synthetic import SyntheticConfig, load_or_generate

    world = SyntheticConfig(seed=cfg.world_seed, domains=cfg.domains, subjects=cfg.subjects,
                            live_videos=cfg.live_videos, print_videos=0, replay_videos=0,
                            frames_per_video=cfg.frames_per_video, image_size=cfg.image_size)
    fs = load_or_generate(world, progress=bool(progress) if progress is not None else sys.stderr.isatty())
    m = fs.manifest
    ident = (m["domain"] + ":" + m["subject"].astype(str)).to_numpy()
    names, labels = np.unique(ident, return_inverse=True)
    # hold out each identity's last live video
    vid_rank = m.groupby(ident)["video_id"].rank(method="dense").to_numpy()
    held = vid_rank == vid_rank.max()
    return fs.images, labels.astype(np.int64), held, len(names)


def _batches(rng, idx, batch):
    while True:
        perm = rng.permutation(idx)
        for i in range(0, len(perm) - batch + 1, batch):
            yield perm[i:i + batch]


def _augment(x, gen):
    """uint8 NHWC -> float NCHW in [0, 1]: random 7/8 crop resized back, horizontal flip."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(x).permute(0, 3, 1, 2).float().div_(255)
    b, _, h, w = x.shape
    c = int(round(h * 7 / 8))
    oy, ox = (int(v) for v in torch.randint(0, h - c + 1, (2,), generator=gen))
    x = F.interpolate(x[:, :, oy:oy + c, ox:ox + c], size=(h, w), mode="bilinear", align_corners=False)
    flip = torch.rand(b, generator=gen) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


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
    images, labels, held, n_ids = _corpus(cfg, progress)
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    # pretraining seeds torch's global generator; the caller's state (a run being built, whose
    # student is initialised next) must not depend on whether the teachers were cached already
    with torch.random.fork_rng(devices=[]):
        return _pretrain_roles(cfg, dirs, images, labels, held, n_ids, roles, progress, threads)


def _pretrain_roles(cfg, dirs, images, labels, held, n_ids, roles, progress, threads) -> dict[str, dict[str, Any]]:
    import torch

    out = {}
    try:
        if "perceptual" in roles:
            out["perceptual"] = _pretrain_arcface(cfg, images, labels, held, n_ids, dirs["perceptual"], progress)
        if "generative" in roles:
            out["generative"] = _pretrain_vq(cfg, images, held, dirs["generative"], progress)
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


def _pretrain_arcface(cfg, images, labels, held, n_ids, folder: Path, progress) -> dict[str, Any]:
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
    head = ArcMarginHead(cfg.arc_embed_dim, n_ids, cfg.arc_margin, cfg.arc_scale, gen)
    params = list(net.parameters()) + [head.weight]
    opt = torch.optim.AdamW(params, lr=cfg.arc_lr, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.arc_lr, total_steps=cfg.arc_steps, pct_start=0.1)
    train_idx = np.flatnonzero(~held)
    it = _batches(rng, train_idx, cfg.arc_batch)
    net.train()
    t0 = time.perf_counter()
    bar = tqdm(range(cfg.arc_steps), desc="perceptual teacher (ArcFace)", disable=_disable(progress), leave=False)
    for _ in bar:
        b = next(it)
        x = (_augment(images[np.sort(b)], gen) - 0.5) / 0.5
        y = torch.from_numpy(labels[np.sort(b)])
        loss = F.cross_entropy(head(net(x), y), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{float(loss.detach()):.3f}", refresh=False)
    net.eval()
    with torch.no_grad():
        hi = np.flatnonzero(held)
        emb = torch.cat([net((torch.from_numpy(images[hi[i:i + 256]]).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5)
                         for i in range(0, len(hi), 256)])
        pred = F.linear(F.normalize(emb), F.normalize(head.weight)).argmax(1).numpy()
    acc = float((pred == labels[hi]).mean())
    metrics = {"task": "identity recognition (ArcFace loss)", "identities": int(n_ids),
               "train_images": int(len(train_idx)), "heldout_images": int(len(hi)),
               "heldout_top1": round(acc, 4), "chance": round(1 / n_ids, 4), "final_loss": round(float(loss.detach()), 4),
               "steps": cfg.arc_steps, "seconds": round(time.perf_counter() - t0, 1), "recipe": asdict(cfg),
               "version": PRETRAIN_VERSION}
    _save(folder, net, {"architecture": "iresnet", **arch}, metrics)
    return metrics


def _pretrain_vq(cfg, images, held, folder: Path, progress) -> dict[str, Any]:
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
    train_idx = np.flatnonzero(~held)
    it = _batches(rng, train_idx, cfg.vq_batch)
    t0 = time.perf_counter()
    with torch.no_grad():  # codebook from encoder outputs (a tiny random codebook collapses to the mean image)
        pick = np.sort(rng.choice(train_idx, size=min(len(train_idx), 256), replace=False))
        z = model.encode(torch.from_numpy(images[pick]).permute(0, 3, 1, 2).float() / 255 * 2 - 1).latents
        z = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        emb = model.quantize.embedding.weight
        emb.copy_(z[torch.randperm(len(z), generator=gen)[: emb.shape[0]]])
    model.eval()
    hi = np.flatnonzero(held)[:256]
    x_held = torch.from_numpy(images[hi]).permute(0, 3, 1, 2).float() / 255 * 2 - 1

    def heldout_psnr() -> float:
        with torch.no_grad():
            mse = float(((model(x_held).sample.clamp(-1, 1) - x_held) / 2).pow(2).mean())
        return 10 * math.log10(1 / max(mse, 1e-12))

    psnr_init = heldout_psnr()
    model.train()
    bar = tqdm(range(cfg.vq_steps), desc="generative teacher (VQ-VAE)", disable=_disable(progress), leave=False)
    for _ in bar:
        b = np.sort(next(it))
        x = _augment(images[b], gen) * 2 - 1
        out = model(x)
        rec = F.l1_loss(out.sample, x)
        loss = rec + out.commit_loss.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(l1=f"{float(rec.detach()):.3f}", refresh=False)
    model.eval()
    psnr = heldout_psnr()
    mean_img = torch.from_numpy(images[train_idx].mean(axis=0)).permute(2, 0, 1).float() / 255 * 2 - 1
    mse_mean = float(((mean_img[None] - x_held) / 2).pow(2).mean())  # reference: predict the mean training image
    metrics = {"task": "image reconstruction (VQ-VAE, L1 + commitment)", "train_images": int(len(train_idx)),
               "heldout_images": int(len(hi)), "heldout_psnr_db": round(psnr, 2), "untrained_psnr_db": round(psnr_init, 2),
               "mean_image_psnr_db": round(10 * math.log10(1 / max(mse_mean, 1e-12)), 2),
               "final_l1": round(float(rec.detach()), 4),
               "steps": cfg.vq_steps, "seconds": round(time.perf_counter() - t0, 1), "recipe": asdict(cfg),
               "version": PRETRAIN_VERSION}
    _save(folder, model, dict(config), metrics)
    return metrics


def _disable(progress: bool | None) -> bool | None:
    return None if progress is None else not progress
