import networkx as nx
import numpy as np
import pytest

from gnnrec.expressiveness import automorphism_orbits, graph_isomorphism, node_automorphism, wl_colors, wl_distinguishes
from gnnrec.expressiveness.structure import as_adj
from gnnrec.expressiveness.wl import have_nauty

needs_nauty = pytest.mark.skipif(not have_nauty(), reason="pynauty is not installed (pip install gnnrec[expressiveness])")


def partition(labels):
    return sorted(sorted(np.flatnonzero(labels == c).tolist()) for c in np.unique(labels))


def test_wl_on_path_separates_by_distance_to_the_ends():
    colors = wl_colors(as_adj(nx.path_graph(5)))
    assert partition(colors) == [[0, 4], [1, 3], [2]]


def test_wl_cannot_split_regular_graphs():
    union = nx.disjoint_union(nx.disjoint_union(nx.cycle_graph(3), nx.cycle_graph(3)), nx.cycle_graph(6))
    assert len(np.unique(wl_colors(as_adj(union)))) == 1
    assert not wl_distinguishes(as_adj(nx.disjoint_union(nx.cycle_graph(3), nx.cycle_graph(3))),
                                as_adj(nx.cycle_graph(6)))
    assert wl_distinguishes(as_adj(nx.path_graph(4)), as_adj(nx.star_graph(3)))


def test_wl_respects_initial_colours():
    colors = wl_colors(as_adj(nx.cycle_graph(4)), initial=np.array([0, 1, 0, 1]))  # bipartite sides
    assert partition(colors) == [[0, 2], [1, 3]]


@needs_nauty
def test_nauty_orbits_on_graphs_with_known_automorphisms():
    assert partition(automorphism_orbits(as_adj(nx.star_graph(4)))) == [[0], [1, 2, 3, 4]]
    assert partition(automorphism_orbits(as_adj(nx.path_graph(5)))) == [[0, 4], [1, 3], [2]]
    assert len(np.unique(automorphism_orbits(as_adj(nx.petersen_graph())))) == 1  # vertex-transitive
    union = nx.disjoint_union(nx.disjoint_union(nx.cycle_graph(3), nx.cycle_graph(3)), nx.cycle_graph(6))
    assert partition(automorphism_orbits(as_adj(union))) == [list(range(6)), list(range(6, 12))]
    # colouring (user vs item) restricts the group
    coloured = automorphism_orbits(as_adj(nx.cycle_graph(4)), colors=np.array([0, 0, 1, 1]))
    assert partition(coloured) == [[0, 1], [2, 3]]


@needs_nauty
def test_node_automorphism_metric_on_models_built_to_pass_and_fail():
    tree = as_adj(nx.Graph([(0, 1), (1, 2), (2, 3), (3, 4), (1, 5)]))
    ok = node_automorphism(tree, "lightgcn")
    assert ok.classes == "nauty orbits"
    assert ok.coincide_within_class == 1.0 and ok.separate_across_classes == 1.0
    no_graph = node_automorphism(tree, "mf")  # ignores structure: everything coincides
    assert no_graph.coincide_within_class == 1.0 and no_graph.separate_across_classes == 0.0
    # orbits that 1-WL cannot split bound every message-passing model
    union = as_adj(nx.disjoint_union(nx.disjoint_union(nx.cycle_graph(3), nx.cycle_graph(3)), nx.cycle_graph(6)))
    bounded = node_automorphism(union, "gte")
    assert bounded.wl_separate_across_classes == 0.0 and bounded.separate_across_classes == 0.0


def test_graph_isomorphism_suite():
    gte = graph_isomorphism("gte")
    assert gte.distinguished == gte.wl_bound == 0.5  # half the suite is 1-WL-equivalent by construction
    assert gte.isomorphic_separated == 0.0
    mf = graph_isomorphism("mf")
    assert mf.distinguished == 0.0 and mf.isomorphic_separated == 0.0
