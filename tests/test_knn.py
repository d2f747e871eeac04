import numpy as np
import pytest
import scipy.sparse as sp
import torch

from gnnrec.errors import ConfigError, DataError
from gnnrec.graphs.knn import item_graph, knn_adjacency, knn_topk


def dense_reference(feat, k, include_self, binary):
    x = feat / np.linalg.norm(feat, axis=1, keepdims=True)
    sims = x @ x.T
    if not include_self:
        np.fill_diagonal(sims, -np.inf)
    n = len(x)
    adj = np.zeros((n, n))
    for i in range(n):
        order = sorted(range(n), key=lambda j: (-sims[i, j], j))[:k]  # ties: lower id
        adj[i, order] = 1.0 if binary else sims[i, order]
    deg = adj.sum(1) + 1e-7
    return adj / np.sqrt(deg)[:, None] / np.sqrt(deg)[None, :]


@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize("binary", [True, False])
def test_knn_graph_equals_dense_reference(include_self, binary):
    rng = np.random.default_rng(0)
    feat = rng.normal(size=(40, 6)).astype(np.float32)
    feat[7] = feat[3]  # duplicate items: exact ties
    feat[20] = 2 * feat[3]
    idx, val = knn_topk(feat, 5, include_self, row_block=7, col_block=9)
    got = knn_adjacency(idx, val, 40, binary).toarray()
    np.testing.assert_allclose(got, dense_reference(feat.astype(np.float64), 5, include_self, binary), atol=1e-5)


def test_block_size_does_not_change_the_result():
    rng = np.random.default_rng(1)
    feat = np.round(rng.normal(size=(101, 4)), 1).astype(np.float32)  # rounding makes many ties
    base = knn_topk(feat, 10, row_block=1000, col_block=1000)
    for rb, cb in [(1, 3), (13, 7), (64, 11), (101, 101)]:
        idx, val = knn_topk(feat, 10, row_block=rb, col_block=cb)
        assert torch.equal(idx, base[0]) and torch.allclose(val, base[1])


def test_fused_graph_weights_and_cache(tmp_path, monkeypatch):
    import gnnrec.graphs.knn as knn

    rng = np.random.default_rng(2)
    feats = {"image": rng.normal(size=(30, 5)).astype(np.float32), "text": rng.normal(size=(30, 8)).astype(np.float32)}
    g = item_graph(feats, k=4, weights={"image": 0.1, "text": 0.9}, cache_dir=tmp_path)
    ref = 0.1 * knn_adjacency(*knn_topk(feats["image"], 4), 30) + 0.9 * knn_adjacency(*knn_topk(feats["text"], 4), 30)
    assert abs(g - ref).max() < 1e-6
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1
    real_topk = knn.knn_topk

    def no_knn(*args, **kwargs):
        raise AssertionError("a cached graph was recomputed")

    monkeypatch.setattr(knn, "knn_topk", no_knn)  # the second call must read the cache, not search again
    again = item_graph(feats, k=4, weights={"image": 0.1, "text": 0.9}, cache_dir=tmp_path)
    assert (again != g).nnz == 0 and len(list(tmp_path.glob("*.npz"))) == 1
    monkeypatch.setattr(knn, "knn_topk", real_topk)
    changed = {**feats, "image": feats["image"].copy()}
    changed["image"][0, 0] += 1.0  # changed features never reuse a stale graph
    item_graph(changed, k=4, weights={"image": 0.1, "text": 0.9}, cache_dir=tmp_path)
    item_graph(feats, k=5, weights={"image": 0.1, "text": 0.9}, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 3


def test_bad_inputs_give_clear_errors():
    feat = np.ones((5, 3), dtype=np.float32)
    with pytest.raises(ConfigError, match=r"k must be in \[1, 5\]"):
        knn_topk(feat, 5 + 1)
    with pytest.raises(ConfigError, match=r"k must be in \[1, 4\]"):
        knn_topk(feat, 5, include_self=False)
    zero = feat.copy()
    zero[2] = 0
    with pytest.raises(DataError, match="'image' has 1 all-zero rows \\(first: item 2\\)"):
        knn_topk(zero, 2, name="image")
    nan = feat.copy()
    nan[3, 1] = np.nan
    with pytest.raises(DataError, match="NaN or inf values \\(first at item 3\\)"):
        knn_topk(nan, 2)
    with pytest.raises(DataError, match="'text' has 4 rows, expected 5"):
        item_graph({"image": feat, "text": feat[:4]}, k=2)
    with pytest.raises(ConfigError, match="sum to 1"):
        item_graph({"image": feat}, k=2, weights={"image": 0.5})
    with pytest.raises(ConfigError, match="missing \\['text'\\]"):
        item_graph({"image": feat, "text": feat}, k=2, weights={"image": 1.0})


def test_graph_build_cli_caches_and_saves(tmp_path, capsys):
    import scipy.sparse as sp

    from gnnrec.cli import main

    args = ["graph", "build", "synthetic", "--k", "5", "--weights", "image=0.3,text=0.7",
            "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "g.npz")]
    assert main(args) == 0
    assert "1000 items" in capsys.readouterr().out
    graph = sp.load_npz(tmp_path / "g.npz")
    assert graph.shape == (1000, 1000) and len(list((tmp_path / "cache").glob("*.npz"))) == 1
    assert main([*args[:-1], str(tmp_path / "g16.npz"), "--precision", "bf16"]) == 0
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2  # bf16 candidates: its own cache entry, same graph
    assert (sp.load_npz(tmp_path / "g16.npz") != graph).nnz == 0
    assert main(["graph", "build", "synthetic", "--weights", "image=1"]) == 2


@pytest.mark.parametrize("include_self", [True, False])
def test_faiss_backends_agree_with_the_exact_graph(include_self):
    pytest.importorskip("faiss", reason="faiss-cpu is not installed (pip install 'gnnrec[ann]')")
    rng = np.random.default_rng(4)
    feat = rng.normal(size=(500, 16)).astype(np.float32)
    exact_idx, exact_val = knn_topk(feat, 10, include_self)
    idx, val = knn_topk(feat, 10, include_self, backend="faiss")
    assert torch.equal(idx, exact_idx)
    assert torch.allclose(val, exact_val, atol=1e-5)
    hnsw, _ = knn_topk(feat, 10, include_self, backend="faiss-hnsw")
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(hnsw.tolist(), exact_idx.tolist())])
    assert overlap > 0.9  # approximate, but close
    with pytest.raises(ConfigError, match="backend must be one of"):
        knn_topk(feat, 10, backend="annoy")


def previous_knn_topk(features, k, include_self=True, row_block=2048, col_block=8192):
    """The builder before the two-list merge (per block: a k + block candidate array and expanded ids), kept as
    the oracle the current one must match bit for bit."""
    from gnnrec.graphs.knn import normalize_rows
    from gnnrec.topk import topk_items

    x = normalize_rows(features)
    n = x.shape[0]
    out_idx, out_val = torch.empty((n, k), dtype=torch.int64), torch.empty((n, k))
    for r0 in range(0, n, row_block):
        rows = x[r0 : r0 + row_block]
        best_val, best_idx = torch.full((len(rows), 0), -torch.inf), torch.empty((len(rows), 0), dtype=torch.int64)
        for c0 in range(0, n, col_block):
            sims = rows @ x[c0 : c0 + col_block].T
            if not include_self and c0 < r0 + len(rows) and r0 < c0 + sims.shape[1]:
                r = torch.arange(max(r0, c0), min(r0 + len(rows), c0 + sims.shape[1]))
                sims[r - r0, r - c0] = -torch.inf
            ids = torch.arange(c0, c0 + sims.shape[1]).expand(len(rows), -1)
            order = torch.argsort(best_idx, dim=1)
            cand_val = torch.cat([best_val.gather(1, order), sims], dim=1)
            cand_idx = torch.cat([best_idx.gather(1, order), ids], dim=1)
            pos = topk_items(cand_val, min(k, cand_val.shape[1]))
            best_val, best_idx = cand_val.gather(1, pos), cand_idx.gather(1, pos)
        out_idx[r0 : r0 + len(rows)], out_val[r0 : r0 + len(rows)] = best_idx, best_val
    return out_idx, out_val


def exact_tie_features(rng, n, d=32):
    """Rows of 16 entries +-1 (norm 4): every cosine is a multiple of 1/16, exact in float32 and bfloat16 in any
    summation order, so ties are true ties; a quarter of the rows are exact duplicates."""
    feat = np.zeros((n, d), np.float32)
    for i in range(n):
        feat[i, rng.choice(d, 16, replace=False)] = rng.choice([-1, 1], 16)
    dup = rng.choice(n, 2 * (n // 8), replace=False)
    feat[dup[: n // 8]] = feat[dup[n // 8 :]]
    return feat


@pytest.mark.parametrize("include_self", [True, False])
def test_two_list_merge_matches_the_previous_builder_bit_for_bit(include_self):
    rng = np.random.default_rng(5)
    cases = [(np.round(rng.normal(size=(97, 5)), 1), 12, 7, 9),  # rounded: many ties; k larger than a block
             (rng.normal(size=(130, 16)), 10, 64, 48),  # n not a multiple of either block size
             (exact_tie_features(rng, 75), 30, 16, 11),
             (rng.normal(size=(40, 3)), 39 if not include_self else 40, 13, 6)]  # k = every candidate
    for feat, k, rb, cb in cases:
        feat = feat.astype(np.float32)
        feat[[3, 8]] = feat[1]  # exact duplicates
        want = previous_knn_topk(feat, k, include_self, rb, cb)
        got = knn_topk(feat, k, include_self, row_block=rb, col_block=cb)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


@pytest.mark.parametrize("include_self", [True, False])
def test_bf16_candidates_with_float32_rerank_equal_float32_on_exact_ties(include_self, caplog):
    rng = np.random.default_rng(6)
    for n, k, rb, cb in [(120, 10, 32, 50), (61, 25, 61, 7), (200, 3, 64, 64), (160, 10, 48, 40)]:
        feat = exact_tie_features(rng, n)
        if n == 160:  # 8 distinct rows, ~20 copies each: more tied items than bf16 candidates
            feat = feat[rng.integers(0, 8, n)]
        want = knn_topk(feat, k, include_self, row_block=rb, col_block=cb)
        with caplog.at_level("INFO", logger="gnnrec.graphs.knn"):
            got = knn_topk(feat, k, include_self, row_block=rb, col_block=cb, precision="bf16")
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    # ties wider than the candidate list cannot be certified by the rounding bound: those rows take the float32 path
    assert "not certified by the rounding bound, recomputed in float32" in caplog.text


@pytest.mark.parametrize("include_self", [True, False])
def test_bf16_candidates_with_float32_rerank_equal_float32_on_near_ties(include_self):
    rng = np.random.default_rng(7)
    base = rng.normal(size=(60, 48))
    # each base row with 3 near-copies a few 1e-4..1e-3 apart in cosine: far below bfloat16's resolution near 1
    feat = np.concatenate([base] + [base + rng.normal(size=base.shape) * s for s in (0.01, 0.02, 0.03)])
    feat = feat.astype(np.float32)
    x = torch.nn.functional.normalize(torch.from_numpy(feat), dim=1)
    bf = (x.bfloat16() @ x.bfloat16().T).float()
    assert ((bf[:, :60] == bf[:, 60:120]).sum() > 0)  # bfloat16 products alone do tie some of these pairs
    for k in (1, 5, 10):
        want = knn_topk(feat, k, include_self, row_block=50, col_block=70)
        got = knn_topk(feat, k, include_self, row_block=50, col_block=70, precision="bf16")
        assert torch.equal(got[0], want[0])
        assert torch.allclose(got[1], want[1], atol=3e-7, rtol=0)  # re-rank dot products vs GEMM: float32 rounding


def test_bf16_ceiling_covers_every_product():
    from gnnrec.graphs.knn import bf16_ceiling, bf16_residuals

    gen = torch.Generator().manual_seed(8)
    x = torch.rand(300, 384, generator=gen)  # all positive: rounding errors of the inputs do not cancel
    x = torch.nn.functional.normalize(torch.cat([x, torch.randn(300, 384, generator=gen)]), dim=1)
    xb = x.bfloat16()
    resid = bf16_residuals(x, xb, block=128)
    assert torch.allclose(resid, (x - xb.float()).norm(dim=1))
    bf16, f32 = (xb @ xb.T).float(), x @ x.T
    ceiling = bf16_ceiling(bf16, resid[:, None], float(resid.max()), 384)
    assert (f32 < ceiling).all()  # no float32 product hides above the ceiling of its bf16 product
    assert (ceiling - bf16).max() < 0.01  # and the ceiling is far tighter than the worst case 3 x 2^-8


def test_rows_the_rounding_bound_cannot_certify_are_recomputed_in_float32():
    # item 0 = e_0; items 1..30 have cosines just below item 31's, and all 31 round to 0.5 in bfloat16: the bf16
    # candidate list (2k + 8 = 10) may miss item 31, and only the bound tells that the row is uncertain
    v = np.concatenate([0.5 + 0.001 - np.arange(30) * 1e-5, [0.5 + 0.0015]])
    feat = np.zeros((32, 4), np.float32)
    feat[0, 0] = 1
    feat[1:, 0], feat[1:, 1] = v, np.sqrt(1 - v ** 2)
    want = knn_topk(feat, 1, include_self=False)
    got = knn_topk(feat, 1, include_self=False, precision="bf16")
    assert int(want[0][0, 0]) == 31 and torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def test_precision_option_reaches_the_graph_and_its_cache(tmp_path, monkeypatch):
    import gnnrec.graphs.knn as knn

    rng = np.random.default_rng(9)
    feats = {"image": rng.normal(size=(50, 8)).astype(np.float32)}
    f32 = item_graph(feats, k=4, cache_dir=tmp_path)
    seen = []
    real_topk = knn.knn_topk
    monkeypatch.setattr(knn, "knn_topk", lambda *a, **kw: seen.append(a[8] if len(a) > 8 else kw["precision"])
                        or real_topk(*a, **kw))
    bf16 = item_graph(feats, k=4, cache_dir=tmp_path, precision="bf16")
    assert seen == ["bf16"]
    assert (f32 != bf16).nnz == 0 and len(list(tmp_path.glob("*.npz"))) == 2  # own cache entry, same graph
    with pytest.raises(ConfigError, match="knn precision must be one of"):
        knn_topk(feats["image"], 4, precision="fp8")


@pytest.mark.parametrize("precision", ["float32", "bf16"])
def test_values_stay_differentiable_for_learned_graphs(precision):
    x = torch.randn(30, 6, requires_grad=True)
    idx, val = knn_topk(x, 4, precision=precision)
    val.sum().backward()
    xn = torch.nn.functional.normalize(x.detach(), dim=1)
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert torch.allclose(val.detach(), (xn[:, None, :] * xn[idx]).sum(-1), atol=1e-6)
