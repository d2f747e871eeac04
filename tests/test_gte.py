import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from gnnrec.cli import main
from gnnrec.config import load_config
from gnnrec.data import RecDataset, interactions_to_csr
from gnnrec.eval import FullRankingEvaluator
from gnnrec.models.gte import GTE, gte_coefficients
from gnnrec.train import dataset_from_config, model_from_config
from tests.conftest import shared_dataset


def random_graph(seed, n_users=30, n_items=25, density=0.15):
    rng = np.random.default_rng(seed)
    dense = rng.random((n_users, n_items)) < density
    u, i = np.nonzero(dense)
    empty = sp.csr_matrix((n_users, n_items))
    return RecDataset("g", interactions_to_csr(u, i, dense.shape), empty, empty), dense.astype(float)


def iterate_dense(a: np.ndarray, k: int) -> np.ndarray:
    """The GTE layers as written: simultaneous updates from one-hot items and zero users."""
    users, items = np.zeros_like(a), np.eye(a.shape[1])
    for _ in range(k):
        users, items = users + a @ items, items + a.T @ users
    return users


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gte_three_layers_equals_closed_form(seed):
    data, a = random_graph(seed)
    model = GTE(data, num_layers=3)
    scores = model.score_fn()(torch.arange(data.n_users)).numpy()
    np.testing.assert_array_equal(scores, a @ a.T @ a + 3 * a)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_gte_matches_layer_iteration(k):
    data, a = random_graph(5)
    model = GTE(data, num_layers=k)
    blocks = [model.score_fn()(torch.arange(s, min(s + 7, data.n_users))) for s in range(0, data.n_users, 7)]
    np.testing.assert_array_equal(torch.cat(blocks).numpy(), iterate_dense(a, k))


def test_gte_coefficients():
    assert gte_coefficients(3) == [3, 1]
    assert gte_coefficients(1) == [1]


def test_gte_trains_without_fitting_and_reopens(tmp_path, capsys):
    args = ["train", "model.name=gte", "data.synthetic.n_users=200", "data.synthetic.n_items=150",
            f"output.dir={tmp_path}", "output.name=gte", "eval.ks=[10,20]"]
    assert main(args) == 0
    saved = json.loads((tmp_path / "gte" / "metrics.json").read_text())
    assert saved["epochs_trained"] == 0 and saved["test"]["recall@10"] > 0.1
    assert main(["evaluate", str(tmp_path / "gte"), "--output", str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["test"] == pytest.approx(saved["test"])


def test_gte_reproduces_amazon_beauty_reference():
    shared_dataset("amazon_beauty")
    config = Path(__file__).resolve().parents[1] / "configs" / "gte_amazon_beauty.yaml"
    cfg = load_config(config,
                      [f"data.source={shared_dataset('amazon_beauty')}"])
    data = dataset_from_config(cfg)
    model = model_from_config(cfg, data)
    res = FullRankingEvaluator(data, "test", "strict", [20, 40]).evaluate(model.score_fn(), 1024)
    got = [round(res[k], 4) for k in ("recall@20", "ndcg@20", "recall@40", "ndcg@40")]
    assert got == [0.0927, 0.0421, 0.1278, 0.0492]
