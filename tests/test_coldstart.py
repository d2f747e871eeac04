"""Cold start: the cold-item split never lets a cold item into training, new-item embeddings on a tiny graph
computed by hand, the kNN rule equal to the frozen item graph's, and the export's cold-start files round trip."""
import json
import shutil

import numpy as np
import pytest
import torch

from gnnrec.config import load_config
from gnnrec.data import load_dataset
from gnnrec.data.sampler import BPRSampler
from gnnrec.errors import ConfigError, GnnrecError
from gnnrec.graphs.knn import item_graph
from gnnrec.models.freedom import FREEDOM
from gnnrec.runs import Run
from gnnrec.serving.coldstart import aggregate, graph_row, weighted_degrees
from gnnrec.serving.export import DuplicateIdError, Export, export_run
from gnnrec.train import train
from tests.test_encoders import minilm_available
from tests.test_training import SMALL

SYNTH = {"n_users": 300, "n_items": 200, "n_clusters": 4, "mean_interactions": 15, "seed": 1}


def test_cold_split_never_leaks_cold_items_into_training():
    full = load_dataset(synthetic=SYNTH, seed=5)
    data = load_dataset(synthetic=SYNTH, seed=5, cold_items=0.1)
    cold, warm = data.cold.cold_rows, data.cold.warm_rows
    assert len(cold) == 20 and data.n_items == 180 and len(np.intersect1d(cold, warm)) == 0
    assert full.train[:, cold].nnz > 0  # the removed items did have training interactions
    # the training matrix is the full one without the cold columns: nothing else changed, nothing cold remains
    assert (data.train != full.train[:, warm]).nnz == 0 and (data.valid != full.valid[:, warm]).nnz == 0
    assert not set(data.item_info["item_id"]) & set(data.cold.item_ids)
    assert list(data.cold.item_ids) == [str(i) for i in cold]
    # the sampler's positives and negatives are warm items only
    sampler = BPRSampler(data.train)
    triples = sampler.sample(np.random.default_rng(0))
    assert triples[1:].max() < data.n_items and set(sampler.candidates) <= set(range(data.n_items))
    assert not set(data.item_info["item_id"][np.unique(triples[1:])]) & set(data.cold.item_ids)
    # the model's item table and frozen item graph are built from the warm items' features only
    model = FREEDOM(data, embedding_dim=8)
    assert model.item_emb.weight.shape[0] == 180
    graph = item_graph(data.features, k=10)
    np.testing.assert_array_equal(graph.toarray(), item_graph({k: v[warm] for k, v in full.features.items()},
                                                              k=10).toarray())
    for name, table in model.modalities.tables.items():
        np.testing.assert_array_equal(table.weight.detach().numpy(), full.features[name][warm])
        np.testing.assert_array_equal(data.cold.features[name], full.features[name][cold])
    # the cold items' held-out interactions are kept apart, for users the model knows
    known_users = np.diff(data.train.indptr) > 0
    expected = full.test[:, cold].toarray() * known_users[:, None]
    np.testing.assert_array_equal(data.cold.test.toarray(), expected)
    assert data.cold.test.nnz > 0
    # the evaluator and the sampler binary-search each row's indices: every matrix keeps them sorted
    for m in (data.train, data.valid, data.test, data.cold.valid, data.cold.test):
        assert rows_sorted(m)


def rows_sorted(m) -> bool:
    """Whether every CSR row's column indices increase (checked on the arrays, not scipy's cached flag)."""
    ok = np.diff(m.indices) > 0
    across = m.indptr[1:-1] - 1  # differences between the last entry of a row and the first of the next
    ok[across[(across >= 0) & (across < len(ok))]] = True
    return bool(ok.all())


def test_cold_split_is_seeded_and_checked():
    a = load_dataset(synthetic=SYNTH, seed=5, cold_items=0.1).cold.cold_rows
    assert np.array_equal(a, load_dataset(synthetic=SYNTH, seed=5, cold_items=0.1).cold.cold_rows)
    assert not np.array_equal(a, load_dataset(synthetic=SYNTH, seed=6, cold_items=0.1).cold.cold_rows)
    with pytest.raises(ConfigError, match="data.cold_items"):
        load_config(None, ["data.cold_items=1.0"])
    with pytest.raises(ConfigError, match="data.cold_items"):
        load_config(None, ["data.cold_items=-0.1"])
    scaled = load_dataset(synthetic=SYNTH, seed=5, cold_items=0.1, feature_norm="l2")  # cold rows scaled too
    for name, x in scaled.cold.features.items():
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ConfigError, match="zscore"):
        load_dataset(synthetic=SYNTH, cold_items=0.1, feature_norm="zscore")
    with pytest.raises(ConfigError, match="leaves 0 cold items"):
        load_dataset(synthetic=SYNTH, cold_items=0.001)


def test_new_item_embedding_on_a_tiny_graph_by_hand():
    # 4 training items, 2 modalities, k = 3 with the item itself: 2 training neighbours per modality
    features = {"image": np.array([[1, 0], [0, 1], [1, 1], [-1, 0]], np.float32),
                "text": np.array([[0, 1], [1, 0], [-1, 0], [1, 1]], np.float32)}
    base = np.array([[1, 0], [0, 1], [2, 0], [0, 3]], np.float32)
    new = {"image": np.array([[1, 0.2]], np.float32), "text": np.array([[1, 0.1]], np.float32)}
    rows, loop = graph_row(new, features, 3, {"image": 0.25, "text": 0.75}, binary=True, include_self=True)
    # image neighbours: items 0 (cos .98) and 2 (.83); text: items 1 (.995) and 3 (.77); every row sums to 3
    assert [sorted(ids[0]) for ids, _ in rows] == [[0, 2], [1, 3]]
    np.testing.assert_allclose([w[0] for _, w in rows], [[0.25 / 3] * 2, [0.75 / 3] * 2])
    np.testing.assert_allclose(loop, [1 / 3])
    # (0.25/3 (e0 + e2) + 0.75/3 (e1 + e3)) / (1 - 1/3) = .25 mean(e0, e2) + .75 mean(e1, e3)
    np.testing.assert_allclose(aggregate(rows, loop, base), [[0.375, 1.5]], rtol=1e-6)

    # weighted graph, one modality: cosines 1 (item 0) and .6 (item 2), own row sum 1 + .6 + 1 (self) = 2.6
    one = {"x": np.array([[1, 0], [0, 1], [0.6, 0.8], [-1, 0]], np.float32)}
    degrees = {"x": np.array([2.0, 1.0, 1.625, 1.0], np.float32)}
    rows, loop = graph_row({"x": np.array([[2, 0]], np.float32)}, one, 3, {"x": 1.0}, binary=False,
                           include_self=True, degrees=degrees)
    w0, w2 = 1 / np.sqrt(2.6 * 2.0), 0.6 / np.sqrt(2.6 * 1.625)
    np.testing.assert_allclose(loop, [1 / 2.6], rtol=1e-6)
    np.testing.assert_allclose(aggregate(rows, loop, base), [(w0 * base[0] + w2 * base[2]) / (1 - 1 / 2.6)],
                               rtol=1e-5)


@pytest.mark.parametrize("binary", [True, False])
def test_new_item_row_is_the_frozen_graphs_row(binary):
    """A training item sent as new gets exactly its row of the frozen item graph (built by gnnrec.graphs.knn)."""
    rng = np.random.default_rng(0)
    features = {"a": rng.normal(size=(40, 5)).astype(np.float32), "b": rng.normal(size=(40, 3)).astype(np.float32)}
    weights = {"a": 0.3, "b": 0.7}
    graph = item_graph(features, k=4, weights=weights, binary=binary).toarray()
    degrees = None if binary else {n: weighted_degrees(x, 4, True, n) for n, x in features.items()}
    for probe in (3, 17, 39):  # the item left out of the pool it searches, as a new item is
        pool = np.setdiff1d(np.arange(40), [probe])
        rows, loop = graph_row({n: x[[probe]] for n, x in features.items()}, {n: x[pool] for n, x in features.items()},
                               4, weights, binary, True, degrees and {n: d[pool] for n, d in degrees.items()})
        got = np.zeros(40)
        for ids, w in rows:
            np.add.at(got, pool[ids[0]], w[0])
        got[probe] += loop[0]
        np.testing.assert_allclose(got, graph[probe], rtol=1e-5, atol=1e-7)


@pytest.fixture(scope="module")
def freedom_export(tmp_path_factory):
    out = tmp_path_factory.mktemp("cold")
    result = train(load_config(None, SMALL + [f"output.dir={out}", "output.name=f", "model.name=freedom",
                                              "model.knn_k=5", "train.max_epochs=1", "data.cold_items=0.1"]))
    run = Run.open(result.run_dir)
    export_run(run, out / "export", index="exact", recall_k=10)
    return run, out / "export"


def test_export_carries_cold_start_and_round_trips(freedom_export, tmp_path):
    run, folder = freedom_export
    e = Export.load(folder)
    spec = json.loads((folder / "coldstart.json").read_text())
    assert e.manifest["cold_start"]["method"] == spec["method"] == "item_graph"
    assert spec["knn_k"] == 5 and spec["weights"] == {"image": 0.5, "text": 0.5} and spec["binary"]
    assert set(e.manifest["files"]) == {p.name for p in folder.iterdir()} - {"manifest.json"}
    np.testing.assert_array_equal(e.cold_start.base, run.model.item_emb.weight.detach().numpy())
    for name, x in run.dataset.features.items():
        np.testing.assert_array_equal(e.cold_start.features[name], x)
    # a cold item's vector: FREEDOM's binary k = 5 rows (self-loop included) give, per modality, the mean of the
    # base (ID) vectors of its 4 most cosine-similar training items, and the modalities weigh 0.5 each
    cold, ids = run.dataset.cold, run.model.item_emb.weight.detach().numpy()
    expected = 0
    for name, x in run.dataset.features.items():
        unit = x / np.linalg.norm(x, axis=1, keepdims=True)
        q = cold.features[name][2] / np.linalg.norm(cold.features[name][2])
        expected = expected + 0.5 * ids[np.argsort(-(unit @ q))[:4]].mean(0)
    np.testing.assert_allclose(e.cold_start.embed({n: x[[2]] for n, x in cold.features.items()})[0], expected,
                               rtol=1e-4, atol=1e-6)
    # the cold items are added, recommendable and queryable
    emb = e.add_items(cold.item_ids, cold.features)
    assert e.item_emb.shape[0] == run.dataset.n_items + cold.n_items
    user = e.user_ids[0]
    top = e.recommend([user], k=e.item_emb.shape[0])[0]["items"]
    assert set(cold.item_ids) <= set(top)
    assert e.recommend([user], k=3, items=list(cold.item_ids))[0]["items"][0] == \
        cold.item_ids[np.argmax(emb @ e.user_emb[0])]
    assert e.similar_items(cold.item_ids[0], 3)["item"] == cold.item_ids[0]
    with pytest.raises(DuplicateIdError, match="already exist"):
        e.add_items([cold.item_ids[0]], {n: x[:1] for n, x in cold.features.items()})
    with pytest.raises(GnnrecError, match="missing \\['text'\\]"):
        e.add_items(["new"], {"image": cold.features["image"][:1]})
    # a changed cold-start file is caught by the manifest
    copy = shutil.copytree(folder, tmp_path / "copy")
    np.save(copy / "coldstart_feat_image.npy", np.load(copy / "coldstart_feat_image.npy")[::-1].copy())
    with pytest.raises(GnnrecError, match="coldstart_feat_image.npy"):
        Export.load(copy)


def test_new_item_text_is_encoded_with_the_recorded_encoder():
    """Raw text goes through the feature manifest's sentence-transformers model: the same vector, hence the same
    embedding, as sending the features that `gnnrec encode text` would have stored."""
    minilm_available()
    from gnnrec.encoders.text import encode_texts
    from gnnrec.serving.coldstart import ColdStart

    titles = ["Toy Story. Genres: Animation", "Heat. Genres: Crime Thriller", "Babe. Genres: Children Comedy",
              "Se7en. Genres: Crime Thriller", "Aladdin. Genres: Animation Musical", "Fargo. Genres: Crime Drama"]
    feats = encode_texts(titles, progress=False)
    spec = {"method": "item_graph", "knn_k": 3, "weights": {"text": 1.0}, "binary": True, "include_self": True,
            "modalities": {"text": feats.shape[1]}, "encoders": {"text": {"model": "all-MiniLM-L6-v2",
                                                                           "normalized": True}}}
    cold = ColdStart(spec, {"text": feats}, np.eye(6, dtype=np.float32), {})
    new = "The Lion King. Genres: Animation Musical"
    np.testing.assert_allclose(cold.encode_text({"text": new})["text"], encode_texts([new], progress=False),
                               rtol=1e-5, atol=1e-6)
    by_text = cold.embed(cold.encode_text({"text": new}))
    # base = identity: the embedding is the neighbour weights, 1/2 on each of the 2 nearest titles (animations)
    assert sorted(np.flatnonzero(by_text[0])) == [0, 4]
    np.testing.assert_allclose(by_text[0][[0, 4]], [0.5, 0.5], rtol=1e-5)


def test_zscore_runs_export_without_cold_start_and_say_why(tmp_path):
    """A z-scored run's features cannot be matched with a new item's raw ones: no cold start, a stated reason."""
    result = train(load_config(None, SMALL + [f"output.dir={tmp_path}", "output.name=z", "model.name=freedom",
                                              "model.knn_k=5", "train.max_epochs=1", "data.feature_norm=zscore"]))
    export_run(Run.open(result.run_dir), tmp_path / "export", index="none", recall_k=10)
    manifest = json.loads((tmp_path / "export" / "manifest.json").read_text())
    cold = manifest["cold_start"]
    assert cold["method"] == "none" and "zscore" in cold["reason"]
