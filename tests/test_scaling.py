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
    with pytest.raises(ConfigError, match="data.feature_norm must be one of"):
        dataset_from_config(load_config(None, ["data.feature_norm=minmax"]))
