import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from gnnrec.data import RecDataset, interactions_to_csr
from gnnrec.expressiveness import shortest_paths_from_users, topological_closeness
from gnnrec.models.gte import GTE


def random_bipartite(seed, n_users=25, n_items=30, p=0.08):
    rng = np.random.default_rng(seed)
    u, i = np.nonzero(rng.random((n_users, n_items)) < p)
    return interactions_to_csr(u, i, (n_users, n_items))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_distances_and_path_counts_match_networkx(seed):
    train = random_bipartite(seed)
    n_users, n_items = train.shape
    g = nx.Graph()
    g.add_nodes_from(range(n_users + n_items))
    coo = train.tocoo()
    g.add_edges_from(zip(coo.row.tolist(), (coo.col + n_users).tolist()))
    users = np.arange(n_users)
    item_d, item_c, user_d, user_c = shortest_paths_from_users(train, users, max_distance=50)
    for u in users:
        lengths = nx.single_source_shortest_path_length(g, int(u))
        for node in range(n_users + n_items):
            d = lengths.get(node, -1)
            got_d = user_d[u, node] if node < n_users else item_d[u, node - n_users]
            assert got_d == d, (u, node)
            if d > 0:
                want = len(list(nx.all_shortest_paths(g, int(u), node)))
                got_c = user_c[u, node] if node < n_users else item_c[u, node - n_users]
                assert got_c == want, (u, node)


def test_bounded_search_stops_at_max_distance():
    train = interactions_to_csr([0, 1, 1, 2, 2], [0, 0, 1, 1, 2], (3, 3))  # a path u0-i0-u1-i1-u2-i2
    item_d, _, _, _ = shortest_paths_from_users(train, np.array([0]), max_distance=3)
    assert item_d.tolist() == [[1, 3, -1]]


def dataset(train):
    empty = sp.csr_matrix(train.shape)
    return RecDataset("g", train, empty, empty)


def test_gte_is_optimal_up_to_ties():
    train = random_bipartite(7, n_users=60, n_items=50, p=0.06)
    gte = GTE(dataset(train), num_layers=3)
    res = topological_closeness(train, gte.score_fn(), n_users=60, pairs_per_user=200, seed=1)
    assert res.pairs > 1000
    assert res.accuracy_untied == 1.0
    assert res.tie_share > 0  # items beyond distance 3 all score 0


def test_a_model_built_to_fail_scores_low_and_random_scores_half():
    train = random_bipartite(8, n_users=60, n_items=50, p=0.06)
    gte = GTE(dataset(train), num_layers=3).score_fn()
    reversed_model = lambda users: -gte(users)  # orders everything backwards
    res = topological_closeness(train, reversed_model, n_users=60, pairs_per_user=200, seed=1)
    assert res.accuracy_untied == 0.0
    gen = torch.Generator().manual_seed(0)
    table = torch.rand(60, 50, generator=gen, dtype=torch.float64)
    rand = topological_closeness(train, lambda users: table[users], n_users=60, pairs_per_user=400, seed=2)
    assert rand.ci95[0] < 0.5 < rand.ci95[1] or abs(rand.accuracy - 0.5) < 0.05
