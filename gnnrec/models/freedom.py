"""FREEDOM (Zhou & Shen, MM 2023): a frozen item-item kNN graph plus a degree-sensitively pruned user-item graph.

h = S^n_mm E_items over the frozen fused item graph; LightGCN (mean of layers) over the user-item graph,
pruned afresh every epoch in training and full in evaluation; item vector = LightGCN item vector + h.
Loss = BPR(user, item) + reg_weight x sum over modalities of BPR(user, projected feature of item).
Initialisation as MMRec (src/models/freedom.py): ID tables Xavier-uniform (lines 49-52), modality projections
nn.Linear's default (lines 59, 62).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from gnnrec.data.dataset import RecDataset
from gnnrec.graphs.adjacency import normalized_bipartite
from gnnrec.graphs.pruning import DegreeSensitivePruner
from gnnrec.graphs.spmm import FixedSparse
from gnnrec.models.base import Recommender
from gnnrec.models.lightgcn import propagate_mean
from gnnrec.models.modalities import ModalityProjections, frozen_item_graph, require_features
from gnnrec.models.rows import rows


class FREEDOM(Recommender):
    propagation_rule = "lightgcn"

    def __init__(self, dataset: RecDataset, embedding_dim: int = 64, num_layers: int = 2, num_mm_layers: int = 1,
                 knn_k: int = 10, modality_weights: dict | None = None, dropout: float = 0.8,
                 reg_weight: float = 0.0, graph_cache_dir: str | None = None, knn_backend: str = "exact",
                 knn_precision: str = "float32", sparse_features: bool = True, **kwargs):
        super().__init__(dataset, embedding_dim=embedding_dim, reg_weight=reg_weight, **kwargs)
        self.num_layers, self.num_mm_layers = num_layers, num_mm_layers
        self.init_id_embeddings(embedding_dim)
        self.item_graph = frozen_item_graph(require_features(dataset, "freedom"), knn_k, modality_weights,
                                            graph_cache_dir, backend=knn_backend, precision=knn_precision)
        # sparse_features: only the batch's feature rows get gradients and (lazy) Adam updates; false gives
        # MMRec's dense Adam over the whole tables (docs/performance.md)
        self.modalities = ModalityProjections(dataset.features, embedding_dim, trainable=True, sparse=sparse_features)
        self.pruner = DegreeSensitivePruner(dataset.graph, dropout)
        self._full_adj = FixedSparse(normalized_bipartite(dataset.graph))
        self._train_adj = None

    def on_train_epoch_start(self):
        # same draw on every DDP rank: seeded by the run seed and the epoch
        rng = np.random.default_rng([torch.initial_seed() % 2**32, self.current_epoch])
        self._train_adj = FixedSparse(self.pruner.sample(rng))

    def forward(self, adj: FixedSparse | None = None):
        adj = self._full_adj if adj is None else adj
        h = self.item_emb.weight
        for _ in range(self.num_mm_layers):
            h = self.item_graph @ h
        # + h inside the propagation's buffer: the BPR gradients then reach its backward as one buffer
        return propagate_mean(adj, (self.user_emb.weight, self.item_emb.weight), self.num_layers, plus=(None, h))

    def loss(self, users, pos, neg):
        adj = self._train_adj if self._train_adj is not None else self._full_adj
        user_emb, item_emb = self(adj)
        bpr = self.bpr_loss(users, pos, neg, user_emb, item_emb)
        if not self.hparams.reg_weight:  # the feature losses would add nothing, gradients included
            return bpr, {"bpr": bpr}
        # BPR needs only proj(x_pos) - proj(x_neg): the batch's rows, not every item's (same gradients)
        (u,) = rows(user_emb, users)
        diffs = self.modalities.differences(pos, neg)
        feature_bpr = sum(-F.logsigmoid((u * d).sum(-1)).mean() for d in diffs.values())
        return bpr + self.hparams.reg_weight * feature_bpr, {"bpr": bpr, "feature_bpr": feature_bpr}
