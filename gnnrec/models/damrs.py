"""DA-MRS (Xu et al., KDD 2024): denoising and aligning multimodal content and user feedback, around a backbone.

Item views: one denoised kNN graph per modality (an edge survives only where the cosine similarity is at least
its all-pairs mean in *every* modality; then the top ``knn_k`` of each row) and an item-item behaviour graph
(items co-interacted by >= ``min_co_interactions`` training users, top ``behaviour_k`` per row, plus self-loops);
all binary, D^-1/2 A D^-1/2. Each view propagates the item ID embeddings, h_v = A_v^n_mm E_items.
Forward: the backbone (LightGCN mean of layers, or MF) gives (user, item); item vector = item + mean_v h_v.
Loss = denoised BPR + kl_weight x L_AU + neighbor_weight x L_AI (+ reg_weight x layer-0 L2, 0 as the authors):
- denoised BPR: per triple, with p_v = sigmoid(u . norm(h_v[i])), w+ = mean_v p_v(pos) exp(-var_v p_v(pos))^2
  weighs log sigmoid(s+ - s-); where mean_v p_v(pos) is below the batch's mean p(neg) the observed item is
  likely noise and log sigmoid(s- - s+) gets w- = max_v p_v(pos) - mean p(neg) (weights clipped to [0, 1]);
- L_AU: symmetric Bernoulli KL between sigmoid(u . norm(item)) and sigmoid(u . norm(mean_v h_v)) over the
  batch's users x items (user-preference-guided alignment of behaviour and content);
- L_AI: per view, graded contrastive loss (temperature 0.2): the top ``num_positives`` items by (sum of all
  views' softmax cosine + own view's) are first-grade positives, the next ``num_positives`` by the own view
  second-grade positives (10 in the Amazon code, knn_k in the authors' TikTok code).
``denoise_feedback=False`` trains plain BPR instead of the denoised one (weights 1 and 0, a variant left
commented out in the authors' TikTok code): a switch to measure what the denoising adds.
Authors' code (XMUDM/DA-MRS, identical to MMRec's port) differs in details followed here only where the paper
agrees: the graphs are built block-wise (never items x items; the all-pairs mean cosine in closed form); rows
with fewer than ``knn_k`` surviving neighbours keep only those (MMRec may fill them with masked items); any
number of modalities (MMRec hard-codes image + text); the KL uses the stable identity on logits. Embeddings are
Xavier-uniform as in both; features are only used to build graphs (no projections, as in the reference).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from gnnrec.data.dataset import RecDataset
from gnnrec.errors import ConfigError
from gnnrec.topk import topk_items
from gnnrec.graphs.adjacency import fixed_operator, normalized_bipartite, sym_normalize
from gnnrec.graphs.knn import cache_key, normalize_rows
from gnnrec.graphs.spmm import FixedSparse
from gnnrec.models.base import Recommender
from gnnrec.models.lightgcn import propagate_mean
from gnnrec.models.modalities import require_features

log = logging.getLogger(__name__)
BACKBONES = ("lightgcn", "mf")


def binary_sym_norm(rows: np.ndarray, cols: np.ndarray, n: int) -> sp.csr_matrix:
    """Binary n x n adjacency of the edges (rows, cols), normalised D^-1/2 A D^-1/2 with D the row sums."""
    adj = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n, n))
    adj.sum_duplicates()
    adj.data[:] = 1.0
    return sym_normalize(adj)


def mean_cosine(x: torch.Tensor) -> float:
    """Mean of the n x n cosine matrix of row-normalised ``x`` (diagonal included): |sum_i x_i|^2 / n^2."""
    s = x.double().sum(0)
    return float(s @ s) / x.shape[0] ** 2


def consistent_knn(features: dict[str, np.ndarray], k: int, row_block: int = 1024,
                   col_block: int = 8192) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Denoised kNN edges (rows, cols) of each modality: (i, j) is a candidate only if its cosine similarity is
    at least the all-pairs mean in every modality; each row keeps its top ``k`` candidates (the item itself
    included, ties to the lower id). Block-wise with a running top-k, never items x items."""
    names = sorted(features)
    xs = {m: normalize_rows(features[m], m) for m in names}
    n = next(iter(xs.values())).shape[0]
    if not 0 < k <= n:
        raise ConfigError(f"model.knn_k must be in [1, {n}] for {n} items, got {k}")
    means = {m: mean_cosine(xs[m]) for m in names}
    edges = {m: ([], []) for m in names}
    for r0 in range(0, n, row_block):
        rows = {m: xs[m][r0 : r0 + row_block] for m in names}
        b = len(rows[names[0]])
        best = {m: (torch.empty((b, 0)), torch.empty((b, 0), dtype=torch.int64)) for m in names}
        for c0 in range(0, n, col_block):
            sims = {m: rows[m] @ xs[m][c0 : c0 + col_block].T for m in names}
            keep = torch.stack([sims[m] >= means[m] for m in names]).all(0)
            ids = torch.arange(c0, c0 + keep.shape[1]).expand(b, -1)
            for m in names:
                val, idx = best[m]
                order = torch.argsort(idx, dim=1)  # running best in ascending id order: ties go to lower ids
                cand_val = torch.cat([val.gather(1, order), sims[m].masked_fill(~keep, -torch.inf)], 1)
                cand_idx = torch.cat([idx.gather(1, order), ids], 1)
                pos = topk_items(cand_val, min(k, cand_val.shape[1]))
                best[m] = (cand_val.gather(1, pos), cand_idx.gather(1, pos))
        for m in names:
            val, idx = best[m]
            ok = val > -torch.inf  # rows with fewer than k consistent neighbours keep only those
            edges[m][0].append((torch.arange(r0, r0 + b)[:, None].expand(-1, idx.shape[1])[ok]).numpy())
            edges[m][1].append(idx[ok].numpy())
    return {m: (np.concatenate(r), np.concatenate(c)) for m, (r, c) in edges.items()}


def denoised_item_graphs(features: dict[str, np.ndarray], k: int, cache_dir: str | None = None) -> dict:
    """Each modality's denoised, normalised kNN graph (scipy CSR), cached under a hash of features and k."""
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"damrs_graphs-{cache_key(features, {'k': k, 'kind': 'damrs-consistent'})}.npz"
        if path.is_file():
            stored = np.load(path)
            log.info("DA-MRS item graphs loaded from cache %s", path)
            n = next(iter(features.values())).shape[0]
            return {m: binary_sym_norm(stored[f"{m}/rows"], stored[f"{m}/cols"], n) for m in sorted(features)}
    edges = consistent_knn(features, k)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **{f"{m}/{part}": a for m, e in edges.items()
                                     for part, a in zip(("rows", "cols"), e)})
    n = next(iter(features.values())).shape[0]
    return {m: binary_sym_norm(r, c, n) for m, (r, c) in edges.items()}


def behaviour_graph(train: sp.spmatrix, k: int, min_common: int = 2, block: int = 2048) -> sp.csr_matrix:
    """Item-item behaviour graph from the training interactions only: j is a neighbour of i if at least
    ``min_common`` users interacted with both; each row keeps its ``k`` largest co-interaction counts (ties to
    the lower id), plus a self-loop; binary and normalised. Co-counts are built in row blocks of items."""
    r = sp.csr_matrix(train, dtype=np.float32)
    r.data[:] = 1.0
    rt = r.T.tocsr()
    n = r.shape[1]
    rows, cols = [np.arange(n)], [np.arange(n)]
    for i0 in range(0, n, block):
        co = (rt[i0 : i0 + block] @ r).tocoo()
        row, col, cnt = co.row + i0, co.col, co.data
        keep = (row != col) & (cnt >= min_common)
        row, col, cnt = row[keep], col[keep], cnt[keep]
        order = np.lexsort((col, -cnt, row))  # by row, then count descending, then lower id
        row, col = row[order], col[order]
        starts = np.searchsorted(row, row, side="left")
        rank = np.arange(len(row)) - starts
        rows.append(row[rank < k])
        cols.append(col[rank < k])
    return binary_sym_norm(np.concatenate(rows), np.concatenate(cols), n)


def symmetric_bernoulli_kl(logit_a: torch.Tensor, logit_b: torch.Tensor) -> torch.Tensor:
    """KL(p||q) + KL(q||p) for Bernoulli p = sigmoid(a), q = sigmoid(b): equals (p - q)(a - b), stably."""
    return (torch.sigmoid(logit_a) - torch.sigmoid(logit_b)) * (logit_a - logit_b)


class _GradedContrast(torch.autograd.Function):
    """Per-row L_AI term of one view from its cosines (batch x items) and its first- and second-grade positives
    (``grades``: k first-grade then k second-grade columns per row): with s = exp(cosine / t),
    -log(S1 / S + 1e-9) - log(S2 / (S - S1) + 1e-9), S the row sum and S1, S2 the grades' sums.

    Why one node: the loss reaches every cosine only through S and the 2k graded entries, so its gradient is
    s * a_row / t plus 2k corrections per row, one pass over batch x items; through autograd the gather, the
    row sum, the exp and the divide each took a full pass (and a zero-filled batch x items gradient)."""

    @staticmethod
    def forward(ctx, cosine, grades, t):
        sim = cosine.div(t).exp_()
        total = sim.sum(1)
        graded = sim.gather(1, grades)
        k = grades.shape[1] // 2
        s1, s2 = graded[:, :k].sum(1), graded[:, k:].sum(1)
        r1, r2 = s1 / total, s2 / (total - s1)
        ctx.save_for_backward(sim, grades, graded, total, s1, s2, r1, r2)
        ctx.t = t
        return -torch.log(r1 + 1e-9) - torch.log(r2 + 1e-9)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        sim, grades, graded, total, s1, s2, r1, r2 = ctx.saved_tensors
        d1, d2 = -grad / (r1 + 1e-9), -grad / (r2 + 1e-9)  # dL/dr1, dL/dr2
        rest = total - s1
        d_total = d1 * (-s1 / total ** 2) + d2 * (-s2 / rest ** 2)
        d_s1 = d1 / total + d2 * s2 / rest ** 2
        d_s2 = d2 / rest
        k = grades.shape[1] // 2
        per_grade = torch.cat([d_s1[:, None].expand(-1, k), d_s2[:, None].expand(-1, k)], 1)
        grad_cosine = sim * (d_total / ctx.t)[:, None]
        grad_cosine.scatter_add_(1, grades, per_grade * graded / ctx.t)
        return grad_cosine, None, None


class DAMRS(Recommender):
    propagation_rule = "lightgcn"

    def __init__(self, dataset: RecDataset, embedding_dim: int = 64, backbone: str = "lightgcn",
                 num_layers: int = 2, num_mm_layers: int = 1, knn_k: int = 10, behaviour_k: int = 2,
                 min_co_interactions: int = 2, kl_weight: float = 1.0, neighbor_weight: float = 1e-3,
                 num_positives: int = 10, temperature: float = 0.2, reg_weight: float = 0.0,
                 denoise_feedback: bool = True, graph_cache_dir: str | None = None, **kwargs):
        super().__init__(dataset, embedding_dim=embedding_dim, reg_weight=reg_weight, **kwargs)
        feats = require_features(dataset, "damrs")
        if backbone not in BACKBONES:
            raise ConfigError(f"model.backbone must be one of {BACKBONES}, got '{backbone}'")
        for name, value, low in (("num_layers", num_layers, 0), ("num_mm_layers", num_mm_layers, 1),
                                 ("knn_k", knn_k, 1), ("behaviour_k", behaviour_k, 1),
                                 ("min_co_interactions", min_co_interactions, 1), ("num_positives", num_positives, 1)):
            if int(value) != value or value < low:
                raise ConfigError(f"model.{name} must be an integer >= {low}, got {value}")
        if 2 * num_positives > dataset.n_items:
            raise ConfigError(f"model.num_positives must be at most half the {dataset.n_items} items, "
                              f"got {num_positives}")
        for name, value in (("kl_weight", kl_weight), ("neighbor_weight", neighbor_weight)):
            if value < 0:
                raise ConfigError(f"model.{name} must be >= 0, got {value}")
        if temperature <= 0:
            raise ConfigError(f"model.temperature must be > 0, got {temperature}")
        self.backbone, self.num_layers, self.num_mm_layers = backbone, num_layers, num_mm_layers
        self.init_id_embeddings(embedding_dim)
        graphs = self.build_modality_graphs(feats, knn_k, graph_cache_dir)
        graphs["behaviour"] = behaviour_graph(dataset.train, behaviour_k, min_co_interactions)
        # one view per modality plus behaviour, in a fixed order (FixedSparse keeps the transpose for backward)
        self.view_names = sorted(set(graphs) - {"behaviour"}) + ["behaviour"]
        self.views = [fixed_operator(graphs[v]) for v in self.view_names]
        self._adj = FixedSparse(normalized_bipartite(dataset.graph)) if backbone == "lightgcn" else None

    def build_modality_graphs(self, features, k: int, cache_dir) -> dict[str, sp.csr_matrix]:
        return denoised_item_graphs(features, k, cache_dir)

    def encode(self):
        """Backbone (user, item) embeddings and the item views h_v = A_v^n_mm E_items."""
        if self.backbone == "lightgcn":
            x = propagate_mean(self._adj, torch.cat([self.user_emb.weight, self.item_emb.weight]), self.num_layers)
            users, items = x[: self.n_users], x[self.n_users :]
        else:
            users, items = self.user_emb.weight, self.item_emb.weight
        views = []
        for graph in self.views:
            h = self.item_emb.weight
            for _ in range(self.num_mm_layers):
                h = graph @ h
            views.append(h)
        return users, items, views

    def forward(self):
        users, items, views = self.encode()
        return users, items + torch.stack(views).mean(0)

    # --- denoising user feedback -------------------------------------------------------------------
    @torch.no_grad()
    def feedback_weights(self, u: torch.Tensor, views, pos, neg) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-triple weights of the observed (w+) and of the reversed (w-) BPR term, from how much each view
        believes the user likes the positive, against the batch's mean belief in the negatives."""
        p = torch.sigmoid(torch.stack([(u * F.normalize(h[pos], dim=-1)).sum(-1) for h in views]))  # (V, B)
        q = torch.sigmoid(torch.stack([(u * F.normalize(h[neg], dim=-1)).sum(-1) for h in views]))
        p_mean, q_mean = p.mean(0), q.mean()
        w_pos = (p_mean * torch.exp(-p.var(0)) ** 2).clamp(0, 1)
        w_neg = ((p.max(0).values - q_mean) * (p_mean < q_mean)).clamp(0, 1)
        return w_pos, w_neg

    def denoised_bpr(self, users, pos, neg, user_emb, item_emb, views) -> torch.Tensor:
        u = user_emb[users]
        diff = (u * item_emb[pos]).sum(-1) - (u * item_emb[neg]).sum(-1)
        if not self.hparams.denoise_feedback:
            return -F.logsigmoid(diff).mean()
        w_pos, w_neg = self.feedback_weights(u, views, pos, neg)
        return -(w_pos * F.logsigmoid(diff) + w_neg * F.logsigmoid(-diff)).mean()

    # --- alignment ---------------------------------------------------------------------------------
    def preference_alignment(self, u: torch.Tensor, behaviour_items: torch.Tensor, content_items: torch.Tensor):
        """L_AU: the batch users' preference over the batch items by behaviour and by content agree."""
        logit_b = u @ F.normalize(behaviour_items, dim=-1).T
        logit_c = u @ F.normalize(content_items, dim=-1).T
        return symmetric_bernoulli_kl(logit_b, logit_c).mean()

    def item_alignment(self, views, items: torch.Tensor) -> torch.Tensor:
        """L_AI: graded neighbour discrimination of the batch items in every view (batch x items, never
        items x items)."""
        zs = [F.normalize(h, dim=-1) for h in views]
        cosines = [z[items] @ z.T for z in zs]  # one product per view, for the positives and for the loss
        with torch.no_grad():
            probs = [torch.softmax(c, dim=1) for c in cosines]
            total = sum(probs)  # (batch x items) adds, no stacked copy of every view
        k, t = self.hparams.num_positives, self.hparams.temperature
        loss = 0
        for prob in probs:
            cosine = cosines.pop(0)  # freed once its exp is taken: peak memory as with one product per use
            with torch.no_grad():
                first = topk_items(total + prob, k)  # agreed on by all views, own view counted twice
                second = topk_items(prob.scatter_(1, first, -1.0), k)  # own view only (prob is done)
            loss = loss + _GradedContrast.apply(cosine, torch.cat([first, second], 1), t)
            del cosine
        return (loss / len(zs)).mean()

    def loss(self, users, pos, neg):
        user_emb, item_emb, views = self.encode()
        content = torch.stack(views).mean(0)
        bpr = self.denoised_bpr(users, pos, neg, user_emb, item_emb + content, views)
        parts = {"bpr": bpr}
        total = bpr + self.reg_loss(users, pos, neg) if self.hparams.reg_weight else bpr
        batch_items = torch.unique(torch.cat([pos, neg]))
        if self.hparams.kl_weight:
            u = user_emb[torch.unique(users)]
            parts["align_user"] = self.preference_alignment(u, item_emb[batch_items], content[batch_items])
            total = total + self.hparams.kl_weight * parts["align_user"]
        if self.hparams.neighbor_weight:
            parts["align_item"] = self.item_alignment(views, batch_items)
            total = total + self.hparams.neighbor_weight * parts["align_item"]
        return total, parts
