"""Batch samplers: every batch balanced over source domain x class (as SSDG does)."""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from fasbench.errors import FasbenchError


class BalancedBatchSampler:
    """Infinite batches with (about) the same number of frames from every (domain, class) group.

    Stateless by design: batch ``s`` is drawn from ``np.random.default_rng([seed, s])``, so a
    resumed run sees exactly the batches it would have seen without the interruption
    (``start_step``). Within a batch a group is sampled without replacement unless it is
    smaller than its share.
    """

    def __init__(
        self,
        rows: np.ndarray,
        domains: Sequence,
        labels: Sequence,
        batch_size: int,
        seed: int = 0,
        start_step: int = 0,
        max_steps: int | None = None,
    ) -> None:
        rows = np.asarray(rows)
        domains, labels = np.asarray(domains), np.asarray(labels)
        if not (len(rows) == len(domains) == len(labels)):
            raise ValueError("rows, domains and labels must have the same length")
        keys = sorted({(d, int(y)) for d, y in zip(domains.tolist(), labels.tolist())})
        if not keys:
            raise FasbenchError("the training split is empty: no frame to sample from")
        self.groups = {k: rows[(domains == k[0]) & (labels == k[1])] for k in keys}
        if batch_size < len(keys):
            raise FasbenchError(
                f"trainer.batch_size={batch_size} is smaller than the {len(keys)} (domain, class) groups "
                f"a balanced batch needs; use at least {len(keys)}"
            )
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.start_step = int(start_step)
        self.max_steps = max_steps
        base, extra = divmod(self.batch_size, len(keys))
        self.shares = {k: base + (1 if i < extra else 0) for i, k in enumerate(keys)}

    def batch(self, step: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, int(step)])
        parts = []
        for key, members in self.groups.items():
            k = self.shares[key]
            parts.append(rng.choice(members, size=k, replace=len(members) < k))
        idx = np.concatenate(parts)
        rng.shuffle(idx)
        return idx

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        while self.max_steps is None or step < self.max_steps:
            yield self.batch(step).tolist()
            step += 1

    def __len__(self) -> int:
        if self.max_steps is None:
            raise TypeError("infinite sampler has no length")
        return max(0, self.max_steps - self.start_step)
