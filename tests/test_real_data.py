"""Real datasets from ../shared/datasets: loaded statistics and checksums must match the dataset cards."""
from pathlib import Path

import pytest

from gnnrec.cli import main
from gnnrec.data import load_dataset
from gnnrec.data.cards import check_against_card, load_card
from tests.conftest import shared_dataset

CARDS = Path(__file__).resolve().parents[1] / "datasets"


@pytest.mark.parametrize("name", ["tiktok", "gowalla", "amazon_beauty", "ml-100k"])
def test_real_dataset_matches_its_card(name):
    folder = shared_dataset(name)
    stats = load_dataset(folder, valid_ratio=0.0, drop_cold=False).stats()
    assert check_against_card(load_card(CARDS / f"{name}.yaml"), folder, stats) == []


def test_card_mismatch_is_reported(tmp_path, capsys):
    (tmp_path / "train.txt").write_text("0 0 1\n1 1\n")
    (tmp_path / "test.txt").write_text("0 2\n")
    card = tmp_path / "card.yaml"
    card.write_text("expected:\n  users: 3\n  train: 3\nsha256:\n  train.txt: 00\n")
    assert main(["data", "info", str(tmp_path), "--card", str(card)]) == 2
    err = capsys.readouterr().err
    assert "users: card expects 3, found 2" in err and "train.txt: sha256 differs" in err


def test_recbole_titles_on_movielens():
    data = load_dataset(shared_dataset("ml-100k"))
    assert data.item_info["title"][0] == "Toy Story"
    assert data.n_users == 943 and data.valid.nnz > 0
