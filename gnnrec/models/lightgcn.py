"""LightGCN (He et al., SIGIR 2020): free ID embeddings propagated over D^-1/2 A D^-1/2, mean of layers 0..L."""
from __future__ import annotations

import torch
from torch import nn

from gnnrec.data.dataset import RecDataset
from gnnrec.graphs.adjacency import normalized_bipartite
from gnnrec.models.base import Recommender


def propagate_mean(adj: torch.Tensor, x: torch.Tensor, num_layers: int) -> torch.Tensor:
    """Mean of ``x, A x, ..., A^L x`` with one sparse product per layer."""
    total = x
    for _ in range(num_layers):
        x = torch.sparse.mm(adj, x)
        total = total + x
    return total / (num_layers + 1)


class LightGCN(Recommender):
    propagation_rule = "lightgcn"  # how it propagates a symmetric initialisation (expressiveness metrics)
    def __init__(self, dataset: RecDataset, embedding_dim: int = 64, num_layers: int = 3, **kwargs):
        super().__init__(dataset, embedding_dim=embedding_dim, **kwargs)
        self.num_layers = num_layers
        self.user_emb = nn.Embedding(self.n_users, embedding_dim)
        self.item_emb = nn.Embedding(self.n_items, embedding_dim)
        nn.init.xavier_uniform_(self.user_emb.weight)
        nn.init.xavier_uniform_(self.item_emb.weight)
        self._adj = normalized_bipartite(dataset.train)

    def adjacency(self, device) -> torch.Tensor:
        if self._adj.device != device:  # a plain attribute: sparse buffers do not survive DDP's broadcasts
            self._adj = self._adj.to(device)
        return self._adj

    def forward(self):
        x = torch.cat([self.user_emb.weight, self.item_emb.weight])
        out = propagate_mean(self.adjacency(x.device), x, self.num_layers)
        return out[: self.n_users], out[self.n_users :]

    def layer0(self, users, pos, neg):
        return [self.user_emb(users), self.item_emb(pos), self.item_emb(neg)]
