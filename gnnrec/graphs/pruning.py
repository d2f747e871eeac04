"""FREEDOM's degree-sensitive edge pruning of the user-item graph, redrawn every epoch.

Each edge (u, i) gets weight 1 / sqrt(deg(u) deg(i)) from the full training graph; a (1 - p) share of
the edges is sampled without replacement with probability proportional to that weight (Efraimidis-Spirakis
keys u^(1/w), one vectorised pass), and the kept graph is re-normalised symmetrically. Low-degree edges are
kept more often; evaluation uses the full graph.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from gnnrec.errors import ConfigError
from gnnrec.graphs.adjacency import normalized_bipartite


class DegreeSensitivePruner:
    def __init__(self, train: sp.spmatrix, dropout: float):
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"edge dropout must be in [0, 1), got {dropout}")
        coo = sp.coo_matrix(train)
        self.shape = coo.shape
        self.rows, self.cols = coo.row.astype(np.int64), coo.col.astype(np.int64)
        deg_u = np.bincount(self.rows, minlength=self.shape[0]).astype(np.float64)
        deg_i = np.bincount(self.cols, minlength=self.shape[1]).astype(np.float64)
        self.weights = 1.0 / np.sqrt(deg_u[self.rows] * deg_i[self.cols])
        self.n_keep = int(round(len(self.rows) * (1.0 - dropout)))

    def sample_edges(self, rng: np.random.Generator) -> np.ndarray:
        """Indices of the kept edges (sorted)."""
        if self.n_keep >= len(self.rows):
            return np.arange(len(self.rows))
        keys = np.log(rng.random(len(self.rows))) / self.weights  # log(u^(1/w)); the largest keys win
        return np.sort(np.argpartition(-keys, self.n_keep - 1)[: self.n_keep])

    def sample(self, rng: np.random.Generator) -> torch.Tensor:
        """The pruned, re-normalised (users + items) propagation matrix as torch sparse CSR."""
        keep = self.sample_edges(rng)
        kept = sp.csr_matrix((np.ones(len(keep), np.float32), (self.rows[keep], self.cols[keep])), shape=self.shape)
        return normalized_bipartite(kept)
