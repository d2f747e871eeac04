import numpy as np
import pytest
import torch

from gnnrec.config import load_config
from gnnrec.data import make_synthetic
from gnnrec.errors import ConfigError
from gnnrec.eval import FullRankingEvaluator
from gnnrec.models import BM3, FREEDOM, LATTICE, VBPR, build_model
from gnnrec.models.lattice import learned_knn_graph
from gnnrec.train import dataset_from_config, model_from_config, train
from tests.test_training import SMALL


@pytest.mark.parametrize("name,extra", [("freedom", ["model.dropout=0.5", "model.reg_weight=1e-3"]),
                                        ("vbpr", []), ("lattice", []), ("bm3", ["model.dropout=0.3"])])
def test_multimodal_model_trains_and_beats_its_untrained_state(tmp_path, name, extra):
    cfg = load_config(None, SMALL + [f"output.dir={tmp_path}", f"model.name={name}", "train.max_epochs=12",
                                     "optim.lr=0.01", *extra])
    data = dataset_from_config(cfg)
    torch.manual_seed(cfg["seed"])
    before = FullRankingEvaluator(data, "test", "strict", [20]).evaluate(model_from_config(cfg, data).score_fn())
    after = train(cfg).metrics["test"]
    assert after["recall@20"] > before["recall@20"] + 0.05, (before["recall@20"], after["recall@20"])


def test_freedom_prunes_each_epoch_and_evaluates_on_the_full_graph(small_synthetic):
    model = FREEDOM(small_synthetic, embedding_dim=8, dropout=0.5)
    full = model._full_adj
    draws = [model.pruner.sample(np.random.default_rng([0, epoch])) for epoch in range(2)]
    assert draws[0]._nnz() == draws[1]._nnz() == 2 * model.pruner.n_keep
    assert not torch.equal(draws[0].col_indices(), draws[1].col_indices())
    users, items = model()  # evaluation path: the full graph
    ref_users, _ = model(full)
    assert torch.equal(users, ref_users)
    assert full.matrix._nnz() == 2 * small_synthetic.train.nnz


def test_freedom_feature_loss_projects_batch_rows_with_full_table_gradients(small_synthetic):
    model = FREEDOM(small_synthetic, embedding_dim=8, reg_weight=0.5)
    users, pos, neg = torch.tensor([0, 1, 2, 1]), torch.tensor([3, 4, 3, 5]), torch.tensor([6, 7, 8, 6])
    loss, parts = model.loss(users, pos, neg)
    loss.backward()
    # the feature tables' gradients are row-sparse (only the batch's rows); compared densely with MMRec's form
    assert {n for n, p in model.named_parameters() if p.grad is not None and p.grad.is_sparse} == {
        "modalities.tables.image.weight", "modalities.tables.text.weight"}
    # every parameter gets a gradient (DDP needs that); the projections' biases cancel in every BPR
    # difference: exactly zero (MMRec's form gives them zero up to rounding)
    assert all(p.grad is not None for p in model.parameters())
    assert all(torch.equal(model.modalities.proj[n].bias.grad, torch.zeros(8)) for n in ("image", "text"))
    got = {n: p.grad.to_dense() for n, p in model.named_parameters()}
    model.zero_grad()
    user_emb, item_emb = model()
    feats = model.modalities()  # every item projected, as MMRec does
    reference = model.bpr_loss(users, pos, neg, user_emb, item_emb) + 0.5 * sum(
        model.bpr_loss(users, pos, neg, user_emb, f) for f in feats.values())
    reference.backward()
    assert torch.allclose(loss, reference)
    for name, param in model.named_parameters():
        assert torch.allclose(got[name], param.grad, atol=1e-6), name
    model.hparams.reg_weight = 0.0
    assert set(model.loss(users, pos, neg)[1]) == {"bpr"}


def test_any_number_of_modalities_with_any_names():
    data = make_synthetic(n_users=150, n_items=100, modalities={"audio": 8, "image": 12, "caption": 16}, seed=3)
    model = build_model(data, "freedom", embedding_dim=8, modality_weights={"audio": 0.2, "image": 0.3, "caption": 0.5})
    assert sorted(model.modalities().keys()) == ["audio", "caption", "image"]
    users = torch.arange(4)
    assert model.loss(users, users, users + 1)[0].isfinite()
    with pytest.raises(ConfigError, match="sum to 1"):
        build_model(data, "freedom", modality_weights={"audio": 0.5, "image": 0.3, "caption": 0.5})


def test_models_without_features_say_so():
    data = make_synthetic(n_users=100, n_items=80, modalities={}, seed=0)
    for name in ("freedom", "vbpr", "lattice", "bm3"):
        with pytest.raises(ConfigError, match=f"model '{name}' needs item features"):
            build_model(data, name)


def test_lattice_learned_graph_is_differentiable_and_sparse():
    x = torch.randn(50, 6, requires_grad=True)
    g = learned_knn_graph(x, 5)
    assert g.layout == torch.sparse_coo and g._nnz() == 250
    torch.sparse.mm(g, torch.ones(50, 1)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_lattice_projections_learn_only_through_the_epoch_graph(small_synthetic):
    model = LATTICE(small_synthetic, embedding_dim=8)
    users = torch.arange(8)
    loss, _ = model.loss(users, users, users + 1)  # first batch of an epoch
    loss.backward()
    proj = next(iter(model.modalities.proj.values())).weight
    assert proj.grad is not None and proj.grad.abs().sum() > 0
    proj.grad = None
    loss, _ = model.loss(users, users, users + 1)  # later batches: graph detached
    loss.backward()
    assert proj.grad is None or proj.grad.abs().sum() == 0


def test_bm3_scores_through_its_predictor(small_synthetic):
    model = BM3(small_synthetic, embedding_dim=8)
    users, items = model.encode()
    scores = model.score_fn()(torch.tensor([0, 1]))
    torch.testing.assert_close(scores, model.predictor(users[:2]) @ model.predictor(items).T)


def test_vbpr_item_vector_concatenates_id_and_projected_features(small_synthetic):
    model = VBPR(small_synthetic, embedding_dim=8)
    users, items = model()
    assert users.shape[1] == items.shape[1] == 16
    feats = np.concatenate([small_synthetic.features[n] for n in sorted(small_synthetic.features)], 1)
    torch.testing.assert_close(items[:, 8:], model.item_linear(torch.from_numpy(feats)))


@pytest.mark.parametrize("model_cls", [FREEDOM, BM3])
def test_trainable_feature_tables_never_write_into_the_dataset(model_cls):
    """Training and loading trained weights change the model's tables, never ``dataset.features``: the raw
    features stay what the item graph, exports and ablations read."""
    data = make_synthetic(n_users=60, n_items=40, n_clusters=2, mean_interactions=8, seed=0).validate()
    raw = {n: f.copy() for n, f in data.features.items()}
    model = model_cls(data, embedding_dim=8, reg_weight=0.5)
    optimizer = model.configure_optimizers()
    loss, _ = model.loss(torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([4, 5]))
    loss.backward()
    optimizer.step()
    state = {k: v + 1.0 if "tables" in k else v for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    assert any(not np.array_equal(model.modalities.tables[n].weight.detach().numpy(), raw[n]) for n in raw)
    for name, values in data.features.items():
        assert np.array_equal(values, raw[name]), name
