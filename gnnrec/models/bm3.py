"""BM3 (Zhou et al., WWW 2023): bootstrapped multimodal learning without negative samples.

LightGCN embeddings (item vector + its ID embedding) pass through a shared linear predictor; targets are
dropout-perturbed, detached copies. Losses: cosine alignment user<->item of each interaction, each
modality's projected features against the item target and against their own perturbed copy, plus
reg_weight x the embeddings' L2 norm. Scores use the predictor's outputs. Negatives in the batch are unused.
Initialisation as MMRec (src/models/bm3.py): ID tables Xavier-uniform (lines 41-42), the predictor's and each
modality projection's weights Xavier-normal (lines 47, 52, 56), biases nn.Linear's default.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gnnrec.data.dataset import RecDataset
from gnnrec.graphs.adjacency import normalized_bipartite
from gnnrec.graphs.spmm import FixedSparse
from gnnrec.models.base import Recommender
from gnnrec.models.lightgcn import propagate_mean
from gnnrec.models.modalities import ModalityProjections, require_features


def cosine_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return 1 - F.cosine_similarity(a, b.detach(), dim=-1).mean()


class BM3(Recommender):
    propagation_rule = "lightgcn"

    def __init__(self, dataset: RecDataset, embedding_dim: int = 64, num_layers: int = 1, dropout: float = 0.3,
                 cl_weight: float = 2.0, reg_weight: float = 0.1, sparse_features: bool = True, **kwargs):
        super().__init__(dataset, embedding_dim=embedding_dim, reg_weight=reg_weight, **kwargs)
        feats = require_features(dataset, "bm3")
        self.num_layers, self.dropout, self.cl_weight = num_layers, dropout, cl_weight
        self.init_id_embeddings(embedding_dim)
        # sparse_features: only the batch's feature rows get gradients and (lazy) Adam updates (docs/performance.md)
        self.modalities = ModalityProjections(feats, embedding_dim, trainable=True, init="xavier_normal",
                                              sparse=sparse_features)
        self.predictor = nn.Linear(embedding_dim, embedding_dim)
        nn.init.xavier_normal_(self.predictor.weight)
        self._adj = FixedSparse(normalized_bipartite(dataset.graph))

    def encode(self):
        users, items = propagate_mean(self._adj, (self.user_emb.weight, self.item_emb.weight), self.num_layers)
        return users, items + self.item_emb.weight

    def forward(self):
        users, items = self.encode()
        return self.predictor(users), self.predictor(items)

    def loss(self, users, pos, neg):
        user_all, item_all = self.encode()
        # only the batch's rows are projected: the same values and gradients as projecting every item (the
        # reference's dropout masks are drawn per row of the table, here per row of the batch)
        feats = self.modalities(pos)
        with torch.no_grad():
            user_target = F.dropout(user_all, self.dropout)[users]
            item_target = F.dropout(item_all, self.dropout)[pos]
            feat_target = {n: F.dropout(f, self.dropout) for n, f in feats.items()}
        user_online, item_online = self.predictor(user_all[users]), self.predictor(item_all[pos])
        align = cosine_loss(user_online, item_target) + cosine_loss(item_online, user_target)
        modal = 0
        for name, f in feats.items():
            online = self.predictor(f)
            modal = modal + cosine_loss(online, item_target) + cosine_loss(online, feat_target[name])
        reg = self.hparams.reg_weight * (user_all.norm() + item_all.norm()) / self.n_items
        return align + reg + self.cl_weight * modal, {"align": align, "modal": modal}
