"""Node-level (automorphism) and graph-level (isomorphism) expressiveness of a propagation rule.

Models are compared through how they propagate a symmetric initialisation (every node starts with the same
vector, so nothing but the graph's structure can make two nodes differ):
- ``lightgcn``: mean of layers 0..L of D^-1/2 A D^-1/2 propagation;
- ``gte``: GTE's unnormalised accumulation x <- x + A x (a sum aggregator, as strong as 1-WL);
- ``mf``: no propagation (every node keeps the initial vector).
"""
from __future__ import annotations

from dataclasses import dataclass
from math import comb

import networkx as nx
import numpy as np
import scipy.sparse as sp

from gnnrec.expressiveness.wl import node_classes, wl_colors, wl_distinguishes
from gnnrec.graphs.adjacency import sym_normalize

RULES = ("lightgcn", "gte", "mf")


def propagate_symmetric(adj: sp.spmatrix, rule: str, num_layers: int = 3) -> np.ndarray:
    """Node representations (n, 1) of a rule from the all-ones initialisation, in float64."""
    adj = sp.csr_matrix(adj, dtype=np.float64)
    x = np.ones((adj.shape[0], 1))
    if rule == "mf":
        return x
    if rule == "lightgcn":
        norm = sym_normalize(adj).astype(np.float64)
        layers = [x]
        for _ in range(num_layers):
            layers.append(norm @ layers[-1])
        return np.mean(layers, axis=0)
    if rule == "gte":
        for _ in range(num_layers):
            x = x + adj @ x
        return x
    raise ValueError(f"unknown propagation rule '{rule}', expected one of {RULES}")


def representation_classes(reps: np.ndarray, decimals: int = 8) -> np.ndarray:
    scale = np.abs(reps).max() or 1.0
    return np.unique(np.round(reps / scale, decimals), axis=0, return_inverse=True)[1].ravel()


def pair_counts(a: np.ndarray, b: np.ndarray) -> tuple[int, int, int, int]:
    """(pairs same in a, of those also same in b, pairs different in a, of those also different in b)."""
    n = len(a)
    joint = np.unique(np.stack([a, b], 1), axis=0, return_counts=True)[1]
    same_a = sum(comb(int(c), 2) for c in np.bincount(a))
    same_b = sum(comb(int(c), 2) for c in np.bincount(b))
    same_both = sum(comb(int(c), 2) for c in joint)
    diff_a = comb(n, 2) - same_a
    diff_both = diff_a - (same_b - same_both)
    return same_a, same_both, diff_a, diff_both


@dataclass
class AutomorphismResult:
    coincide_within_class: float  # same-class pairs with equal representations
    separate_across_classes: float  # different-class pairs with different representations
    wl_separate_across_classes: float  # what 1-WL itself achieves (the bound for message passing)
    classes: str  # "nauty orbits" or "1-WL classes"
    nodes: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def node_automorphism(adj: sp.spmatrix, rule: str, num_layers: int = 3, node_colors=None,
                      nauty_limit: int = 5000) -> AutomorphismResult:
    classes, kind = node_classes(adj, node_colors, nauty_limit)
    reps = propagate_symmetric(adj, rule, num_layers)
    same, same_ok, diff, diff_ok = pair_counts(classes, representation_classes(reps))
    _, _, wl_diff, wl_diff_ok = pair_counts(classes, wl_colors(adj, node_colors))
    return AutomorphismResult(same_ok / same if same else 1.0, diff_ok / diff if diff else 1.0,
                              wl_diff_ok / wl_diff if wl_diff else 1.0, kind, adj.shape[0])


def as_adj(graph: nx.Graph) -> sp.csr_matrix:
    return sp.csr_matrix(nx.to_scipy_sparse_array(graph, nodelist=sorted(graph.nodes()), dtype=np.float64))


def isomorphism_suite() -> list[tuple[str, nx.Graph, nx.Graph]]:
    """Non-isomorphic pairs, some 1-WL-equivalent (regular graphs of equal size) and some not."""
    two_triangles = nx.disjoint_union(nx.cycle_graph(3), nx.cycle_graph(3))
    rook = nx.cartesian_product(nx.complete_graph(4), nx.complete_graph(4))
    shrikhande = nx.Graph([((a, b), ((a + da) % 4, (b + db) % 4)) for a in range(4) for b in range(4)
                           for da, db in ((0, 1), (1, 0), (1, 1), (0, 3), (3, 0), (3, 3))])
    return [
        ("2 triangles vs hexagon", two_triangles, nx.cycle_graph(6)),
        ("2 squares vs octagon", nx.disjoint_union(nx.cycle_graph(4), nx.cycle_graph(4)), nx.cycle_graph(8)),
        ("triangle+square vs heptagon", nx.disjoint_union(nx.cycle_graph(3), nx.cycle_graph(4)), nx.cycle_graph(7)),
        ("4x4 rook vs Shrikhande", nx.convert_node_labels_to_integers(rook), nx.convert_node_labels_to_integers(shrikhande)),
        ("path P4 vs star K1,3", nx.path_graph(4), nx.star_graph(3)),
        ("hexagon vs path P6", nx.cycle_graph(6), nx.path_graph(6)),
        ("K2,3 vs path P5", nx.complete_bipartite_graph(2, 3), nx.path_graph(5)),
        ("square+tail vs triangle+2 tails", nx.Graph([(0, 1), (1, 2), (2, 3), (3, 0), (0, 4)]),
         nx.Graph([(0, 1), (1, 2), (2, 0), (0, 3), (1, 4)])),
    ]


@dataclass
class IsomorphismResult:
    distinguished: float  # share of non-isomorphic pairs the rule's readout tells apart
    wl_bound: float  # share 1-WL tells apart (message passing can do no better)
    isomorphic_separated: float  # share of isomorphic (relabelled) controls wrongly told apart
    pairs: list[dict]

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def readout(adj: sp.spmatrix, rule: str, num_layers: int) -> np.ndarray:
    """Graph-level readout: sorted node representations (a multiset; equal for isomorphic graphs)."""
    return np.sort(propagate_symmetric(adj, rule, num_layers).ravel())


def tells_apart(a, b, rule: str, num_layers: int) -> bool:
    ra, rb = readout(as_adj(a), rule, num_layers), readout(as_adj(b), rule, num_layers)
    return len(ra) != len(rb) or not np.allclose(ra, rb, rtol=1e-9, atol=1e-12)


def graph_isomorphism(rule: str, num_layers: int = 3, seed: int = 0) -> IsomorphismResult:
    rng = np.random.default_rng(seed)
    rows, told, wl, controls = [], 0, 0, 0
    suite = isomorphism_suite()
    for name, a, b in suite:
        assert not nx.is_isomorphic(a, b), name
        t = tells_apart(a, b, rule, num_layers)
        w = wl_distinguishes(as_adj(a), as_adj(b))
        perm = rng.permutation(a.number_of_nodes())
        relabelled = nx.relabel_nodes(a, dict(enumerate(perm.tolist())))
        c = tells_apart(a, relabelled, rule, num_layers)
        rows.append({"pair": name, "model": t, "1-WL": w, "isomorphic control separated": c})
        told, wl, controls = told + t, wl + w, controls + c
    n = len(suite)
    return IsomorphismResult(told / n, wl / n, controls / n, rows)
