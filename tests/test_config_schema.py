from pathlib import Path

import pytest

from gnnrec.config import DEFAULTS, load_config
from gnnrec.errors import ConfigError

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("override,message", [
    ("eval.ks=10", "'eval.ks': input should be a valid list, got 10"),
    ("eval.ks=[]", "'eval.ks'"),
    ("eval.ks=[0,20]", "'eval.ks.0': input should be greater than 0"),
    ("eval.protocol=loose", "'eval.protocol'"),
    ("model.embedding_dim=64.5", "'model.embedding_dim': input should be a valid integer, got 64.5"),
    ("model.embedding_dim=0", "'model.embedding_dim': input should be greater than 0"),
    ("train.max_epochs=-1", "'train.max_epochs': input should be greater than 0, got -1"),
    ("train.max_epochs=0", "'train.max_epochs': input should be greater than 0, got 0"),
    ("train.max_epochs=1.5", "'train.max_epochs': input should be a valid integer, got 1.5"),
    ("train.progress_bar=maybe", "'train.progress_bar': input should be a valid boolean, got 'maybe'"),
    ("optim.lr=-1e-3", "'optim.lr': input should be greater than 0, got -0.001"),
    ("optim.lr=1e-3x", "'optim.lr': input should be a valid number, got '1e-3x'"),
    ("data.valid_ratio=1.5", "'data.valid_ratio': input should be less than or equal to 1"),
    ("data.synthetic.n_users=abc", "'data.synthetic.n_users': input should be a valid integer"),
    ("model.reg_weight=-1", "'model.reg_weight': input should be greater than or equal to 0"),
])
def test_every_key_is_checked_for_type_and_range(override, message):
    with pytest.raises(ConfigError, match="config key " + message.replace("[", r"\[").replace("(", r"\(")):
        load_config(None, [override])


def test_model_arguments_are_checked_against_the_model_signature():
    with pytest.raises(ConfigError, match="'model.dropout': input should be less than 1, got 1.5"):
        load_config(None, ["model.name=freedom", "model.dropout=1.5"])
    with pytest.raises(ConfigError, match="'model.knn_k': input should be greater than 0"):
        load_config(None, ["model.name=freedom", "model.knn_k=0"])
    with pytest.raises(ConfigError, match="'model.num_layers': input should be a valid integer"):
        load_config(None, ["model.num_layers=two"])


def test_unknown_keys_keep_their_message():
    with pytest.raises(ConfigError, match="unknown config key 'train.nope'; valid keys here: accelerator"):
        load_config(None, ["train.nope=1"])
    with pytest.raises(ConfigError, match="unknown key\\(s\\) model.nope for model 'lightgcn'; valid keys: name"):
        load_config(None, ["model.nope=1"])


def test_one_feature_folder_is_a_list_of_one_and_good_values_pass():
    cfg = load_config(None, ["data.feature_dirs=datasets/x", "optim.lr=1", "train.devices=[0]"])
    assert cfg["data"]["feature_dirs"] == ["datasets/x"]
    assert cfg["optim"]["lr"] == 1.0 and cfg["train"]["devices"] == [0]
    assert load_config(None) == DEFAULTS


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_shipped_config_is_valid(path):
    load_config(path)
