"""Sparse user-item graph construction and normalisation; scipy for building, torch CSR for propagation."""
from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch

from gnnrec.graphs.spmm import FixedSparse


def bipartite_adjacency(interactions: sp.spmatrix) -> sp.csr_matrix:
    """The (users + items) square adjacency [[0, R], [R^T, 0]] of a users x items interaction matrix."""
    r = sp.csr_matrix(interactions, dtype=np.float32)
    return sp.bmat([[None, r], [r.T, None]], format="csr", dtype=np.float32)


def inverse_sqrt(degrees: np.ndarray) -> np.ndarray:
    """deg^-1/2, and 0 where the degree is 0 (isolated nodes keep zero rows): the one rule every graph uses."""
    degrees = np.asarray(degrees, dtype=np.float32).ravel()
    return np.divide(1.0, np.sqrt(degrees), out=np.zeros_like(degrees), where=degrees > 0)


def sym_normalize(adj: sp.spmatrix) -> sp.csr_matrix:
    """D^-1/2 A D^-1/2 with degrees from row sums; isolated nodes keep zero rows."""
    adj = sp.csr_matrix(adj, dtype=np.float32)
    d = sp.diags(inverse_sqrt(adj.sum(axis=1)))
    out = sp.csr_matrix(d @ adj @ d, dtype=np.float32)
    out.sort_indices()
    return out


def normalized_interactions(interactions: sp.spmatrix) -> sp.csr_matrix:
    """D_u^-1/2 R D_i^-1/2 (users x items): the user-item block of LightGCN's normalised adjacency, with which
    users read their items' vectors (MGCN, SMORE)."""
    r = sp.csr_matrix(interactions, dtype=np.float32)
    out = sp.csr_matrix(sp.diags(inverse_sqrt(r.sum(axis=1))) @ r @ sp.diags(inverse_sqrt(r.sum(axis=0))),
                        dtype=np.float32)
    out.sort_indices()
    return out


def fixed_operator(matrix: sp.spmatrix) -> FixedSparse:
    """A constant, possibly non-square sparse operator with its transpose, ready for ``operator @ x``."""
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    return FixedSparse(to_torch_csr(matrix), to_torch_csr(matrix.T.tocsr()))


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
