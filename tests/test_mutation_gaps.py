"""Small cases that a mutation pass over the core correctness code found untested: each test fails with one
hand-made mutant of the module it names (see its docstring) and passes on the real code."""
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from gnnrec.data.dataset import RecDataset, interactions_to_csr
from gnnrec.data.sampler import BPRSampler
from gnnrec.data.split import ratio_counts
from gnnrec.eval import FullRankingEvaluator, ranking_metrics
from gnnrec.graphs.adjacency import fixed_operator, inverse_sqrt, normalized_interactions, row_normalize, sym_normalize


def dense(mat) -> np.ndarray:
    return np.asarray(sp.csr_matrix(mat).todense(), dtype=np.float64)


# --- gnnrec/eval/metrics.py ---------------------------------------------------------------------------------

def test_precision_divides_by_k_even_when_k_exceeds_the_ranked_width():
    """Precision@K is hits / K (REFERENCE 1), not hits / min(K, list width) when K is past the catalogue."""
    out = ranking_metrics(torch.tensor([[1, 1, 0]]), torch.tensor([2]), ks=[5])
    assert out["precision@5"].item() == pytest.approx(2 / 5)
    assert out["recall@5"].item() == 1.0


# --- gnnrec/eval/evaluator.py -------------------------------------------------------------------------------

def test_collect_orders_rows_by_user_whatever_the_order_of_the_parts():
    """collect() sorts per-user rows by user id (parts from several ranks arrive out of order)."""
    train = interactions_to_csr([0, 1, 2, 3, 3], [0, 1, 2, 3, 0], (4, 6))
    test = interactions_to_csr([0, 1, 1, 2, 3], [5, 4, 5, 3, 1], (4, 6))
    empty = interactions_to_csr([], [], (4, 6))
    ev = FullRankingEvaluator(RecDataset("toy", train, empty, test), "test", ks=(1, 3))
    scores = torch.arange(24, dtype=torch.float32).view(4, 6).flip(1) * torch.tensor([[1.0], [-1.0], [2.0], [-2.0]])
    first = ev.batch_eval(torch.tensor([0, 1]), scores[:2].clone(), per_user=True)[1]
    second = ev.batch_eval(torch.tensor([2, 3]), scores[2:].clone(), per_user=True)[1]
    in_order, reversed_parts = ev.collect([first, second]), ev.collect([second, first])
    assert reversed_parts["users"].tolist() == [0, 1, 2, 3]
    for name, values in in_order.items():
        np.testing.assert_array_equal(reversed_parts[name], values, err_msg=name)
    assert in_order["recall@3"][:2].tolist() != in_order["recall@3"][2:].tolist()  # the parts differ: order shows


# --- gnnrec/data/sampler.py ---------------------------------------------------------------------------------

def all_pairs_positive(sampler: BPRSampler, n_users: int, n_items: int) -> np.ndarray:
    users = np.repeat(np.arange(n_users, dtype=np.int64), n_items)
    items = np.tile(np.arange(n_items, dtype=np.int64), n_users)
    return sampler.is_positive(users, items).reshape(n_users, n_items)


def test_is_positive_finds_the_last_users_last_item():
    """is_positive matches the matrix on every pair, the largest (user, item) key included (searchsorted clamp)."""
    train = interactions_to_csr([0, 0, 1, 2, 2], [1, 3, 0, 2, 4], (3, 5))
    got = all_pairs_positive(BPRSampler(train), 3, 5)
    np.testing.assert_array_equal(got, dense(train) > 0)
    assert got[2, 4]


def test_sampler_accepts_a_csr_with_unsorted_column_indices():
    """The (user, item) keys are sorted before binary search, so a non-canonical CSR still rejects positives."""
    indptr, indices = np.array([0, 3, 5]), np.array([4, 0, 2, 3, 1])
    train = sp.csr_matrix((np.ones(5, np.float32), indices, indptr), shape=(2, 6))
    assert not train.has_sorted_indices
    got = all_pairs_positive(BPRSampler(train, negatives="all_items"), 2, 6)
    np.testing.assert_array_equal(got, dense(train) > 0)


# --- gnnrec/data/split.py -----------------------------------------------------------------------------------

def test_ratio_counts_shrink_valid_first_when_the_ratios_leave_no_training_item():
    """With ratios that would empty a user's training items, valid gives way and test keeps its share."""
    n_valid, n_test = ratio_counts(np.array([2, 4, 10]), valid=0.5, test=0.5)
    assert n_valid.tolist() == [0, 1, 4]
    assert n_test.tolist() == [1, 2, 5]
    assert (n_valid + n_test <= np.array([2, 4, 10]) - 1).all()


# --- gnnrec/graphs/adjacency.py -----------------------------------------------------------------------------

def test_inverse_sqrt_is_zero_for_isolated_nodes():
    """deg^-1/2 with 0 (not inf) where the degree is 0, silently."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = inverse_sqrt(np.array([0.0, 4.0, 1.0]))
    assert got.tolist() == [0.0, 0.5, 1.0]


def test_sym_normalize_takes_degrees_from_row_sums_of_a_directed_graph():
    """D^-1/2 A D^-1/2 with D from row sums (a kNN graph is not symmetric), against a dense reference."""
    adj = np.array([[0, 1, 1, 0], [0, 0, 1, 0], [1, 0, 0, 0], [1, 1, 1, 0]], dtype=np.float32)
    d = np.diag(1 / np.sqrt(adj.sum(1)))
    np.testing.assert_allclose(dense(sym_normalize(sp.csr_matrix(adj))), d @ adj @ d, rtol=1e-6)


def test_sym_normalize_returns_sorted_indices_from_an_unsorted_input():
    """The result is a valid torch CSR source (sorted column indices per row) even for a non-canonical input."""
    adj = sp.csr_matrix((np.ones(4, np.float32), np.array([2, 1, 0, 0]), np.array([0, 2, 3, 4])), shape=(3, 3))
    assert not adj.has_sorted_indices
    out = sym_normalize(adj)
    assert out.has_sorted_indices
    assert out.indices.tolist() == [1, 2, 0, 0]


def test_normalized_interactions_matches_dense_reference():
    """D_u^-1/2 R D_i^-1/2 on a non-square matrix with an empty user row and an empty item column."""
    r = np.array([[1, 1, 0, 0, 0], [0, 1, 1, 0, 0], [1, 1, 1, 1, 0], [0, 0, 0, 0, 0]], dtype=np.float32)
    du, di = r.sum(1), r.sum(0)
    expected = np.diag(inverse_sqrt(du)) @ r @ np.diag(inverse_sqrt(di))
    got = normalized_interactions(sp.csr_matrix(r))
    np.testing.assert_allclose(dense(got), expected, rtol=1e-6)
    assert got.has_sorted_indices


def test_row_normalize_divides_each_row_by_its_own_sum():
    """Rows sum to 1 (empty rows stay 0) on a non-square matrix: a mean over each row's neighbours."""
    m = np.array([[1, 3, 0], [0, 0, 0], [2, 0, 2], [0, 5, 0]], dtype=np.float32)
    got = dense(row_normalize(sp.csr_matrix(m)))
    np.testing.assert_allclose(got, [[0.25, 0.75, 0], [0, 0, 0], [0.5, 0, 0.5], [0, 1, 0]], rtol=1e-6)


def test_fixed_operator_backward_uses_the_transpose():
    """The gradient of (A @ x) for a non-square fixed A is A^T @ grad (the stored transpose is A's)."""
    a = np.array([[1, 0, 2], [0, 3, 0], [4, 0, 0], [0, 5, 6]], dtype=np.float32)  # 4 x 3
    op = fixed_operator(sp.csr_matrix(a))
    x = torch.randn(3, 2, generator=torch.Generator().manual_seed(0), requires_grad=True)
    w = torch.arange(8, dtype=torch.float32).view(4, 2)
    y = op @ x
    np.testing.assert_allclose(y.detach().numpy(), a @ x.detach().numpy(), rtol=1e-5)
    (y * w).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), a.T @ w.numpy(), rtol=1e-5)
