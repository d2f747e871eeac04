"""Top-K over item embeddings by dot product: exact (numpy scores, gnnrec's tie rule) or through a FAISS index.

Seen items are hidden at query time: the index is asked for k + (most items any query has seen), seen ones are
dropped and the first k kept. A query the index cannot fill (HNSW may return fewer candidates) is answered
exactly instead, so a user always gets min(k, unseen items) recommendations.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from gnnrec.errors import GnnrecError
from gnnrec.recommend import TopK, top_k

INDEXES = ("exact", "hnsw", "none")


def faiss_module():
    try:
        import faiss
    except ImportError:
        raise GnnrecError("an ANN index needs faiss-cpu (pip install 'gnnrec[ann]'), or use --index none") from None
    return faiss


def build_index(items: np.ndarray, kind: str, hnsw_m: int = 32, ef_construction: int = 200):
    """A FAISS inner-product index over the item embeddings: flat (exact) or HNSW (approximate)."""
    faiss = faiss_module()
    if kind == "exact":
        index = faiss.IndexFlatIP(items.shape[1])
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(items.shape[1], hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
    else:
        raise GnnrecError(f"index must be one of {INDEXES[:2]}, got '{kind}'")
    index.add(np.ascontiguousarray(items, dtype=np.float32))
    return index


def exact_top_k(queries: np.ndarray, items: np.ndarray, k: int, seen: sp.csr_matrix | None,
                batch_size: int = 256) -> TopK:
    """Top ``k`` of ``queries @ items.T`` per row, ``seen`` (one CSR row per query) hidden; -1 pads short rows."""
    score = lambda rows: torch.from_numpy(queries[rows.numpy()] @ items.T)  # noqa: E731
    return top_k(score, np.arange(len(queries)), k, seen, batch_size)


def index_top_k(index, queries: np.ndarray, items: np.ndarray, k: int, seen: sp.csr_matrix | None,
                ef_search: int = 128, batch_size: int = 256) -> tuple[TopK, int]:
    """Top ``k`` from the FAISS index with ``seen`` filtered out; returns it and how many rows fell back to exact.
    Queries go in blocks: a block asks for k + its largest seen count per query."""
    blocks = [index_block(index, queries[s : s + batch_size], items, k,
                          seen[s : s + batch_size] if seen is not None else None, ef_search)
              for s in range(0, max(1, len(queries)), batch_size)]
    return (TopK(np.concatenate([b.items for b, _ in blocks]), np.concatenate([b.scores for b, _ in blocks])),
            sum(n for _, n in blocks))


def index_block(index, queries, items, k, seen, ef_search) -> tuple[TopK, int]:
    """One block of ``index_top_k``."""
    n_items = items.shape[0]
    k = min(k, n_items)
    n_seen = np.diff(seen.indptr) if seen is not None else np.zeros(len(queries), dtype=np.int64)
    probe = int(min(n_items, k + (n_seen.max() if len(n_seen) else 0)))
    params = None
    if hasattr(index, "hnsw"):
        params = faiss_module().SearchParametersHNSW(efSearch=max(ef_search, probe))
    scores, idx = index.search(np.ascontiguousarray(queries, dtype=np.float32), probe, params=params)
    valid = idx >= 0
    if seen is not None:  # (row, item) pairs as one integer key each: one vectorised membership test
        coo = seen.tocoo()
        keys = np.arange(len(queries))[:, None] * n_items + idx
        valid &= ~np.isin(keys, coo.row.astype(np.int64) * n_items + coo.col)
    order = np.argsort(~valid, axis=1, kind="stable")[:, :k]  # valid candidates first, in the index's order
    items_out = np.where(np.take_along_axis(valid, order, 1), np.take_along_axis(idx, order, 1), -1)
    scores_out = np.where(items_out >= 0, np.take_along_axis(scores, order, 1), -np.inf).astype(np.float32)
    short = np.flatnonzero((items_out >= 0).sum(1) < np.minimum(k, n_items - n_seen))
    if len(short):
        fix = exact_top_k(queries[short], items, k, seen[short] if seen is not None else None)
        items_out[short], scores_out[short] = fix.items, fix.scores
    return TopK(items_out.astype(np.int64), scores_out), len(short)


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each row's exact top-K (ids >= 0) that ``found`` also holds."""
    match = (found[:, :, None] == exact[:, None, :]) & (exact[:, None, :] >= 0)
    hits, wanted = match.any(1).sum(1), np.maximum(1, (exact >= 0).sum(1))
    return float(np.mean(hits / wanted)) if len(exact) else 1.0
