import numpy as np
import pytest

from gnnrec.data import interactions_to_csr
from gnnrec.errors import ConfigError
from gnnrec.graphs.pruning import DegreeSensitivePruner


def star_plus_pairs():
    # user 0 has 40 items (a hub); users 1..40 each have one private item: edges of very different degree
    users = [0] * 40 + list(range(1, 41))
    items = list(range(40)) + list(range(40, 80))
    return interactions_to_csr(users, items, (41, 80))


def test_keeps_the_right_count_and_renormalises():
    train = star_plus_pairs()
    pruner = DegreeSensitivePruner(train, dropout=0.75)
    assert pruner.n_keep == 20
    keep = pruner.sample_edges(np.random.default_rng(0))
    assert len(keep) == 20 and len(np.unique(keep)) == 20
    adj = pruner.sample(np.random.default_rng(0)).to_dense().numpy()
    assert adj.shape == (121, 121)
    assert np.allclose(adj, adj.T)
    assert (adj > 0).sum() == 40  # 20 kept edges, both directions
    deg = (adj > 0).sum(1)
    nz = np.nonzero(adj)
    assert np.allclose(adj[nz], 1 / np.sqrt(deg[nz[0]] * deg[nz[1]]))


def test_favours_low_degree_edges():
    train = star_plus_pairs()
    pruner = DegreeSensitivePruner(train, dropout=0.75)
    rng = np.random.default_rng(1)
    hub_share = np.mean([np.mean(pruner.sample_edges(rng) < 40) for _ in range(300)])
    # hub edges weigh 1/sqrt(40), private edges 1: proportional sampling keeps far fewer hub edges than half
    assert hub_share < 0.25
    weights = pruner.weights
    assert np.allclose(weights[:40], 1 / np.sqrt(40)) and np.allclose(weights[40:], 1.0)


def test_first_draw_probability_is_proportional_to_weight():
    train = star_plus_pairs()
    pruner = DegreeSensitivePruner(train, dropout=1 - 1 / 80)  # keep one edge
    assert pruner.n_keep == 1
    rng = np.random.default_rng(2)
    hub = np.mean([pruner.sample_edges(rng)[0] < 40 for _ in range(4000)])
    expected = 40 / np.sqrt(40) / (40 / np.sqrt(40) + 40)
    assert abs(hub - expected) < 0.02


def test_dropout_out_of_range():
    with pytest.raises(ConfigError, match="dropout"):
        DegreeSensitivePruner(star_plus_pairs(), dropout=1.0)
