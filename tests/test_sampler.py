import numpy as np
import pytest

from gnnrec.data import interactions_to_csr
from gnnrec.data.sampler import shard_batches
from gnnrec.data.sampler import BPRSampler
from gnnrec.errors import DataError


def test_negatives_are_never_positives_and_only_training_items(small_synthetic):
    sampler = BPRSampler(small_synthetic.train)
    users, pos, neg = sampler.sample(np.random.default_rng(0))
    train = small_synthetic.train
    assert len(users) == train.nnz
    assert np.all(np.asarray(train[users, pos]).ravel() == 1)
    assert np.all(np.asarray(train[users, neg]).ravel() == 0)
    seen = np.unique(train.indices)
    assert np.isin(neg, seen).all()
    # every training interaction appears exactly once per epoch
    assert len(np.unique(users * train.shape[1] + pos)) == train.nnz


def test_negatives_are_uniform_over_training_items():
    # one user with item 0; items 1..4 are candidates, item 5 never trains
    train = interactions_to_csr([0] * 2000 + [1, 1, 1, 1], [0] * 2000 + [1, 2, 3, 4], (2, 6))
    sampler = BPRSampler(train)
    users = np.zeros(40000, dtype=np.int64)
    neg = sampler.sample_negatives(users, np.random.default_rng(1))
    counts = np.bincount(neg, minlength=6)
    assert counts[0] == 0 and counts[5] == 0
    assert np.allclose(counts[1:5] / len(neg), 0.25, atol=0.01)


def test_all_items_pool_draws_items_never_in_training_too():
    train = interactions_to_csr([0] * 2000 + [1, 1, 1, 1], [0] * 2000 + [1, 2, 3, 4], (2, 6))
    neg = BPRSampler(train, negatives="all_items").sample_negatives(np.zeros(50000, dtype=np.int64),
                                                                     np.random.default_rng(1))
    counts = np.bincount(neg, minlength=6)
    assert counts[0] == 0  # still never the user's own item
    assert np.allclose(counts[1:] / len(neg), 0.2, atol=0.01)  # item 5 (never in training) as often as the rest


def test_negative_pool_setting_reaches_the_sampler_and_is_validated():
    from gnnrec.config import load_config
    from gnnrec.data import RecDataset
    from gnnrec.errors import ConfigError
    from gnnrec.train import datamodule_from_config

    train = interactions_to_csr([0, 0, 1, 2], [0, 1, 2, 1], (3, 5))  # items 3 and 4 never train
    valid = interactions_to_csr([1], [3], (3, 5))
    data = RecDataset("pool", train, valid, interactions_to_csr([2], [4], (3, 5)))
    pools = {n: datamodule_from_config(load_config(None, [f"train.negatives={n}"]), data).sampler.candidates
             for n in ("train_items", "all_items")}
    assert pools["train_items"].tolist() == [0, 1, 2] and pools["all_items"].tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ConfigError, match="negatives"):
        load_config(None, ["train.negatives=everything"])


def test_user_with_every_item_is_an_error():
    train = interactions_to_csr([0, 0, 1], [0, 1, 0], (2, 2))
    with pytest.raises(DataError, match="user 0 interacted with every candidate item"):
        BPRSampler(train)


def test_sampling_is_seeded(small_synthetic):
    sampler = BPRSampler(small_synthetic.train)
    a = sampler.sample(np.random.default_rng([999, 3]))
    b = sampler.sample(np.random.default_rng([999, 3]))
    c = sampler.sample(np.random.default_rng([999, 4]))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_shards_partition_each_global_batch():
    n, bs = 103, 20
    one = shard_batches(n, bs, 0, 1)
    assert [s.stop - s.start for s in one] == [20, 20, 20, 20, 20, 3]
    two = [shard_batches(n, bs, r, 2) for r in range(2)]
    assert len(two[0]) == len(two[1]) == 6
    for b in range(6):
        a, c = two[0][b], two[1][b]
        assert a.stop == c.start and a.stop - a.start == c.stop - c.start
        assert a.start == one[b].start
        # the two parts are as large as possible and never run past the batch (or past n): the odd row is dropped
        assert c.stop - a.start == (one[b].stop - one[b].start) // 2 * 2 and c.stop <= one[b].stop <= n
    three = [shard_batches(n, bs, r, 3) for r in range(3)]
    assert [[s.stop - s.start for s in shards] for shards in three] == [[6] * 5 + [1]] * 3
    assert three[2][-1] == slice(102, 103)
