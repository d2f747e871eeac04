"""Matrix factorisation trained with BPR (Rendle et al., 2009): the no-graph baseline."""
from __future__ import annotations

from torch import nn

from gnnrec.data.dataset import RecDataset
from gnnrec.models.base import Recommender


class MF(Recommender):
    propagation_rule = "mf"  # how it propagates a symmetric initialisation (expressiveness metrics)
    def __init__(self, dataset: RecDataset, embedding_dim: int = 64, **kwargs):
        super().__init__(dataset, embedding_dim=embedding_dim, **kwargs)
        self.user_emb = nn.Embedding(self.n_users, embedding_dim)
        self.item_emb = nn.Embedding(self.n_items, embedding_dim)
        nn.init.xavier_uniform_(self.user_emb.weight)
        nn.init.xavier_uniform_(self.item_emb.weight)

    def forward(self):
        return self.user_emb.weight, self.item_emb.weight

    def layer0(self, users, pos, neg):
        return [self.user_emb(users), self.item_emb(pos), self.item_emb(neg)]
