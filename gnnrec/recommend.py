"""Top-K recommendation from any scorer: hide what a user already has, rank the rest, speak original ids.

One implementation for the CLI, the Python API and LLMRec's candidate pools. Users are scored in batches
(never a users x items matrix for the whole dataset). A user with fewer than K unseen items gets only those.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from gnnrec.errors import GnnrecError, UnknownIdError
from gnnrec.topk import topk_items

EXCLUDE = ("known", "train", "none")


def original_ids(dataset, kind: str) -> np.ndarray:
    """The dataset's own ids of its users or items (``kind`` "user"/"item"), as strings, by internal id."""
    info, n = (dataset.user_info, dataset.n_users) if kind == "user" else (dataset.item_info, dataset.n_items)
    column = info.get(f"{kind}_id")
    return np.array([str(x) for x in column], dtype=object) if column is not None else np.arange(n).astype(str).astype(object)


def id_index(ids) -> dict:
    """Original id -> internal id, built once per id list (a server keeps it for its lifetime)."""
    return {str(v): i for i, v in enumerate(ids)}


def lookup(index: dict, kind: str, ids, where: str) -> np.ndarray:
    """Internal ids of the given original ids in ``index``; an unknown id is an error naming it."""
    missing = [str(x) for x in ids if str(x) not in index]
    if missing:
        raise UnknownIdError(f"unknown {kind} id(s) {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''} "
                             f"in {where} ({len(index)} {kind}s)")
    return np.array([index[str(x)] for x in ids], dtype=np.int64)


def to_internal(dataset, kind: str, ids) -> np.ndarray:
    """Internal ids of the given original ids of ``dataset``."""
    return lookup(id_index(original_ids(dataset, kind)), kind, ids, f"dataset '{dataset.name}'")


def known_items(dataset, exclude: str) -> sp.csr_matrix | None:
    """The interactions hidden from recommendations: all known ones, training only, or none."""
    if exclude not in EXCLUDE:
        raise GnnrecError(f"exclude must be one of {EXCLUDE}, got '{exclude}'")
    if exclude == "none":
        return None
    known = dataset.train if exclude == "train" else dataset.train + dataset.valid + dataset.test
    return sp.csr_matrix(known)


def mask_known(scores: torch.Tensor, users: np.ndarray, known: sp.csr_matrix | None) -> torch.Tensor:
    """``scores`` (one row per user) with each user's known items set to -inf, in place."""
    if known is not None:
        block = known[users].tocoo()
        scores[torch.from_numpy(block.row.astype(np.int64)), torch.from_numpy(block.col.astype(np.int64))] = -torch.inf
    return scores


@dataclass
class TopK:
    """Internal item ids and scores, (users, k); slots past a user's unseen items hold -1 and -inf."""
    items: np.ndarray
    scores: np.ndarray


def top_k(score_fn, users: np.ndarray, k: int, known: sp.csr_matrix | None, batch_size: int = 4096) -> TopK:
    """Top ``k`` unseen items of each user; ``score_fn(users tensor) -> (B, n_items)`` as models' ``score_fn``."""
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise GnnrecError(f"k must be a whole number >= 1, got {k!r}")
    users = np.asarray(users, dtype=np.int64)
    items, scores = [], []
    with torch.no_grad():
        for start in range(0, len(users), batch_size):
            block = users[start : start + batch_size]
            s = mask_known(score_fn(torch.from_numpy(block)).float().cpu(), block, known)
            top = topk_items(s, k)
            vals = s.gather(1, top)
            top[torch.isinf(vals) & (vals < 0)] = -1  # fewer unseen items than k: never pad with seen ones
            items.append(top.numpy())
            scores.append(vals.numpy())
    width = min(k, known.shape[1]) if known is not None else k
    empty = np.empty((0, width))
    return TopK(np.concatenate(items) if items else empty.astype(np.int64),
                np.concatenate(scores) if scores else empty.astype(np.float32))
