"""SMORE: spectral fusion, frozen modality and fused item graphs, preference module, loss, errors, ablation."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gnnrec.data import make_synthetic
from gnnrec.errors import ConfigError
from gnnrec.models import build_model
from gnnrec.models.losses import info_nce
from gnnrec.models.smore import SMORE, max_fusion
from tests.ablation import full_vs_ablated


@pytest.fixture(scope="module")
def tiny():
    return make_synthetic(n_users=60, n_items=40, n_clusters=3, mean_interactions=8, seed=4,
                          modalities={"image": 12, "audio": 6}).validate()


def dense_knn_graph(x: np.ndarray, k: int) -> np.ndarray:
    """Reference: cosine top-k per row (item itself included), weights kept, D^-1/2 A D^-1/2 (row sums)."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = x @ x.T
    adj = np.zeros_like(sim)
    top = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    np.put_along_axis(adj, top, np.take_along_axis(sim, top, 1).clip(min=0), 1)
    inv = (adj.sum(1) + 1e-7) ** -0.5
    return inv[:, None] * adj * inv[None, :]


def test_spectrum_denoises_per_modality_and_fuses_by_a_product_of_spectra(tiny):
    model = SMORE(tiny, embedding_dim=8)
    with torch.no_grad():  # all-pass filters: the spectrum is then plain FFT algebra
        for p in [*model.filters.values(), model.fusion_filter]:
            p.copy_(torch.tensor([1.0, 0.0]).expand_as(p))
    a, b = torch.randn(5, 8), torch.randn(5, 8)
    denoised, fused = model.spectrum({"audio": a, "image": b})
    assert torch.allclose(denoised["audio"], a, atol=1e-5) and torch.allclose(denoised["image"], b, atol=1e-5)
    # a product of (orthonormal) spectra is a circular convolution over the embedding dimension, / sqrt(d)
    idx = (torch.arange(8)[:, None] - torch.arange(8)[None, :]) % 8  # [k, j] -> (k - j) mod d
    conv = (a[:, None, :] * b[:, idx]).sum(-1) / np.sqrt(8)
    assert torch.allclose(fused, conv, atol=1e-5)
    # a filter acts per frequency: zeroing all but the constant frequency leaves each row's mean
    with torch.no_grad():
        model.filters["audio"].zero_()
        model.filters["audio"][0, 0] = 1.0
    denoised, _ = model.spectrum({"audio": a, "image": b})
    assert torch.allclose(denoised["audio"], a.mean(1, keepdim=True).expand_as(a), atol=1e-5)


def test_item_graphs_are_sparse_weighted_knn_and_their_maximum(tiny):
    model = SMORE(tiny, embedding_dim=8, knn_k=4, modality_knn_k={"audio": 6})
    n = tiny.n_items
    refs = {"image": dense_knn_graph(tiny.features["image"], 4), "audio": dense_knn_graph(tiny.features["audio"], 6)}
    for name, ref in refs.items():
        graph = model.item_graphs[name].matrix
        assert graph.layout == torch.sparse_csr and graph._nnz() == n * (4 if name == "image" else 6)
        np.testing.assert_allclose(graph.to_dense().numpy(), ref, atol=1e-5)
        np.testing.assert_allclose(model.item_graphs[name].transpose.to_dense().numpy(), ref.T, atol=1e-5)
    fused = model.fusion_graph.matrix
    assert fused.layout == torch.sparse_csr and fused._nnz() <= n * 10
    np.testing.assert_allclose(fused.to_dense().numpy(), np.maximum(refs["image"], refs["audio"]), atol=1e-5)
    import scipy.sparse as sp
    assert (max_fusion([sp.csr_matrix([[0, 2.0]]), sp.csr_matrix([[1.0, 0]])]).toarray() == [[1, 2]]).all()


def test_user_item_graphs_come_from_the_training_split_only(tiny):
    model = SMORE(tiny, embedding_dim=8)
    train = tiny.train.toarray()
    du, di = train.sum(1), train.sum(0)
    ref = np.divide(train, np.sqrt(np.outer(du, di)), out=np.zeros_like(train), where=train > 0)
    np.testing.assert_allclose(model._r.matrix.to_dense().numpy(), ref, atol=1e-6)
    assert model._ui_adj.matrix._nnz() == 2 * tiny.train.nnz
    held_out = (tiny.valid + tiny.test).toarray() > 0
    assert not (model._r.matrix.to_dense().numpy()[held_out & (train == 0)]).any()


def test_forward_loss_and_gradients(tiny):
    torch.manual_seed(0)
    model = SMORE(tiny, embedding_dim=8, dropout=0.5)
    model.eval()
    users, items = model()
    assert users.shape == (tiny.n_users, 8) and items.shape == (tiny.n_items, 8)
    assert torch.equal(users, model()[0])  # no dropout in evaluation
    final, side, behaviour = model.encode()
    assert torch.allclose(final, side + behaviour)
    model.train()
    u, pos, neg = torch.tensor([0, 1, 2, 3]), torch.tensor([4, 5, 6, 7]), torch.tensor([8, 9, 10, 11])
    loss, parts = model.loss(u, pos, neg)
    assert loss.isfinite() and set(parts) == {"bpr", "cl"}
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())]
    assert not missing, missing


def test_info_nce_matches_its_definition():
    a, b = torch.randn(6, 4), torch.randn(6, 4)
    na, nb = F.normalize(a, dim=1), F.normalize(b, dim=1)
    sims = torch.exp(na @ nb.T / 0.2)
    ref = -torch.log(sims.diag() / sims.sum(1)).mean()
    assert torch.allclose(info_nce(a, b, temperature=0.2), ref, atol=1e-5)


def test_any_number_of_named_modalities_and_the_lr_schedule():
    data = make_synthetic(n_users=80, n_items=50, modalities={"audio": 8, "image": 12, "caption": 16}, seed=3)
    model = build_model(data, "smore", embedding_dim=6, knn_k=5)
    assert sorted(model.filters) == sorted(model.item_graphs) == ["audio", "caption", "image"]
    assert model.filters["audio"].shape == (4, 2)  # rfft of 6 values: 4 frequencies
    users = torch.arange(4)
    assert model.loss(users, users, users + 1)[0].isfinite()
    single = build_model(make_synthetic(n_users=80, n_items=50, modalities={"text": 8}, seed=3), "smore",
                         embedding_dim=6, knn_k=5)
    assert single()[1].shape == (50, 6)
    sched = model.configure_optimizers()["lr_scheduler"]["scheduler"]
    assert sched.lr_lambdas[0](50) == pytest.approx(0.96) and sched.lr_lambdas[0](0) == 1.0


def test_errors_name_the_model_or_the_setting(tiny):
    with pytest.raises(ConfigError, match="model 'smore' needs item features"):
        build_model(make_synthetic(n_users=60, n_items=40, modalities={}, seed=0), "smore")
    for key, value in [("knn_k", 0), ("knn_k", 41), ("num_layers", -1), ("num_item_layers", 1.5),
                       ("embedding_dim", 0), ("cl_weight", -0.1), ("temperature", 0.0), ("dropout", 1.0),
                       ("lr_decay", 1.5), ("lr_decay_epochs", 0), ("reg_weight", -1.0)]:
        with pytest.raises(ConfigError, match=f"model.{key} must"):
            build_model(tiny, "smore", **{key: value})
    with pytest.raises(ConfigError, match="model.modality_knn_k must"):
        build_model(tiny, "smore", modality_knn_k={"text": 5})
    with pytest.raises(ConfigError, match="model.modality_knn_k.audio must"):
        build_model(tiny, "smore", modality_knn_k={"audio": 0})


class SMOREWithoutItemGraphViews(SMORE):
    """Behaviour view only: the item-item views (modality, fused spectrum) and so the preference module and
    the contrastive task contribute nothing."""

    def encode(self):
        _, side, behaviour = super().encode()
        return behaviour, torch.zeros_like(side), behaviour


def test_ablation_the_item_graph_views_matter(tmp_path, monkeypatch):
    # measured (seed 999, lr 5e-3): full 0.5547, ablated 0.5206; with `+ side` deleted by hand from the final
    # embedding in SMORE.encode: full 0.5094 (fails). Seed 1: 0.5514 / 0.5306. Dropping only the spectrum
    # (no FFT, filters or product; sum fusion) measured 0.5622 vs 0.5589 at lr 1e-2: no clear effect on this data.
    full, ablated = full_vs_ablated(tmp_path, monkeypatch, "smore", SMOREWithoutItemGraphViews,
                                    ["model.embedding_dim=32", "optim.lr=0.005"], epochs=30)
    print(f"smore ablation: full {full:.4f}, without the item-graph views {ablated:.4f}")
    assert full > ablated + 0.015, (full, ablated)
