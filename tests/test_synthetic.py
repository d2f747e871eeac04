import numpy as np

from gnnrec.data import make_synthetic


def test_synthetic_is_seeded_and_has_planted_structure():
    a = make_synthetic(n_users=400, n_items=300, n_clusters=4, seed=7)
    b = make_synthetic(n_users=400, n_items=300, n_clusters=4, seed=7)
    assert (a.train != b.train).nnz == 0
    assert a.n_users == 400 and a.n_items == 300
    assert a.valid.nnz > 0 and a.test.nnz > 0
    user_c, item_c = a.user_info["cluster"], a.item_info["cluster"]
    coo = (a.train + a.valid + a.test).tocoo()
    same = (user_c[coo.row] == item_c[coo.col]).mean()
    assert same > 2.0 / 4  # far above the 1/4 that unstructured interactions would give
    for feat in a.features.values():  # features carry the item clusters
        centered = feat - feat.mean(0)
        within = np.mean([centered[item_c == c].var(0).sum() for c in range(4)])
        assert within < 0.8 * centered.var(0).sum()
    assert len(a.item_info["title"]) == 300
