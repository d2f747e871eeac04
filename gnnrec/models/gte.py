"""GTE, the learning-free graph topology encoder (Cai et al., CIKM 2023, "How Expressive are GNNs in
Recommendation?").

Items start as one-hot rows (identity), users at zero; each of the k layers updates both sides at once:
``user <- user + A item``, ``item <- item + A^T user`` with the binary interaction matrix A. The user rows
are the scores over items. Written as polynomials in M = A^T A, users_k = A p_k(M) (k = 3: 3A + A A^T A),
so a block of users is scored with sparse products and never needs the items x items matrix, nor the
dense users x items one for the whole graph.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from gnnrec.data.dataset import RecDataset
from gnnrec.models.base import Recommender


def gte_coefficients(num_layers: int) -> list[int]:
    """Coefficients c_j with users_k = A sum_j c_j (A^T A)^j."""
    p, q = [0], [1]  # users = A p(M), items = q(M)
    for _ in range(num_layers):
        shifted = [0] + p  # M p(M)
        new_p = [a + b for a, b in zip_pad(p, q)]
        new_q = [a + b for a, b in zip_pad(q, shifted)]
        p, q = new_p, new_q
    while len(p) > 1 and p[-1] == 0:
        p.pop()
    return p


def zip_pad(a: list[int], b: list[int]):
    n = max(len(a), len(b))
    return zip(a + [0] * (n - len(a)), b + [0] * (n - len(b)))


class GTE(Recommender):
    propagation_rule = "gte"  # how it propagates a symmetric initialisation (expressiveness metrics)
    trainable = False

    def __init__(self, dataset: RecDataset, num_layers: int = 3, **kwargs):
        super().__init__(dataset, **kwargs)
        self.num_layers = num_layers
        self.adj = sp.csr_matrix(dataset.train, dtype=np.float64)
        self.adj.data[:] = 1.0
        self.adj_t = self.adj.T.tocsr()
        self.coefficients = gte_coefficients(num_layers)

    def forward(self):
        raise NotImplementedError("GTE has no embeddings; use score_fn()")

    def score_block(self, users: np.ndarray) -> np.ndarray:
        """Dense (len(users), n_items) scores: sum_j c_j A[users] (A^T A)^j, by sparse products."""
        x = self.adj[users]
        out = np.zeros((len(users), self.n_items))
        for j, c in enumerate(self.coefficients):
            if j:
                x = (x @ self.adj_t) @ self.adj
            if c:
                out += c * x.toarray()
        return out

    @torch.no_grad()
    def score_fn(self):
        return lambda users: torch.from_numpy(self.score_block(users.cpu().numpy()))
