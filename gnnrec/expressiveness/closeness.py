"""Topological closeness (link-level expressiveness, Cai et al. CIKM 2023).

For a user u and items i, j outside u's training set, i is closer than j when its shortest-path distance
from u on the bipartite user-item graph is smaller, or equal with more shortest paths. A model is
expressive at this level when it scores the closer item higher. The metric is the share of sampled pairs
with different closeness that the model orders correctly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.sparse as sp
import torch


def shortest_paths_from_users(adj: sp.csr_matrix, users: np.ndarray, max_distance: int = 7):
    """Breadth-first search from a block of users at once (dense block x nodes frontiers, sparse products).

    Returns (item_distance, item_count, user_distance, user_count): distances are -1 where no path of length
    <= max_distance exists; counts are the numbers of shortest paths (float64, exact below 2**53).
    """
    adj = sp.csr_matrix(adj, dtype=np.float64)
    adj.data[:] = 1.0
    adj_t = adj.T.tocsr()
    b, (n_users, n_items) = len(users), adj.shape
    user_dist = np.full((b, n_users), -1, dtype=np.int64)
    item_dist = np.full((b, n_items), -1, dtype=np.int64)
    user_count = np.zeros((b, n_users))
    item_count = np.zeros((b, n_items))
    rows = np.arange(b)
    user_dist[rows, users] = 0
    user_count[rows, users] = 1.0
    frontier = np.zeros((b, n_users))
    frontier[rows, users] = 1.0
    for d in range(1, max_distance + 1):
        if d % 2:  # users -> items
            reach = np.asarray(adj_t @ frontier.T).T  # (b, n_items): paths into each item
            new = (reach > 0) & (item_dist < 0)
            item_dist[new], item_count[new] = d, reach[new]
        else:  # items -> users
            reach = np.asarray(adj @ frontier.T).T
            new = (reach > 0) & (user_dist < 0)
            user_dist[new], user_count[new] = d, reach[new]
        frontier = np.where(new, reach, 0.0)
        if not new.any():
            break
    return item_dist, item_count, user_dist, user_count


@dataclass
class ClosenessResult:
    accuracy: float  # correctly ordered / pairs with different closeness (model ties count as wrong)
    accuracy_untied: float  # correctly ordered / pairs the model does not tie
    tie_share: float  # share of pairs the model scores equally
    pairs: int
    users: int
    ci95: tuple[float, float]  # Wilson interval of `accuracy` (pairs treated as independent)

    def as_dict(self) -> dict:
        return {"accuracy": self.accuracy, "accuracy_untied": self.accuracy_untied, "tie_share": self.tie_share,
                "pairs": self.pairs, "users": self.users, "ci95": list(self.ci95)}


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def topological_closeness(train: sp.csr_matrix, score_users: Callable[[torch.Tensor], torch.Tensor],
                          n_users: int = 1000, pairs_per_user: int = 100, max_distance: int = 7,
                          block_size: int = 256, seed: int = 0) -> ClosenessResult:
    """Sample users and item pairs, and measure how often the model orders pairs by topological closeness."""
    rng = np.random.default_rng(seed)
    train = sp.csr_matrix(train)
    candidates = np.flatnonzero(np.diff(train.indptr) > 0)
    users = rng.choice(candidates, size=min(n_users, len(candidates)), replace=False)
    n_items = train.shape[1]
    correct = tied = total = 0
    for start in range(0, len(users), block_size):
        block = users[start : start + block_size]
        dist, count, _, _ = shortest_paths_from_users(train, block, max_distance)
        with torch.no_grad():
            scores = score_users(torch.from_numpy(block)).double().cpu().numpy()
        rows = np.repeat(np.arange(len(block)), pairs_per_user)
        i = rng.integers(n_items, size=len(rows))
        j = rng.integers(n_items, size=len(rows))
        seen = train[block].toarray() > 0
        # unreachable items sort as infinitely far, with no paths
        far = max_distance + 1
        di = np.where(dist[rows, i] < 0, far, dist[rows, i])
        dj = np.where(dist[rows, j] < 0, far, dist[rows, j])
        ci, cj = count[rows, i], count[rows, j]
        valid = (i != j) & ~seen[rows, i] & ~seen[rows, j] & ((di != dj) | (ci != cj))
        i_closer = (di < dj) | ((di == dj) & (ci > cj))
        si, sj = scores[rows, i], scores[rows, j]
        right = np.where(i_closer, si > sj, sj > si)
        correct += int((right & valid).sum())
        tied += int(((si == sj) & valid).sum())
        total += int(valid.sum())
    untied = total - tied
    return ClosenessResult(
        accuracy=correct / total if total else float("nan"),
        accuracy_untied=correct / untied if untied else float("nan"),
        tie_share=tied / total if total else float("nan"),
        pairs=total, users=len(users), ci95=wilson(correct, total),
    )
