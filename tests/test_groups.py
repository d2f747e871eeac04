"""User groups by training degree (quantile buckets, cold users) and the group table, checked by hand."""
import json
import math

import numpy as np
import pytest
import torch

from gnnrec.data.dataset import RecDataset, interactions_to_csr
from gnnrec.eval import FullRankingEvaluator
from gnnrec.eval.groups import degree_buckets, group_table, save_group_table, user_groups
from gnnrec.eval.per_user import from_evaluation


def test_quartile_buckets_and_cold_users_by_hand():
    degree = np.array([8, 1, 7, 2, 6, 3, 5, 4])
    bucket, edges = degree_buckets(degree)
    assert edges.tolist() == [2.75, 4.5, 6.25]
    assert bucket.tolist() == [3, 0, 3, 0, 2, 1, 2, 1]
    groups = dict(user_groups(degree))
    assert list(groups) == ["all", "Q1", "Q2", "Q3", "Q4", "cold"]
    assert np.flatnonzero(groups["Q1"]).tolist() == [1, 3]  # degrees 1, 2
    assert np.flatnonzero(groups["cold"]).tolist() == [1, 3, 5, 6, 7]  # degrees <= 5
    # equal degrees share a bucket; empty buckets are left out
    tied = dict(user_groups(np.array([1, 1, 1, 1, 2, 8]), cold_degree=1))
    assert list(tied) == ["all", "Q1", "Q4", "cold"]
    assert tied["Q1"].tolist() == [True] * 4 + [False] * 2
    assert tied["cold"].tolist() == tied["Q1"].tolist()


def staircase():
    """User u trains items 0..u (degree u + 1); scores prefer low ids, so each user's top 1 is item u + 1."""
    users = [u for u in range(8) for _ in range(u + 1)]
    items = [i for u in range(8) for i in range(u + 1)]
    test_items = [1, 9, 3, 4, 9, 9, 7, 8]  # hits at 1 for users 0, 2, 3, 6, 7
    empty = interactions_to_csr([], [], (8, 10))
    return RecDataset("stairs", interactions_to_csr(users, items, (8, 10)), empty,
                      interactions_to_csr(range(8), test_items, (8, 10)))


def test_group_table_on_a_tiny_dataset(tmp_path):
    data = staircase()
    ev = FullRankingEvaluator(data, "test", "strict", ks=[1])
    _, rows = ev.evaluate_per_user(lambda users: torch.arange(10, 0, -1, dtype=torch.float32).repeat(len(users), 1))
    results = from_evaluation(data, ev, rows, model="ranker", seed=0, run_dir=None)
    table = {row["group"]: row for row in group_table(results)}
    expected = {"all": (8, 1, 8, 5 / 8), "Q1": (2, 1, 2, 0.5), "Q2": (2, 3, 4, 1.0), "Q3": (2, 5, 6, 0.0),
                "Q4": (2, 7, 8, 1.0), "cold": (5, 1, 5, 0.6)}
    assert list(table) == list(expected)
    for name, (n, lo, hi, recall) in expected.items():
        row = table[name]
        assert (row["users"], row["min_degree"], row["max_degree"]) == (n, lo, hi), name
        assert row["recall@1"] == pytest.approx(recall), name
        assert row["hit@1"] == pytest.approx(recall), name
    # item 0 (trained by all 8 users, 8 of 36 interactions) is the only head item and never held out
    assert math.isnan(table["all"]["recall_head@1"])
    assert table["Q2"]["recall_tail@1"] == pytest.approx(1.0)
    saved = json.loads(save_group_table(tmp_path / "g.json", results).read_text())
    assert saved["groups"][0]["recall_head@1"] is None and saved["meta"]["dataset"] == "stairs"


def test_group_text_table_shows_undefined_values_as_a_dash():
    from gnnrec.report import group_text_table

    rows = [{"group": "all", "users": 3, "min_degree": 1, "max_degree": 5, "recall@20": 0.5, "ndcg@20": 0.25,
             "precision@20": 0.1, "hit@20": 1.0, "map@20": 0.1, "recall_head@20": 0.3, "recall_tail@20": float("nan")},
            {"group": "cold", "users": 0, "min_degree": 0, "max_degree": 0}]
    all_row, cold_row = group_text_table(rows).splitlines()[2:]
    assert "0.5000" in all_row and "0.2500" in all_row and all_row.split()[-1] == "-" and "nan" not in all_row
    assert cold_row.split()[1:] == ["0"] + ["-"] * 8
