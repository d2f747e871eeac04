"""Cold-item split: a seeded share of items is taken out of the dataset before any model sees it.

Brand-new items (cold start) can only be evaluated honestly on items the model never met. ``split_cold_items``
removes the chosen items' columns from train, valid and test, their feature rows and metadata entries, and
renumbers the remaining (warm) items 0..n_warm-1; a model, its sampler and its frozen item graph are built from
that dataset, so they cannot see a cold item. The cold items' valid and test interactions are kept apart in a
:class:`ColdItems` (their train interactions are dropped: they are neither training data nor held out), with the
cold items' own ids, features and metadata, for cold-start evaluation.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from gnnrec.data.dataset import RecDataset
from gnnrec.errors import ConfigError

COLD_SEED_SALT = 0xC01D  # the cold draw differs from the split and carving draws made with the same seed


@dataclass
class ColdItems:
    """Items removed from training: (n_users, n_cold) valid/test interactions, their features and metadata.

    ``item_ids`` are the dataset's original ids (strings) of the cold items, in column order; ``warm_rows`` are
    the original internal ids of the items that stayed, in their new order (for tests and bookkeeping)."""

    item_ids: np.ndarray
    valid: sp.csr_matrix
    test: sp.csr_matrix
    features: dict[str, np.ndarray] = field(default_factory=dict)
    item_info: dict[str, np.ndarray] = field(default_factory=dict)
    cold_rows: np.ndarray | None = None
    warm_rows: np.ndarray | None = None

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def drop_users(self, keep: np.ndarray) -> None:
        """Zero the rows of users not in the boolean mask ``keep`` (users without warm training items)."""
        scale = sp.diags(keep.astype(np.float32))
        self.valid, self.test = ((scale @ m).tocsr() for m in (self.valid, self.test))
        for m in (self.valid, self.test):
            m.eliminate_zeros()
            m.sort_indices()


def columns(matrix: sp.csr_matrix, cols: np.ndarray) -> sp.csr_matrix:
    """``matrix[:, cols]`` as CSR with sorted indices (the evaluator and the sampler search the indices)."""
    out = matrix[:, cols].tocsr()
    out.sort_indices()
    return out


def choose_cold_items(n_items: int, share: float, seed: int) -> np.ndarray:
    """Sorted internal ids of round(share x n_items) items drawn without replacement, seeded."""
    if not 0 <= share < 1:
        raise ConfigError(f"data.cold_items must be a share in [0, 1), got {share}")
    n_cold = int(round(share * n_items))
    if share > 0 and not 0 < n_cold < n_items:
        raise ConfigError(f"data.cold_items={share} leaves {n_cold} cold items out of {n_items}: "
                          "need at least one cold and one warm item")
    rng = np.random.default_rng([seed, COLD_SEED_SALT])
    return np.sort(rng.choice(n_items, n_cold, replace=False))


def split_cold_items(data: RecDataset, share: float, seed: int) -> RecDataset:
    """``data`` without a seeded ``share`` of its items, which go to ``data.cold`` (see the module docstring)."""
    if data.augmented_edges is not None:
        raise ConfigError("data.cold_items cannot be combined with data.augment.edges (the LLM-made triples "
                          "name items by their ids before the cold split)")
    cold = choose_cold_items(data.n_items, share, seed)
    warm = np.setdiff1d(np.arange(data.n_items), cold)
    ids = data.item_info.get("item_id")
    ids = np.array([str(x) for x in ids], dtype=object) if ids is not None else np.arange(data.n_items).astype(str)
    info = {**data.item_info, "item_id": np.asarray(ids, dtype=object)}  # keep the original ids after renumbering
    data.cold = ColdItems(item_ids=info["item_id"][cold], valid=columns(data.valid, cold),
                          test=columns(data.test, cold),
                          features={k: np.ascontiguousarray(v[cold]) for k, v in data.features.items()},
                          item_info={k: np.asarray(v)[cold] for k, v in info.items()},
                          cold_rows=cold, warm_rows=warm)
    for name in ("train", "valid", "test"):
        setattr(data, name, columns(data.split(name), warm))
    data.features = {k: np.ascontiguousarray(v[warm]) for k, v in data.features.items()}
    data.item_info = {k: np.asarray(v)[warm] for k, v in info.items()}
    data.report.update({"cold_items": len(cold), "cold_valid": data.cold.valid.nnz, "cold_test": data.cold.test.nnz})
    return data
