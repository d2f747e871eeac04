import numpy as np
import pytest

from gnnrec.config import load_config
from gnnrec.data.scaling import standardize
from gnnrec.errors import ConfigError
from gnnrec.train import dataset_from_config


def test_zscore_centres_and_scales_each_dimension_and_keeps_constant_ones_finite():
    rng = np.random.default_rng(0)
    x = np.c_[rng.normal(3.0, 5.0, size=(200, 3)), np.full(200, 7.0)].astype(np.float32)
    z = standardize(x, "zscore")
    np.testing.assert_allclose(z[:, :3].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z[:, :3].std(0), 1, atol=1e-4)
    assert np.all(z[:, 3] == 0)
    assert z.dtype == np.float32 and not np.shares_memory(z, x)


def test_l2_gives_unit_rows_and_leaves_zero_rows_zero():
    x = np.array([[3.0, 4.0], [0.0, 0.0], [-1.0, 0.0]], np.float32)
    np.testing.assert_allclose(standardize(x, "l2"), [[0.6, 0.8], [0, 0], [-1, 0]])
    assert standardize(x, "none") is not None and np.array_equal(standardize(x, "none"), x)


def test_feature_norm_reaches_every_model_through_the_dataset():
    base = ["data.synthetic.n_users=120", "data.synthetic.n_items=90", "data.synthetic.seed=4"]
    raw = dataset_from_config(load_config(None, base))
    scaled = dataset_from_config(load_config(None, [*base, "data.feature_norm=l2"]))
    assert sorted(raw.features) == sorted(scaled.features)
    for name, x in scaled.features.items():
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1, rtol=1e-5)
        np.testing.assert_allclose(x, raw.features[name] / np.linalg.norm(raw.features[name], axis=1, keepdims=True),
                                   rtol=1e-5)
    assert scaled.report["feature_norm"] == "l2"


def test_unknown_feature_norm_names_the_setting():
    with pytest.raises(ConfigError, match="'data.feature_norm': input should be 'none', 'zscore' or 'l2'"):
        load_config(None, ["data.feature_norm=minmax"])
    with pytest.raises(ConfigError, match="data.feature_norm must be one of"):  # the library call, no config
        standardize(np.ones((2, 2)), "minmax")


def test_feature_fill_gives_zero_rows_the_mean_and_the_knn_graph_then_builds(tmp_path):
    from gnnrec.graphs.knn import item_graph

    base = ["data.synthetic.n_users=120", "data.synthetic.n_items=90", "data.synthetic.seed=4"]
    raw = dataset_from_config(load_config(None, base))
    folder = tmp_path / "feats"
    folder.mkdir()
    holes = raw.features["image"].copy()
    holes[[3, 7]] = 0
    np.save(folder / "image_feat.npy", holes)
    with pytest.raises(Exception, match="data.feature_fill=mean"):
        item_graph(dataset_from_config(load_config(None, [*base, f"data.feature_dirs=[{folder}]"])).features, k=5)
    filled = dataset_from_config(load_config(None, [*base, f"data.feature_dirs=[{folder}]", "data.feature_fill=mean"]))
    expected = np.delete(holes, [3, 7], axis=0).mean(0)
    np.testing.assert_allclose(filled.features["image"][[3, 7]], [expected, expected], rtol=1e-5)
    np.testing.assert_array_equal(filled.features["image"][0], holes[0])
    assert filled.report["feature_rows_filled"] == {"image": 2}
    assert item_graph(filled.features, k=5).shape == (90, 90)


def test_a_feature_file_with_extra_rows_is_refused_and_named(tmp_path):
    from gnnrec.data import load_dataset
    from gnnrec.errors import DataError

    folder = tmp_path / "mm"
    folder.mkdir()
    (folder / "toy.inter").write_text("userID\titemID\tx_label\n0\t0\t0\n0\t1\t2\n1\t2\t0\n1\t0\t1\n")
    np.save(folder / "audio_feat.npy", np.ones((3, 4), np.float32))
    np.save(folder / "image_feat.npy", np.ones((5, 4), np.float32))  # two phantom items
    with pytest.raises(DataError, match=r"image_feat.npy: has 5 rows but toy.inter has 3 items"):
        load_dataset(str(folder))
