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

    ``batch_size`` is the global batch. With ``num_replicas`` > 1 (DistributedDataParallel),
    every rank draws the same global batch and iterates over its own contiguous slice of it
    (``rank``): the ranks' slices together are exactly the batch one process would train on.
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
        num_replicas: int = 1,
        rank: int = 0,
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
        if num_replicas < 1 or not 0 <= rank < num_replicas or self.batch_size % num_replicas:
            raise ValueError(f"rank {rank} of {num_replicas} replicas cannot take an equal slice of a batch of {batch_size}")
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.per_replica = self.batch_size // self.num_replicas
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

    def rank_batch(self, step: int) -> np.ndarray:
        """This rank's slice of :meth:`batch` (all of it with one replica)."""
        lo = self.rank * self.per_replica
        return self.batch(step)[lo:lo + self.per_replica]

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        while self.max_steps is None or step < self.max_steps:
            yield self.rank_batch(step).tolist()
            step += 1

    def __len__(self) -> int:
        if self.max_steps is None:
            raise TypeError("infinite sampler has no length")
        return max(0, self.max_steps - self.start_step)
