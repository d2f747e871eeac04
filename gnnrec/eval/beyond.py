"""Beyond-accuracy metrics: how popular, long-tail and novel the recommendations are, and how evenly they
cover the catalogue. Per-user values come from a batch's (B, K) top-K ids; coverage and Gini from item counts.

Definitions (``item_train_count[i]``: training interactions of item i; ``n_train_users``: users with a
training interaction):
- head/tail items: items sorted by training count (descending, ties by lower id); the shortest prefix
  holding at least ``1 - tail_share`` of all training interactions is the head, the rest the tail;
- avg_popularity@K: mean training count of the user's recommended items;
- tail_share@K: share of the user's recommended items that are tail items;
- novelty@K: mean of -log2(p_i), p_i = item_train_count[i] / n_train_users clipped below at 1 / n_train_users;
- coverage@K: share of all items recommended to at least one user;
- Gini@K: Gini index of how often each item is recommended (0: all equally; (n-1)/n: one item only).

Positions a user could not fill (fewer than K unmasked items, marked ``valid = False``) are left out.
"""
from __future__ import annotations

import numpy as np
import torch

TAIL_SHARE = 0.8  # the tail's share of items is whatever holds the last 80% of training interactions
COLD_DEGREE = 5  # users with at most this many training interactions are "cold" (gnnrec.eval.groups)
BEYOND_METRICS = ("avg_popularity", "tail_share", "novelty")
CATALOGUE_METRICS = ("coverage", "gini")


def tail_items(item_train_count: np.ndarray, tail_share: float = TAIL_SHARE) -> np.ndarray:
    """Boolean mask of tail items: all but the most popular items that together hold ``1 - tail_share`` of the
    training interactions (the head)."""
    counts = np.asarray(item_train_count, dtype=np.int64)
    order = np.argsort(-counts, kind="stable")  # popularity descending, ties by lower id
    before = np.cumsum(counts[order]) - counts[order]  # interactions held by the more popular items
    head_target = (1.0 - tail_share) * counts.sum()
    # still short of the head's share: this item joins it (the tolerance absorbs float noise in 1 - tail_share,
    # so that an item whose predecessors hold exactly the head's share is tail)
    in_head = before < head_target - 1e-9 * max(head_target, 1.0)
    is_tail = np.ones(len(counts), dtype=bool)
    is_tail[order[in_head]] = False
    return is_tail


def novelty_weights(item_train_count: np.ndarray, n_train_users: int) -> np.ndarray:
    """-log2(p_i) per item with p_i = training count / training users, clipped below at 1 / training users."""
    n = max(int(n_train_users), 1)
    p = np.maximum(np.asarray(item_train_count, dtype=np.float64) / n, 1.0 / n)
    return -np.log2(p)


def per_user_beyond(top: torch.Tensor, valid: torch.Tensor, popularity: torch.Tensor, is_tail: torch.Tensor,
                    novelty: torch.Tensor, ks) -> dict[str, torch.Tensor]:
    """avg_popularity@K, tail_share@K and novelty@K (float64, one value per row) from top-K ids ``top`` (B, K)
    in rank order; ``valid`` (B, K) marks filled positions; the item tables are 1-d, indexed by item id."""
    filled = valid.to(torch.float64).cumsum(1)
    width = top.shape[1]
    sums = {
        "avg_popularity": (popularity.to(torch.float64)[top] * valid).cumsum(1),
        "tail_share": (is_tail[top] & valid).to(torch.float64).cumsum(1),
        "novelty": (novelty.to(torch.float64)[top] * valid).cumsum(1),
    }
    out = {}
    for k in ks:
        c = min(k, width) - 1
        n = filled[:, c]
        for name in BEYOND_METRICS:
            out[f"{name}@{k}"] = torch.where(n > 0, sums[name][:, c] / n.clamp(min=1), torch.nan)
    return out


def item_counts(top: torch.Tensor, valid: torch.Tensor, n_items: int, ks) -> dict[int, torch.Tensor]:
    """K -> int64 (n_items,) times each item appears in the rows' top K (filled positions only)."""
    out = {}
    for k in ks:
        ids = top[:, :k][valid[:, :k]]
        out[k] = torch.bincount(ids.reshape(-1), minlength=n_items)
    return out


def user_mean(values: np.ndarray, undefined: float = 0.0) -> float:
    """Mean over the users that have a value (NaN rows skipped); ``undefined`` when none has one."""
    return float(np.nanmean(values)) if np.isfinite(values).any() else undefined


def coverage(counts: np.ndarray) -> float:
    """Share of items recommended at least once."""
    counts = np.asarray(counts)
    return float((counts > 0).mean()) if len(counts) else 0.0


def gini(counts: np.ndarray) -> float:
    """Gini index of non-negative counts over all items: sum_i (2i - n - 1) x_(i) / (n sum x), x sorted
    ascending, i = 1..n. 0 when every item is recommended equally often, (n - 1)/n when one item takes all;
    0 when nothing was recommended."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n, total = len(x), x.sum()
    if n == 0 or total == 0:
        return 0.0
    i = np.arange(1, n + 1, dtype=np.float64)
    return float(((2 * i - n - 1) * x).sum() / (n * total))


def catalogue_metrics(counts_by_k: dict[int, np.ndarray]) -> dict[str, float]:
    """coverage@K and gini@K from each K's item counts."""
    out = {}
    for k, counts in sorted(counts_by_k.items()):
        out[f"coverage@{k}"] = coverage(counts)
        out[f"gini@{k}"] = gini(counts)
    return out
