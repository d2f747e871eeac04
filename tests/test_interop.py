import sys
import types

import numpy as np
import pytest
import torch

from gnnrec import interop
from gnnrec.errors import GnnrecError


def test_dgl_graph_data_matches_the_training_csr(small_synthetic):
    data = interop.dgl_graph_data(small_synthetic)
    train = small_synthetic.train
    assert set(data) == {"data_dict", "num_nodes_dict"}
    assert data["num_nodes_dict"] == {"user": small_synthetic.n_users, "item": small_synthetic.n_items}
    assert set(data["data_dict"]) == {("user", "rates", "item"), ("item", "rated_by", "user")}
    u, i = data["data_dict"]["user", "rates", "item"]
    ri, ru = data["data_dict"]["item", "rated_by", "user"]
    for t in (u, i, ri, ru):
        assert t.dtype == torch.int64 and len(t) == train.nnz
    # per-user counts are the CSR row lengths, per-item counts its column counts, ids the CSR entries
    np.testing.assert_array_equal(np.bincount(u.numpy(), minlength=train.shape[0]), np.diff(train.indptr))
    np.testing.assert_array_equal(np.bincount(i.numpy(), minlength=train.shape[1]),
                                  np.asarray(train.sum(axis=0)).ravel().astype(np.int64))
    coo = train.tocoo()
    assert set(zip(u.tolist(), i.tolist())) == set(zip(coo.row.tolist(), coo.col.tolist()))
    assert torch.equal(ri, i) and torch.equal(ru, u)


def test_to_pyg_delegates_to_the_dataset(small_synthetic):
    pytest.importorskip("torch_geometric")
    hetero = interop.to_pyg(small_synthetic)
    data = interop.dgl_graph_data(small_synthetic)["data_dict"]
    edge = hetero["user", "rates", "item"].edge_index
    assert torch.equal(edge[0], data["user", "rates", "item"][0]) and torch.equal(edge[1], data["user", "rates", "item"][1])
    assert torch.equal(hetero["item", "rated_by", "user"].edge_index, edge.flip(0))


def test_to_dgl_builds_the_graph_where_dgl_imports(small_synthetic):
    try:
        import dgl  # noqa: F401
    except Exception as error:
        pytest.skip(f"DGL does not import here ({type(error).__name__}): no DGL release imports with "
                    f"torch >= 2.5 (this is torch {torch.__version__})")
    g = interop.to_dgl(small_synthetic)
    assert g.num_nodes("user") == small_synthetic.n_users and g.num_nodes("item") == small_synthetic.n_items
    assert g.num_edges("rates") == small_synthetic.train.nnz == g.num_edges("rated_by")
    u, i = g.edges(etype="rates")
    assert set(zip(u.tolist(), i.tolist())) == set(zip(*small_synthetic.train.nonzero()))


def test_to_dgl_passes_the_arrays_to_dgl_heterograph(small_synthetic, monkeypatch):
    """Runs everywhere: a stand-in ``dgl`` module records what ``to_dgl`` hands to ``dgl.heterograph``."""
    calls = []
    fake = types.ModuleType("dgl")
    fake.heterograph = lambda data_dict, num_nodes_dict=None: calls.append((data_dict, num_nodes_dict)) or "G"
    monkeypatch.setitem(sys.modules, "dgl", fake)
    assert interop.to_dgl(small_synthetic) == "G"
    (data_dict, num_nodes), = calls
    expected = interop.dgl_graph_data(small_synthetic)
    assert num_nodes == expected["num_nodes_dict"]
    for etype, (src, dst) in expected["data_dict"].items():
        assert torch.equal(data_dict[etype][0], src) and torch.equal(data_dict[etype][1], dst)


def test_to_dgl_without_dgl_is_a_clear_error(small_synthetic, monkeypatch):
    monkeypatch.setitem(sys.modules, "dgl", None)  # `import dgl` raises ImportError
    with pytest.raises(GnnrecError, match=r"DGL cannot be imported.*torch >= 2\.5.*dgl_graph_data"):
        interop.to_dgl(small_synthetic)
