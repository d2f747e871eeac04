"""LightGCN (He et al., SIGIR 2020): free ID embeddings propagated over D^-1/2 A D^-1/2, mean of layers 0..L."""
from __future__ import annotations

import torch

from gnnrec.data.dataset import RecDataset
from gnnrec.graphs.adjacency import normalized_bipartite
from gnnrec.graphs.spmm import FixedSparse
from gnnrec.models.base import Recommender


def propagate_sum(adj: FixedSparse, x: torch.Tensor, num_layers: int) -> torch.Tensor:
    """Sum of ``x, A x, ..., A^L x`` with one sparse product per layer (DRAGON and DiffMM sum the layers)."""
    total = x
    for _ in range(num_layers):
        x = adj @ x
        total = total + x
    return total


def propagate_mean(adj: FixedSparse, x: torch.Tensor, num_layers: int) -> torch.Tensor:
    """Mean of ``x, A x, ..., A^L x`` (LightGCN's layer combination)."""
    return propagate_sum(adj, x, num_layers) / (num_layers + 1)


class LightGCN(Recommender):
    propagation_rule = "lightgcn"  # how it propagates a symmetric initialisation (expressiveness metrics)
    def __init__(self, dataset: RecDataset, embedding_dim: int = 64, num_layers: int = 3, **kwargs):
        super().__init__(dataset, embedding_dim=embedding_dim, **kwargs)
        self.num_layers = num_layers
        self.init_id_embeddings(embedding_dim)
        # not a buffer: sparse buffers break DDP's broadcasts; FixedSparse moves it to the device once
        self._adj = FixedSparse(normalized_bipartite(dataset.graph))

    def forward(self):
        x = torch.cat([self.user_emb.weight, self.item_emb.weight])
        out = propagate_mean(self._adj, x, self.num_layers)
        return out[: self.n_users], out[self.n_users :]
