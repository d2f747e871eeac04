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
