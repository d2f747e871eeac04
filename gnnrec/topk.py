"""Top-K selection with a fixed tie rule, used by evaluation, recommendation, kNN graphs and models.

Tie rule: higher score first, equal scores ordered by lower item id. ``torch.topk`` alone leaves ties at
the K-th place arbitrary, so rows whose K-th and (K+1)-th scores are equal get an exact fix-up.
"""
from __future__ import annotations

import torch


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
