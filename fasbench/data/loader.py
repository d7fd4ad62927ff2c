"""Loading: workers hand over uint8 batches; crop, flip and colour jitter run batched on the
device (never per sample, never a JPEG decode in the training loop). The result is RGB in
[0, 1]: each network normalises its own input (docs/architecture.md, pixel space)."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from fasbench.data.frames import FrameSet


class FrameDataset(Dataset):
    """Rows of a FrameSet as uint8 tensors; ``__getitems__`` gathers a whole batch at once."""

    def __init__(self, frames: FrameSet, domain_index: dict[str, int] | None = None) -> None:
        self.images = frames.images
        m = frames.manifest
        self.labels = m["label"].to_numpy(dtype=np.int64)
        doms = m["domain"].to_numpy()
        self.domain_index = domain_index or {d: i for i, d in enumerate(sorted(set(doms.tolist())))}
        self.domains = np.array([self.domain_index.get(d, -1) for d in doms.tolist()], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([i])

    def __getitems__(self, idx: list[int]) -> dict[str, torch.Tensor]:
        idx = np.asarray(idx, dtype=np.int64)
        order = np.argsort(idx, kind="stable")  # sorted reads are kinder to a memmap
        imgs = np.empty((len(idx), *self.images.shape[1:]), dtype=np.uint8)
        imgs[order] = self.images[idx[order]]
        return {
            "image": torch.from_numpy(imgs),
            "label": torch.from_numpy(self.labels[idx]),
            "domain": torch.from_numpy(self.domains[idx]),
            "index": torch.from_numpy(idx),
        }


def _identity(batch: Any) -> Any:
    return batch


def make_loader(dataset: FrameDataset, batch_sampler: Iterable, num_workers: int = 0, pin_memory: bool = False,
                seed: int = 0) -> DataLoader:
    # its own generator: starting the iterator draws a worker base seed, which must not come
    # from (and shift) the global generator that methods draw from (exact resume)
    import multiprocessing
    import sys

    # An explicit start method for the workers, never the process-wide default: inside a sweep
    # job of the joblib launcher, the default context is loky's, whose Process cannot start
    # torch's workers ("'Process' object has no attribute 'env'"). "fork" on Linux: the
    # workers share the frames (a memory map or an in-memory array) copy-on-write and
    # start at once; "forkserver" and "spawn" pickle the dataset into every worker, and a numpy
    # memmap pickles by value (the whole image array once per worker). Elsewhere (macOS,
    # Windows) "spawn", torch's own default there.
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    return DataLoader(
        dataset,
        generator=torch.Generator().manual_seed(int(seed)),
        batch_sampler=batch_sampler,
        collate_fn=_identity,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
        multiprocessing_context=multiprocessing.get_context(method) if num_workers > 0 else None,
    )


@dataclass
class Preprocess:
    """uint8 NHWC -> float NCHW in [0, 1] on the device, with batched augmentation.

    The random numbers of a training batch (crop offsets, flips, colour jitter) are drawn on the
    CPU from ``generator`` for ``draw_for`` images (default: this batch), in one fixed order, and
    ``rows`` of them are kept: under DistributedDataParallel every rank draws for the *global*
    batch and keeps its own slice, so N ranks see exactly the augmentation one process would.
    They travel to the device as one packed tensor (pinned, non-blocking on CUDA): no per-step
    host-to-device synchronisation.
    """

    crop_size: int
    hflip: bool = True
    random_crop: bool = True
    color_jitter: float = 0.0  # strength of brightness/contrast/saturation jitter, 0 = off
    channels_last: bool = False

    def draws(self, n: int, h: int, w: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, 6) float32 on the CPU: crop offset y, x; flip uniform; three jitter uniforms
        (columns of disabled augmentations stay 0). Integers below 2**24 are exact in float32."""
        c = min(self.crop_size, h, w)
        out = torch.zeros(n, 6)
        if self.random_crop and (h > c or w > c):
            out[:, 0] = torch.randint(0, h - c + 1, (n,), generator=generator).float()
            out[:, 1] = torch.randint(0, w - c + 1, (n,), generator=generator).float()
        if self.hflip:
            out[:, 2] = torch.rand(n, generator=generator)
        if self.color_jitter > 0:
            out[:, 3:6] = torch.rand(3, n, generator=generator).T
        return out

    def __call__(self, images: torch.Tensor, device: torch.device, train: bool, generator: torch.Generator | None = None,
                 draw_for: int | None = None, rows: slice | None = None) -> torch.Tensor:
        x = images.to(device, non_blocking=True)
        b, h, w, _ = x.shape
        c = min(self.crop_size, h, w)
        d = None
        if train and (self.random_crop or self.hflip or self.color_jitter > 0):
            d = self.draws(b if draw_for is None else int(draw_for), h, w, generator)
            d = d[rows if rows is not None else slice(0, b)]
            if len(d) != b:
                raise ValueError(f"augmentation rows {rows} of {len(d)} do not match a batch of {b} images")
            if device.type == "cuda":
                d = d.contiguous().pin_memory()
            d = d.to(device, non_blocking=True)
        if train and self.random_crop and (h > c or w > c):
            oy, ox = d[:, 0].long(), d[:, 1].long()
            ar = torch.arange(c, device=device)
            iy = (oy[:, None] + ar)[:, :, None]
            ix = (ox[:, None] + ar)[:, None, :]
            x = x[torch.arange(b, device=device)[:, None, None], iy, ix]
        elif h > c or w > c:
            top, left = (h - c) // 2, (w - c) // 2
            x = x[:, top:top + c, left:left + c]
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        if train and self.hflip:
            flip = d[:, 2] < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        if train and self.color_jitter > 0:
            s = self.color_jitter
            u = (d[:, 3:6].T * 2 - 1) * s
            x = x * (1 + u[0])[:, None, None, None]  # brightness
            m = x.mean(dim=(1, 2, 3), keepdim=True)
            x = (x - m) * (1 + u[1])[:, None, None, None] + m  # contrast
            g = x.mean(dim=1, keepdim=True)
            x = (x - g) * (1 + u[2])[:, None, None, None] + g  # saturation
            x = x.clamp_(0, 1)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x
