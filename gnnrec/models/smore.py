"""SMORE (Ong & Khong, WSDM 2025): spectrum-based modality representation fusion graph convolutional network.

Spectrum: each modality's projected features x_m go through an FFT over the embedding dimension; a learnable
complex filter W_m per modality denoises them (irfft(F(x_m) W_m)), and the fused view is a product in the
frequency domain, irfft(W_f prod_m F(x_m)). Item-item views: each (denoised or fused) view gates the item ID
embeddings (e_i * sigmoid(Linear(.))) and is propagated over a frozen kNN graph: one per modality, and for
the fused view their element-wise maximum; users read items through the normalised interactions. Behaviour
view: LightGCN (mean of layers) over the user-item graph. Modality-aware preference: each modality's view
is re-weighted by a softmax attention queried from the fused view, then every view (modalities and fused)
by a sigmoid gate of the behaviour view (with dropout); side = their mean; final = behaviour + side.
Loss = BPR + reg_weight x (1/2) squared norms of the batch's final embeddings / batch
+ cl_weight x (InfoNCE(side, behaviour) over the batch's positive items + the same over its users).

Follows the authors' code (kennethorq/SMORE, identical to MMRec's port) and the paper; differences from
MMRec: any number of named modalities (the uni-modal filters, gates and queries are per modality, the
fusion spectrum is the product over all of them, the fused graph the maximum over all of them); kNN graphs
built block-wise and cached (never items x items); one k for all modalities (``knn_k``) with per-modality
overrides (``modality_knn_k``) instead of image_knn_k / text_knn_k; InfoNCE as a cross-entropy over the
batch similarity matrix (the same value, numerically stable). Initialisation as the reference: Xavier-uniform
ID embeddings, PyTorch-default linear layers, standard-normal complex filters, trainable raw features.
MMRec's learning-rate schedule lr x 0.96^(epoch / 50) is ``lr_decay`` / ``lr_decay_epochs``.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from gnnrec.data.dataset import RecDataset
from gnnrec.errors import ConfigError
from gnnrec.graphs.adjacency import fixed_operator, normalized_bipartite, normalized_interactions
from gnnrec.graphs.knn import item_graph
from gnnrec.graphs.spmm import FixedSparse
from gnnrec.models.base import Recommender
from gnnrec.models.losses import info_nce
from gnnrec.models.lightgcn import propagate_mean
from gnnrec.models.modalities import ModalityProjections, gate, require_features


def max_fusion(graphs: list[sp.spmatrix]) -> sp.csr_matrix:
    """Element-wise maximum of non-negative sparse graphs over the union of their edges (SMORE's max-pooling)."""
    fused = sp.csr_matrix(graphs[0], dtype=np.float32)
    for g in graphs[1:]:
        fused = fused.maximum(sp.csr_matrix(g, dtype=np.float32))
    fused = sp.csr_matrix(fused, dtype=np.float32)
    fused.sort_indices()
    return fused


class SMORE(Recommender):
    propagation_rule = "lightgcn"

    def __init__(self, dataset: RecDataset, embedding_dim: int = 64, num_layers: int = 3, num_item_layers: int = 1,
                 knn_k: int = 10, modality_knn_k: dict | None = None, cl_weight: float = 0.01,
                 temperature: float = 0.2, dropout: float = 0.0, reg_weight: float = 1e-4, lr_decay: float = 0.96,
                 lr_decay_epochs: int = 50, graph_cache_dir: str | None = None, knn_backend: str = "exact",
                 knn_precision: str = "float32", **kwargs):
        super().__init__(dataset, embedding_dim=embedding_dim, reg_weight=reg_weight, **kwargs)
        feats = require_features(dataset, "smore")
        names = sorted(feats)
        self.check_settings(names)
        self.dim, self.num_layers, self.num_item_layers = embedding_dim, num_layers, num_item_layers
        self.init_id_embeddings(embedding_dim)
        self.modalities = ModalityProjections(feats, embedding_dim, trainable=True)
        freqs = embedding_dim // 2 + 1  # rfft of a real vector of length d
        self.filters = nn.ParameterDict({n: nn.Parameter(torch.randn(freqs, 2)) for n in names})
        self.fusion_filter = nn.Parameter(torch.randn(freqs, 2))
        self.item_gates = nn.ModuleDict({n: gate(embedding_dim) for n in names})
        self.fusion_gate = gate(embedding_dim)
        self.queries = nn.ModuleDict({n: nn.Sequential(nn.Linear(embedding_dim, embedding_dim), nn.Tanh(),
                                                       nn.Linear(embedding_dim, embedding_dim, bias=False))
                                      for n in names})
        self.prefer_gates = nn.ModuleDict({n: gate(embedding_dim) for n in names})
        self.fusion_prefer_gate = gate(embedding_dim)
        self.prefer_dropout = nn.Dropout(dropout)
        # frozen graphs, built once from the training interactions and the raw features
        ks = {n: (modality_knn_k or {}).get(n, knn_k) for n in names}
        for n, k in ks.items():
            if k > self.n_items:
                key = "knn_k" if k == knn_k else f"modality_knn_k.{n}"
                raise ConfigError(f"model.{key} must be at most the number of items ({self.n_items}), got {k}")
        graphs = {n: item_graph({n: feats[n]}, k=ks[n], weights={n: 1.0}, binary=False, cache_dir=graph_cache_dir,
                                backend=knn_backend, precision=knn_precision) for n in names}
        self.item_graphs = {n: fixed_operator(g) for n, g in graphs.items()}
        self.fusion_graph = fixed_operator(max_fusion([graphs[n] for n in names]))
        self._ui_adj = FixedSparse(normalized_bipartite(dataset.graph))
        self._r = fixed_operator(normalized_interactions(dataset.graph))

    def check_settings(self, names: list[str]) -> None:
        h = self.hparams

        def positive_int(key, value, minimum=1):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(f"model.{key} must be an integer >= {minimum}, got {value!r}")

        positive_int("embedding_dim", h.embedding_dim)
        positive_int("num_layers", h.num_layers, 0)
        positive_int("num_item_layers", h.num_item_layers, 0)
        positive_int("knn_k", h.knn_k)
        positive_int("lr_decay_epochs", h.lr_decay_epochs)
        if h.modality_knn_k is not None:
            if not isinstance(h.modality_knn_k, dict) or set(h.modality_knn_k) - set(names):
                raise ConfigError(f"model.modality_knn_k must map modalities among {names} to k, "
                                  f"got {h.modality_knn_k!r}")
            for name, k in h.modality_knn_k.items():
                positive_int(f"modality_knn_k.{name}", k)
        if not h.reg_weight >= 0:
            raise ConfigError(f"model.reg_weight must be >= 0, got {h.reg_weight}")
        if not h.cl_weight >= 0:
            raise ConfigError(f"model.cl_weight must be >= 0, got {h.cl_weight}")
        if not h.temperature > 0:
            raise ConfigError(f"model.temperature must be > 0, got {h.temperature}")
        if not 0 <= h.dropout < 1:
            raise ConfigError(f"model.dropout must be in [0, 1), got {h.dropout}")
        if not 0 < h.lr_decay <= 1:
            raise ConfigError(f"model.lr_decay must be in (0, 1], got {h.lr_decay}")

    # --- spectrum-based modality fusion -------------------------------------------------------------
    def spectrum(self, feats: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Each modality denoised by its complex filter, and the fused view (product of spectra, filtered)."""
        spectra = {n: torch.fft.rfft(x, dim=1, norm="ortho") for n, x in feats.items()}
        denoised = {n: torch.fft.irfft(s * torch.view_as_complex(self.filters[n]), n=self.dim, dim=1, norm="ortho")
                    for n, s in spectra.items()}
        product = None
        for s in spectra.values():
            product = s if product is None else product * s
        fused = torch.fft.irfft(product * torch.view_as_complex(self.fusion_filter), n=self.dim, dim=1, norm="ortho")
        return denoised, fused

    # --- item-item views ----------------------------------------------------------------------------
    def item_view(self, graph: FixedSparse, items: torch.Tensor) -> torch.Tensor:
        """Items propagated over a frozen item graph; users read them through the interactions: (users+items, d)."""
        for _ in range(self.num_item_layers):
            items = graph @ items
        return torch.cat([self._r @ items, items])

    def encode(self):
        """(final, side, behaviour) embeddings of all users then all items."""
        denoised, fused = self.spectrum(self.modalities())
        ids = self.item_emb.weight
        views = {n: self.item_view(self.item_graphs[n], ids * self.item_gates[n](x)) for n, x in denoised.items()}
        fusion = self.item_view(self.fusion_graph, ids * self.fusion_gate(fused))
        behaviour = propagate_mean(self._ui_adj, torch.cat([self.user_emb.weight, ids]), self.num_layers)
        # modality-aware preference: fusion-queried attention (over the embedding dimension, as the reference),
        # then behaviour-guided gates
        parts = [self.prefer_dropout(self.prefer_gates[n](behaviour)) * torch.softmax(self.queries[n](fusion), -1)
                 * v for n, v in views.items()]
        parts.append(self.prefer_dropout(self.fusion_prefer_gate(behaviour)) * fusion)
        side = torch.stack(parts).mean(0)
        return behaviour + side, side, behaviour

    def forward(self):
        final = self.encode()[0]
        return final[: self.n_users], final[self.n_users :]

    def loss(self, users, pos, neg):
        final, side, behaviour = self.encode()
        user_emb, item_emb = final[: self.n_users], final[self.n_users :]
        bpr = self.bpr_loss(users, pos, neg, user_emb, item_emb)
        batch = [user_emb[users], item_emb[pos], item_emb[neg]]
        if self.hparams.reg_norm == "squared":  # SMORE's form: half the squared norms
            reg = 0.5 * sum(e.pow(2).sum() for e in batch)
        else:
            reg = sum(e.norm(p=2) for e in batch)
        reg = self.hparams.reg_weight * reg / len(users)
        items = pos + self.n_users
        cl = (info_nce(side[items], behaviour[items], temperature=self.hparams.temperature)
              + info_nce(side[users], behaviour[users], temperature=self.hparams.temperature))
        return bpr + reg + self.hparams.cl_weight * cl, {"bpr": bpr, "cl": cl}

    def configure_optimizers(self):
        return self.decaying(super().configure_optimizers(), self.hparams.lr_decay, self.hparams.lr_decay_epochs)
