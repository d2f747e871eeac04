"""Modality attribution (`gnnrec ablate`): replacements reach the item graph and the trained feature tables, a
signal modality shows a large drop and a noise modality none, featureless models are refused, retraining
drops the modality."""
import json

import numpy as np
import pytest
import torch

from gnnrec.analysis.ablate import ModalityAblation, ablate, replacements, same_tensor
from gnnrec.cli import main
from gnnrec.config import load_config
from gnnrec.data import load_dataset
from gnnrec.errors import ConfigError, GnnrecError
from gnnrec.runs import load_run
from gnnrec.train import train

# one modality is a view of the item latents, the other pure noise; users with 3 to a few interactions (one or
# more in train), so the content graph is worth much: FREEDOM reaches test Recall@20 .33-.35, LightGCN .24
SIGNAL_NOISE = ["data.synthetic.n_users=1500", "data.synthetic.n_items=1000", "data.synthetic.n_clusters=20",
                "data.synthetic.min_interactions=3", "data.synthetic.mean_interactions=2", "data.synthetic.seed=3",
                "data.synthetic.modalities={signal: 32, noise: 32}", "data.synthetic.noise_modalities=[noise]",
                "data.synthetic.feature_noise=0.2",
                "train.batch_size=256", "train.progress_bar=false", "train.accelerator=cpu", "eval.ks=[10,20]"]


def train_run(folder, *extra):
    return train(load_config(None, SIGNAL_NOISE + [f"output.dir={folder}", *extra])).run_dir


@pytest.fixture(scope="module")
def freedom_run(tmp_path_factory):
    # no feature loss and no pruning: the content reaches the model through its item graph only
    return train_run(tmp_path_factory.mktemp("freedom"), "model.name=freedom", "model.dropout=0.0",
                     "train.max_epochs=30", "optim.lr=0.01")


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    # a feature loss, so the trainable feature tables move away from the raw features in training
    return train_run(tmp_path_factory.mktemp("short"), "model.name=freedom", "model.dropout=0.5",
                     "model.reg_weight=1e-3", "train.max_epochs=2", "optim.lr=0.01")


def test_replacements_are_the_mean_row_and_a_seeded_row_permutation():
    rows = np.arange(12, dtype=np.float32).reshape(4, 3)
    mean = replacements(["a", "b"], "mean", 4, seed=0)["a"](rows)
    assert mean.dtype == np.float32 and np.array_equal(mean, np.tile(rows.mean(axis=0), (4, 1)))
    shuffle = replacements(["a", "b"], "shuffle", 4, seed=0)
    out = shuffle["a"](rows)
    assert sorted(map(tuple, out)) == sorted(map(tuple, rows)) and not np.array_equal(out, rows)
    assert np.array_equal(shuffle["a"](torch.from_numpy(rows)).numpy(), out)  # same rows for trained tables
    assert np.array_equal(replacements(["a"], "shuffle", 4, seed=0)["a"].permutation, shuffle["a"].permutation)
    with pytest.raises(GnnrecError, match="unknown ablation mode 'zero'"):
        replacements(["a"], "zero", 4, seed=0)
    with pytest.raises(GnnrecError, match="ablation modes must be among mean, shuffle .*got zero"):
        ablate("no-such-run", modes=["zero"])  # checked before the run is read


def test_replacement_reaches_the_item_graph_and_the_trained_feature_table(short_run):
    ablation = ModalityAblation.open(short_run)
    dataset, trained = ablation.dataset, ablation.trained
    same, reset = ablation.model({})  # nothing replaced: exactly the trained model
    assert reset == [] and all(torch.equal(a, b) for a, b in zip(same.state_dict().values(),
                                                                trained.state_dict().values()))
    assert torch.equal(same.score_fn()(torch.arange(50)), trained.score_fn()(torch.arange(50)))
    assert same_tensor(same.item_graph.matrix, trained.item_graph.matrix)  # built from the raw features
    table = "modalities.tables.signal.weight"
    assert not torch.equal(trained.state_dict()[table], torch.from_numpy(dataset.features["signal"]))
    shuffle = replacements(ablation.modalities, "shuffle", dataset.n_items, seed=1)
    model, _ = ablation.model({"signal": shuffle["signal"]})
    assert torch.equal(model.state_dict()[table], shuffle["signal"](trained.state_dict()[table]))
    assert torch.equal(model.state_dict()["modalities.tables.noise.weight"],
                       trained.state_dict()["modalities.tables.noise.weight"])
    assert torch.equal(model.item_emb.weight, trained.item_emb.weight)  # trained weights kept
    graph, trained_graph = model.item_graph.matrix, trained.item_graph.matrix
    assert not torch.equal(graph.col_indices(), trained_graph.col_indices())  # rebuilt from the shuffled rows


def test_signal_modality_drops_a_lot_and_noise_modality_not_at_all(freedom_run, tmp_path, capsys):
    out = tmp_path / "ablation.json"
    assert main(["ablate", str(freedom_run), "--modes", "mean,shuffle", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| signal | shuffle rows |" in printed and f"written: {out}" in printed
    result = json.loads(out.read_text())
    assert result["modalities"] == ["noise", "signal"] and result["model"] == "freedom"
    rel = {(r["modality"], r["mode"]): r["relative_drop"]["test"]["recall@20"] for r in result["ablations"]}
    assert set(rel) == {(m, mode) for m in ("signal", "noise", "all") for mode in ("mean", "shuffle")}
    for mode in ("mean", "shuffle"):  # measured: signal .115 / .102, noise -.013 / -.007, all .086 / .071
        assert rel[("signal", mode)] > 0.06, rel
        assert abs(rel[("noise", mode)]) < 0.04, rel
        assert rel[("all", mode)] > 0.04, rel
    row = next(r for r in result["ablations"] if r["modality"] == "signal" and r["mode"] == "mean")
    intact = result["intact"]["test"]["recall@20"]
    assert row["drop"]["test"]["recall@20"] == pytest.approx(intact - row["test"]["recall@20"])
    assert set(result["intact"]) == {"valid", "test"}


def test_models_that_do_not_read_item_features_are_refused(tmp_path):
    run = train_run(tmp_path, "model.name=lightgcn", "train.max_epochs=1")
    with pytest.raises(GnnrecError, match="model 'lightgcn' does not use item features"):
        ablate(run, modes=["mean"])


def test_models_whose_scores_ignore_features_are_measured_by_retraining_only(tmp_path):
    run = train_run(tmp_path, "model.name=bm3", "train.max_epochs=1")
    ablation = ModalityAblation.open(run)  # BM3's features shape its training losses only, not its scores
    assert not ablation.reads_features and ablation.table_of
    with pytest.raises(GnnrecError, match="model 'bm3' scores without reading its item features.*--retrain"):
        ablate(run, modes=["mean"])


def test_retrain_trains_the_config_again_without_each_modality(short_run):
    run = short_run
    result = ablate(run, modes=["mean"], retrain=True)
    assert [r["modality"] for r in result["retrained"]] == ["noise", "signal"]
    for row in result["retrained"]:
        assert str(row["run_dir"]).startswith(str(run / "ablate" / f"without-{row['modality']}"))
        cfg, dataset, _ = load_run(row["run_dir"])
        assert sorted(dataset.features) == sorted({"noise", "signal"} - {row["modality"]})
        assert row["drop"]["test"]["recall@20"] == pytest.approx(
            result["intact"]["test"]["recall@20"] - row["test"]["recall@20"])


def test_drop_modalities_removes_feature_folder_modalities_and_names_unknown_ones(tmp_path):
    np.save(tmp_path / "extra_feat.npy", np.ones((300, 4), dtype=np.float32))
    synthetic = {"n_users": 400, "n_items": 300, "mean_interactions": 8}
    data = load_dataset(synthetic=synthetic, feature_dirs=[str(tmp_path)], drop_modalities=["extra", "text"])
    assert sorted(data.features) == ["image"]
    with pytest.raises(ConfigError, match=r"data.drop_modalities names \['audio'\]"):
        load_dataset(synthetic=synthetic, drop_modalities=["audio"])


def test_synthetic_noise_modality_carries_no_cluster_signal():
    from gnnrec.data import make_synthetic

    data = make_synthetic(n_users=300, n_items=400, modalities={"signal": 16, "noise": 16}, noise_modalities=["noise"])
    cluster = data.item_info["cluster"]

    def cluster_share(x):  # share of feature variance explained by the item clusters
        means = np.stack([x[cluster == c].mean(axis=0) for c in np.unique(cluster)])
        return ((means[np.searchsorted(np.unique(cluster), cluster)] - x.mean(axis=0)) ** 2).sum() / \
            ((x - x.mean(axis=0)) ** 2).sum()

    assert cluster_share(data.features["signal"]) > 0.3 > 0.1 > cluster_share(data.features["noise"])
    with pytest.raises(ConfigError, match="noise_modalities names \\['audio'\\]"):
        make_synthetic(n_users=50, n_items=40, noise_modalities=["audio"])
