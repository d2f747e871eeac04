"""1-WL colour refinement (exact) and automorphism orbits (nauty via pynauty, when installed).

Refinement is vectorised: a node's signature is (colour, sorted multiset of neighbour colours); nodes of
equal degree have signatures of equal length, so each degree group is de-duplicated with one
``np.unique(axis=0)``. The loop runs over distinct degrees and rounds, never over nodes or edges.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def refine_once(adj: sp.csr_matrix, colors: np.ndarray) -> np.ndarray:
    deg = np.diff(adj.indptr)
    rows = np.repeat(np.arange(adj.shape[0]), deg)
    neighbour = colors[adj.indices]
    order = np.lexsort((neighbour, rows))
    sorted_colors = neighbour[order]  # row-major, each row's neighbour colours ascending
    keys, groups = [], []
    for d in np.unique(deg):
        nodes = np.flatnonzero(deg == d)
        if d:
            cols = sorted_colors[adj.indptr[nodes][:, None] + np.arange(d)[None, :]]
        else:
            cols = np.zeros((len(nodes), 0), dtype=colors.dtype)
        sig = np.hstack([np.full((len(nodes), 1), d), colors[nodes][:, None], cols])
        keys.append(sig)
        groups.append(nodes)
    new = np.empty(adj.shape[0], dtype=np.int64)
    offset = 0
    for sig, nodes in zip(keys, groups):
        uniq, inverse = np.unique(sig, axis=0, return_inverse=True)
        new[nodes] = offset + inverse.ravel()
        offset += len(uniq)
    return new


def wl_colors(adj: sp.spmatrix, initial: np.ndarray | None = None, max_rounds: int | None = None) -> np.ndarray:
    """Stable 1-WL colouring of an undirected graph; colour ids are canonical (comparable across graphs
    only when refined together, e.g. on a disjoint union)."""
    adj = sp.csr_matrix(adj)
    n = adj.shape[0]
    colors = np.zeros(n, dtype=np.int64) if initial is None else np.unique(initial, return_inverse=True)[1].ravel()
    for _ in range(max_rounds or n):
        new = refine_once(adj, colors)
        if len(np.unique(new)) == len(np.unique(colors)):
            return new
        colors = new
    return colors


def wl_distinguishes(adj_a: sp.spmatrix, adj_b: sp.spmatrix) -> bool:
    """Whether 1-WL tells two graphs apart (colour histograms of the refined disjoint union differ)."""
    n_a = adj_a.shape[0]
    colors = wl_colors(sp.block_diag([adj_a, adj_b]))
    if n_a != adj_b.shape[0]:
        return True
    size = colors.max() + 1
    return not np.array_equal(np.bincount(colors[:n_a], minlength=size), np.bincount(colors[n_a:], minlength=size))


def have_nauty() -> bool:
    try:
        import pynauty  # noqa: F401
    except ImportError:
        return False
    return True


def automorphism_orbits(adj: sp.spmatrix, colors: np.ndarray | None = None) -> np.ndarray:
    """Orbit id of every node under the graph's automorphism group (nauty), preserving an optional colouring
    (e.g. user vs item)."""
    import pynauty

    adj = sp.csr_matrix(adj)
    n = adj.shape[0]
    neighbours = {v: adj.indices[adj.indptr[v] : adj.indptr[v + 1]].tolist() for v in range(n)}
    partition = None
    if colors is not None:
        partition = [set(np.flatnonzero(colors == c).tolist()) for c in np.unique(colors)]
    graph = pynauty.Graph(n, directed=False, adjacency_dict=neighbours, vertex_coloring=partition or [])
    return np.unique(np.asarray(pynauty.autgrp(graph)[3]), return_inverse=True)[1].ravel()


def node_classes(adj: sp.spmatrix, colors: np.ndarray | None = None, nauty_limit: int = 5000) -> tuple[np.ndarray, str]:
    """Exact orbits when nauty is installed and the graph is small enough, else 1-WL classes."""
    if have_nauty() and adj.shape[0] <= nauty_limit:
        return automorphism_orbits(adj, colors), "nauty orbits"
    return wl_colors(adj, colors), "1-WL classes"
