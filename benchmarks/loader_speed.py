"""Loader speed: the frame cache (uint8 memmap gather, batched on-device preprocessing) against
the common practice (one JPEG per crop, PIL decode + torchvision transforms per sample).

Both read the same 256x256 face crops, on one core (``torch.set_num_threads(1)``,
``num_workers=0``), so the figures are images/s *per core*. What the data workers do is timed
alone ("worker"), and the device-side part of the cache path (crop/flip/normalise, batched)
is timed on its own on the chosen device.

    python benchmarks/loader_speed.py [--n 2048] [--batch 64] [--device cpu|cuda] [--json]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def make_crops(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Face-like crops: random zooms/shifts of scikit-image's astronaut photo plus sensor noise
    (JPEG-compressible like real face crops, unlike pure noise)."""
    from PIL import Image

    try:
        from skimage import data

        base = Image.fromarray(data.astronaut())
    except ImportError:  # the test extra is not installed: a smooth synthetic picture
        yy, xx = np.mgrid[0:512, 0:512]
        base = Image.fromarray(np.stack([(xx // 2) % 256, (yy // 2) % 256, ((xx + yy) // 4) % 256], -1).astype(np.uint8))
    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        s = int(rng.integers(160, 320))
        x, y = (int(v) for v in rng.integers(0, 512 - s, 2))
        img = np.asarray(base.crop((x, y, x + s, y + s)).resize((size, size), Image.BILINEAR), dtype=np.int16)
        out[i] = np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)
    return out


class JpegDataset(torch.utils.data.Dataset):
    """The common practice: a file per crop, decoded and transformed per sample in the worker."""

    def __init__(self, paths: list[Path], crop: int) -> None:
        from torchvision import transforms as T

        self.paths = paths
        self.tf = T.Compose([T.RandomCrop(crop), T.RandomHorizontalFlip(), T.ToTensor(),
                             T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from PIL import Image

        with Image.open(self.paths[i]) as im:
            return self.tf(im.convert("RGB")), 0


def rate(loader, n_images: int, repeats: int = 2) -> float:
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        seen = 0
        for batch in loader:
            seen += len(batch["image"] if isinstance(batch, dict) else batch[0])
        best = max(best, seen / (time.perf_counter() - t0))
    assert seen == n_images
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2048, help="crops (default 2048)")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--crop", type=int, default=224)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from numpy.lib.format import open_memmap

    from fasbench.data.frames import FrameSet
    from fasbench.data.loader import FrameDataset, Preprocess, make_loader
    from fasbench.data.synthetic import MANIFEST_COLUMNS

    crops = make_crops(args.n, args.size)
    rng = np.random.default_rng(1)
    batches = [rng.permutation(args.n)[i:i + args.batch].tolist() for i in range(0, args.n, args.batch)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # the frame cache: one memory-mapped uint8 array (what `fasbench data prepare` writes)
        mm = open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8, shape=crops.shape)
        mm[:] = crops
        mm.flush()
        del mm
        images = np.load(tmp / "images.npy", mmap_mode="r")
        import pandas as pd

        man = pd.DataFrame({c: ["x"] * args.n for c in MANIFEST_COLUMNS})
        man["label"], man["frame"] = 1, 0
        ds = FrameDataset(FrameSet(man, images))
        cache_loader = make_loader(ds, batches, num_workers=0)
        # JPEG files, quality 95 (a typical choice for stored face crops)
        from PIL import Image

        paths = []
        for i, c in enumerate(crops):
            p = tmp / f"{i:06d}.jpg"
            Image.fromarray(c).save(p, quality=95)
            paths.append(p)
        jpeg_bytes = sum(p.stat().st_size for p in paths)
        jpeg_loader = torch.utils.data.DataLoader(JpegDataset(paths, args.crop), batch_sampler=batches, num_workers=0)
        for _ in cache_loader:  # warm the page cache for both
            pass
        for _ in jpeg_loader:
            pass
        cache_rate = rate(cache_loader, args.n)
        jpeg_rate = rate(jpeg_loader, args.n)
        # the device side of the cache path: batched crop/flip/normalise
        dev = torch.device(args.device)
        pre = Preprocess(crop_size=args.crop)
        gen = torch.Generator()
        xb = [ds.__getitems__(b)["image"] for b in batches]
        for x in xb[:2]:
            pre(x, dev, train=True, generator=gen)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for x in xb:
            pre(x, dev, train=True, generator=gen)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        pre_rate = args.n / (time.perf_counter() - t0)
        total_rate = 1.0 / (1.0 / cache_rate + 1.0 / pre_rate) if dev.type == "cpu" else cache_rate
    res = {
        "images": args.n, "size": args.size, "crop": args.crop, "batch": args.batch,
        "cache_worker_img_s_per_core": round(cache_rate), "jpeg_pil_img_s_per_core": round(jpeg_rate),
        "ratio_worker": round(cache_rate / jpeg_rate, 1),
        "preprocess_device": str(dev), "preprocess_img_s": round(pre_rate),
        "cache_end_to_end_img_s_per_core_if_preprocess_on_cpu": round(total_rate),
        "ratio_end_to_end": round(total_rate / jpeg_rate, 1),
        "jpeg_mean_kb": round(jpeg_bytes / args.n / 1024, 1), "cache_mb": round(crops.nbytes / 2**20, 1),
    }
    if args.json:
        print(json.dumps(res, indent=2))
        return
    print(f"{args.n} crops of {args.size}px, batches of {args.batch}, one core")
    print(f"  frame cache (uint8 gather in the worker): {res['cache_worker_img_s_per_core']:>8} img/s")
    print(f"  JPEG + PIL + torchvision transforms:     {res['jpeg_pil_img_s_per_core']:>8} img/s")
    print(f"  ratio (worker side):                     {res['ratio_worker']:>8}x")
    print(f"  batched preprocess on {dev}: {res['preprocess_img_s']} img/s; cache + preprocess both on this core: "
          f"{res['cache_end_to_end_img_s_per_core_if_preprocess_on_cpu']} img/s ({res['ratio_end_to_end']}x)")


if __name__ == "__main__":
    main()
