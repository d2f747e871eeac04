"""The user-user co-occurrence graph (DRAGON): each user's top-k users by number of co-interacted items.

Built from the interaction matrix it is given (the training graph; never valid or test) in row blocks:
C[block] = R[block] R^T as a sparse product, the diagonal dropped, the k largest counts of each row kept
(ties towards the lower user id, so the result does not depend on the block size). The users x users
co-occurrence matrix is never dense. The top-k counts are cached on disk under a hash of the matrix
(indptr, indices, shape) and the parameters; ``aggregate`` turns the counts into propagation weights.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from gnnrec.errors import ConfigError
from gnnrec.graphs.adjacency import row_normalize
from gnnrec.graphs.knn import cache_key

log = logging.getLogger(__name__)
USER_GRAPH_VERSION = 1  # part of the cache key: bump when the construction changes
AGGREGATIONS = ("softmax", "mean", "normalized")


def binary_interactions(interactions: sp.spmatrix) -> sp.csr_matrix:
    r = sp.csr_matrix(interactions, dtype=np.float32, copy=True)
    r.sum_duplicates()
    r.data[:] = 1.0
    r.eliminate_zeros()
    return r


def cooccurrence_topk(interactions: sp.spmatrix, k: int, row_block: int = 2048) -> sp.csr_matrix:
    """users x users CSR: row u holds the (at most) k users sharing most items with u, valued by that count.

    Users sharing no item with u are never neighbours, so a row can hold fewer than k entries."""
    r = binary_interactions(interactions)
    n = r.shape[0]
    if not 1 <= k <= n - 1:
        raise ConfigError(f"user graph k must be in [1, {n - 1}] for {n} users, got {k}")
    rt = r.T.tocsr()
    rows, cols, vals = [], [], []
    for start in range(0, n, row_block):
        stop = min(start + row_block, n)
        c = (r[start:stop] @ rt).tocoo()
        row, col, val = c.row.astype(np.int64) + start, c.col.astype(np.int64), c.data
        off = row != col
        row, col, val = row[off], col[off], val[off]
        order = np.lexsort((col, -val, row))  # by row, then larger count, then lower user id
        row, col, val = row[order], col[order], val[order]
        rank = np.arange(len(row)) - np.searchsorted(row, row, side="left")
        keep = rank < k
        rows.append(row[keep])
        cols.append(col[keep])
        vals.append(val[keep])
    out = sp.csr_matrix((np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
                        shape=(n, n))
    out.sort_indices()
    return out


def user_graph(interactions: sp.spmatrix, k: int, cache_dir: str | Path | None = None,
               row_block: int = 2048) -> sp.csr_matrix:
    """:func:`cooccurrence_topk`, cached on disk under a hash of the matrix's structure and the parameters."""
    r = binary_interactions(interactions)
    path = None
    if cache_dir is not None:
        key = cache_key({"indptr": r.indptr.astype(np.int64), "indices": r.indices.astype(np.int64)},
                        {"kind": "user_cooccurrence", "k": k, "shape": tuple(r.shape), "version": USER_GRAPH_VERSION})
        path = Path(cache_dir) / f"user_graph-{key}.npz"
        if path.is_file():
            log.info("user graph loaded from cache %s", path)
            return sp.load_npz(path).tocsr()
    graph = cooccurrence_topk(r, k, row_block)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        sp.save_npz(path, graph)
        log.info("user graph cached at %s", path)
    return graph


def aggregate(counts: sp.csr_matrix, mode: str = "softmax") -> sp.csr_matrix:
    """Row weights from co-occurrence counts: softmax over each row's kept counts (DRAGON), a plain mean,
    or counts divided by their row sum. Rows without neighbours stay zero."""
    if mode not in AGGREGATIONS:
        raise ConfigError(f"user graph aggregation must be one of {AGGREGATIONS}, got '{mode}'")
    counts = sp.csr_matrix(counts, dtype=np.float32, copy=True)
    if mode == "normalized":
        return row_normalize(counts)
    if mode == "mean":
        counts.data[:] = 1.0
        return row_normalize(counts)
    lengths = np.diff(counts.indptr)
    row_of = np.repeat(np.arange(counts.shape[0]), lengths)
    row_max = np.zeros(counts.shape[0], np.float32)
    nonempty = lengths > 0
    row_max[nonempty] = np.maximum.reduceat(counts.data, counts.indptr[:-1][nonempty])
    counts.data = np.exp(counts.data - row_max[row_of]).astype(np.float32)  # stable softmax per row
    return row_normalize(counts)
