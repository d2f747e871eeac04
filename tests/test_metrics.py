import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from gnnrec.data import RecDataset, interactions_to_csr, make_synthetic
from gnnrec.eval import FullRankingEvaluator, ranking_metrics, topk_items


@pytest.fixture(params=["native", "torch"])
def topk_path(request, monkeypatch):
    """Run a test with the C top-k kernel, then with torch.topk and the tie fix-up."""
    import gnnrec.topk

    if request.param == "native":
        if gnnrec.native.compiler() is None:
            pytest.skip("no C compiler: the top-k kernel cannot be built")
    else:
        monkeypatch.setattr(gnnrec.topk, "native_topk", lambda scores, k: None)
    return request.param


def test_topk_breaks_ties_towards_lower_item_id(topk_path):
    scores = torch.tensor([[1.0, 3.0, 3.0, 0.5, 3.0, 2.0]])
    assert topk_items(scores, 2).tolist() == [[1, 2]]  # three items tie at 3.0; the K-th place goes to id 2
    assert topk_items(scores, 4).tolist() == [[1, 2, 4, 5]]
    integer_scores = torch.tensor([[2.0, 0.0, 2.0, 2.0, 0.0, 1.0, 2.0]])
    assert topk_items(integer_scores, 3).tolist() == [[0, 2, 3]]


@pytest.mark.parametrize("shape", [(50, 40), (300, 700)])  # the second: both threads, the vector loop
def test_topk_matches_stable_sort_on_random_ties(topk_path, shape):
    gen = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 4, shape, generator=gen).float()  # many ties, like GTE's integer scores
    scores[3, :] = -torch.inf  # a row of masked items
    scores[4, 5:] = -torch.inf
    for k in (1, 5, 20, 40):
        ref = torch.sort(-scores, dim=1, stable=True).indices[:, :k]  # stable: equal scores keep id order
        assert torch.equal(topk_items(scores, k), ref)
    wide = torch.randn(shape[0], shape[1] + 9, generator=gen)
    view = wide[:, 4 : 4 + shape[1]]  # rows further apart than their length
    assert torch.equal(topk_items(view, 7), torch.sort(-view, dim=1, stable=True).indices[:, :7])


def test_topk_kernel_ranks_nan_last_and_large_k_falls_back():
    import gnnrec.topk

    scores = torch.tensor([[0.5, float("nan"), 2.0, -1.0, float("nan")]])
    if gnnrec.topk.native_topk(scores, 2) is not None:
        assert topk_items(scores, 3).tolist() == [[2, 0, 3]]
    assert gnnrec.topk.native_topk(torch.zeros(2, 400), gnnrec.topk.KERNEL_MAX_K + 1) is None
    assert topk_items(torch.zeros(2, 400), 300)[0, :3].tolist() == [0, 1, 2]


def test_topk_with_k_larger_than_items(topk_path):
    assert topk_items(torch.tensor([[0.1, 0.3]]), 5).tolist() == [[1, 0]]


def test_ranking_metrics_hand_computed():
    # user 0: 2 relevant, hits at ranks 0 and 2; user 1: 3 relevant, hit at rank 1
    hits = torch.tensor([[1, 0, 1, 0], [0, 1, 0, 0]])
    m = ranking_metrics(hits, torch.tensor([2, 3]), ks=[1, 3])
    assert m["recall@3"].tolist() == pytest.approx([1.0, 1 / 3])
    assert m["precision@3"].tolist() == pytest.approx([2 / 3, 1 / 3])
    assert m["hit@1"].tolist() == [1.0, 0.0]
    dcg0 = 1 + 1 / math.log2(4)
    idcg0 = 1 + 1 / math.log2(3)
    dcg1 = 1 / math.log2(3)
    idcg1 = 1 + 1 / math.log2(3) + 1 / math.log2(4)  # IDCG over min(K, |relevant|) = 3 positions
    assert m["ndcg@3"].tolist() == pytest.approx([dcg0 / idcg0, dcg1 / idcg1])
    assert m["ndcg@1"].tolist() == pytest.approx([1.0, 0.0])
    # MAP (MMRec): sum of precision at each hit / min(K, |relevant|)
    assert m["map@3"].tolist() == pytest.approx([(1 + 2 / 3) / 2, (1 / 2) / 3])
    assert m["map@1"].tolist() == pytest.approx([1.0, 0.0])


def test_ndcg_is_not_the_ngcf_lineage_form():
    # one relevant item found at rank 1 out of 2 relevant: the correct IDCG counts both relevant positions
    m = ranking_metrics(torch.tensor([[0, 1]]), torch.tensor([2]), ks=[2])
    correct = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert m["ndcg@2"].item() == pytest.approx(correct)
    assert m["ndcg@2"].item() < 1 / math.log2(3)  # the inflated form would give 1.0


def toy_dataset():
    # 3 users x 6 items
    train = interactions_to_csr([0, 0, 1, 2], [0, 1, 2, 3], (3, 6))
    valid = interactions_to_csr([0, 1], [2, 4], (3, 6))
    test = interactions_to_csr([0, 0, 1], [3, 4, 5], (3, 6))  # user 1's test item 4 is also its valid item
    empty_user_test = interactions_to_csr([], [], (3, 6))
    return RecDataset("toy", train, valid, test), empty_user_test


def test_strict_protocol_masks_train_and_valid_at_test():
    data, _ = toy_dataset()
    # scores prefer low ids
    scorer = lambda users: torch.arange(6, 0, -1, dtype=torch.float32).repeat(len(users), 1)
    strict = FullRankingEvaluator(data, "test", "strict", ks=[1, 2])
    res = strict.evaluate(scorer)
    # user 0: masks 0,1 (train) and 2 (valid) -> ranking 3,4,5 -> hit@1 (item 3) ; recall@1 = 1/2
    # user 1: masks 2 (train), 4 (valid) -> ranking 0,1,3,5 -> no hit in top 2 for test {4,5}
    assert res["users"] == 2
    assert res["recall@1"] == pytest.approx((0.5 + 0.0) / 2)
    assert res["recall@2"] == pytest.approx((1.0 + 0.0) / 2)
    mmrec = FullRankingEvaluator(data, "test", "mmrec", ks=[1, 2]).evaluate(scorer)
    # mmrec masks train only: user 0 ranking 2,3,4 -> top1 miss, top2 hit 3; user 1 ranking 0,1 -> misses
    assert mmrec["recall@1"] == pytest.approx(0.0)
    assert mmrec["recall@2"] == pytest.approx((0.5 + 0.0) / 2)


def test_mmrec_protocol_drops_users_without_training():
    train = interactions_to_csr([0, 1], [0, 1], (3, 4))
    test = interactions_to_csr([0, 2], [2, 3], (3, 4))  # user 2 never trains
    data = RecDataset("t", train, interactions_to_csr([], [], (3, 4)), test)
    assert FullRankingEvaluator(data, "test", "strict").users.tolist() == [0, 2]
    assert FullRankingEvaluator(data, "test", "mmrec").users.tolist() == [0]


def test_batched_evaluation_equals_single_batch(small_synthetic):
    gen = torch.Generator().manual_seed(3)
    table = torch.randint(0, 3, (small_synthetic.n_users, small_synthetic.n_items), generator=gen).float()
    scorer = lambda users: table[users].clone()
    ev = FullRankingEvaluator(small_synthetic, "test", "strict")
    whole = ev.evaluate(scorer, batch_size=10_000)
    parts = ev.evaluate(scorer, batch_size=7)
    assert whole == pytest.approx(parts)


def test_evaluator_against_naive_reference(small_synthetic):
    """Per-user loop with a full stable sort as an independent implementation of the same protocol."""
    gen = torch.Generator().manual_seed(5)
    table = torch.randint(0, 5, (small_synthetic.n_users, small_synthetic.n_items), generator=gen).float()
    ev = FullRankingEvaluator(small_synthetic, "test", "strict", ks=[10])
    got = ev.evaluate(lambda users: table[users].clone())
    masked = (small_synthetic.train + small_synthetic.valid).toarray() > 0
    recalls, ndcgs = [], []
    for u in ev.users:
        s = table[u].numpy().copy()
        s[masked[u]] = -np.inf
        order = sorted(range(len(s)), key=lambda i: (-s[i], i))[:10]
        rel = set(small_synthetic.test[u].indices)
        hits = [i in rel for i in order]
        recalls.append(sum(hits) / len(rel))
        dcg = sum(1 / math.log2(r + 2) for r, h in enumerate(hits) if h)
        idcg = sum(1 / math.log2(r + 2) for r in range(min(10, len(rel))))
        ndcgs.append(dcg / idcg)
    assert got["recall@10"] == pytest.approx(np.mean(recalls))
    assert got["ndcg@10"] == pytest.approx(np.mean(ndcgs))


def test_a_cutoff_as_long_as_the_catalogue_is_warned_about(caplog):
    data = make_synthetic(n_users=40, n_items=30, n_clusters=2, mean_interactions=6, seed=0)
    with caplog.at_level("WARNING", logger="gnnrec.eval.evaluator"):
        FullRankingEvaluator(data, "valid", "strict", [5, 10])
        assert not caplog.records
        FullRankingEvaluator(data, "valid", "strict", [5, 30])
    assert "eval.ks has 30, at least the 30 items" in caplog.text


def test_ndcg_ideal_list_is_min_k_relevant_long_even_when_fewer_items_were_ranked():
    hits = torch.tensor([[1.0, 0.0]])  # only two items could be ranked; five are relevant
    got = ranking_metrics(hits, torch.tensor([5]), [5])["ndcg@5"].item()
    ideal = sum(1 / math.log2(r + 1) for r in range(1, 6))
    assert got == pytest.approx(1.0 / ideal)
