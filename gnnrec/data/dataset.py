"""The one in-memory dataset type: sparse train/valid/test interactions plus item features and metadata."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from gnnrec.errors import DataError
from gnnrec.hashing import csr_structure_sha256, sha256_hex

if TYPE_CHECKING:
    from gnnrec.data.cold import ColdItems

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")


def interactions_to_csr(users, items, shape) -> sp.csr_matrix:
    """Binary CSR matrix from id arrays; duplicate pairs collapse to one interaction."""
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    data = np.ones(len(users), dtype=np.float32)
    mat = sp.csr_matrix((data, (users, items)), shape=shape)
    mat.sum_duplicates()
    mat.data[:] = 1.0
    mat.sort_indices()
    return mat


def nonfinite_rows(x: np.ndarray, block: int = 8192) -> np.ndarray:
    """Indices of the rows of ``x`` with a NaN or inf, checked in row blocks (no full-size mask)."""
    return np.concatenate([start + np.flatnonzero(~np.isfinite(x[start : start + block]).all(axis=1))
                           for start in range(0, len(x), block)] or [np.zeros(0, np.int64)])


@dataclass
class RecDataset:
    """A recommendation dataset with a fixed split.

    Interactions are binary ``scipy.sparse.csr_matrix`` of shape ``(n_users, n_items)``; ``features``
    maps a modality name to a float32 array with one row per item (``user_features``: one row per user,
    e.g. LLM-made profiles); ``item_info``/``user_info`` map a column name (``title``, ``text``...) to an
    array with one entry per item/user. ``augmented_edges`` holds LLM-made (user, positive, negative)
    triples; with ``augment_graph`` their positives also join the graph that models propagate over
    (never the train split that evaluation masks).
    """

    name: str
    train: sp.csr_matrix
    valid: sp.csr_matrix
    test: sp.csr_matrix
    features: dict[str, np.ndarray] = field(default_factory=dict)
    item_info: dict[str, np.ndarray] = field(default_factory=dict)
    user_info: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = ""
    report: dict[str, int] = field(default_factory=dict)
    user_features: dict[str, np.ndarray] = field(default_factory=dict)
    augmented_edges: np.ndarray | None = None
    augment_graph: bool = False
    cold: "ColdItems | None" = None  # items held out of training entirely (data.cold_items), see gnnrec.data.cold

    @property
    def n_users(self) -> int:
        return self.train.shape[0]

    @property
    def n_items(self) -> int:
        return self.train.shape[1]

    @property
    def graph(self) -> sp.csr_matrix:
        """The user-item graph models propagate over: train, plus augmented positives when asked for."""
        if not self.augment_graph or self.augmented_edges is None or not len(self.augmented_edges):
            return self.train
        extra = interactions_to_csr(self.augmented_edges[:, 0], self.augmented_edges[:, 1], self.train.shape)
        return ((self.train + extra) > 0).astype(np.float32).tocsr()

    def split(self, name: str) -> sp.csr_matrix:
        if name not in SPLITS:
            raise ValueError(f"unknown split '{name}', expected one of {SPLITS}")
        return getattr(self, name)

    def fingerprint(self) -> str:
        """sha256 of the split's interactions (structure of train, valid, test) and of every feature table:
        stored in a run's checkpoints, so that a reopened run (gnnrec.runs.load_run) refuses other data."""
        tables = [(f"{kind}/{name}", x) for kind, feats in (("item", self.features), ("user", self.user_features))
                  for name, x in sorted(feats.items())]
        return sha256_hex([csr_structure_sha256(self.train, self.valid, self.test),
                           *(part for name, x in tables for part in (f"{name}:{x.dtype}:{x.shape}", np.asarray(x)))])

    def validate(self, drop_cold: bool = True) -> "RecDataset":
        """Check shapes and features; report, and by default drop, held-out pairs of cold users/items."""
        where = self.source or self.name
        if self.train.nnz == 0:
            raise DataError("the train split is empty", path=where, field="train")
        for name in ("valid", "test"):
            if getattr(self, name).shape != self.train.shape:
                raise DataError(f"{name} shape {getattr(self, name).shape} != train shape {self.train.shape}",
                                path=where, field=name)
        for name, feat, n, kind in [*((k, v, self.n_items, "item") for k, v in self.features.items()),
                                    *((k, v, self.n_users, "user") for k, v in self.user_features.items())]:
            if feat.ndim != 2 or feat.shape[0] != n:
                raise DataError(f"{kind} feature '{name}' has shape {feat.shape}, expected ({n}, dim): "
                                f"one row per {kind} id", path=where, field=name)
            rows = nonfinite_rows(feat)
            if len(rows):
                raise DataError(f"feature '{name}' has NaN or inf in {len(rows)} rows (first: item {rows[0]})",
                                path=where, field=name)
        for table, n in ((self.item_info, self.n_items), (self.user_info, self.n_users)):
            for col, values in table.items():
                if len(values) != n:
                    raise DataError(f"metadata column '{col}' has {len(values)} entries, expected {n}",
                                    path=where, field=col)
        warm_users = np.diff(self.train.indptr) > 0
        warm_items = np.bincount(self.train.indices, minlength=self.n_items) > 0
        for name in ("valid", "test"):
            mat = getattr(self, name).tocoo()
            cold = ~warm_users[mat.row] | ~warm_items[mat.col]
            n_cold = int(cold.sum())
            if n_cold:
                action = "dropped" if drop_cold else "kept"
                log.warning("%s: %d %s interactions involve users or items that never occur in train (%s)",
                            where, n_cold, name, action)
                self.report[f"cold_{name}_{action}"] = n_cold
                if drop_cold:
                    keep = ~cold
                    setattr(self, name, interactions_to_csr(mat.row[keep], mat.col[keep], self.train.shape))
        overlap = self.train.multiply(self.test).nnz
        if overlap:
            self.report["train_test_overlap"] = overlap
            log.warning("%s: %d test interactions also occur in train; they can never be ranked", where, overlap)
        return self

    def stats(self) -> dict:
        """Counts a user checks against a dataset card."""
        n_train, n_valid, n_test = self.train.nnz, self.valid.nnz, self.test.nnz
        total = n_train + n_valid + n_test
        user_deg = np.diff(self.train.indptr)
        return {
            "name": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": total,
            "train": n_train,
            "valid": n_valid,
            "test": n_test,
            "density": total / max(1, self.n_users * self.n_items),
            "train_users": int((user_deg > 0).sum()),
            "train_items": int((np.bincount(self.train.indices, minlength=self.n_items) > 0).sum()),
            "mean_train_per_user": float(user_deg.mean()),
            "features": {k: list(v.shape) for k, v in self.features.items()},
            **({"user_features": {k: list(v.shape) for k, v in self.user_features.items()}}
               if self.user_features else {}),
            **({"augmented_edges": len(self.augmented_edges)} if self.augmented_edges is not None else {}),
            "item_info": sorted(self.item_info),
            "user_info": sorted(self.user_info),
            **({"report": dict(self.report)} if self.report else {}),
        }

    def to_pyg(self):
        """The training graph as a PyG ``HeteroData`` (user -> item edges and their reverse)."""
        import torch
        from torch_geometric.data import HeteroData

        coo = self.train.tocoo()
        data = HeteroData()
        data["user"].num_nodes = self.n_users
        data["item"].num_nodes = self.n_items
        for name, feat in self.features.items():
            data["item"][name] = torch.from_numpy(feat)
        edge = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
        data["user", "rates", "item"].edge_index = edge
        data["item", "rated_by", "user"].edge_index = edge.flip(0)
        return data
