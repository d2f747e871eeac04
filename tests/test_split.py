import numpy as np
import pytest

from gnnrec.data.split import Interactions, assign_split, holdout_valid, mmrec_rule_counts
from gnnrec.data import interactions_to_csr
from gnnrec.errors import ConfigError, DataError


def test_mmrec_rule_counts():
    counts = np.array([5, 9, 10, 14, 25, 2])
    n_valid, n_test = mmrec_rule_counts(counts)
    assert n_valid.tolist() == [1, 1, 1, 1, 2, 0]
    assert n_test.tolist() == [1, 1, 1, 1, 3, 0]


def test_random_split_per_user_ratios_and_disjoint():
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(50), 20)
    items = np.concatenate([rng.choice(100, 20, replace=False) for _ in range(50)])
    labels = assign_split(users, None, "random", seed=3, valid_ratio=0.1, test_ratio=0.2)
    for u in range(50):
        lab = labels[users == u]
        assert (lab == 1).sum() == 2 and (lab == 2).sum() == 4
    again = assign_split(users, None, "random", seed=3, valid_ratio=0.1, test_ratio=0.2)
    assert np.array_equal(labels, again)
    # random: which interactions are held out changes with the seed and from user to user (not e.g. the last ones)
    other = assign_split(users, None, "random", seed=4, valid_ratio=0.1, test_ratio=0.2)
    assert not np.array_equal(labels, other)
    held = {tuple(np.flatnonzero(labels[users == u] > 0)) for u in range(50)}
    assert len(held) > 40


def test_temporal_leave_last_out():
    users = np.array([0, 0, 0, 0, 1, 1, 2])
    ts = np.array([5.0, 1.0, 9.0, 3.0, 2.0, 1.0, 0.0])
    labels = assign_split(users, ts, "temporal", seed=0)
    assert labels.tolist() == [1, 0, 2, 0, 0, 0, 0]  # users with < 3 interactions stay in train
    with pytest.raises(ConfigError, match="timestamps"):
        assign_split(users, None, "temporal", seed=0)
    with pytest.raises(ConfigError, match="split.method"):
        assign_split(users, ts, "bogus", seed=0)


def naive_kcore(pairs, k):
    pairs = set(pairs)
    while True:
        du, di = {}, {}
        for u, i in pairs:
            du[u] = du.get(u, 0) + 1
            di[i] = di.get(i, 0) + 1
        keep = {(u, i) for u, i in pairs if du[u] >= k and di[i] >= k}
        if keep == pairs:
            return pairs
        pairs = keep


def test_kcore_matches_naive_iteration():
    rng = np.random.default_rng(1)
    users = rng.integers(0, 60, 600)
    items = (rng.zipf(1.6, 600) % 80).astype(np.int64)
    log = Interactions("x", users, items, 60, 80).dedupe()
    core = log.kcore(3)
    ref = naive_kcore(zip(log.users.tolist(), log.items.tolist()), 3)
    assert len(core.users) == len(ref)
    assert np.bincount(core.users).min() >= 3 and np.bincount(core.items).min() >= 3
    assert core.n_users == len({u for u, _ in ref}) and core.n_items == len({i for _, i in ref})


def test_kcore_empty_is_an_error():
    log = Interactions("x", np.array([0, 1]), np.array([0, 1]), 2, 2)
    with pytest.raises(DataError, match="5-core of x is empty"):
        log.kcore(5)


def test_dedupe_keeps_latest():
    log = Interactions("x", np.array([0, 0, 1]), np.array([3, 3, 3]), 2, 4, np.array([1.0, 7.0, 2.0]))
    d = log.dedupe()
    assert len(d.users) == 2 and sorted(d.timestamps.tolist()) == [2.0, 7.0]


def test_holdout_valid_keeps_one_training_item_per_user():
    train = interactions_to_csr([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], list(range(10)) + [0], (2, 10))
    new_train, valid = holdout_valid(train, 0.3, seed=0)
    assert valid.nnz == 3 and new_train.nnz == 8
    assert valid.multiply(new_train).nnz == 0
    assert new_train[1].nnz == 1


def test_split_seed_gives_every_run_seed_the_same_split(tmp_path):
    """An unsplit log is split with the run's seed, unless `data.split_seed` fixes the data's own seed: then
    runs of several seeds share one split (what `gnnrec compare` needs to pool them)."""
    from gnnrec.config import load_config
    from gnnrec.eval.per_user import split_hash
    from gnnrec.train import dataset_from_config

    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 60, 1500), rng.integers(0, 80, 1500)
    lines = ["user_id:token\titem_id:token\ttimestamp:float"] + [f"u{u}\ti{i}\t{n}" for n, (u, i) in enumerate(zip(users, items))]
    (tmp_path / "log.inter").write_text("\n".join(lines) + "\n")

    def test_split(*overrides):
        cfg = load_config(None, [f"data.source={tmp_path / 'log.inter'}", "data.split.method=random", *overrides])
        data = dataset_from_config(cfg)
        return split_hash(data.test, data.train)

    assert test_split("seed=1") != test_split("seed=2")
    assert test_split("seed=1", "data.split_seed=7") == test_split("seed=2", "data.split_seed=7")
    assert test_split("seed=1", "data.split_seed=7") != test_split("seed=1", "data.split_seed=8")
