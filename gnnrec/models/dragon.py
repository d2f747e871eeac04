"""DRAGON (Zhou et al., ECAI 2023): dual representations from heterogeneous and homogeneous graphs.

Per modality m: x_m = l2-normalise([P_m ; MLP_m(features_m)]) (a free user preference table and a two-layer
MLP of the fixed item features), propagated over the normalised user-item graph, layers summed:
h_m = x_m + A x_m + ... + A^L x_m. Attentive concatenation: user = ||_m w_u,m h_m(u) (w: trainable per-user
modality weights), item = ||_m h_m(i). Homogeneous graphs: item += S^n_mm item over the frozen fused kNN
item graph; user += U user over the user co-occurrence graph (each user's top-k users by co-interacted
training items, softmax over the counts). Loss = BPR + reg_weight x (sum_m mean P_m[batch]^2 + mean w^2).

Initialisation as the authors' code (and MMRec's port): P_m and w xavier-normal (w then softmaxed over
modalities), MLPs nn.Linear's default. Differences from MMRec's port: the user graph is built here from
the training graph (MMRec needs a `user_graph_dict.npy` whose script is unpublished; the authors' script
makes a dense users x users matrix); neighbours are the top `user_knn_k` by count with ties to the lower
user id, and users with fewer co-users keep only those (MMRec pads to k by random repeats, redrawn every
epoch, which re-weights the softmax); any number of modalities (MMRec: image and/or text) with
`modality_weights` for the item graph (MMRec: mm_image_weight); BPR uses the natural log (MMRec: log2,
i.e. a 1/ln 2 scale on the BPR term relative to reg_weight); MMRec's unused dropped-edge graphs are left out.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gnnrec.data.dataset import RecDataset
from gnnrec.errors import ConfigError
from gnnrec.graphs.adjacency import fixed_operator, normalized_bipartite
from gnnrec.graphs.spmm import FixedSparse
from gnnrec.graphs.user_graph import AGGREGATIONS, aggregate, user_graph
from gnnrec.models.base import Recommender
from gnnrec.models.lightgcn import propagate_sum
from gnnrec.models.modalities import frozen_item_graph, require_features


class DRAGON(Recommender):
    propagation_rule = "lightgcn"

    def __init__(self, dataset: RecDataset, embedding_dim: int = 64, num_layers: int = 2, num_mm_layers: int = 1,
                 knn_k: int = 10, modality_weights: dict | None = None, user_knn_k: int = 40,
                 user_aggr: str = "softmax", reg_weight: float = 1e-3, graph_cache_dir: str | None = None,
                 knn_backend: str = "exact", knn_precision: str = "float32", **kwargs):
        super().__init__(dataset, embedding_dim=embedding_dim, reg_weight=reg_weight, **kwargs)
        feats = require_features(dataset, "dragon")
        checks = [("embedding_dim", embedding_dim, 1, None), ("num_layers", num_layers, 0, None),
                  ("num_mm_layers", num_mm_layers, 0, None), ("knn_k", knn_k, 1, self.n_items),
                  ("user_knn_k", user_knn_k, 1, self.n_users - 1)]
        for name, value, low, high in checks:
            if not isinstance(value, int) or value < low or (high is not None and value > high):
                bound = f"[{low}, {high}]" if high is not None else f">= {low}"
                raise ConfigError(f"model.{name} must be an integer {bound}, got {value!r}")
        if user_aggr not in AGGREGATIONS:
            raise ConfigError(f"model.user_aggr must be one of {AGGREGATIONS}, got '{user_aggr}'")
        self.names = sorted(feats)
        self.num_layers, self.num_mm_layers = num_layers, num_mm_layers
        d, m = embedding_dim, len(self.names)
        # per-modality user preferences P_m and item-feature MLPs (features fixed, as in the reference)
        self.preference = nn.ParameterDict({n: nn.Parameter(nn.init.xavier_normal_(torch.empty(self.n_users, d)))
                                            for n in self.names})
        self.features = nn.ModuleDict({n: nn.Embedding.from_pretrained(
            torch.from_numpy(np.asarray(feats[n], dtype=np.float32)), freeze=True) for n in self.names})
        self.mlp = nn.ModuleDict({n: nn.Sequential(nn.Linear(feats[n].shape[1], 4 * d), nn.LeakyReLU(),
                                                   nn.Linear(4 * d, d)) for n in self.names})
        self.modal_weight = nn.Parameter(torch.softmax(nn.init.xavier_normal_(torch.empty(self.n_users, m, 1)), 1)
                                         .squeeze(2))
        self._adj = FixedSparse(normalized_bipartite(dataset.graph))
        self.item_graph = frozen_item_graph(feats, knn_k, modality_weights, graph_cache_dir, backend=knn_backend,
                                            precision=knn_precision)
        weights = aggregate(user_graph(dataset.graph, user_knn_k, graph_cache_dir), user_aggr)
        self.user_graph = fixed_operator(weights)

    def modality_reps(self) -> dict[str, torch.Tensor]:
        """Each modality's (users + items) representation propagated over the user-item graph, layers summed."""
        out = {}
        for n in self.names:
            x = F.normalize(torch.cat([self.preference[n], self.mlp[n](self.features[n].weight)]), dim=1)
            out[n] = propagate_sum(self._adj, x, self.num_layers)
        return out

    def user_graph_term(self, users: torch.Tensor) -> torch.Tensor:
        """Softmax-weighted sum of each user's co-occurrence neighbours."""
        return self.user_graph @ users

    def item_graph_term(self, items: torch.Tensor) -> torch.Tensor:
        h = items
        for _ in range(self.num_mm_layers):
            h = self.item_graph @ h
        return h

    def forward(self):
        reps = self.modality_reps()
        users = torch.cat([self.modal_weight[:, j : j + 1] * reps[n][: self.n_users] for j, n in enumerate(self.names)],
                          dim=1)
        items = torch.cat([reps[n][self.n_users :] for n in self.names], dim=1)
        return users + self.user_graph_term(users), items + self.item_graph_term(items)

    def loss(self, users, pos, neg):
        user_emb, item_emb = self()
        bpr = self.bpr_loss(users, pos, neg, user_emb, item_emb)
        reg = sum(self.preference[n][users].pow(2).mean() for n in self.names) + self.modal_weight.pow(2).mean()
        return bpr + self.hparams.reg_weight * reg, {"bpr": bpr}
