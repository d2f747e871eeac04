"""Carving a validation split out of train (data.valid_carving): counts, protections, report and warning."""
import logging

import numpy as np
import pytest
import scipy.sparse as sp

from gnnrec.config import load_config
from gnnrec.data import interactions_to_csr, load_dataset
from gnnrec.data.split import carve_valid
from gnnrec.errors import ConfigError

# u0: 6 items, u1: 3, u2: 2 (short history), u3: 1, u4: 4, u5: 4; items 6-9 have one training interaction each
TRAIN = {0: [0, 1, 2, 3, 4, 5], 1: [0, 1, 2], 2: [0, 6], 3: [7], 4: [1, 2, 3, 8], 5: [4, 5, 9, 0]}
TEST = [(4, 2), (0, 9), (1, 8), (2, 7), (5, 6)]  # (4, 2) is also a training pair: it must never be carved


def csr(pairs, shape=(6, 10)):
    pairs = list(pairs)
    return interactions_to_csr([u for u, _ in pairs], [i for _, i in pairs], shape)


def train_csr():
    return csr((u, i) for u, items in TRAIN.items() for i in items)


def per_user(mat):
    return np.diff(mat.indptr).tolist()


def check_sound(train, test, c, keep_items):
    """Carved items come from train only, never from test; every user keeps a training item; with
    ``keep_items`` every item that had a training interaction keeps one."""
    assert abs(c.train + c.valid - train).sum() == 0
    assert c.train.multiply(c.valid).nnz == 0
    assert c.valid.multiply(test).nnz == 0
    assert (np.diff(c.train.indptr) >= 1)[np.diff(train.indptr) >= 1].all()
    before = np.bincount(train.indices, minlength=train.shape[1]) > 0
    after = np.bincount(c.train.indices, minlength=train.shape[1]) > 0
    if keep_items:
        assert (after == before).all() and c.cold_test == 0


@pytest.mark.parametrize("seed", range(5))
def test_leave_one_out_carves_exactly_one_per_user_with_history(seed):
    train, test = train_csr(), csr(TEST)
    c = carve_valid(train, 0.1, seed, "leave_one_out", min_history=3, keep_items=False, test=test)
    assert per_user(c.valid) == [1, 1, 0, 0, 1, 1]
    assert (c.users, c.interactions, c.users_missed) == (4, 4, 0)
    check_sound(train, test, c, keep_items=False)


@pytest.mark.parametrize("seed", range(5))
def test_item_protection_never_takes_an_items_last_training_interaction(seed):
    train, test = train_csr(), csr(TEST)
    c = carve_valid(train, 0.1, seed, "leave_one_out", min_history=3, keep_items=True, test=test)
    # u0 is the heaviest user of each of its items, so all of them are kept back for the items: u0 gets none
    assert per_user(c.valid) == [0, 1, 0, 0, 1, 1]
    assert (c.users, c.users_missed, c.cold_test) == (3, 1, 0)
    assert c.valid[4, 8] == 0 and c.valid[4, 2] == 0  # item 8 has one training interaction; (4, 2) is in test
    check_sound(train, test, c, keep_items=True)


@pytest.mark.parametrize("seed", range(10))
def test_ratio_counts(seed):
    train, test = train_csr(), csr(TEST)
    c = carve_valid(train, 0.5, seed, "ratio", min_history=3, keep_items=False, test=test)
    counts = per_user(c.valid)
    assert counts[0] == 3 and counts[2] == 1 and counts[3] == 0 and counts[4] == 2 and counts[5] == 2
    assert counts[1] in (1, 2)  # 1.5 rounded at random
    check_sound(train, test, c, keep_items=False)
    small = carve_valid(train, 0.1, seed, "ratio", min_history=3, keep_items=False, test=test)
    counts = per_user(small.valid)  # every user with 3+ items gets its one; u2 (2 items) gets 0.2 at random
    assert counts[0] == counts[1] == counts[4] == counts[5] == 1 and counts[2] in (0, 1) and counts[3] == 0
    check_sound(train, test, small, keep_items=False)


def test_ratio_expected_share_is_exact():
    rng = np.random.default_rng(0)
    n_users, n_items = 4000, 200
    items = np.concatenate([rng.choice(n_items, 25, replace=False) for _ in range(n_users)])
    train = interactions_to_csr(np.repeat(np.arange(n_users), 25), items, (n_users, n_items))
    c = carve_valid(train, 0.1, seed=1, keep_items=True)  # 2.5 per user: 2 or 3, half and half
    counts = np.diff(c.valid.indptr)
    assert set(np.unique(counts)) == {2, 3}
    assert abs(counts.mean() - 2.5) < 0.05
    check_sound(train, sp.csr_matrix(train.shape), c, keep_items=True)


@pytest.mark.parametrize("method", ["ratio", "leave_one_out"])
@pytest.mark.parametrize("keep_items", [True, False])
def test_random_data_is_always_carved_soundly(method, keep_items):
    rng = np.random.default_rng(3)
    n_users, n_items, nnz = 300, 80, 3000
    users, items = rng.integers(0, n_users, nnz), rng.zipf(1.5, nnz) % n_items
    train = interactions_to_csr(users, items, (n_users, n_items))
    test = interactions_to_csr(rng.integers(0, n_users, 500), rng.integers(0, n_items, 500), (n_users, n_items))
    c = carve_valid(train, 0.2, seed=7, method=method, keep_items=keep_items, test=test)
    check_sound(train, test, c, keep_items)
    history = np.diff(train.indptr)
    got = np.diff(c.valid.indptr)
    assert c.users_missed == int(((history >= 3) & (got == 0)).sum())
    assert c.users == int((got > 0).sum()) and c.interactions == c.valid.nnz
    if method == "leave_one_out":
        assert got.max() <= 1 and (got[history < 3] == 0).all()
    if not keep_items:  # items may lose their last training interaction: the test ones are counted
        cold_items = np.bincount(c.train.indices, minlength=n_items) == 0
        had = np.bincount(train.indices, minlength=n_items) > 0
        assert c.cold_test == int((cold_items & had)[test.indices].sum())


def test_cold_test_interactions_are_counted_without_item_protection():
    train = csr([(0, 0), (0, 1), (0, 2), (1, 0)], (2, 3))
    test = csr([(1, 1), (1, 2)], (2, 3))  # items 1 and 2 have one training interaction each (u0's)
    c = carve_valid(train, 1.0, seed=0, keep_items=False, test=test)  # u0 keeps one of its 3 items
    assert per_user(c.valid) == [2, 0]
    lost = [i for i in (1, 2) if c.valid[0, i]]
    assert c.cold_test == len(lost) >= 1
    protected = carve_valid(train, 1.0, seed=0, keep_items=True, test=test)
    assert protected.cold_test == 0 and protected.valid.nnz == 0 and protected.users_missed == 1


def write_lightgcn(folder, n_users, items_per_user=5, n_items=20):
    folder.mkdir()
    rng = np.random.default_rng(0)
    lines = [" ".join(map(str, [u, *rng.choice(n_items, items_per_user, replace=False)])) for u in range(n_users)]
    (folder / "train.txt").write_text("\n".join(lines) + "\n")
    (folder / "test.txt").write_text("\n".join(f"{u} {u % n_items}" for u in range(n_users)) + "\n")
    return folder


def test_report_and_small_validation_warning(tmp_path, caplog):
    folder = write_lightgcn(tmp_path / "tiny", n_users=40)
    with caplog.at_level(logging.INFO, logger="gnnrec.data"):
        d = load_dataset(folder, valid_carving="leave_one_out", drop_cold=False)
    r = d.report
    assert r["valid_carving"] == "leave_one_out"
    assert r["valid_carved_from_train"] == d.valid.nnz == r["valid_carved_users"] > 0
    assert r["valid_carved_users"] + r["valid_carved_users_missed"] == 40
    assert r["valid_carved_cold_test"] == 0
    assert r["valid_recall_se_max"] == pytest.approx(0.5 / np.sqrt(r["valid_carved_users"]), abs=1e-6)
    assert d.valid.multiply(d.test).nnz == 0
    infos = [m for m in caplog.records if m.levelno == logging.INFO and "carved" in m.getMessage()]
    assert infos and f"carved {d.valid.nnz} interactions from {r['valid_carved_users']} users" in infos[0].getMessage()
    warnings = [m.getMessage() for m in caplog.records if m.levelno == logging.WARNING]
    assert any("standard error of validation Recall@20" in m for m in warnings)


def test_no_warning_on_a_large_validation_set(tmp_path, caplog):
    folder = write_lightgcn(tmp_path / "big", n_users=12000, items_per_user=4, n_items=400)
    with caplog.at_level(logging.INFO, logger="gnnrec.data"):
        d = load_dataset(folder, valid_carving="leave_one_out", valid_keep_items=False, drop_cold=False)
    assert d.report["valid_carved_users"] == 12000 and d.report["valid_recall_se_max"] < 0.005
    assert not [m for m in caplog.records if "standard error" in m.getMessage()]


def test_settings():
    cfg = load_config(None, ["data.valid_carving=leave_one_out", "data.valid_min_history=5"])
    assert cfg["data"]["valid_carving"] == "leave_one_out" and cfg["data"]["valid_min_history"] == 5
    assert load_config(None, [])["data"]["valid_carving"] == "ratio"
    with pytest.raises(ConfigError, match="data.valid_carving"):
        load_config(None, ["data.valid_carving=random"])
    with pytest.raises(ConfigError, match="data.valid_carving"):
        load_dataset(valid_carving="random")
