"""User groups by training degree and item groups by popularity, to see whom and what a model serves well.

User groups: quantile buckets of the evaluated users' training degree (default 4: Q1 = least active), each
bucket holding the users whose degree lies in (q_{b-1}, q_b] of the degree quantiles, so equal degrees share a
bucket; plus "cold" (degree <= ``cold_degree``, default 5), which overlaps the lowest buckets, and "all".
Item groups (head / tail, ``gnnrec.eval.beyond.tail_items``) enter as each row's recall_head@K and
recall_tail@K: recall over the user's held-out head or tail items only, averaged over the users who have any.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gnnrec.eval.beyond import COLD_DEGREE
from gnnrec.eval.metrics import METRICS

N_BUCKETS = 4
ITEM_GROUP_METRICS = ("recall_head", "recall_tail")


def degree_buckets(train_degree: np.ndarray, n_buckets: int = N_BUCKETS) -> tuple[np.ndarray, np.ndarray]:
    """(bucket index 0..n_buckets-1 per user, the inner quantile edges): bucket b holds degrees in
    (edge_{b-1}, edge_b], edges = the 1/n .. (n-1)/n quantiles (linear interpolation) of ``train_degree``."""
    degree = np.asarray(train_degree, dtype=np.float64)
    if n_buckets < 1:
        raise ValueError(f"n_buckets must be >= 1, got {n_buckets}")
    if not len(degree):
        return np.zeros(0, dtype=np.int64), np.zeros(max(n_buckets - 1, 0))
    edges = np.quantile(degree, np.arange(1, n_buckets) / n_buckets)
    return np.searchsorted(edges, degree, side="left").astype(np.int64), edges


def user_groups(train_degree: np.ndarray, n_buckets: int = N_BUCKETS,
                cold_degree: int = COLD_DEGREE) -> list[tuple[str, np.ndarray]]:
    """(group name, boolean row mask) for "all", each non-empty degree bucket ("Q1" ...) and "cold"."""
    degree = np.asarray(train_degree)
    bucket, _ = degree_buckets(degree, n_buckets)
    groups = [("all", np.ones(len(degree), dtype=bool))]
    groups += [(f"Q{b + 1}", bucket == b) for b in range(n_buckets) if (bucket == b).any()]
    groups.append(("cold", degree <= cold_degree))
    return groups


def group_table(results, ks=None, n_buckets: int = N_BUCKETS) -> list[dict]:
    """One row per user group of a ``PerUserResults``: group, users, min/max training degree, and the user means
    of each accuracy metric and of recall_head/recall_tail at each K (NaN where a group has no such user)."""
    ks = list(ks) if ks is not None else results.ks
    cold = int(results.meta.get("cold_degree", COLD_DEGREE))
    rows = []
    for name, mask in user_groups(results.train_degree, n_buckets, cold):
        degree = results.train_degree[mask]
        row = {"group": name, "users": int(mask.sum()),
               "min_degree": int(degree.min()) if len(degree) else None,
               "max_degree": int(degree.max()) if len(degree) else None}
        for metric in (*METRICS, *ITEM_GROUP_METRICS):
            for k in ks:
                values = results.metrics[f"{metric}@{k}"][mask]
                finite = values[np.isfinite(values)]
                row[f"{metric}@{k}"] = float(finite.mean()) if len(finite) else float("nan")
        rows.append(row)
    return rows


def save_group_table(path: str | Path, results, n_buckets: int = N_BUCKETS) -> Path:
    """The group table as JSON (NaN written as null), with the results' meta."""
    rows = [{k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in row.items()}
            for row in group_table(results, n_buckets=n_buckets)]
    path = Path(path)
    path.write_text(json.dumps({"meta": results.meta, "n_buckets": n_buckets, "groups": rows}, indent=2),
                    encoding="utf-8")
    return path
