"""Full-ranking evaluation: score every item for every evaluated user, mask known items, take the top K.

Protocols (which items are masked, which users count):
- ``strict``: valid masks train items; test masks train and valid items. Every user with a held-out item counts.
- ``mmrec``: both mask train items only, and users without training interactions are dropped, as MMRec does.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import scipy.sparse as sp
import torch

from gnnrec.data.dataset import RecDataset
from gnnrec.eval.metrics import METRICS, ranking_metrics, topk_items
from gnnrec.errors import ConfigError

PROTOCOLS = ("strict", "mmrec")
DEFAULT_KS = (5, 10, 20, 50)


def csr_rows_to_keys(mat: sp.csr_matrix, users: np.ndarray, n_cols: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(row-in-batch, column) of the non-zeros of ``mat[users]`` and their sorted keys row * n_cols + col."""
    sub = mat[users]
    rows = np.repeat(np.arange(len(users), dtype=np.int64), np.diff(sub.indptr))
    cols = sub.indices.astype(np.int64)
    return torch.from_numpy(rows), torch.from_numpy(rows * n_cols + cols)


class FullRankingEvaluator:
    """Metric sums for one split of a dataset under one protocol; usable batch by batch (Lightning) or whole."""

    def __init__(self, dataset: RecDataset, split: str = "valid", protocol: str = "strict", ks=DEFAULT_KS):
        if protocol not in PROTOCOLS:
            raise ConfigError(f"eval.protocol must be one of {PROTOCOLS}, got '{protocol}'")
        if split not in ("valid", "test"):
            raise ConfigError(f"can only evaluate on 'valid' or 'test', got '{split}'")
        self.split, self.protocol, self.ks = split, protocol, tuple(sorted(ks))
        self.n_items = dataset.n_items
        self.heldout = dataset.split(split)
        mask = dataset.train
        if split == "test" and protocol == "strict":
            mask = ((dataset.train + dataset.valid) > 0).astype(np.float32).tocsr()
        self.mask = mask
        has_heldout = np.diff(self.heldout.indptr) > 0
        if protocol == "mmrec":
            has_heldout &= np.diff(dataset.train.indptr) > 0
        self.users = np.flatnonzero(has_heldout)
        self.names = [f"{m}@{k}" for m in METRICS for k in self.ks]

    def batch_sums(self, users: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """Sum over the batch of each metric (in ``self.names`` order), then the user count, as float64."""
        u = users.cpu().numpy()
        scores = scores.clone() if scores.requires_grad else scores
        rows, keys = csr_rows_to_keys(self.mask, u, self.n_items)
        scores.view(-1)[keys.to(scores.device)] = -torch.inf
        top = topk_items(scores, max(self.ks)).cpu()
        _, rel_keys = csr_rows_to_keys(self.heldout, u, self.n_items)
        query = torch.arange(len(u), dtype=torch.int64)[:, None] * self.n_items + top
        pos = torch.searchsorted(rel_keys, query).clamp(max=max(len(rel_keys) - 1, 0))
        hits = rel_keys[pos] == query if len(rel_keys) else torch.zeros_like(query, dtype=torch.bool)
        n_rel = torch.from_numpy(np.diff(self.heldout.indptr)[u])
        per_user = ranking_metrics(hits, n_rel, self.ks)
        sums = [per_user[name].sum() for name in self.names]
        return torch.stack(sums + [torch.tensor(float(len(u)), dtype=torch.float64)])

    def finalize(self, sums: torch.Tensor) -> dict[str, float]:
        count = float(sums[-1])
        values = {name: float(s) / count if count else 0.0 for name, s in zip(self.names, sums[:-1])}
        values["users"] = int(count)
        return values

    def evaluate(self, score_users: Callable[[torch.Tensor], torch.Tensor], batch_size: int = 4096) -> dict:
        """Run over all evaluated users in batches; ``score_users`` maps a LongTensor of users to (B, n_items)."""
        total = torch.zeros(len(self.names) + 1, dtype=torch.float64)
        with torch.no_grad():
            for start in range(0, len(self.users), batch_size):
                users = torch.from_numpy(self.users[start : start + batch_size])
                total += self.batch_sums(users, score_users(users))
        return self.finalize(total)
