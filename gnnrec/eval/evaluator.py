"""Full-ranking evaluation: score every item for every evaluated user, mask known items, take the top K.

Protocols (which items are masked, which users count):
- ``strict``: valid masks train items; test masks train and valid items. Every user with a held-out item counts.
- ``mmrec``: both mask train items only, and users without training interactions are dropped, as MMRec does.
"""
from __future__ import annotations

import logging

from typing import Callable

import numpy as np
import scipy.sparse as sp
import torch

from gnnrec.data.dataset import RecDataset
from gnnrec.eval.beyond import (BEYOND_METRICS, TAIL_SHARE, catalogue_metrics, item_counts, novelty_weights,
                                 per_user_beyond, tail_items, user_mean)
from gnnrec.eval.metrics import METRICS, ranking_metrics, topk_items
from gnnrec.errors import ConfigError

log = logging.getLogger(__name__)

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
        if self.ks and self.ks[-1] >= self.n_items and split == "valid":  # once per run: valid is built first
            log.warning("eval.ks has %d, at least the %d items of %s: its lists hold every unseen item, so recall "
                        "and hit there are 1 for every user", self.ks[-1], self.n_items, dataset.name)
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
        # item tables for the per-user and beyond-accuracy results of final evaluations (``per_user=True``)
        self.train_degree = np.diff(dataset.train.indptr).astype(np.int64)
        self.item_train_count = np.bincount(dataset.train.indices, minlength=self.n_items).astype(np.int64)
        self.is_tail = tail_items(self.item_train_count, TAIL_SHARE)
        self.novelty = novelty_weights(self.item_train_count, int((self.train_degree > 0).sum()))

    def batch_sums(self, users: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """Sum over the batch of each metric (in ``self.names`` order), then the user count, as float64."""
        return self.batch_eval(users, scores)[0]

    def batch_eval(self, users: torch.Tensor, scores: torch.Tensor, per_user: bool = False):
        """(``batch_sums``, and with ``per_user`` the batch's per-user rows (see ``per_user_rows``) else None).

        ``scores`` is overwritten (masked items set to -inf) unless it requires grad: a scorer may hand in a
        buffer it reuses for the next batch."""
        u = users.cpu().numpy()
        scores = scores.clone() if scores.requires_grad else scores
        _, keys = csr_rows_to_keys(self.mask, u, self.n_items)
        scores.view(-1)[keys.to(scores.device)] = -torch.inf
        top_dev = topk_items(scores, max(self.ks))
        top = top_dev.cpu()
        _, rel_keys = csr_rows_to_keys(self.heldout, u, self.n_items)
        query = torch.arange(len(u), dtype=torch.int64)[:, None] * self.n_items + top
        pos = torch.searchsorted(rel_keys, query).clamp(max=max(len(rel_keys) - 1, 0))
        hits = rel_keys[pos] == query if len(rel_keys) else torch.zeros_like(query, dtype=torch.bool)
        n_rel = torch.from_numpy(np.diff(self.heldout.indptr)[u])
        if per_user:
            filled = (scores.gather(1, top_dev) > -torch.inf).cpu()  # False where only masked items were left
            rows = self.per_user_rows(u, top, filled, hits, n_rel)
        else:
            rows = None
        metrics = rows if rows is not None else ranking_metrics(hits, n_rel, self.ks)
        sums = [metrics[name].sum() for name in self.names]
        return torch.stack(sums + [torch.tensor(float(len(u)), dtype=torch.float64)]), rows

    def per_user_rows(self, u: np.ndarray, top: torch.Tensor, valid: torch.Tensor, hits: torch.Tensor,
                      n_rel: torch.Tensor) -> dict[str, torch.Tensor]:
        """One batch's rows: ``users``, every accuracy metric, avg_popularity/tail_share/novelty@K,
        recall_head/recall_tail@K (NaN without held-out items of that group), and ``item_counts@K``
        (per-item counts over the batch, summed by ``collect``)."""
        out = {"users": torch.from_numpy(u.astype(np.int64))}
        out.update(ranking_metrics(hits, n_rel, self.ks))
        is_tail = torch.from_numpy(self.is_tail)
        out.update(per_user_beyond(top, valid, torch.from_numpy(self.item_train_count), is_tail,
                                   torch.from_numpy(self.novelty), self.ks))
        n_tail = torch.from_numpy(np.asarray((self.heldout[u] != 0) @ self.is_tail.astype(np.float64)).astype(np.float64))
        n_head = n_rel.to(torch.float64) - n_tail
        top_tail = is_tail[top]
        for group, group_hits, n_group in (("head", hits & ~top_tail, n_head), ("tail", hits & top_tail, n_tail)):
            cum = group_hits.to(torch.float64).cumsum(1)
            for k in self.ks:
                c = min(k, cum.shape[1]) - 1
                out[f"recall_{group}@{k}"] = torch.where(n_group > 0, cum[:, c] / n_group.clamp(min=1), torch.nan)
        for k, counts in item_counts(top, valid, self.n_items, self.ks).items():
            out[f"item_counts@{k}"] = counts
        return out

    def collect(self, parts: list[dict]) -> dict[str, np.ndarray]:
        """Per-user rows of several batches (or of several ranks' ``collect`` results) as numpy arrays in user
        order: rows concatenated, item counts summed."""
        if not parts:
            width = max(self.ks)
            no_hits = torch.zeros(0, width, dtype=torch.bool)
            parts = [self.per_user_rows(np.zeros(0, dtype=np.int64), torch.zeros(0, width, dtype=torch.int64),
                                        no_hits, no_hits, torch.zeros(0, dtype=torch.int64))]
        out = {}
        for name in parts[0]:
            values = [np.asarray(p[name]) for p in parts]
            is_counts = name.startswith("item_counts@")
            out[name] = np.sum(values, axis=0).astype(np.int64) if is_counts else np.concatenate(values)
        order = np.argsort(out["users"], kind="stable")
        return {name: (v if name.startswith("item_counts@") else v[order]) for name, v in out.items()}

    def beyond_values(self, collected: dict[str, np.ndarray]) -> dict[str, float]:
        """coverage@K, gini@K and the user means of avg_popularity/tail_share/novelty@K (as in metrics.json)."""
        values = catalogue_metrics({k: collected[f"item_counts@{k}"] for k in self.ks})
        for name in BEYOND_METRICS:
            for k in self.ks:
                values[f"{name}@{k}"] = user_mean(collected[f"{name}@{k}"])
        return values

    def finalize(self, sums: torch.Tensor) -> dict[str, float]:
        count = float(sums[-1])
        values = {name: float(s) / count if count else 0.0 for name, s in zip(self.names, sums[:-1])}
        values["users"] = int(count)
        return values

    def evaluate(self, score_users: Callable[[torch.Tensor], torch.Tensor], batch_size: int = 4096) -> dict:
        """Run over all evaluated users in batches; ``score_users`` maps a LongTensor of users to (B, n_items)
        scores, which may be one buffer it reuses (a model's ``eval_scorer``): each batch's are used up first."""
        return self.evaluate_per_user(score_users, batch_size, per_user=False)[0]

    def evaluate_per_user(self, score_users: Callable[[torch.Tensor], torch.Tensor], batch_size: int = 4096,
                          per_user: bool = True) -> tuple[dict, dict[str, np.ndarray] | None]:
        """``evaluate``'s metrics plus, with ``per_user``, the beyond-accuracy values and the per-user rows
        (``collect``'s arrays; see ``gnnrec.eval.per_user`` to save them)."""
        total = torch.zeros(len(self.names) + 1, dtype=torch.float64)
        parts = []
        with torch.no_grad():
            for start in range(0, len(self.users), batch_size):
                users = torch.from_numpy(self.users[start : start + batch_size])
                sums, rows = self.batch_eval(users, score_users(users), per_user)
                total += sums
                if rows is not None:
                    parts.append(rows)
        values = self.finalize(total)
        if not per_user:
            return values, None
        collected = self.collect(parts)
        return {**values, **self.beyond_values(collected)}, collected
