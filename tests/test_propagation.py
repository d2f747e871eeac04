"""The fused propagation operator against the legacy one, and row-sparse feature gradients and updates."""
import pytest
import torch
import torch.nn.functional as F

from gnnrec.errors import ConfigError
from gnnrec.graphs import normalized_bipartite
from gnnrec.graphs import native
from gnnrec.graphs.spmm import FixedSparse, propagate, propagation, set_propagation, spmm
from gnnrec.models import BM3, FREEDOM, sparse_adam
from gnnrec.models.modalities import ModalityProjections
from gnnrec.models.sparse_adam import RowSparseAdam
from gnnrec.native import compiler, kernel_status

needs_cc = pytest.mark.skipif(compiler() is None, reason="no C compiler: the C kernels cannot be built")


@pytest.fixture(params=["native", "torch"])
def row_adam_path(request, monkeypatch):
    """Run a test with the row-sparse Adam's C kernel, then with its torch fallback."""
    if request.param == "native":
        if compiler() is None:
            pytest.skip("no C compiler: the row Adam kernel cannot be built")
        return lambda: kernel_status(sparse_adam.ROW_ADAM, "gnnrec_row_adam").startswith("C kernel")
    monkeypatch.setattr(sparse_adam, "_row_adam_native", lambda *args: False)
    return lambda: True


def _run(op, blocks, layers, mean, weights):
    """Output blocks and input gradients of a weighted sum of the propagated blocks."""
    inputs = [b.detach().clone().requires_grad_(True) for b in blocks]
    out = propagate(op, inputs if len(inputs) > 1 else inputs[0], layers, mean=mean)
    out = out if isinstance(out, tuple) else (out,)
    sum((o * w).sum() for o, w in zip(out, weights) if w is not None).backward()
    return [o.detach() for o in out], [i.grad for i in inputs]


@pytest.mark.parametrize("layers", [0, 1, 3])
@pytest.mark.parametrize("mean", [False, True])
@pytest.mark.parametrize("as_blocks", [False, True])
def test_fused_propagation_equals_legacy_forward_and_backward(small_synthetic, layers, mean, as_blocks):
    op = FixedSparse(normalized_bipartite(small_synthetic.train))
    gen = torch.Generator().manual_seed(0)
    n_u, n_i = small_synthetic.n_users, small_synthetic.n_items
    x = torch.randn(n_u + n_i, 8, generator=gen)
    w = torch.randn(n_u + n_i, 8, generator=gen)
    blocks, weights = ([x[:n_u], x[n_u:]], [w[:n_u], w[n_u:]]) if as_blocks else ([x], [w])
    with propagation("legacy"):
        ref_out, ref_grad = _run(op, blocks, layers, mean, weights)
    out, grad = _run(op, blocks, layers, mean, weights)
    for a, b in zip(out + grad, ref_out + ref_grad):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert layers == 0 or not torch.allclose(out[0], blocks[0] / (layers + 1 if mean else 1))  # it propagated


def test_fused_propagation_of_a_non_symmetric_operator_and_an_unused_block():
    gen = torch.Generator().manual_seed(1)
    dense = torch.rand(7, 7, generator=gen) * (torch.rand(7, 7, generator=gen) < 0.5)
    assert not torch.equal(dense, dense.T)
    op = FixedSparse(dense.to_sparse_csr(), dense.T.contiguous().to_sparse_csr())
    x = torch.randn(7, 3, generator=gen)
    weights = [torch.randn(4, 3, generator=gen), None]  # the second block's output is not used
    with propagation("legacy"):
        ref_out, ref_grad = _run(op, [x[:4], x[4:]], 2, True, weights)
    out, grad = _run(op, [x[:4], x[4:]], 2, True, weights)
    xr = x.clone().requires_grad_(True)  # dense reference: mean of x, A x, A^2 x
    dense_out = (xr + dense @ xr + dense @ (dense @ xr)) / 3
    (dense_out[:4] * weights[0]).sum().backward()
    for a, b in zip(out + grad, [dense_out[:4].detach(), dense_out[4:].detach(), xr.grad[:4], xr.grad[4:]]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(out + grad, ref_out + ref_grad):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["fused", "legacy"])
@pytest.mark.parametrize("as_blocks", [False, True])
def test_propagation_plus_terms_equal_adding_them_afterwards(small_synthetic, mode, as_blocks):
    op = FixedSparse(normalized_bipartite(small_synthetic.train))
    gen = torch.Generator().manual_seed(2)
    n_u, n_i = small_synthetic.n_users, small_synthetic.n_items
    x, w = torch.randn(n_u + n_i, 8, generator=gen), torch.randn(n_u + n_i, 8, generator=gen)
    extra = torch.randn(n_i if as_blocks else n_u + n_i, 8, generator=gen)
    results = []
    for inside in (False, True):
        xs, e = x.clone().requires_grad_(True), extra.clone().requires_grad_(True)
        blocks = (xs[:n_u], xs[n_u:]) if as_blocks else xs
        with propagation(mode):
            if inside:
                out = propagate(op, blocks, 2, mean=True, plus=(None, e) if as_blocks else (e,))
            else:
                out = propagate(op, blocks, 2, mean=True)
                out = (out[0], out[1] + e) if as_blocks else out + e
        out = torch.cat(out) if as_blocks else out
        (out * w).sum().backward()
        results.append([out.detach(), xs.grad, e.grad])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="1 plus terms for 2 blocks"):
        propagate(op, (x[:n_u], x[n_u:]), 2, plus=(extra,))


def test_unknown_propagation_mode_is_a_config_error():
    with pytest.raises(ConfigError, match="propagation must be one of"):
        set_propagation("fast")


def _adam_steps(opt_factory, rows_per_step, n=12, dim=5, steps=4):
    torch.manual_seed(0)
    table = torch.nn.Embedding(n, dim, sparse=True)
    opt = opt_factory(table)
    for rows in rows_per_step[:steps]:
        opt.zero_grad()
        (table(rows) ** 2).sum().mul(0.5).add(table(rows).sum()).backward()
        if not isinstance(opt, RowSparseAdam):
            table.weight.grad = table.weight.grad.to_dense()
        opt.step()
    return table.weight.detach()


def test_row_sparse_adam_equals_adam_when_every_row_is_touched(row_adam_path):
    every = [torch.arange(12)] * 4
    lazy = _adam_steps(lambda t: RowSparseAdam([t.weight], [t.weight], lr=0.1), every)
    dense = _adam_steps(lambda t: torch.optim.Adam([t.weight], lr=0.1), every)
    torch.testing.assert_close(lazy, dense, rtol=1e-5, atol=1e-6)
    assert row_adam_path()


@pytest.mark.parametrize("betas", [(0.9, 0.999), (0.5, 0.9)])
def test_row_sparse_adam_on_a_wide_table_equals_adam_on_its_touched_rows(row_adam_path, betas):
    """A table large enough that the kernel splits rows between threads; rows touched in every step (so lazy
    and dense Adam agree there), others never."""
    touched = torch.arange(0, 300, 3)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        lazy = _adam_steps(lambda t: RowSparseAdam([t.weight], [t.weight], lr=0.05, betas=betas), [touched] * 3,
                           n=300, dim=700)
    finally:
        torch.set_num_threads(threads)
    dense = _adam_steps(lambda t: torch.optim.Adam([t.weight], lr=0.05, betas=betas), [touched] * 3, n=300, dim=700)
    torch.testing.assert_close(lazy, dense, rtol=1e-5, atol=1e-6)
    assert row_adam_path()


def test_row_sparse_adam_moves_only_touched_rows(row_adam_path):
    torch.manual_seed(0)
    start = torch.nn.Embedding(12, 5).weight.detach().clone()
    batches = [torch.tensor([0, 3, 3]), torch.tensor([1, 3])] * 2
    lazy = _adam_steps(lambda t: RowSparseAdam([t.weight], [t.weight], lr=0.1), batches)
    dense = _adam_steps(lambda t: torch.optim.Adam([t.weight], lr=0.1), batches)
    untouched = [2, 4, 5, 6, 7, 8, 9, 10, 11]
    assert torch.equal(lazy[untouched], start[untouched]) and torch.equal(dense[untouched], start[untouched])
    assert not torch.equal(lazy[[0, 1, 3]], start[[0, 1, 3]])
    # row 3 is in every batch: the same moments and steps as dense Adam; rows 0 and 1 are not (the documented
    # difference: dense Adam keeps moving them by momentum when a batch does not touch them)
    torch.testing.assert_close(lazy[3], dense[3], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(lazy[0], dense[0])
    assert row_adam_path()


@pytest.mark.parametrize("sparse", [True, False])
def test_projected_differences_equal_projecting_both_rows(sparse):
    """W (x[first] - x[second]) and its gradients against proj(x[first]) - proj(x[second]) through
    autograd, with repeated rows and a row on both sides."""
    gen = torch.Generator().manual_seed(0)
    feats = {"image": torch.randn(30, 40, generator=gen).numpy(), "text": torch.randn(30, 7, generator=gen).numpy()}
    first, second = torch.tensor([0, 5, 5, 9, 2, 29]), torch.tensor([3, 5, 1, 0, 28, 9])
    weights = torch.randn(6, 16, generator=gen)
    grads = []
    for fast in (True, False):
        torch.manual_seed(0)
        mods = ModalityProjections(feats, 16, trainable=True, sparse=sparse)
        if fast:
            out = mods.differences(first, second)
        else:
            out = {n: mods.proj[n](mods.tables[n](first)) - mods.proj[n](mods.tables[n](second)) for n in mods.names}
        sum(((o * weights) ** 2).sum() for o in out.values()).backward()
        grads.append(({n: o.detach() for n, o in out.items()},
                      {n: p.grad.to_dense() if p.grad.is_sparse else p.grad for n, p in mods.named_parameters()
                       if not n.endswith("bias")}))
        if fast:
            assert all(mods.tables[n].weight.grad.is_sparse == sparse for n in mods.names)
            assert all(torch.equal(mods.proj[n].bias.grad, torch.zeros(16)) for n in mods.names)
    for (got, expected) in zip(*grads):
        assert got.keys() == expected.keys()
        for name in got:
            torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-5, msg=name)


def test_row_sparse_adam_refuses_weight_decay():
    table = torch.nn.Embedding(4, 2, sparse=True)
    with pytest.raises(ConfigError, match="weight_decay"):
        RowSparseAdam([table.weight], [table.weight], lr=0.1, weight_decay=1e-4)


def _train(model, steps=3):
    opt = model.configure_optimizers()
    users, pos, neg = torch.tensor([0, 1, 2, 1]), torch.tensor([3, 4, 3, 5]), torch.tensor([6, 7, 8, 6])
    for _ in range(steps):
        opt.zero_grad()
        model.loss(users, pos, neg)[0].backward()
        opt.step()
    return opt, {n: p.detach().clone() for n, p in model.named_parameters()}


def test_freedom_sparse_features_give_equal_results_with_reg_weight_zero(small_synthetic):
    runs = []
    for sparse in (True, False):
        torch.manual_seed(0)
        runs.append(_train(FREEDOM(small_synthetic, embedding_dim=8, reg_weight=0.0, sparse_features=sparse)))
    (sparse_opt, sparse_params), (dense_opt, dense_params) = runs
    assert isinstance(sparse_opt, RowSparseAdam) and not isinstance(dense_opt, RowSparseAdam)
    for name, value in dense_params.items():
        torch.testing.assert_close(sparse_params[name], value, rtol=1e-5, atol=1e-6)


def test_freedom_sparse_feature_first_step_equals_dense_adam_with_reg_weight(small_synthetic):
    """With reg_weight > 0 the feature tables get gradients: on the first step lazy (row) Adam and dense Adam
    agree exactly (no momentum from earlier steps yet), which checks the rows, the bias correction and the
    index mapping of the sparse path."""
    runs = []
    for sparse in (True, False):
        torch.manual_seed(0)
        runs.append(_train(FREEDOM(small_synthetic, embedding_dim=8, reg_weight=0.5, sparse_features=sparse), steps=1))
    (sparse_opt, sparse_params), (dense_opt, dense_params) = runs
    assert isinstance(sparse_opt, RowSparseAdam) and not isinstance(dense_opt, RowSparseAdam)
    before = FREEDOM(small_synthetic, embedding_dim=8, reg_weight=0.5).modalities.tables["image"].weight
    assert not torch.equal(dense_params["modalities.tables.image.weight"], before)  # the tables did move
    for name, value in dense_params.items():
        torch.testing.assert_close(sparse_params[name], value, rtol=1e-5, atol=1e-6, msg=name)


def test_freedom_sparse_feature_step_moves_only_batch_rows(small_synthetic):
    torch.manual_seed(0)
    model = FREEDOM(small_synthetic, embedding_dim=8, reg_weight=0.5)
    before = model.modalities.tables["image"].weight.detach().clone()
    _, after = _train(model, steps=1)
    moved = (after["modalities.tables.image.weight"] != before).any(1).nonzero().ravel().tolist()
    assert moved == [3, 4, 5, 6, 7, 8]  # the batch's positive and negative items


def test_bm3_batch_row_projection_equals_projecting_every_item(small_synthetic):
    torch.manual_seed(0)
    model = BM3(small_synthetic, embedding_dim=8, dropout=0.0)  # no dropout: both forms are deterministic
    users, pos, neg = torch.tensor([0, 1, 2, 1]), torch.tensor([3, 4, 3, 5]), torch.tensor([6, 7, 8, 6])
    loss = model.loss(users, pos, neg)[0]
    loss.backward()
    got = {n: p.grad.to_dense() for n, p in model.named_parameters()}
    model.zero_grad()
    user_all, item_all = model.encode()  # the reference's form: every item projected, then the batch rows
    feats = model.modalities()
    user_target, item_target = user_all[users].detach(), item_all[pos].detach()
    cos = lambda a, b: 1 - F.cosine_similarity(a, b.detach(), dim=-1).mean()  # noqa: E731
    ref = cos(model.predictor(user_all[users]), item_target) + cos(model.predictor(item_all[pos]), user_target)
    ref = ref + model.hparams.reg_weight * (user_all.norm() + item_all.norm()) / model.n_items
    ref = ref + model.cl_weight * sum(cos(model.predictor(f[pos]), item_target) + cos(model.predictor(f[pos]), f[pos])
                                      for f in feats.values())
    ref.backward()
    torch.testing.assert_close(loss, ref)
    for name, p in model.named_parameters():
        torch.testing.assert_close(got[name], p.grad, rtol=1e-5, atol=1e-6, msg=name)



def _random_csr(rows, cols, density, index_dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    dense = torch.rand(rows, cols, generator=gen) * (torch.rand(rows, cols, generator=gen) < density)
    dense[1] = 0  # an empty row
    csr = dense.to_sparse_csr()
    csr = torch.sparse_csr_tensor(csr.crow_indices().to(index_dtype), csr.col_indices().to(index_dtype),
                                  csr.values(), size=csr.shape)
    return dense, csr


@needs_cc
@pytest.mark.parametrize("dim", [1, 8, 13, 64, 100, 136])
@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("with_base", [False, True])
@pytest.mark.parametrize("alpha", [1.0, 0.25])
def test_c_kernel_equals_the_dense_product(dim, index_dtype, with_base, alpha):
    dense, csr = _random_csr(300, 170, 0.2, index_dtype, seed=dim)  # > 4096 non-zeros: both threads work
    gen = torch.Generator().manual_seed(1)
    x, base = torch.randn(170, dim, generator=gen), torch.randn(300, dim, generator=gen)
    out = native.csr_spmm_add(csr, x, base if with_base else None, 0.5, alpha)
    assert out is not None, native.native_status()
    expected = alpha * (dense @ x) + (0.5 * base if with_base else 0)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


@needs_cc
def test_fused_mode_runs_the_c_kernel_and_matches_torchs():
    assert native.native_status().startswith("C kernel"), native.native_status()
    dense, csr = _random_csr(200, 200, 0.1, torch.int64, seed=3)
    op = FixedSparse(csr, dense.T.contiguous().to_sparse_csr())
    x = torch.randn(200, 64, generator=torch.Generator().manual_seed(2))
    with propagation("torch"):
        ref_out, ref_grad = _run(op, [x[:120], x[120:]], 3, True, [x[:120], x[120:]])
    out, grad = _run(op, [x[:120], x[120:]], 3, True, [x[:120], x[120:]])
    for a, b in zip(out + grad, ref_out + ref_grad):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_products_the_c_kernel_does_not_take_fall_back_to_torch():
    dense = torch.rand(20, 20, dtype=torch.float64) * (torch.rand(20, 20) < 0.3)
    x = torch.randn(20, 4, dtype=torch.float64)
    assert native.csr_spmm_add(dense.to_sparse_csr(), x) is None  # float64: not the kernel's
    batched = torch.stack([dense, dense]).float().to_sparse_csr()  # (2, 20, 20): not a matrix
    assert native.csr_spmm_add(batched, x.float()) is None
    torch.testing.assert_close(spmm(dense.to_sparse_csr(), x), dense @ x)


def test_projected_differences_under_autocast():
    """bf16 autocast (train.precision=bf16-mixed): the product runs in bf16, the backward still matches the
    float32 gradients to bf16 precision."""
    gen = torch.Generator().manual_seed(0)
    feats = {"image": torch.randn(30, 40, generator=gen).numpy()}
    first, second = torch.tensor([0, 5, 9, 2]), torch.tensor([3, 1, 0, 28])
    grads = []
    for autocast in (True, False):
        torch.manual_seed(0)
        mods = ModalityProjections(feats, 16, trainable=True, sparse=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = mods.differences(first, second)["image"]
        assert out.dtype == (torch.bfloat16 if autocast else torch.float32)
        out.float().pow(2).sum().backward()
        grads.append([mods.tables["image"].weight.grad.to_dense(), mods.proj["image"].weight.grad])
    for got, expected in zip(*grads):
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, expected, rtol=0.05, atol=0.05)
