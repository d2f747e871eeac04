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


PRECISIONS = ("float32", "bf16")
BF16_UNIT_ROUNDOFF = 2.0 ** -8  # bfloat16 keeps 8 significant bits
FLOAT32_UNIT_ROUNDOFF = 2.0 ** -24


def mask_self(sims: torch.Tensor, row_ids: torch.Tensor, col_start: int) -> None:
    """Set each row's own column (if it lies in this column block) to -inf, in place."""
    inside = (row_ids >= col_start) & (row_ids < col_start + sims.shape[1])
    if inside.any():
        where = inside.nonzero().squeeze(1)
        sims[where, row_ids[where] - col_start] = -torch.inf


def merge_sorted(best_val: torch.Tensor, best_idx: torch.Tensor, val: torch.Tensor, idx: torch.Tensor,
                 k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k best of two lists ordered by (value desc, id asc) whose ids are all lower in the first list.

    Concatenated, equal values already sit in ascending id order, so a stable sort on the value alone keeps
    the tie rule: 2k candidates per row instead of k + a whole column block."""
    cand_val = torch.cat([best_val, val], dim=1)
    cand_idx = torch.cat([best_idx, idx], dim=1)
    order = torch.sort(cand_val.detach(), dim=1, descending=True, stable=True).indices[:, :k]
    return cand_val.gather(1, order), cand_idx.gather(1, order)


def exact_rows_topk(x: torch.Tensor, rows: torch.Tensor, row_ids: torch.Tensor, k: int, include_self: bool,
                    col_block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Float32 top-k of ``rows`` (the rows ``row_ids`` of ``x``) against all of ``x``, one column block at a time.

    Each block's own top-k comes first (torch.topk on the product, exact tie fix-up in ``topk_items``), then
    it is merged with the running k best, so no per-block candidate array or expanded id array is built."""
    best_val = x.new_empty((len(rows), 0))
    best_idx = torch.empty((len(rows), 0), dtype=torch.int64, device=x.device)
    for c0 in range(0, x.shape[0], col_block):
        sims = rows @ x[c0 : c0 + col_block].T
        if not include_self:
            mask_self(sims, row_ids, c0)
        pos = topk_items(sims.detach(), min(k, sims.shape[1]))
        best_val, best_idx = merge_sorted(best_val, best_idx, sims.gather(1, pos), pos + c0, k)
    return best_idx, best_val


def bf16_ceiling(bf16_score: torch.Tensor, row_resid: torch.Tensor, max_resid: float, dim: int) -> torch.Tensor:
    """Highest float32 product that can hide behind ``bf16_score``, a bfloat16 product of unit rows.

    With x' = bf16(x) = x - dx: |x'.y' - x.y| <= |dx| + |dy| + |dx||dy| (Cauchy-Schwarz; ``row_resid`` = |dx| of
    the row, ``max_resid`` = the largest |dy| of any item); rounding the product to bfloat16 (u = 2^-8) hides at
    most u|s| / (1 - u); each float32 product (block GEMM, re-rank) is within dim 2^-24 (1 + u)^2 of the true
    value, counted four times (two items, two paths). 1% on top covers norms that are 1 to float32 precision."""
    u = BF16_UNIT_ROUNDOFF
    inputs = row_resid + max_resid + row_resid * max_resid
    output = u * bf16_score.abs() / (1 - u)
    accumulation = 4 * dim * FLOAT32_UNIT_ROUNDOFF * (1 + u) ** 2
    return bf16_score + 1.01 * (inputs + output + accumulation)


def bf16_residuals(x: torch.Tensor, xb: torch.Tensor, block: int = 65536) -> torch.Tensor:
    """|x - bf16(x)| per row, in row blocks (no second items x dim float32 table)."""
    return torch.cat([(x[i : i + block] - xb[i : i + block].float()).norm(dim=1) for i in range(0, len(x), block)])


def bf16_rows_topk(x: torch.Tensor, xb: torch.Tensor, resid: torch.Tensor, r0: int, r1: int, k: int, width: int,
                   include_self: bool, col_block: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows r0:r1: ``width`` candidates from bfloat16 products, re-ranked by exact float32 dot products.

    Returns (indices, values, certified): a row is certified when no item outside its candidates can reach its
    k-th float32 value, i.e. the ceiling of its lowest candidate's bf16 score is below that value."""
    row_ids = torch.arange(r0, r1, device=x.device)
    rows_b = xb[r0:r1]
    cand_val = xb.new_empty((r1 - r0, 0))
    cand_idx = torch.empty((r1 - r0, 0), dtype=torch.int64, device=x.device)
    for c0 in range(0, x.shape[0], col_block):
        sims = rows_b @ xb[c0 : c0 + col_block].T
        if not include_self:
            mask_self(sims, row_ids, c0)
        val, pos = torch.topk(sims, min(width, sims.shape[1]), dim=1)  # ties in any order: only a candidate set
        cand_val, order = torch.topk(torch.cat([cand_val, val], 1), min(width, cand_val.shape[1] + val.shape[1]), 1)
        cand_idx = torch.cat([cand_idx, pos + c0], 1).gather(1, order)
    cand_idx = torch.sort(cand_idx, dim=1).values  # ascending ids: the stable sort below breaks ties to lower ids
    exact = torch.bmm(x[cand_idx], x[r0:r1].unsqueeze(2)).squeeze(2)
    if not include_self:
        exact = exact.masked_fill(cand_idx == row_ids[:, None], -torch.inf)
    order = torch.sort(exact.detach(), dim=1, descending=True, stable=True).indices[:, :k]
    idx, val = cand_idx.gather(1, order), exact.gather(1, order)
    if width >= x.shape[0]:  # every item is a candidate
        return idx, val, torch.ones(r1 - r0, dtype=torch.bool, device=x.device)
    ceiling = bf16_ceiling(cand_val[:, -1].float(), resid[r0:r1], float(resid.max()), x.shape[1])
    return idx, val, ceiling < val[:, -1].detach()


def knn_topk(features, k: int, include_self: bool = True, row_block: int = 2048, col_block: int = 8192,
             name: str = "features", progress: bool = False, backend: str = "exact",
             precision: str = "float32") -> tuple[torch.Tensor, torch.Tensor]:
    """(indices, cosine values), each (n_items, k): the k most similar items of every item.

    ``precision="bf16"`` (exact backend) picks 2k + 8 candidates per item from bfloat16 products and re-ranks
    them in float32; rows that the rounding bound cannot certify are recomputed in float32, so the neighbours
    are those of float32 (see docs/multimodal.md for the one case where they can differ)."""
    x = normalize_rows(features, name)
    n = x.shape[0]
    limit = n if include_self else n - 1
    if not 0 < k <= limit:
        raise ConfigError(f"knn k must be in [1, {limit}] for {n} items ({'with' if include_self else 'without'} "
                          f"the item itself), got {k}")
    if precision not in PRECISIONS:
        raise ConfigError(f"knn precision must be one of {PRECISIONS}, got '{precision}'")
    if backend != "exact":
        if backend not in BACKENDS:
            raise ConfigError(f"knn backend must be one of {BACKENDS}, got '{backend}'")
        return knn_topk_faiss(x, k, include_self, approximate=backend == "faiss-hnsw")
    out_idx = torch.empty((n, k), dtype=torch.int64, device=x.device)
    out_val = torch.empty((n, k), dtype=x.dtype, device=x.device)  # slice writes keep LATTICE's gradients
    xb = x.detach().to(torch.bfloat16) if precision == "bf16" else None
    resid = bf16_residuals(x.detach(), xb) if xb is not None else None
    width = min(2 * k + 8, n)
    uncertified = []
    blocks = range(0, n, row_block)
    if progress:
        from tqdm import tqdm

        blocks = tqdm(blocks, desc=f"kNN {name}", unit="block")
    for r0 in blocks:
        r1 = min(r0 + row_block, n)
        if xb is None:
            idx, val = exact_rows_topk(x, x[r0:r1], torch.arange(r0, r1, device=x.device), k, include_self,
                                       col_block)
        else:
            idx, val, certified = bf16_rows_topk(x, xb, resid, r0, r1, k, width, include_self, col_block)
            uncertified.append((~certified).nonzero().squeeze(1) + r0)
        out_idx[r0:r1] = idx
        out_val[r0:r1] = val
    if uncertified and (redo := torch.cat(uncertified)).numel():
        log.info("kNN %s: %d of %d bf16 rows not certified by the rounding bound, recomputed in float32",
                 name, redo.numel(), n)
        for start in range(0, redo.numel(), row_block):
            ids = redo[start : start + row_block]
            idx, val = exact_rows_topk(x, x[ids], ids, k, include_self, col_block)
            out_idx[ids] = idx
            out_val[ids] = val
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
               backend: str = "exact", precision: str = "float32") -> sp.csr_matrix:
    """The frozen, fused item-item graph; cached on disk under a hash of the features and every parameter."""
    weights = check_weights(sorted(features), weights)
    params = {"k": k, "weights": tuple(sorted(weights.items())), "binary": binary, "include_self": include_self,
              "backend": backend}
    if precision != "float32":  # float32 keeps the cache keys of graphs built before the option existed
        params["precision"] = precision
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
        idx, val = knn_topk(features[name], k, include_self, row_block, col_block, name, progress, backend,
                            precision)
        fused = fused + weights[name] * knn_adjacency(idx, val, n, binary)
    fused = fused.tocsr()
    fused.sort_indices()
    if path is not None:
        save_npz_atomic(path, fused)
        log.info("item graph cached at %s", path)
    return fused
