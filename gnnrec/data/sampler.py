"""Vectorised BPR triple sampling: one (user, positive, negative) per training interaction per epoch."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from gnnrec.errors import DataError


NEGATIVE_POOLS = ("train_items", "all_items")


class BPRSampler:
    """Negatives are uniform over a pool of items and re-drawn while the user has them. The pool is the items
    that occur in training (``train_items``, MMRec's rule and the default) or every item of the catalogue
    (``all_items``, as DiffMM's code draws them: items never in training then get pushed down too)."""

    def __init__(self, train: sp.csr_matrix, max_rounds: int = 1000, negatives: str = "train_items"):
        if negatives not in NEGATIVE_POOLS:
            raise ValueError(f"negatives must be one of {NEGATIVE_POOLS}, got '{negatives}'")
        coo = train.tocoo()
        self.n_items = train.shape[1]
        self.users = coo.row.astype(np.int64)
        self.pos = coo.col.astype(np.int64)
        self.keys = np.sort(self.users * self.n_items + self.pos)
        self.candidates = np.arange(self.n_items) if negatives == "all_items" else np.unique(self.pos)
        self.max_rounds = max_rounds
        full = np.flatnonzero(np.diff(train.indptr) >= len(self.candidates))
        if len(full):
            raise DataError(f"user {full[0]} interacted with every candidate item: no negative exists",
                            field="train")

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        query = users * self.n_items + items
        pos = np.minimum(np.searchsorted(self.keys, query), len(self.keys) - 1)
        return self.keys[pos] == query

    def sample_negatives(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        neg = self.candidates[rng.integers(len(self.candidates), size=len(users))]
        todo = np.flatnonzero(self.is_positive(users, neg))
        for _ in range(self.max_rounds):  # rounds of re-drawing, each vectorised over the rejects
            if not len(todo):
                return neg
            neg[todo] = self.candidates[rng.integers(len(self.candidates), size=len(todo))]
            todo = todo[self.is_positive(users[todo], neg[todo])]
        raise RuntimeError(f"{len(todo)} negatives still positive after {self.max_rounds} rounds")

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """A shuffled (3, n_train) int64 array of (user, positive, negative) rows."""
        order = rng.permutation(len(self.users))
        users, pos = self.users[order], self.pos[order]
        return np.stack([users, pos, self.sample_negatives(users, rng)])


def shard_batches(n: int, batch_size: int, rank: int, world: int) -> list[slice]:
    """Slices of this rank's part of each global batch; each part has the same size on every rank."""
    out = []
    for start in range(0, n, batch_size):
        part = (min(start + batch_size, n) - start) // world
        if part:
            out.append(slice(start + rank * part, start + (rank + 1) * part))
    return out
