"""Top-K selection with a fixed tie rule and the ranking metrics, vectorised over a batch of users.

Tie rule: higher score first, equal scores ordered by lower item id. ``torch.topk`` alone leaves ties at
the K-th place arbitrary, so rows whose K-th and (K+1)-th scores are equal get an exact fix-up.
"""
from __future__ import annotations

import torch

METRICS = ("recall", "ndcg", "precision", "map", "hit")


def order_by_score_then_id(scores: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Sort candidate item ids per row by score descending, then id ascending."""
    idx, _ = torch.sort(idx, dim=1)
    vals = scores.gather(1, idx)
    order = torch.sort(vals, dim=1, descending=True, stable=True).indices
    return idx.gather(1, order)


def topk_items(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Ids of the top ``k`` items per row under the tie rule; ``scores`` is (batch, n_items)."""
    n_items = scores.shape[1]
    k = min(k, n_items)
    probe = min(k + 1, n_items)
    vals, idx = torch.topk(scores, probe, dim=1)
    idx = idx[:, :k]
    if probe > k:
        tied = vals[:, k] == vals[:, k - 1]
        if tied.any():
            rows = tied.nonzero().squeeze(1)
            sub = scores[rows]
            kth = vals[rows, k - 1 : k]
            above = sub > kth
            equal = sub == kth
            room = k - above.sum(1, keepdim=True)
            chosen = above | (equal & (equal.cumsum(1) <= room))
            idx = idx.clone()
            idx[rows] = chosen.nonzero()[:, 1].view(len(rows), k)
    return order_by_score_then_id(scores, idx)


def ranking_metrics(hits: torch.Tensor, n_relevant: torch.Tensor, ks) -> dict[str, torch.Tensor]:
    """Per-user metrics at each k from a (batch, K) 0/1 hit matrix in rank order.

    NDCG uses the ideal DCG over min(k, |relevant|) positions; MAP is MMRec's: the sum of precision at
    each hit divided by min(k, |relevant|).
    """
    hits = hits.to(torch.float64)
    width = hits.shape[1]
    ranks = torch.arange(1, width + 1, dtype=torch.float64, device=hits.device)
    discount = 1.0 / torch.log2(ranks + 1)
    cum_hits = hits.cumsum(1)
    dcg = (hits * discount).cumsum(1)
    ideal = discount.cumsum(0)
    prec_at_hit = (cum_hits / ranks * hits).cumsum(1)
    n_rel = n_relevant.to(torch.float64)
    out = {}
    for k in ks:
        c = min(k, width) - 1
        n_hit = cum_hits[:, c]
        denom = torch.clamp(n_rel, max=k)
        out[f"recall@{k}"] = n_hit / n_rel
        out[f"precision@{k}"] = n_hit / k
        out[f"hit@{k}"] = (n_hit > 0).to(torch.float64)
        out[f"ndcg@{k}"] = dcg[:, c] / ideal[(denom.long() - 1).clamp(max=width - 1)]
        out[f"map@{k}"] = prec_at_hit[:, c] / denom
    return out
