"""LATTICE (Zhang et al., MM 2021): a learned item-item graph mixed with the frozen one.

Each modality's features are projected (trainable) and a kNN graph of the projections is rebuilt at the
start of every epoch, with gradients into the projections for that first batch (as the authors' code does)
and detached afterwards. The modalities are mixed with softmax weights; the item graph is
(1 - lambda) x learned + lambda x frozen. h = item graph^L E_items, item vector = LightGCN item vector +
normalize(h). The learned graph is built with the block-wise top-k, so it is never items x items.
Initialisation as MMRec (src/models/lattice.py) and the authors' code: ID tables Xavier-uniform (lines 48-51),
modality projections nn.Linear's default (lines 90, 92), equal modality weights (line 94: [0.5, 0.5]).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gnnrec.data.dataset import RecDataset
from gnnrec.graphs.adjacency import normalized_bipartite
from gnnrec.graphs.spmm import FixedSparse
from gnnrec.graphs.knn import knn_topk
from gnnrec.models.base import Recommender
from gnnrec.models.lightgcn import propagate_mean
from gnnrec.models.modalities import ModalityProjections, frozen_item_graph, require_features


def learned_knn_graph(x: torch.Tensor, k: int) -> torch.Tensor:
    """Weighted kNN graph of ``x`` (differentiable in its values), normalised D^-1/2 A D^-1/2, sparse COO."""
    idx, val = knn_topk(x, k)
    val = val.clamp(min=0)  # cosine can be negative; a negative degree has no square root
    deg = val.sum(1) + 1e-7
    inv = deg.pow(-0.5)
    rows = torch.arange(x.shape[0], device=x.device).repeat_interleave(k)
    values = (inv[:, None] * val * inv[idx]).reshape(-1)
    return torch.sparse_coo_tensor(torch.stack([rows, idx.reshape(-1)]), values, (x.shape[0], x.shape[0]))


class LATTICE(Recommender):
    propagation_rule = "lightgcn"

    def __init__(self, dataset: RecDataset, embedding_dim: int = 64, num_layers: int = 2, num_item_layers: int = 1,
                 knn_k: int = 10, lambda_coeff: float = 0.9, reg_weight: float = 0.0,
                 graph_cache_dir: str | None = None, **kwargs):
        super().__init__(dataset, embedding_dim=embedding_dim, reg_weight=reg_weight, **kwargs)
        feats = require_features(dataset, "lattice")
        self.num_layers, self.num_item_layers, self.knn_k, self.lam = num_layers, num_item_layers, knn_k, lambda_coeff
        self.init_id_embeddings(embedding_dim)
        self.modalities = ModalityProjections(feats, embedding_dim, trainable=False)
        self.modal_weight = nn.Parameter(torch.full((len(feats),), 1.0 / len(feats)))
        self.frozen = {n: frozen_item_graph({n: feats[n]}, knn_k, None, graph_cache_dir, binary=False)
                       for n in sorted(feats)}
        self._adj = FixedSparse(normalized_bipartite(dataset.graph))
        self._learned = None  # {modality: sparse graph}, rebuilt each epoch

    def on_train_epoch_start(self):
        self._learned = None

    def on_load_checkpoint(self, checkpoint):
        # the cached graph came from the weights of another epoch: the best checkpoint's evaluation (and any
        # reopened run) builds it from the loaded projections, so reported and re-computed scores agree
        self._learned = None

    def learned_graphs(self, with_grad: bool) -> dict[str, torch.Tensor]:
        with torch.set_grad_enabled(with_grad):
            graphs = {n: learned_knn_graph(f, self.knn_k) for n, f in self.modalities().items()}
        return graphs

    def item_part(self, learned: dict[str, torch.Tensor]) -> torch.Tensor:
        device = self.item_emb.weight.device
        weights = torch.softmax(self.modal_weight, dim=0)
        h = self.item_emb.weight
        for _ in range(self.num_item_layers):
            mixed = 0
            for w, name in zip(weights, sorted(learned)):
                mixed = mixed + w * ((1 - self.lam) * torch.sparse.mm(learned[name].to(device), h)
                                     + self.lam * (self.frozen[name] @ h))
            h = mixed
        return F.normalize(h, p=2, dim=1)

    def forward(self, learned: dict[str, torch.Tensor] | None = None):
        if learned is None:
            if self._learned is None:
                self._learned = self.learned_graphs(with_grad=False)
            learned = self._learned
        users, items = propagate_mean(self._adj, (self.user_emb.weight, self.item_emb.weight), self.num_layers)
        return users, items + self.item_part(learned)

    def loss(self, users, pos, neg):
        if self._learned is None:  # first batch of the epoch: the projections get gradients through the graph
            learned = self.learned_graphs(with_grad=True)
            self._learned = {n: g.detach() for n, g in learned.items()}
        else:
            learned = self._learned
        user_emb, item_emb = self(learned)
        bpr = self.bpr_loss(users, pos, neg, user_emb, item_emb)
        return bpr + self.reg_loss(users, pos, neg), {"bpr": bpr}
