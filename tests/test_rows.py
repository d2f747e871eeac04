"""One-node row lookups, BPR differences and squared norms: the same values and gradients as plain indexing."""
import pytest
import torch

from gnnrec.graphs.spmm import FixedSparse, joined, propagate, propagation
from gnnrec.models.rows import add_rows_, bpr_differences, row_squares, rows


def test_rows_equal_plain_indexing_in_value_and_gradient():
    gen = torch.Generator().manual_seed(0)
    table = torch.randn(30, 5, generator=gen)
    a, b = torch.randint(30, (50,), generator=gen), torch.randint(30, (7, 3), generator=gen)  # repeats, 2-d index
    wa, wb = torch.randn(50, 5, generator=gen), torch.randn(7, 3, 5, generator=gen)
    ref_t, t = table.clone().requires_grad_(True), table.clone().requires_grad_(True)
    ((ref_t[a] * wa).sum() + (ref_t[b] * wb).sum()).backward()
    ra, rb = rows(t, a, b)
    ((ra * wa).sum() + (rb * wb).sum()).backward()
    torch.testing.assert_close(ra, table[a])
    torch.testing.assert_close(rb, table[b])
    torch.testing.assert_close(t.grad, ref_t.grad)


def test_rows_with_an_unused_output():
    table = torch.randn(10, 3, requires_grad=True)
    first, _ = rows(table, torch.tensor([1, 1, 4]), torch.tensor([2]))
    first.sum().backward()
    expected = torch.zeros(10, 3)
    expected[1], expected[4] = 2.0, 1.0
    torch.testing.assert_close(table.grad, expected)


def _triples(gen, n_users, n_items, n):
    users = torch.randint(n_users, (n,), generator=gen)
    pos, neg = torch.randint(n_items, (n,), generator=gen), torch.randint(n_items, (n,), generator=gen)
    neg[:5] = pos[:5]  # a zero difference (no gradient) must not corrupt the others
    return users, pos, neg


def _reference_differences(user_table, item_table, users, pos, neg):
    u, p, n = user_table[users], item_table[pos], item_table[neg]
    return (u * p).sum(-1) - (u * n).sum(-1)


@pytest.mark.parametrize("width", [64, 40, 3])  # 40: a column chunk that is not whole cache lines; 3: below one
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])  # float64: torch's operations
def test_bpr_differences_equal_the_formula_in_value_and_gradient(width, dtype):
    gen = torch.Generator().manual_seed(0)
    users, pos, neg = _triples(gen, 300, 200, 3000)  # repeated ids; 3000 x 64 runs the threaded kernel
    weights = torch.randn(3000, generator=gen, dtype=dtype)
    u_ref = torch.randn(300, width, generator=gen, dtype=dtype).requires_grad_(True)
    i_ref = torch.randn(200, width, generator=gen, dtype=dtype).requires_grad_(True)
    u, i = u_ref.detach().clone().requires_grad_(True), i_ref.detach().clone().requires_grad_(True)
    expected = _reference_differences(u_ref, i_ref, users, pos, neg)
    (expected * weights).sum().backward()
    got = bpr_differences(u, i, users, pos, neg)
    (got * weights).sum().backward()
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(u.grad, u_ref.grad)
    torch.testing.assert_close(i.grad, i_ref.grad)


def test_bpr_differences_do_not_depend_on_the_thread_count():
    gen = torch.Generator().manual_seed(1)
    users, pos, neg = _triples(gen, 50, 40, 4096)  # many repeats: the per-row order of additions matters
    tables = [torch.randn(50, 64, generator=gen), torch.randn(40, 64, generator=gen)]
    weights = torch.randn(4096, generator=gen)
    grads = []
    before = torch.get_num_threads()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        u, i = (t.clone().requires_grad_(True) for t in tables)
        (bpr_differences(u, i, users, pos, neg) * weights).sum().backward()
        grads.append(torch.cat([u.grad, i.grad]))
    torch.set_num_threads(before)
    assert torch.equal(grads[0], grads[1])


def test_bpr_differences_on_propagated_blocks_pass_one_gradient_buffer_to_the_propagation():
    """Graph propagation returns the user and item blocks of one buffer; bpr_differences then gives their
    gradients as one buffer, which the propagation's backward uses without a copy: same gradient as the
    reference operator."""
    gen = torch.Generator().manual_seed(2)
    n_users, n_items = 30, 20
    users, pos, neg = _triples(gen, n_users, n_items, 200)
    dense = (torch.rand(n_users, n_items, generator=gen) < 0.2).float()
    adj = torch.zeros(n_users + n_items, n_users + n_items)
    adj[:n_users, n_users:], adj[n_users:, :n_users] = dense, dense.T
    op = FixedSparse(adj.to_sparse_csr())
    tables = [torch.randn(n_users, 16, generator=gen), torch.randn(n_items, 16, generator=gen)]
    grads = {}
    for mode in ("fused", "legacy"):
        u, i = (t.clone().requires_grad_(True) for t in tables)
        with propagation(mode):
            user_out, item_out = propagate(op, (u, i), 2, mean=True)
            if mode == "fused":
                assert joined(user_out, item_out) is not None
            bpr_differences(user_out, item_out, users, pos, neg).sigmoid().sum().backward()
        grads[mode] = torch.cat([u.grad, i.grad])
    torch.testing.assert_close(grads["fused"], grads["legacy"])


def test_joined_recognises_only_consecutive_blocks_of_one_buffer():
    whole = torch.randn(10, 4)
    assert joined(*whole.split([6, 4])) is whole
    assert joined(whole[:6], whole[7:]) is None  # a gap
    assert joined(*reversed(whole.split([6, 4]))) is None  # out of order
    assert joined(whole[:6], torch.randn(4, 4)) is None
    assert joined(*whole[:8].split([6, 2])) is None  # not the whole buffer
    assert joined(whole[:5], whole[:5]) is None  # the right sizes, the wrong rows


@pytest.mark.parametrize("with_source_ids", [False, True])
def test_add_rows_equals_index_add(with_source_ids):
    gen = torch.Generator().manual_seed(3)
    out = torch.randn(100, 64, generator=gen)
    index = torch.randint(100, (5000,), generator=gen)
    if with_source_ids:
        src, src_index = torch.randn(70, 64, generator=gen), torch.randint(70, (5000,), generator=gen)
        expected = out.clone().index_add_(0, index, src[src_index], alpha=0.3)
    else:
        src, src_index = torch.randn(5000, 64, generator=gen), None
        expected = out.clone().index_add_(0, index, src, alpha=0.3)
    torch.testing.assert_close(add_rows_(out, index, src, 0.3, src_index=src_index), expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_row_squares_equal_the_squared_norms_in_value_and_gradient(dtype):
    gen = torch.Generator().manual_seed(4)
    table = torch.randn(40, 8, generator=gen, dtype=dtype)
    a, b = torch.randint(40, (30,), generator=gen), torch.randint(40, (25,), generator=gen)
    ref, t = table.clone().requires_grad_(True), table.clone().requires_grad_(True)
    weights = torch.tensor([0.7, -1.3], dtype=dtype)
    expected = torch.stack([ref[a].pow(2).sum(), ref[b].pow(2).sum()])
    (expected * weights).sum().backward()
    got = row_squares(t, a, b)
    (got * weights).sum().backward()
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(t.grad, ref.grad)


def test_bad_ids_and_shapes_are_errors_not_memory_reads():
    """The C kernels index raw memory: every id torch's indexing would refuse is refused before them."""
    whole = torch.randn(10, 16, requires_grad=True)
    users_table, items_table = (whole * 1.0).split([4, 6])  # joined blocks: user id 5 would read item rows
    t = torch.tensor
    for users, pos, neg in [(t([4]), t([0]), t([1])), (t([-1]), t([0]), t([1])), (t([0]), t([6]), t([1])),
                            (t([0]), t([0]), t([-2]))]:
        with pytest.raises(IndexError, match="ids must lie in"):
            bpr_differences(users_table, items_table, users, pos, neg)
    with pytest.raises(IndexError, match="must be integers"):
        bpr_differences(users_table, items_table, t([0.5]), t([0]), t([1]))
    with pytest.raises(ValueError, match="one length"):
        bpr_differences(users_table, items_table, t([0, 1, 2]), t([0]), t([1, 2, 3]))
    with pytest.raises(ValueError, match="width"):
        bpr_differences(users_table, torch.randn(6, 8), t([0]), t([0]), t([1]))
    out = torch.zeros(4, 16)
    with pytest.raises(ValueError, match="4 indices for 2 source rows"):
        add_rows_(out, t([0, 1, 2, 3]), torch.ones(2, 16))
    with pytest.raises(ValueError, match="equal widths"):
        add_rows_(out, t([0, 1]), torch.ones(4, 8))
    with pytest.raises(IndexError, match="ids must lie in"):
        add_rows_(torch.zeros(10, 20)[:5], t([7]), torch.ones(1, 20))
    with pytest.raises(IndexError, match="ids must lie in"):
        add_rows_(out, t([0]), torch.ones(3, 16), src_index=t([3]))
    with pytest.raises(IndexError, match="ids must lie in"):
        row_squares(torch.randn(4, 16, requires_grad=True), t([4]))


def test_a_non_finite_row_gives_a_non_finite_gradient_as_the_formula_does():
    """A triple whose positive and negative are one item, with an infinite value in that row."""
    items = torch.randn(4, 16)
    items[2, 0] = float("inf")
    users = torch.randn(2, 16)
    ids = torch.tensor([0, 1]), torch.tensor([2, 1]), torch.tensor([2, 3])
    grads = []
    for fn in (bpr_differences, _reference_differences):
        u, i = users.clone().requires_grad_(True), items.clone().requires_grad_(True)
        fn(u, i, *ids).sum().backward()
        grads.append((torch.isfinite(u.grad).all(dim=1), torch.isfinite(i.grad).all(dim=1)))
    assert torch.equal(grads[0][0], grads[1][0]) and torch.equal(grads[0][1], grads[1][1])
    assert not grads[0][0][0]  # the first user's gradient is not finite


def test_joined_refuses_a_buffer_of_another_width():
    wide = torch.zeros(8, 8)
    narrow = wide.view(16, 4)
    assert joined(narrow[:3], narrow[3:8]) is None  # sizes and pointers fit, but the base's rows are 8 wide
