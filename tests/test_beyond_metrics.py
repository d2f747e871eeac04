"""Beyond-accuracy metrics against hand-computed cases, and the evaluator's reused score buffer."""
import math

import numpy as np
import pytest
import torch

from gnnrec.data.dataset import RecDataset, interactions_to_csr
from gnnrec.eval import FullRankingEvaluator
from gnnrec.eval.beyond import coverage, gini, item_counts, novelty_weights, per_user_beyond, tail_items
from gnnrec.models import build_model
from gnnrec.models.base import ReusedBufferScorer


def test_gini_and_coverage_hand_computed():
    assert gini([1, 1, 1, 1]) == 0.0
    assert gini([0, 0, 4, 0]) == pytest.approx(0.75)  # all on one of 4 items: (n - 1) / n
    # sorted [1,2,3,4]: (-3*1 - 1*2 + 1*3 + 3*4) / (4 * 10); equals sum|xi - xj| / (2 n^2 mean) = 20 / 80
    assert gini([4, 1, 3, 2]) == pytest.approx(0.25)
    assert gini([0, 0, 0]) == 0.0
    assert coverage([0, 3, 0, 1, 0]) == pytest.approx(2 / 5)
    assert coverage([2, 2]) == 1.0


def test_head_is_the_shortest_popular_prefix_holding_a_fifth_of_training():
    # total 20, head share 4: item 0 (10) alone reaches it
    assert tail_items(np.array([10, 5, 3, 1, 1, 0])).tolist() == [False, True, True, True, True, True]
    # ten items of 10: the first two reach 20 of 100 exactly; ties go to the lower id
    assert np.flatnonzero(~tail_items(np.full(10, 10))).tolist() == [0, 1]
    assert np.flatnonzero(~tail_items(np.full(10, 10), tail_share=0.7)).tolist() == [0, 1, 2]
    assert np.flatnonzero(~tail_items(np.array([1, 3, 1, 9, 2, 2, 2]))).tolist() == [3]  # 9 >= 0.2 * 20


def test_novelty_popularity_and_tail_share_on_a_hand_made_top_k():
    counts = np.array([4, 1, 0])
    novelty = novelty_weights(counts, n_train_users=4)  # p = 1, 1/4, 0 -> clipped to 1/4
    assert novelty.tolist() == [0.0, 2.0, 2.0]
    counts = np.array([4, 1, 2])
    novelty = novelty_weights(counts, n_train_users=4)  # p = 1, 1/4, 1/2
    top = torch.tensor([[0, 1, 2], [1, 0, 2]])
    filled = torch.tensor([[True, True, True], [True, True, False]])  # row 1 had only two unmasked items
    is_tail = torch.tensor([False, True, True])
    got = per_user_beyond(top, filled, torch.from_numpy(counts), is_tail, torch.from_numpy(novelty), ks=[1, 3])
    assert got["avg_popularity@1"].tolist() == [4.0, 1.0]
    assert got["avg_popularity@3"].tolist() == pytest.approx([7 / 3, 2.5])  # row 1: (1 + 4) / 2
    assert got["tail_share@1"].tolist() == [0.0, 1.0]
    assert got["tail_share@3"].tolist() == pytest.approx([2 / 3, 0.5])
    assert got["novelty@1"].tolist() == [0.0, 2.0]
    assert got["novelty@3"].tolist() == pytest.approx([1.0, 1.0])  # (0 + 2 + 1) / 3, (2 + 0) / 2
    counts_by_k = item_counts(top, filled, 3, ks=[1, 3])
    assert counts_by_k[1].tolist() == [1, 1, 0]
    assert counts_by_k[3].tolist() == [2, 2, 1]


def toy():
    """Training counts: item 0 three times (the head), items 1-4 once, item 5 never; scores prefer low ids."""
    train = interactions_to_csr([0, 0, 1, 1, 2, 2, 3], [0, 1, 0, 2, 0, 3, 4], (4, 6))
    test = interactions_to_csr([0, 3, 3], [5, 0, 5], (4, 6))
    empty = interactions_to_csr([], [], (4, 6))
    return RecDataset("toy", train, empty, test)


def test_evaluator_per_user_rows_by_hand():
    ev = FullRankingEvaluator(toy(), "test", "strict", ks=[1, 4, 5])
    scorer = lambda users: torch.arange(6, 0, -1, dtype=torch.float32).repeat(len(users), 1)
    values, rows = ev.evaluate_per_user(scorer)
    assert rows["users"].tolist() == [0, 3]
    # user 0 (masks 0, 1) ranks 2 3 4 5 then masked 0; user 3 (masks 4) ranks 0 1 2 3 5
    assert rows["recall@4"].tolist() == [1.0, 0.5]
    assert math.isnan(rows["recall_head@1"][0]) and rows["recall_head@1"][1] == 1.0  # user 0 holds no head item
    assert rows["recall_tail@1"].tolist() == [0.0, 0.0]
    assert rows["recall_tail@4"].tolist() == [1.0, 0.0]
    assert rows["recall_tail@5"].tolist() == [1.0, 1.0]
    assert rows["avg_popularity@4"].tolist() == [0.75, 1.5]  # (1+1+1+0)/4, (3+1+1+1)/4
    assert rows["avg_popularity@5"].tolist() == [0.75, 6 / 5]  # user 0's fifth place is masked: left out
    assert rows["tail_share@1"].tolist() == [1.0, 0.0]
    assert rows["item_counts@5"].tolist() == [1, 1, 2, 2, 1, 2]
    assert values["coverage@1"] == pytest.approx(2 / 6)  # items 2 and 0
    assert values["gini@5"] == pytest.approx(gini([1, 1, 2, 2, 1, 2]))
    assert values["tail_share@1"] == pytest.approx(0.5)
    # n_train_users = 4: p = 3/4, 1/4, ..., item 5 clipped to 1/4
    assert values["novelty@1"] == pytest.approx((2.0 + -math.log2(0.75)) / 2)
    plain = ev.evaluate(scorer)  # the accuracy sums are the same with and without per-user rows
    assert plain == {k: values[k] for k in plain}


@pytest.mark.parametrize("name", ["lightgcn", "gte"])
def test_reused_score_buffer_gives_identical_metrics(small_synthetic, name):
    torch.manual_seed(0)
    model = build_model(small_synthetic, name=name)
    model.eval()
    ev = FullRankingEvaluator(small_synthetic, "test", "strict")
    fresh = ev.evaluate_per_user(model.score_fn(), batch_size=37)
    scorer = model.eval_scorer()
    reused = ev.evaluate_per_user(scorer, batch_size=37)
    assert fresh[0] == reused[0]
    for key in fresh[1]:
        np.testing.assert_array_equal(fresh[1][key], reused[1][key])
    if name == "gte":  # scores by sparse products, not a dot product: keeps its own scorer
        assert not isinstance(scorer, ReusedBufferScorer)
        return
    assert isinstance(scorer, ReusedBufferScorer)
    users = torch.arange(37)
    first = scorer(users).data_ptr()
    assert torch.equal(scorer(users[:5]), model.score_fn()(users[:5]))
    assert scorer(users[5:12]).data_ptr() == first  # one buffer for every batch
