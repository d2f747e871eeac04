"""Splitting unsplit interaction logs (random per user, MMRec's rule, temporal leave-last-out) and k-core filtering.

All of it is vectorised over interactions: users are grouped by one lexsort, never looped over.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from gnnrec.data.dataset import RecDataset, interactions_to_csr
from gnnrec.errors import ConfigError, DataError

SPLIT_METHODS = ("mmrec", "random", "temporal")


def rank_within_user(users: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank (0-based) of each interaction among its user's, ordered by ``keys``; and each user's count."""
    order = np.lexsort((keys, users))
    counts = np.bincount(users, minlength=int(users.max(initial=-1)) + 1)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(users), dtype=np.int64)
    rank[order] = np.arange(len(users)) - starts[users[order]]
    return rank, counts


def split_labels(users, n_valid, n_test, rank, counts) -> np.ndarray:
    """0/1/2 labels: the last ``n_test`` ranks of a user go to test, the ``n_valid`` before them to valid."""
    n = counts[users]
    from_end = n - 1 - rank
    labels = np.zeros(len(users), dtype=np.int8)
    labels[from_end < n_test[users] + n_valid[users]] = 1
    labels[from_end < n_test[users]] = 2
    return labels


def mmrec_rule_counts(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MMRec's Amazon rule: under 10 interactions give 1 valid + 1 test; else 20% held out, half (floor) to valid."""
    held = np.where(counts < 10, 2, (counts * 0.2).astype(np.int64))
    held = np.where(counts < 3, 0, held)
    n_valid = np.where(counts < 10, np.minimum(held, 1), held // 2)
    return n_valid, held - n_valid


def ratio_counts(counts: np.ndarray, valid: float, test: float) -> tuple[np.ndarray, np.ndarray]:
    n_test = np.floor(counts * test).astype(np.int64)
    n_valid = np.floor(counts * valid).astype(np.int64)
    too_many = np.maximum(0, n_test + n_valid - (counts - 1))  # always keep one training item
    n_valid = np.maximum(0, n_valid - too_many)
    return n_valid, np.minimum(n_test, counts - 1 - n_valid).clip(0)


def assign_split(users, timestamps, method: str, seed: int, valid_ratio=0.1, test_ratio=0.1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if method == "temporal":
        if timestamps is None:
            raise ConfigError("data.split.method=temporal needs timestamps; this dataset has none")
        keys = timestamps
    elif method in ("mmrec", "random"):
        keys = rng.random(len(users))
    else:
        raise ConfigError(f"data.split.method must be one of {SPLIT_METHODS}, got '{method}'")
    rank, counts = rank_within_user(users, keys)
    if method == "temporal":
        n_valid, n_test = (counts >= 3).astype(np.int64), (counts >= 3).astype(np.int64)
    elif method == "mmrec":
        n_valid, n_test = mmrec_rule_counts(counts)
    else:
        n_valid, n_test = ratio_counts(counts, valid_ratio, test_ratio)
    return split_labels(users, n_valid, n_test, rank, counts)


def holdout_valid(train: sp.csr_matrix, ratio: float, seed: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Carve a validation split out of train (per user, random ``ratio``, at least one item kept in train)."""
    coo = train.tocoo()
    rng = np.random.default_rng(seed)
    rank, counts = rank_within_user(coo.row.astype(np.int64), rng.random(coo.nnz))
    n_valid, _ = ratio_counts(counts, ratio, 0.0)
    labels = split_labels(coo.row, n_valid, np.zeros_like(n_valid), rank, counts)
    keep, held = labels == 0, labels == 1
    return (interactions_to_csr(coo.row[keep], coo.col[keep], train.shape),
            interactions_to_csr(coo.row[held], coo.col[held], train.shape))


@dataclass
class Interactions:
    """An unsplit interaction log with dense 0-based ids; ``*_tokens`` map ids back to the source's ids."""

    name: str
    users: np.ndarray
    items: np.ndarray
    n_users: int
    n_items: int
    timestamps: np.ndarray | None = None
    item_info: dict[str, np.ndarray] = field(default_factory=dict)
    user_info: dict[str, np.ndarray] = field(default_factory=dict)
    features: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = ""

    def dedupe(self) -> "Interactions":
        """Keep one interaction per (user, item): the latest one where there are timestamps."""
        keys = self.users * self.n_items + self.items
        ts = self.timestamps if self.timestamps is not None else np.zeros(len(keys))
        order = np.lexsort((-ts, keys))
        first = np.ones(len(order), dtype=bool)
        first[1:] = keys[order][1:] != keys[order][:-1]
        return self.subset(np.sort(order[first]))

    def subset(self, mask_or_index) -> "Interactions":
        ts = self.timestamps[mask_or_index] if self.timestamps is not None else None
        return Interactions(self.name, self.users[mask_or_index], self.items[mask_or_index], self.n_users,
                            self.n_items, ts, self.item_info, self.user_info, self.features, self.source)

    def kcore(self, k_user: int, k_item: int | None = None) -> "Interactions":
        """Repeatedly drop users with fewer than ``k_user`` and items with fewer than ``k_item`` interactions,
        then re-index both densely (metadata and features follow)."""
        k_item = k_user if k_item is None else k_item
        data = self
        while True:
            du = np.bincount(data.users, minlength=self.n_users)
            di = np.bincount(data.items, minlength=self.n_items)
            keep = (du[data.users] >= k_user) & (di[data.items] >= k_item)
            if keep.all():
                break
            data = data.subset(keep)
        if len(data.users) == 0:
            raise DataError(f"the {k_user}-core of {self.name} is empty", path=self.source)
        user_ids, users = np.unique(data.users, return_inverse=True)
        item_ids, items = np.unique(data.items, return_inverse=True)
        return Interactions(
            self.name, users.astype(np.int64), items.astype(np.int64), len(user_ids), len(item_ids),
            data.timestamps,
            {k: v[item_ids] for k, v in self.item_info.items()},
            {k: v[user_ids] for k, v in self.user_info.items()},
            {k: v[item_ids] for k, v in self.features.items()},
            self.source,
        )

    def split(self, method: str = "mmrec", seed: int = 999, valid_ratio: float = 0.1,
              test_ratio: float = 0.1) -> RecDataset:
        labels = assign_split(self.users, self.timestamps, method, seed, valid_ratio, test_ratio)
        shape = (self.n_users, self.n_items)
        mats = [interactions_to_csr(self.users[labels == k], self.items[labels == k], shape) for k in range(3)]
        return RecDataset(self.name, *mats, features=self.features, item_info=self.item_info,
                          user_info=self.user_info, source=self.source)
