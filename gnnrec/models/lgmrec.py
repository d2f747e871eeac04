"""LGMRec (Guo et al., AAAI 2024): local graph embeddings plus a global hypergraph embedding.

Local: E_cge = LightGCN over the user-item graph on free ID embeddings (mean of layers 0..n_ui); for each
modality m, items start from their projected features X_m W_m, users from the mean over their training items,
and both pass n_mm layers of the same graph (last layer kept): E_lge = E_cge + sum_m normalize(E_m).
Global: A learnable hyperedges per modality, item-hyperedge logits H_i = X_m V_m (raw features), user logits
H_u = R H_i (R: binary training interactions), each row relaxed to softmax((H + noise) / tau) and dropped out
(keep_rate); n_hyper layers of E_i <- H_i H_i^T E_i from the items' E_cge, users E_u = H_u H_i^T E_i.
Only items x A and users x A matrices exist, never items x items. E = E_lge + alpha normalize(sum_m E_ghe,m).
Loss = BPR + cl_weight x InfoNCE (tau) between every pair of modalities' global embeddings of the batch's users
and positive items (all users / items as negatives, summed over the batch as MMRec does) + reg_weight x the
batch's final embeddings' norms / batch size (as MMRec; ``reg_norm`` picks squared or plain norms).

Initialisation as the reference: ID tables, projections W_m and hyperedges V_m Xavier-uniform, projections
without bias, raw features frozen. Differences from MMRec's port (and the authors' repository):
- noise: the paper writes the relaxation as softmax((log d - log(1 - d) + h) / tau), d ~ U(0, 1) (logistic
  noise); MMRec calls torch's gumbel_softmax (Gumbel noise). ``hyper_noise`` picks either, paper by default.
- evaluation draws no noise and no dropout by default (MMRec keeps drawing Gumbel noise when it scores). The
  memberships are then softmax(H / tau), sharper than the noisy ones training sees (TikTok's raw audio features,
  64 hyperedges, at initialisation: the noiseless argmax is a Gumbel draw's for 4% of the items), so the scores
  are not those of the trained model's typical forward pass. ``eval_samples`` k >= 1 evaluates as MMRec does
  instead: the global term averaged over k noise draws from a fixed-seed generator (reproducible, and the
  training random stream is not touched); k = 1 is MMRec's single draw.
- any number of modalities (the contrastive loss over every pair; none with one modality); MMRec needs
  exactly image and text, and silently drops the hypergraph otherwise. The authors' repository overwrites the
  image users' dependencies with the text ones (a typo MMRec fixed); this follows the paper.
"""
from __future__ import annotations

from itertools import combinations

import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from gnnrec.data.dataset import RecDataset
from gnnrec.errors import ConfigError
from gnnrec.graphs.adjacency import fixed_operator, normalized_bipartite, row_normalize
from gnnrec.graphs.spmm import FixedSparse
from gnnrec.models.base import Recommender
from gnnrec.models.losses import info_nce
from gnnrec.models.lightgcn import propagate_mean
from gnnrec.models.modalities import require_features

NOISES = ("logistic", "gumbel")


EVAL_NOISE_SEED = 0  # seed of the generator behind ``eval_samples``: every evaluation draws the same noise


def relaxed_assignment(logits: torch.Tensor, tau: float, noise: str | None,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """Row-wise softmax((logits + noise) / tau): soft hyperedge memberships; ``noise`` None draws none.
    ``generator``: where the uniform draws come from (torch's global stream when None)."""
    if noise is not None:
        u = torch.rand(logits.shape, generator=generator, device=logits.device,
                       dtype=logits.dtype).clamp(1e-10, 1 - 1e-7)
        logits = logits + (u.log() - (-u).log1p() if noise == "logistic" else -(-u.log()).log())
    return torch.softmax(logits / tau, dim=1)


def hypergraph_conv(item_edges: torch.Tensor, user_edges: torch.Tensor, x: torch.Tensor, num_layers: int):
    """``num_layers`` of x <- H_i (H_i^T x) over items; users read the last layer's hyperedge messages."""
    for _ in range(num_layers):
        messages = item_edges.T @ x  # hyperedges x dim
        x = item_edges @ messages
    return user_edges @ messages, x


class LGMRec(Recommender):
    propagation_rule = "lightgcn"

    def __init__(self, dataset: RecDataset, embedding_dim: int = 64, num_layers: int = 2, num_mm_layers: int = 2,
                 num_hyper_layers: int = 1, hyper_num: int = 4, keep_rate: float = 0.5, alpha: float = 0.3,
                 cl_weight: float = 1e-4, tau: float = 0.2, hyper_noise: str = "logistic",
                 eval_samples: int = 0, reg_weight: float = 1e-6, **kwargs):
        super().__init__(dataset, embedding_dim=embedding_dim, reg_weight=reg_weight, **kwargs)
        feats = require_features(dataset, "lgmrec")
        for key, value, low in (("num_layers", num_layers, 0), ("num_mm_layers", num_mm_layers, 0),
                                ("num_hyper_layers", num_hyper_layers, 1), ("hyper_num", hyper_num, 1),
                                ("eval_samples", eval_samples, 0)):
            if int(value) != value or value < low:
                raise ConfigError(f"model.{key} must be an integer >= {low}, got {value}")
        if not 0 < keep_rate <= 1:
            raise ConfigError(f"model.keep_rate must be in (0, 1], got {keep_rate}")
        if tau <= 0:
            raise ConfigError(f"model.tau must be > 0, got {tau}")
        for key, value in (("alpha", alpha), ("cl_weight", cl_weight)):
            if value < 0:
                raise ConfigError(f"model.{key} must be >= 0, got {value}")
        if hyper_noise not in NOISES:
            raise ConfigError(f"model.hyper_noise must be one of {NOISES}, got '{hyper_noise}'")
        self.num_layers, self.num_mm_layers, self.num_hyper_layers = num_layers, num_mm_layers, num_hyper_layers
        self.alpha, self.cl_weight, self.tau, self.noise = alpha, cl_weight, tau, hyper_noise
        self.drop = 1 - keep_rate
        self.eval_samples = eval_samples
        self.names = sorted(feats)
        self.init_id_embeddings(embedding_dim)
        self.features = nn.ModuleDict({n: nn.Embedding.from_pretrained(torch.as_tensor(feats[n], dtype=torch.float32),
                                                                        freeze=True) for n in self.names})
        self.proj = nn.ParameterDict({n: nn.Parameter(nn.init.xavier_uniform_(torch.empty(feats[n].shape[1],
                                                                                            embedding_dim)))
                                      for n in self.names})
        self.hyperedges = nn.ParameterDict({n: nn.Parameter(nn.init.xavier_uniform_(torch.empty(feats[n].shape[1],
                                                                                                  hyper_num)))
                                            for n in self.names})
        graph = dataset.graph  # training interactions only
        self._adj = FixedSparse(normalized_bipartite(graph))
        self._inter = fixed_operator(graph)  # R: users' hyperedge logits sum their items'
        self._inter_mean = fixed_operator(row_normalize(graph))  # users' initial modality features: mean of their items'

    # --- local graph embedding ---------------------------------------------------------------------
    def collaborative(self) -> torch.Tensor:
        return propagate_mean(self._adj, torch.cat([self.user_emb.weight, self.item_emb.weight]), self.num_layers)

    def modality_graph(self, name: str) -> torch.Tensor:
        items = self.features[name].weight @ self.proj[name]
        x = torch.cat([self._inter_mean @ items, items])
        for _ in range(self.num_mm_layers):
            x = self._adj @ x
        return x

    # --- global hypergraph embedding ---------------------------------------------------------------
    def dependencies(self, name: str, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Soft item-hyperedge and user-hyperedge memberships (items x A, users x A), dropped out in training.
        Noise is drawn in training, and in evaluation when ``generator`` is given (``eval_samples``)."""
        item_logits = self.features[name].weight @ self.hyperedges[name]
        user_logits = self._inter @ item_logits
        noise = self.noise if self.training or generator is not None else None
        return tuple(F.dropout(relaxed_assignment(h, self.tau, noise, generator), self.drop, self.training)
                     for h in (item_logits, user_logits))

    def global_embeddings(self, item_cge: torch.Tensor, generator: torch.Generator | None = None,
                          ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Each modality's (users, items) hypergraph embeddings, from the items' collaborative embeddings."""
        out = {}
        for name in self.names:
            item_edges, user_edges = self.dependencies(name, generator)
            out[name] = hypergraph_conv(item_edges, user_edges, item_cge, self.num_hyper_layers)
        return out

    def global_term(self, item_cge: torch.Tensor):
        """normalize(sum_m E_ghe,m) (users then items; None without global embeddings) and the per-modality
        embeddings the contrastive loss reads. In evaluation with ``eval_samples`` k: the mean over k noise draws."""
        sampled = not self.training and self.eval_samples > 0
        draws = self.eval_samples if sampled else 1
        generator = torch.Generator(device=item_cge.device).manual_seed(EVAL_NOISE_SEED) if sampled else None
        total, glob = None, {}
        for _ in range(draws):
            glob = self.global_embeddings(item_cge, generator)
            if not glob:
                return None, glob
            ghe = F.normalize(sum(torch.cat([users, items]) for users, items in glob.values()), dim=1)
            total = ghe if total is None else total + ghe
        return total / draws, glob

    def encode(self):
        cge = self.collaborative()
        x = cge + sum(F.normalize(self.modality_graph(n), dim=1) for n in self.names)
        ghe, glob = self.global_term(cge[self.n_users :])
        if ghe is not None:
            x = x + self.alpha * ghe
        return x[: self.n_users], x[self.n_users :], glob

    def forward(self):
        users, items, _ = self.encode()
        return users, items

    def loss(self, users, pos, neg):
        user_emb, item_emb, glob = self.encode()
        bpr = self.bpr_loss(users, pos, neg, user_emb, item_emb)
        batch = [user_emb[users], item_emb[pos], item_emb[neg]]
        if self.hparams.reg_norm == "squared":
            reg = sum(e.pow(2).sum() for e in batch)
        else:
            reg = sum(e.norm(p=2) for e in batch)
        loss, parts = bpr + self.hparams.reg_weight * reg / len(users), {"bpr": bpr}
        if self.cl_weight and len(glob) > 1:
            hcl = 0
            for a, b in combinations(sorted(glob), 2):
                (ua, ia), (ub, ib) = glob[a], glob[b]
                hcl = hcl + info_nce(ua[users], ub[users], ub, self.tau, "sum") + info_nce(ia[pos], ib[pos], ib, self.tau, "sum")
            loss, parts["hcl"] = loss + self.cl_weight * hcl, hcl
        return loss, parts
