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


VALID_CARVINGS = ("ratio", "leave_one_out")
VALID_MIN_USERS = 1000  # fewer validation users than this: warn
VALID_MAX_SE = 0.005  # a bound on the standard error of validation Recall@k above this: warn


@dataclass
class Carving:
    """What :func:`carve_valid` did: the new train and valid matrices and the numbers for ``data.report``."""

    train: sp.csr_matrix
    valid: sp.csr_matrix
    users: int  # users with at least one carved item
    interactions: int  # carved interactions
    users_missed: int  # users with >= min_history train items that got nothing (every item protected)
    cold_test: int  # test interactions whose item has no training interaction left after carving
    se_max: float  # bound on the standard error of validation Recall@k: 0.5 / sqrt(users)

    def report(self, method: str) -> dict:
        return {"valid_carving": method, "valid_carved_from_train": self.interactions,
                "valid_carved_users": self.users, "valid_carved_users_missed": self.users_missed,
                "valid_carved_cold_test": self.cold_test, "valid_recall_se_max": round(self.se_max, 6)}

    @property
    def too_small(self) -> bool:
        return self.users < VALID_MIN_USERS or self.se_max > VALID_MAX_SE


def carve_valid(train: sp.csr_matrix, ratio: float, seed: int, method: str = "ratio", min_history: int = 3,
                keep_items: bool = True, test: sp.spmatrix | None = None) -> Carving:
    """Carve a validation split out of ``train``, per user, vectorised over the CSR arrays.

    ``ratio``: each user gets ``ratio * n`` of its ``n`` training items rounded at random (floor, plus one with
    probability the fraction: the expected share is exact), and at least one when ``n >= min_history``.
    ``leave_one_out``: exactly one item for each user with ``n >= min_history``.
    Always: a user keeps at least one training item; a pair that is also in ``test`` is never carved; with
    ``keep_items`` every item keeps at least one training interaction (per item one interaction, that of its
    user with the most training items, is kept back), so carving never makes a test item cold. Those
    protections win over the per-user minimum (counted in ``users_missed``).
    """
    if method not in VALID_CARVINGS:
        raise ConfigError(f"data.valid_carving must be one of {VALID_CARVINGS}, got '{method}'")
    train = sp.csr_matrix(train, dtype=np.float32)
    train.sum_duplicates()
    n_users, n_items = train.shape
    rng = np.random.default_rng(seed)
    counts = np.diff(train.indptr).astype(np.int64)
    rows = np.repeat(np.arange(n_users, dtype=np.int64), counts)
    cols = train.indices.astype(np.int64)
    eligible = np.ones(len(cols), dtype=bool)
    if test is not None and test.nnz:
        t = test.tocoo()
        inside = (t.row < n_users) & (t.col < n_items)
        eligible &= ~np.isin(rows * n_items + cols, t.row[inside].astype(np.int64) * n_items + t.col[inside])
    if keep_items:  # one kept-back interaction per item: its heaviest user (ties at random)
        order = np.lexsort((rng.random(len(cols)), -counts[rows], cols))
        first = np.ones(len(order), dtype=bool)
        first[1:] = cols[order][1:] != cols[order][:-1]
        eligible[order[first]] = False
    keys = rng.random(len(cols)) + (~eligible) * 2.0  # eligible items rank first within their row
    order = np.lexsort((keys, rows))
    rank = np.empty(len(cols), dtype=np.int64)
    rank[order] = np.arange(len(cols)) - train.indptr[rows[order]]
    enough = counts >= min_history
    if method == "ratio":
        share = counts * ratio
        target = np.floor(share).astype(np.int64)
        target += rng.random(n_users) < share - target
        target = np.where(enough, np.maximum(target, 1), target)
    else:
        target = enough.astype(np.int64)
    n_eligible = np.bincount(rows[eligible], minlength=n_users)
    target = np.minimum(np.minimum(target, n_eligible), counts - 1).clip(0)
    carve = rank < target[rows]
    carved_per_user = np.bincount(rows[carve], minlength=n_users)
    before = np.bincount(cols, minlength=n_items)
    after = before - np.bincount(cols[carve], minlength=n_items)
    cold_test = 0
    if test is not None and test.nnz:
        t = test.tocoo()
        inside = t.col < n_items
        newly_cold = (before > 0) & (after == 0)
        cold_test = int(newly_cold[t.col[inside]].sum())
    users = int((carved_per_user > 0).sum())
    return Carving(interactions_to_csr(rows[~carve], cols[~carve], train.shape),
                   interactions_to_csr(rows[carve], cols[carve], train.shape),
                   users=users, interactions=int(carve.sum()),
                   users_missed=int((enough & (carved_per_user == 0) & (counts > 1)).sum()),
                   cold_test=cold_test, se_max=0.5 / np.sqrt(users) if users else float("inf"))


def holdout_valid(train: sp.csr_matrix, ratio: float, seed: int, method: str = "ratio", min_history: int = 3,
                  keep_items: bool = False, test: sp.spmatrix | None = None) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """:func:`carve_valid` returning just (train, valid); by default without the item protection."""
    c = carve_valid(train, ratio, seed, method, min_history, keep_items, test)
    return c.train, c.valid


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
