"""Matrix factorisation trained with BPR (Rendle et al., 2009): the no-graph baseline."""
from __future__ import annotations


from gnnrec.data.dataset import RecDataset
from gnnrec.models.base import Recommender


class MF(Recommender):
    propagation_rule = "mf"  # how it propagates a symmetric initialisation (expressiveness metrics)
    def __init__(self, dataset: RecDataset, embedding_dim: int = 64, **kwargs):
        super().__init__(dataset, embedding_dim=embedding_dim, **kwargs)
        self.init_id_embeddings(embedding_dim)

    def forward(self):
        return self.user_emb.weight, self.item_emb.weight
