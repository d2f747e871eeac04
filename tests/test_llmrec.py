"""LLMRec: noisy-edge pruning, feature masking and the scaled cosine error against hand-computed values, and
the model with augmented triples, attribute modalities and user profiles."""
import dataclasses

import numpy as np
import pytest
import torch

from gnnrec.config import load_config
from gnnrec.data import make_synthetic
from gnnrec.eval import FullRankingEvaluator
from gnnrec.models import LLMRec
from gnnrec.models.denoise import keep_smallest, mask_rows, prune_noisy, scaled_cosine_error
from gnnrec.train import dataset_from_config, model_from_config, train
from tests.test_training import SMALL


def test_pruning_drops_the_largest_losses():
    losses = torch.tensor([0.9, 0.1, 0.5, 2.0, 0.3, 0.7, 0.2])
    # keep floor(0.71 * 7) = 4 smallest: 0.1, 0.2, 0.3, 0.5
    assert keep_smallest(losses, 0.71).item() == pytest.approx((0.1 + 0.2 + 0.3 + 0.5) / 4)
    assert keep_smallest(losses, 1.0).item() == pytest.approx(losses.mean().item())
    assert keep_smallest(losses, 0.01).item() == pytest.approx(0.1)  # at least one is kept
    with pytest.raises(ValueError, match="keep_share"):
        keep_smallest(losses, 0.0)
    grad = torch.tensor([1.0, 3.0, 2.0], requires_grad=True)
    keep_smallest(grad, 0.67).backward()  # keeps 2: the gradient reaches only the kept ones
    assert grad.grad.tolist() == [0.5, 0.0, 0.5]


def test_pruning_scope_augmented_spares_real_interactions():
    losses = torch.tensor([5.0, 1.0, 0.2, 4.0, 0.4, 0.6])
    augmented = torch.tensor([False, False, True, True, True, True])
    # augmented losses 0.2, 4.0, 0.4, 0.6: keep floor(0.75 * 4) = 3 smallest (0.2, 0.4, 0.6); real 5.0, 1.0 all count
    assert prune_noisy(losses, augmented, 0.75, "augmented").item() == pytest.approx((5 + 1 + 0.2 + 0.4 + 0.6) / 5)
    assert prune_noisy(losses, None, 0.75, "augmented").item() == pytest.approx(losses.mean().item())
    assert prune_noisy(losses, augmented, 0.5, "batch").item() == pytest.approx((0.2 + 0.4 + 0.6) / 3)
    with pytest.raises(ValueError, match="prune_scope"):
        prune_noisy(losses, augmented, 0.5, "edges")


def test_masking_picks_the_right_number_of_distinct_rows():
    g = torch.Generator().manual_seed(0)
    rows = mask_rows(50, 0.1, generator=g)
    assert len(rows) == 5 and len(set(rows.tolist())) == 5 and rows.max() < 50
    assert len(mask_rows(50, 0.001)) == 1 and len(mask_rows(50, 0.0)) == 0 and len(mask_rows(4, 2.0)) == 4


def test_scaled_cosine_error_by_hand():
    recon = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    target = torch.tensor([[2.0, 0.0], [1.0, 0.0], [-1.0, -1.0]])
    # cosines 1, 0, -1 -> (1 - cos)^2 = 0, 1, 4 -> mean 5/3; with alpha 1: 0, 1, 2 -> 1
    assert scaled_cosine_error(recon, target, 2.0).item() == pytest.approx(5 / 3)
    assert scaled_cosine_error(recon, target, 1.0).item() == pytest.approx(1.0)


def synthetic_with_augmentation(seed=2):
    data = make_synthetic(n_users=300, n_items=200, n_clusters=4, mean_interactions=15,
                          modalities={"text": 16, "attributes": 8}, seed=seed).validate()
    rng = np.random.default_rng(seed)
    users = np.arange(0, data.n_users, 2)
    triples = np.stack([users, rng.integers(data.n_items, size=len(users)),
                        rng.integers(data.n_items, size=len(users))], axis=1)
    profile = rng.standard_normal((data.n_users, 12)).astype(np.float32)
    return dataclasses.replace(data, augmented_edges=triples, user_features={"profile": profile})


def test_llmrec_uses_every_kind_of_side_information():
    data = synthetic_with_augmentation()
    model = LLMRec(data, embedding_dim=8)
    assert model.features.names == ["text"] and model.attributes.names == ["attributes"]
    assert model.profiles.names == ["profile"]
    users = torch.arange(6)
    loss, parts = model.loss(users, users, users + 1)
    loss.backward()
    for name, param in [("user id", model.user_emb.weight), ("text proj", model.features.proj["text"].weight),
                        ("attribute proj", model.attributes.proj["attributes"].weight),
                        ("profile proj", model.profiles.proj["profile"].weight),
                        ("mask token", model.mask_tokens["text"]), ("decoder", model.decoders["text"].weight)]:
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert not model.features.tables["text"].weight.requires_grad  # encoder features stay frozen
    bare = LLMRec(dataclasses.replace(data, features={}, user_features={}), embedding_dim=8)
    assert bare.loss(users, users, users + 1)[1]["mae"] == 0  # plain LightGCN + pruning when nothing else


def test_llmrec_trains_and_beats_its_untrained_state(tmp_path):
    cfg = load_config(None, SMALL + [f"output.dir={tmp_path}", "model.name=llmrec", "train.max_epochs=12",
                                     "optim.lr=0.01"])
    data = dataset_from_config(cfg)
    torch.manual_seed(cfg["seed"])
    before = FullRankingEvaluator(data, "test", "strict", [20]).evaluate(model_from_config(cfg, data).score_fn())
    after = train(cfg).metrics["test"]
    assert after["recall@20"] > before["recall@20"] + 0.05, (before["recall@20"], after["recall@20"])
