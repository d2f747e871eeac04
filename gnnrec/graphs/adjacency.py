"""Sparse user-item graph construction and normalisation; scipy for building, torch CSR for propagation."""
from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch


def bipartite_adjacency(interactions: sp.spmatrix) -> sp.csr_matrix:
    """The (users + items) square adjacency [[0, R], [R^T, 0]] of a users x items interaction matrix."""
    r = sp.csr_matrix(interactions, dtype=np.float32)
    return sp.bmat([[None, r], [r.T, None]], format="csr", dtype=np.float32)


def sym_normalize(adj: sp.spmatrix) -> sp.csr_matrix:
    """D^-1/2 A D^-1/2 with degrees from row sums; isolated nodes keep zero rows."""
    adj = sp.csr_matrix(adj, dtype=np.float32)
    deg = np.asarray(adj.sum(axis=1)).ravel()
    inv_sqrt = np.zeros_like(deg)
    nz = deg > 0
    inv_sqrt[nz] = deg[nz] ** -0.5
    d = sp.diags(inv_sqrt)
    out = (d @ adj @ d).tocsr()
    out.sort_indices()
    return out


def to_torch_csr(mat: sp.spmatrix) -> torch.Tensor:
    mat = sp.csr_matrix(mat, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        return torch.sparse_csr_tensor(torch.from_numpy(mat.indptr.astype(np.int64)),
                                       torch.from_numpy(mat.indices.astype(np.int64)),
                                       torch.from_numpy(mat.data), size=mat.shape)


def normalized_bipartite(interactions: sp.spmatrix) -> torch.Tensor:
    """LightGCN's propagation matrix as a torch sparse CSR tensor."""
    return to_torch_csr(sym_normalize(bipartite_adjacency(interactions)))


def row_normalize(mat: sp.spmatrix) -> sp.csr_matrix:
    """Each row divided by its sum (rows without entries stay zero): a mean over neighbours."""
    mat = sp.csr_matrix(mat, dtype=np.float32)
    sums = np.asarray(mat.sum(axis=1)).ravel()
    inv = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
    return (sp.diags(inv.astype(np.float32)) @ mat).tocsr()
