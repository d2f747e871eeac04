"""LightGCN (He et al., SIGIR 2020): free ID embeddings propagated over D^-1/2 A D^-1/2, mean of layers 0..L."""
from __future__ import annotations

import torch

from gnnrec.data.dataset import RecDataset
from gnnrec.graphs.adjacency import normalized_bipartite
from gnnrec.graphs.spmm import FixedSparse, propagate
from gnnrec.models.base import Recommender

Blocks = torch.Tensor | tuple[torch.Tensor, ...]


def propagate_sum(adj: FixedSparse, x: Blocks, num_layers: int, plus=None) -> Blocks:
    """Sum of ``x, A x, ..., A^L x`` with one sparse product per layer (DRAGON and DiffMM sum the layers).
    ``x`` may be given as row blocks (users, items): the result then comes back as the same blocks; ``plus``
    adds a term to each block (gnnrec.graphs.spmm.propagate)."""
    return propagate(adj, x, num_layers, plus=plus)


def propagate_mean(adj: FixedSparse, x: Blocks, num_layers: int, plus=None) -> Blocks:
    """Mean of ``x, A x, ..., A^L x`` (LightGCN's layer combination); ``x`` and ``plus`` as in
    ``propagate_sum``."""
    return propagate(adj, x, num_layers, mean=True, plus=plus)


class LightGCN(Recommender):
    propagation_rule = "lightgcn"  # how it propagates a symmetric initialisation (expressiveness metrics)
    def __init__(self, dataset: RecDataset, embedding_dim: int = 64, num_layers: int = 3, **kwargs):
        super().__init__(dataset, embedding_dim=embedding_dim, **kwargs)
        self.num_layers = num_layers
        self.init_id_embeddings(embedding_dim)
        # not a buffer: sparse buffers break DDP's broadcasts; FixedSparse moves it to the device once
        self._adj = FixedSparse(normalized_bipartite(dataset.graph))

    def forward(self):
        return propagate_mean(self._adj, (self.user_emb.weight, self.item_emb.weight), self.num_layers)
