import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from gnnrec.data import make_synthetic
from gnnrec.errors import ConfigError
from gnnrec.models import build_model
from gnnrec.models.lgmrec import EVAL_NOISE_SEED, LGMRec, hypergraph_conv, relaxed_assignment
from gnnrec.models.losses import info_nce
from tests.ablation import full_vs_ablated


def dense_sym_norm(a: np.ndarray) -> np.ndarray:
    deg = a.sum(1)
    inv = np.divide(1, np.sqrt(deg), out=np.zeros_like(deg), where=deg > 0)
    return inv[:, None] * a * inv[None, :]


def test_shapes_and_the_hypergraph_stays_items_by_hyperedges(small_synthetic):
    model = LGMRec(small_synthetic, embedding_dim=8, hyper_num=5)
    users, items = model()
    assert users.shape == (small_synthetic.n_users, 8) and items.shape == (small_synthetic.n_items, 8)
    item_edges, user_edges = model.dependencies("image")
    assert item_edges.shape == (small_synthetic.n_items, 5) and user_edges.shape == (small_synthetic.n_users, 5)
    assert model._inter.matrix.layout == torch.sparse_csr and model._adj.matrix.layout == torch.sparse_csr
    assert model._inter.matrix._nnz() == small_synthetic.train.nnz
    model.eval()  # evaluation: no noise, no dropout: rows are distributions and scores repeat exactly
    item_edges, user_edges = model.dependencies("text")
    torch.testing.assert_close(item_edges.sum(1), torch.ones(small_synthetic.n_items))
    torch.testing.assert_close(user_edges.sum(1), torch.ones(small_synthetic.n_users))
    assert torch.equal(model()[0], model()[0])
    model.train()
    assert not torch.equal(model.dependencies("text")[0], model.dependencies("text")[0])  # noise, dropout


def test_graphs_come_from_the_training_split_only(small_synthetic):
    model = LGMRec(small_synthetic, embedding_dim=8)
    train = small_synthetic.train.toarray()
    assert np.array_equal(model._inter.matrix.to_dense().numpy(), train)
    assert np.array_equal(model._inter.transpose.to_dense().numpy(), train.T)
    assert not np.array_equal(train + small_synthetic.test.toarray() > 0, train > 0)


def test_local_embeddings_match_a_dense_reference():
    data = make_synthetic(n_users=30, n_items=20, n_clusters=3, mean_interactions=5, seed=4,
                          modalities={"image": 6, "audio": 5}).validate()
    model = LGMRec(data, embedding_dim=4, num_layers=2, num_mm_layers=2)
    r = data.train.toarray()
    n_u = r.shape[0]
    a = dense_sym_norm(np.block([[np.zeros((n_u, n_u)), r], [r.T, np.zeros((r.shape[1], r.shape[1]))]]))
    a = torch.tensor(a, dtype=torch.float32)
    ids = torch.cat([model.user_emb.weight, model.item_emb.weight])
    torch.testing.assert_close(model.collaborative(), (ids + a @ ids + a @ a @ ids) / 3)
    for name in ("image", "audio"):
        items = torch.tensor(data.features[name]) @ model.proj[name]
        deg = torch.tensor(r.sum(1, keepdims=True), dtype=torch.float32)
        users = torch.where(deg > 0, torch.tensor(r, dtype=torch.float32) @ items / deg.clamp(min=1), 0)
        torch.testing.assert_close(model.modality_graph(name), a @ a @ torch.cat([users, items]))


def test_hypergraph_convolution_and_relaxation_by_hand():
    h_items = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    h_users = torch.tensor([[0.2, 0.8]])
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    users, items = hypergraph_conv(h_items, h_users, x, 2)
    first = h_items @ (h_items.T @ x)
    torch.testing.assert_close(items, h_items @ (h_items.T @ first))
    torch.testing.assert_close(users, h_users @ (h_items.T @ first))
    logits = torch.tensor([[0.0, 1.0, 2.0]])
    torch.testing.assert_close(relaxed_assignment(logits, 0.5, None), torch.softmax(logits / 0.5, 1))
    torch.manual_seed(0)
    draws = torch.stack([relaxed_assignment(logits, 0.2, "logistic") for _ in range(200)])
    assert torch.allclose(draws.sum(-1), torch.ones(200, 1)) and draws.argmax(-1).unique().numel() > 1


def test_contrastive_loss_matches_its_formula():
    torch.manual_seed(0)
    a, b = torch.randn(4, 3), torch.randn(10, 3)
    rows = torch.tensor([0, 3, 5, 3])
    na, nb = F.normalize(a, dim=1), F.normalize(b, dim=1)
    expected = -sum(torch.log(torch.exp(na[k] @ nb[rows[k]] / 0.2) / torch.exp(nb @ na[k] / 0.2).sum()) for k in range(4))
    torch.testing.assert_close(info_nce(a, b[rows], b, 0.2, "sum"), expected)


def test_loss_trains_every_part_and_any_modalities():
    data = make_synthetic(n_users=80, n_items=60, modalities={"audio": 8, "image": 12, "caption": 16}, seed=3)
    model = build_model(data, "lgmrec", embedding_dim=8, cl_weight=0.1, reg_weight=1e-3)
    users = torch.arange(6)
    loss, parts = model.loss(users, users, users + 1)
    assert set(parts) == {"bpr", "hcl"} and loss.isfinite()
    loss.backward()
    for name, param in model.named_parameters():
        if param.requires_grad:
            assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert not any(p.requires_grad for p in model.features.parameters())  # raw features frozen, as the reference
    single = make_synthetic(n_users=80, n_items=60, modalities={"image": 8}, seed=3)
    assert set(build_model(single, "lgmrec", embedding_dim=8).loss(users, users, users + 1)[1]) == {"bpr"}


def test_errors_name_the_model_or_the_setting(small_synthetic):
    plain = make_synthetic(n_users=60, n_items=40, modalities={}, seed=0)
    with pytest.raises(ConfigError, match="model 'lgmrec' needs item features"):
        build_model(plain, "lgmrec")
    for key, value in [("keep_rate", 0.0), ("num_hyper_layers", 0), ("hyper_num", 0), ("tau", 0.0),
                       ("alpha", -1.0), ("num_mm_layers", -1), ("hyper_noise", "normal")]:
        with pytest.raises(ConfigError, match=f"model.{key}"):
            build_model(small_synthetic, "lgmrec", **{key: value})


def test_eval_samples_average_reproducible_noise_draws_as_the_reference_scores(small_synthetic):
    model = LGMRec(small_synthetic, embedding_dim=8, hyper_num=3, eval_samples=3).eval()
    cge = model.collaborative()
    n_u = small_synthetic.n_users
    gen = torch.Generator().manual_seed(EVAL_NOISE_SEED)  # by hand: 3 draws, each modality's items then users
    expected = 0
    for _ in range(3):
        ghe = 0
        for name in sorted(small_synthetic.features):
            item_logits = model.features[name].weight @ model.hyperedges[name]
            h_items = relaxed_assignment(item_logits, model.tau, "logistic", gen)
            h_users = relaxed_assignment(model._inter @ item_logits, model.tau, "logistic", gen)
            users, items = hypergraph_conv(h_items, h_users, cge[n_u:], model.num_hyper_layers)
            ghe = ghe + torch.cat([users, items])
        expected = expected + F.normalize(ghe, dim=1) / 3
    local = cge + sum(F.normalize(model.modality_graph(n), dim=1) for n in model.names)
    rng = torch.get_rng_state()
    users, items = model()
    torch.testing.assert_close(torch.cat([users, items]), local + model.alpha * expected)
    assert torch.equal(model()[1], items) and torch.equal(torch.get_rng_state(), rng)  # reproducible, stream untouched
    model.eval_samples = 0  # the default: no noise at all, a different score
    assert not torch.allclose(model()[1], items, atol=1e-4)
    model.train()  # training draws from the global stream whatever eval_samples says
    torch.manual_seed(5)
    first = model()[1]
    model.eval_samples = 3
    torch.manual_seed(5)
    assert torch.equal(model()[1], first)
    with pytest.raises(ConfigError, match="model.eval_samples"):
        build_model(small_synthetic, "lgmrec", eval_samples=-1)


class LocalOnly(LGMRec):
    """LGMRec without the global hypergraph embedding (and so without its contrastive loss)."""

    def global_embeddings(self, item_cge, generator=None):
        return {}


def test_global_hypergraph_embedding_beats_local_only(tmp_path, monkeypatch):
    # The gain is small on this data (the modality graph embeddings already see the clusters), as in the paper's
    # own ablation: measured full 0.724/0.720/0.719 vs local-only 0.717/0.719/0.696 (mean gap 0.011); mean of 3 seeds.
    full, ablated = [], []
    for seed in (0, 1, 2):
        f, a = full_vs_ablated(tmp_path / str(seed), monkeypatch, "lgmrec", LocalOnly, epochs=30,
                               overrides=["model.embedding_dim=32", "data.synthetic.n_clusters=16", f"seed={seed}"])
        full.append(f)
        ablated.append(a)
    print("lgmrec full / local-only recall@20:", full, ablated)
    assert np.mean(full) > np.mean(ablated) + 0.005, (full, ablated)
