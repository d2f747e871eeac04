"""MGCN (Yu et al., ACM MM 2023): Multi-View Graph Convolutional Network for multimedia recommendation.

Purifier: each modality's projected features gate the item ID embeddings, e_m = e_id * sigmoid(W_m f_m + b).
User-item view: LightGCN over the training graph (mean of layers 0..L), from free ID embeddings.
Item-item views: e_m propagated over the modality's own frozen, weighted kNN item graph; users take
D_u^-1/2 R D_i^-1/2 of their items' vectors. Fuser: attention q^T tanh(W e_m + b), softmax over modalities,
gives the shared part c; specific parts e_m - c are gated by sigmoid(W'_m behaviour vector); the modality
view is (sum of gated specific parts + c) / (|M| + 1). Final vector = user-item view + modality view.
Loss = BPR + reg_weight x (1/2 x squared norms of the batch's final vectors) / batch + cl_weight x
(InfoNCE(modality view, user-item view) over the batch's users + the same over its positive items), in-batch
negatives, temperature 0.2. The learning rate decays as lr x lr_decay^(epoch / lr_decay_epochs).

As in the authors' code and MMRec's port: Xavier-uniform ID tables, PyTorch's default init for every linear
layer, trainable raw features (the graphs are built once from the given ones), graphs keep cosine weights.
Differences: any number of modalities (MMRec hard-codes image and text); the kNN graphs are built block-wise
and cached by feature hash; negative cosines are clipped to 0 before normalising (MMRec would take the
square root of a negative degree); the regulariser divides by the actual batch size, not the configured one.
"""
from __future__ import annotations

import torch
from torch import nn

from gnnrec.data.dataset import RecDataset
from gnnrec.errors import ConfigError
from gnnrec.graphs.adjacency import fixed_operator, normalized_bipartite, normalized_interactions
from gnnrec.graphs.spmm import FixedSparse
from gnnrec.models.base import Recommender
from gnnrec.models.losses import info_nce
from gnnrec.models.lightgcn import propagate_mean
from gnnrec.models.modalities import ModalityProjections, frozen_item_graph, gate, require_features


class MGCN(Recommender):
    propagation_rule = "lightgcn"

    def __init__(self, dataset: RecDataset, embedding_dim: int = 64, num_layers: int = 2, num_mm_layers: int = 1,
                 knn_k: int = 10, cl_weight: float = 0.01, temperature: float = 0.2, reg_weight: float = 1e-4,
                 lr_decay: float = 0.96, lr_decay_epochs: int = 50, graph_cache_dir: str | None = None,
                 knn_backend: str = "exact", knn_precision: str = "float32", **kwargs):
        super().__init__(dataset, embedding_dim=embedding_dim, reg_weight=reg_weight, **kwargs)
        feats = require_features(dataset, "mgcn")
        for key, value, ok, rule in [
                ("num_layers", num_layers, isinstance(num_layers, int) and num_layers >= 0, "an integer >= 0"),
                ("num_mm_layers", num_mm_layers, isinstance(num_mm_layers, int) and num_mm_layers >= 0,
                 "an integer >= 0"),
                ("knn_k", knn_k, isinstance(knn_k, int) and 1 <= knn_k <= dataset.n_items,
                 f"an integer in [1, {dataset.n_items}] (the number of items)"),
                ("cl_weight", cl_weight, cl_weight >= 0, ">= 0"),
                ("temperature", temperature, temperature > 0, "> 0"),
                ("reg_weight", reg_weight, reg_weight >= 0, ">= 0"),
                ("lr_decay", lr_decay, 0 < lr_decay <= 1, "in (0, 1]"),
                ("lr_decay_epochs", lr_decay_epochs, lr_decay_epochs > 0, "> 0")]:
            if not ok:
                raise ConfigError(f"model.{key} must be {rule}, got {value!r}")
        self.num_layers, self.num_mm_layers = num_layers, num_mm_layers
        self.init_id_embeddings(embedding_dim)
        self.modalities = ModalityProjections(feats, embedding_dim, trainable=True)
        self.names = self.modalities.names
        self.purifier = nn.ModuleDict({n: gate(embedding_dim) for n in self.names})
        self.query = nn.Sequential(nn.Linear(embedding_dim, embedding_dim), nn.Tanh(),
                                   nn.Linear(embedding_dim, 1, bias=False))
        self.preference = nn.ModuleDict({n: gate(embedding_dim) for n in self.names})
        # one frozen graph per modality, from the raw features; a constant operator, never items x items dense
        self.item_graphs = {n: frozen_item_graph({n: feats[n]}, knn_k, None, graph_cache_dir, binary=False,
                                                 backend=knn_backend, precision=knn_precision)
                            for n in self.names}
        self._adj = FixedSparse(normalized_bipartite(dataset.graph))
        self._user_items = fixed_operator(normalized_interactions(dataset.graph))

    def views(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(user-item view, fused modality view), each (users + items) x dim."""
        item_id = self.item_emb.weight
        behaviour = propagate_mean(self._adj, torch.cat([self.user_emb.weight, item_id]), self.num_layers)
        views = []
        for name, feat in self.modalities().items():
            h = item_id * self.purifier[name](feat)  # behaviour-guided purifier
            for _ in range(self.num_mm_layers):
                h = self.item_graphs[name] @ h
            views.append(torch.cat([self._user_items @ h, h]))
        views = torch.stack(views, 1)  # nodes x modalities x dim
        weight = torch.softmax(self.query(views).squeeze(-1), dim=1)  # attention over modalities
        common = (weight.unsqueeze(-1) * views).sum(1)
        prefer = torch.stack([self.preference[n](behaviour) for n in self.names], 1)
        specific = (prefer * (views - common.unsqueeze(1))).sum(1)
        return behaviour, (specific + common) / (len(self.names) + 1)

    def combine(self, behaviour: torch.Tensor, modal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = behaviour + modal
        return out[: self.n_users], out[self.n_users :]

    def forward(self):
        return self.combine(*self.views())

    def loss(self, users, pos, neg):
        behaviour, modal = self.views()
        user_emb, item_emb = self.combine(behaviour, modal)
        bpr = self.bpr_loss(users, pos, neg, user_emb, item_emb)
        batch = [user_emb[users], item_emb[pos], item_emb[neg]]
        if self.hparams.reg_norm == "squared":  # MMRec's MGCN: half the squared norms of the final vectors
            reg = 0.5 * sum(e.pow(2).sum() for e in batch)
        else:
            reg = sum(e.norm(p=2) for e in batch)
        reg = self.hparams.reg_weight * reg / len(users)
        t, items = self.hparams.temperature, pos + self.n_users
        cl = (info_nce(modal[items], behaviour[items], temperature=t)
              + info_nce(modal[users], behaviour[users], temperature=t))
        return bpr + reg + self.hparams.cl_weight * cl, {"bpr": bpr, "cl": cl}

    def configure_optimizers(self):
        return self.decaying(super().configure_optimizers(), self.hparams.lr_decay, self.hparams.lr_decay_epochs)
