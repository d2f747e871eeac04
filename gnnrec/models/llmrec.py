"""LLMRec (Wei et al., WSDM 2024): LightGCN over ID embeddings plus projected side information, trained on
LLM-augmented batches with denoised robustification (reference section 7).

User vector = LightGCN user + feature_weight x sum_m norm(mean over the user's items of P_m x_m)
              + profile_weight x sum_f norm(Q_f profile_f);
item vector = LightGCN item + feature_weight x sum_m norm(P_m x_m) + attribute_weight x sum_a norm(P_a x_a).
``m`` runs over the item modalities (frozen features, e.g. text or image), ``a`` over the LLM attribute
modalities, ``f`` over the user features (LLM profiles). Augmented triples arrive inside the batches (the
DataModule appends and flags them); noisy-edge pruning keeps the ``keep_share`` smallest per-triple BPR
losses among the augmented triples (``prune_scope: augmented``, the default) or among all triples of the
batch (``batch``: on MovieLens-100k this stalls training at a third of LightGCN's recall, because the
hardest real interactions never get a gradient; see benchmarks/llmrec.md), and adds ``mae_weight`` x the scaled cosine error of masked item features reconstructed from the
features of the items' two-hop neighbours (MAE feature enhancement).
Initialisation as the authors' code (HKUDS/LLMRec Models.py): ID tables Xavier-uniform (lines 40-43), the
feature, attribute and profile projections' weights Xavier-uniform (lines 31-38), biases and the MAE decoders
nn.Linear's default.
"""
from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from gnnrec.data.dataset import RecDataset
from gnnrec.graphs.adjacency import fixed_operator, normalized_bipartite, row_normalize
from gnnrec.graphs.spmm import FixedSparse
from gnnrec.models.base import Recommender
from gnnrec.models.denoise import mask_rows, prune_noisy, scaled_cosine_error
from gnnrec.models.lightgcn import propagate_mean
from gnnrec.models.modalities import ModalityProjections

log = logging.getLogger(__name__)


def mean_operator(mat) -> FixedSparse:
    """``op @ x`` averages ``x`` over each row's neighbours."""
    return fixed_operator(row_normalize(mat))


class LLMRec(Recommender):
    propagation_rule = "lightgcn"

    def __init__(self, dataset: RecDataset, embedding_dim: int = 64, num_layers: int = 2,
                 attribute_modalities: list[str] | tuple = ("attributes",), feature_weight: float = 0.55,
                 attribute_weight: float = 0.005, profile_weight: float = 2.8, feature_dropout: float = 0.0,
                 keep_share: float = 0.71, prune_scope: str = "augmented", mask_ratio: float = 0.1, mae_weight: float = 0.1,
                 sce_alpha: float = 2.0, **kwargs):
        super().__init__(dataset, embedding_dim=embedding_dim, **kwargs)
        self.num_layers = num_layers
        self.init_id_embeddings(embedding_dim)
        attrs = set(attribute_modalities or ())
        missing = sorted(attrs - set(dataset.features))
        if missing:
            log.warning("llmrec: attribute modalities %s are not in dataset %s; trained without them", missing,
                        dataset.name)
        self.features = ModalityProjections({k: v for k, v in dataset.features.items() if k not in attrs},
                                            embedding_dim, trainable=False, init="xavier_uniform")
        self.attributes = ModalityProjections({k: v for k, v in dataset.features.items() if k in attrs},
                                              embedding_dim, trainable=False, init="xavier_uniform")
        self.profiles = ModalityProjections(dataset.user_features, embedding_dim, trainable=False,
                                            init="xavier_uniform")
        self.mask_tokens = nn.ParameterDict({n: nn.Parameter(torch.zeros(dataset.features[n].shape[1]))
                                             for n in self.features.names})
        self.decoders = nn.ModuleDict({n: nn.Linear(embedding_dim, dataset.features[n].shape[1])
                                       for n in self.features.names})
        self.dropout = nn.Dropout(feature_dropout)
        graph = dataset.graph
        self._adj = FixedSparse(normalized_bipartite(graph))
        self._user_mean = mean_operator(graph)  # users x items
        self._item_mean = mean_operator(graph.T.tocsr())  # items x users

    def forward(self):
        w = self.hparams
        x = propagate_mean(self._adj, torch.cat([self.user_emb.weight, self.item_emb.weight]), self.num_layers)
        users, items = x[: self.n_users], x[self.n_users :]
        for p in self.features().values():
            p = self.dropout(p)
            users = users + w.feature_weight * F.normalize(self._user_mean @ p, dim=-1)
            items = items + w.feature_weight * F.normalize(p, dim=-1)
        for p in self.attributes().values():
            items = items + w.attribute_weight * F.normalize(self.dropout(p), dim=-1)
        for q in self.profiles().values():
            users = users + w.profile_weight * F.normalize(self.dropout(q), dim=-1)
        return users, items

    def reconstruction_loss(self) -> torch.Tensor:
        """Scaled cosine error of masked item feature rows rebuilt from their two-hop neighbours' features."""
        total = torch.zeros((), device=self.device)
        for name in self.features.names:
            raw = self.features.tables[name].weight
            rows = mask_rows(self.n_items, self.hparams.mask_ratio, device=raw.device)
            if not len(rows):
                continue
            masked = raw.index_copy(0, rows, self.mask_tokens[name].expand(len(rows), -1))
            z = self.features.proj[name](masked)
            context = z + self._item_mean @ (self._user_mean @ z)
            total = total + scaled_cosine_error(self.decoders[name](context[rows]), raw[rows], self.hparams.sce_alpha)
        return total

    def loss(self, users, pos, neg):
        user_emb, item_emb = self()
        bpr = prune_noisy(self.bpr_terms(users, pos, neg, user_emb, item_emb),
                          getattr(self, "augmented_in_batch", None), self.hparams.keep_share, self.hparams.prune_scope)
        mae = self.reconstruction_loss() if self.hparams.mae_weight > 0 else torch.zeros((), device=self.device)
        return bpr + self.reg_loss(users, pos, neg) + self.hparams.mae_weight * mae, {"bpr": bpr, "mae": mae}
