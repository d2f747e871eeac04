"""Item-item kNN graphs from modality features (LATTICE, FREEDOM), never materialised as items x items.

Cosine top-k is computed over row blocks x column blocks with a running top-k, so peak extra memory is
O(row_block x col_block + items x k). Ties are broken towards the lower item id, so the result does not
depend on the block sizes. The graph for each modality is binarised (FREEDOM) or keeps its similarities,
normalised D^-1/2 A D^-1/2 with D the row sums (as FREEDOM does), and modalities are fused with weights
that sum to 1.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from gnnrec.errors import ConfigError, DataError
from gnnrec.hashing import sha256_hex
from gnnrec.graphs.adjacency import sym_normalize
from gnnrec.topk import topk_items

log = logging.getLogger(__name__)
GRAPH_VERSION = 1  # part of the cache key: bump when the construction changes


def normalize_rows(features, name: str = "features") -> torch.Tensor:
    x = torch.as_tensor(np.asarray(features, dtype=np.float32) if not torch.is_tensor(features) else features)
    if x.ndim != 2:
        raise DataError(f"modality '{name}' must be a 2-D items x dim matrix, got shape {tuple(x.shape)}", field=name)
    finite = torch.isfinite(x).all(dim=1)
    if not finite.all():
        row = int((~finite).nonzero()[0])
        raise DataError(f"modality '{name}' has NaN or inf values (first at item {row})", field=name)
    norms = x.norm(dim=1, keepdim=True)
    zero = norms.squeeze(1) == 0
    if zero.any():
        rows = zero.nonzero().squeeze(1)
        raise DataError(f"modality '{name}' has {len(rows)} all-zero rows (first: item {int(rows[0])}); cosine "
                        "similarity is undefined for them: set data.feature_fill=mean (the mean of the other rows) "
                        "or drop those items", field=name)
    return x / norms


BACKENDS = ("exact", "faiss", "faiss-hnsw")


def knn_topk_faiss(x: torch.Tensor, k: int, include_self: bool, approximate: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """FAISS inner-product search on normalised rows: exact (flat index) or approximate (HNSW, for millions)."""
    try:
        import faiss
    except ImportError:
        raise ConfigError("the faiss backends need faiss-cpu (pip install 'gnnrec[ann]')") from None
    data = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
    if approximate:
        index = faiss.IndexHNSWFlat(data.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = max(64, 2 * k)
    else:
        index = faiss.IndexFlatIP(data.shape[1])
    index.add(data)
    extra = 0 if include_self else 1
    values, idx = index.search(data, k + extra)
    if extra:  # drop the item itself where it was found, else the last neighbour
        is_self = idx == np.arange(len(idx))[:, None]
        is_self[~is_self.any(1), -1] = True
        keep = np.argsort(is_self, axis=1, kind="stable")[:, :k]
        idx, values = np.take_along_axis(idx, keep, 1), np.take_along_axis(values, keep, 1)
    return torch.from_numpy(idx.astype(np.int64)), torch.from_numpy(values)


def knn_topk(features, k: int, include_self: bool = True, row_block: int = 2048, col_block: int = 8192,
             name: str = "features", progress: bool = False, backend: str = "exact") -> tuple[torch.Tensor, torch.Tensor]:
    """(indices, cosine values), each (n_items, k): the k most similar items of every item."""
    x = normalize_rows(features, name)
    n = x.shape[0]
    limit = n if include_self else n - 1
    if not 0 < k <= limit:
        raise ConfigError(f"knn k must be in [1, {limit}] for {n} items ({'with' if include_self else 'without'} "
                          f"the item itself), got {k}")
    if backend != "exact":
        if backend not in BACKENDS:
            raise ConfigError(f"knn backend must be one of {BACKENDS}, got '{backend}'")
        return knn_topk_faiss(x, k, include_self, approximate=backend == "faiss-hnsw")
    dev = x.device
    out_idx = torch.empty((n, k), dtype=torch.int64, device=dev)
    out_val = torch.empty((n, k), dtype=x.dtype, device=dev)
    blocks = range(0, n, row_block)
    if progress:
        from tqdm import tqdm

        blocks = tqdm(blocks, desc=f"kNN {name}", unit="block")
    for r0 in blocks:
        rows = x[r0 : r0 + row_block]
        best_val = torch.full((len(rows), 0), -torch.inf, dtype=x.dtype, device=dev)
        best_idx = torch.empty((len(rows), 0), dtype=torch.int64, device=dev)
        for c0 in range(0, n, col_block):
            sims = rows @ x[c0 : c0 + col_block].T
            if not include_self and c0 < r0 + len(rows) and r0 < c0 + sims.shape[1]:
                r = torch.arange(max(r0, c0), min(r0 + len(rows), c0 + sims.shape[1]), device=dev)
                sims[r - r0, r - c0] = -torch.inf
            ids = torch.arange(c0, c0 + sims.shape[1], device=dev).expand(len(rows), -1)
            order = torch.argsort(best_idx, dim=1)  # candidates in ascending id order: ties go to lower ids
            cand_val = torch.cat([best_val.gather(1, order), sims], dim=1)
            cand_idx = torch.cat([best_idx.gather(1, order), ids], dim=1)
            pos = topk_items(cand_val, min(k, cand_val.shape[1]))
            best_val, best_idx = cand_val.gather(1, pos), cand_idx.gather(1, pos)
        out_idx[r0 : r0 + len(rows)] = best_idx
        out_val[r0 : r0 + len(rows)] = best_val
    return out_idx, out_val


def knn_adjacency(indices: torch.Tensor, values: torch.Tensor, n: int, binary: bool = True) -> sp.csr_matrix:
    """Normalised kNN adjacency D^-1/2 A D^-1/2 (D = row sums) as scipy CSR."""
    rows = np.repeat(np.arange(n), indices.shape[1])
    data = np.ones(rows.size, np.float32) if binary else values.detach().cpu().numpy().ravel().clip(min=0)
    adj = sp.csr_matrix((data, (rows, indices.cpu().numpy().ravel())), shape=(n, n))
    return sym_normalize(adj)


def check_weights(names: list[str], weights: dict[str, float] | None) -> dict[str, float]:
    if not names:
        raise ConfigError("an item-item graph needs at least one feature modality; this dataset has none")
    if weights is None:
        return {n: 1.0 / len(names) for n in names}
    unknown = sorted(set(weights) - set(names))
    missing = sorted(set(names) - set(weights))
    if unknown or missing:
        raise ConfigError(f"modality weights must name exactly the modalities {sorted(names)}; "
                          f"unknown {unknown}, missing {missing}")
    total = sum(weights.values())
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(f"modality weights must sum to 1, got {total}")
    return dict(weights)


def cache_key(features: dict[str, np.ndarray], params: dict) -> str:
    parts = [repr(sorted(params.items())), str(GRAPH_VERSION)]
    for name in sorted(features):
        arr = np.asarray(features[name])
        parts += [f"{name}|{arr.shape}|{arr.dtype}", arr]
    return sha256_hex(parts)[:24]


def save_npz_atomic(path: Path, matrix: sp.spmatrix) -> None:
    """Write a cached sparse matrix so that a process reading the cache never sees a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    sp.save_npz(tmp, matrix)
    os.replace(tmp, path)


def item_graph(features: dict[str, np.ndarray], k: int = 10, weights: dict[str, float] | None = None,
               binary: bool = True, include_self: bool = True, cache_dir: str | Path | None = None,
               row_block: int = 2048, col_block: int = 8192, progress: bool = False,
               backend: str = "exact") -> sp.csr_matrix:
    """The frozen, fused item-item graph; cached on disk under a hash of the features and every parameter."""
    weights = check_weights(sorted(features), weights)
    params = {"k": k, "weights": tuple(sorted(weights.items())), "binary": binary, "include_self": include_self,
              "backend": backend}
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"item_graph-{cache_key(features, params)}.npz"
        if path.is_file():
            log.info("item graph loaded from cache %s", path)
            return sp.load_npz(path).tocsr()
    n = next(iter(features.values())).shape[0]
    fused = sp.csr_matrix((n, n), dtype=np.float32)
    for name in sorted(features):
        if features[name].shape[0] != n:
            raise DataError(f"modality '{name}' has {features[name].shape[0]} rows, expected {n} (one per item)",
                            field=name)
        idx, val = knn_topk(features[name], k, include_self, row_block, col_block, name, progress, backend)
        fused = fused + weights[name] * knn_adjacency(idx, val, n, binary)
    fused = fused.tocsr()
    fused.sort_indices()
    if path is not None:
        save_npz_atomic(path, fused)
        log.info("item graph cached at %s", path)
    return fused
