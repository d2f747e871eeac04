"""``gnnrec data convert`` / ``to_mmrec``: a dataset written in MMRec format reads back identical (statistics,
train/valid/test interactions, features, metadata, original ids)."""
from __future__ import annotations

import numpy as np
import pytest

from gnnrec.cli import main
from gnnrec.data import load_dataset
from gnnrec.data.convert import to_mmrec
from gnnrec.data.dataset import SPLITS
from gnnrec.errors import DataError
from gnnrec.recommend import original_ids
from tests.conftest import shared_dataset


def small_synthetic():
    data = load_dataset("synthetic", synthetic={"n_users": 120, "n_items": 80, "seed": 3})
    # string ids, 1-based and sparse, one with a space: what a user's own data looks like
    data.item_info["item_id"] = np.array([f"B0{7 * k + 1:05d}" for k in range(data.n_items)], dtype=object)
    data.user_info["user_id"] = np.array([f"user {k + 1}" for k in range(data.n_users)], dtype=object)
    data.item_info["title"] = np.array([f"Title\twith tab {k}" if k == 5 else f"Title {k}"
                                        for k in range(data.n_items)], dtype=object)
    return data


def counts(data) -> dict:
    stats = data.stats()
    return {k: v for k, v in stats.items() if k not in ("name", "report")}


def assert_same(a, b, text_cleaned=()):
    assert counts(a) == counts(b)
    for split in SPLITS:
        x, y = a.split(split), b.split(split)
        assert x.shape == y.shape
        assert (x != y).nnz == 0, split
    assert sorted(a.features) == sorted(b.features)
    for k in a.features:
        np.testing.assert_array_equal(a.features[k], b.features[k])
    for kind in ("user", "item"):
        assert list(original_ids(a, kind)) == list(original_ids(b, kind))
    for table_a, table_b in ((a.item_info, b.item_info), (a.user_info, b.user_info)):
        assert sorted(table_a) == sorted(table_b)
        for col in table_a:
            expect = [str(v).replace("\t", " ") for v in table_a[col]]
            assert list(table_b[col]) == expect, col


def test_synthetic_round_trip(tmp_path):
    data = small_synthetic()
    written = to_mmrec(data, tmp_path / "out", name="my data")
    assert written["name"] == "my_data"
    assert {"my_data.inter", "image_feat.npy", "text_feat.npy", "u_id_mapping.csv", "i_id_mapping.csv",
            "items.tsv"} <= {p.name for p in (tmp_path / "out").iterdir()}
    head = (tmp_path / "out" / "my_data.inter").read_text().splitlines()[0]
    assert head == "userID\titemID\tx_label"
    back = load_dataset(tmp_path / "out")
    assert back.name == "my_data"
    assert_same(data, back)
    assert back.item_info["title"][5] == "Title with tab 5"


def test_items_without_interactions_keep_their_ids(tmp_path):
    data = small_synthetic()
    last = data.n_items - 1  # the highest item id loses every interaction: the id map keeps the item count
    for split in SPLITS:
        mat = data.split(split).tolil()
        mat[:, last] = 0
        setattr(data, split, mat.tocsr())
        data.split(split).eliminate_zeros()
    to_mmrec(data, tmp_path / "out")
    back = load_dataset(tmp_path / "out", drop_cold=False)
    assert back.n_items == data.n_items and back.features["image"].shape[0] == data.n_items
    assert original_ids(back, "item")[last] == data.item_info["item_id"][last]


def test_a_changed_label_is_caught(tmp_path):
    """The check has teeth: one interaction moved from test to valid makes the round trip differ."""
    data = small_synthetic()
    to_mmrec(data, tmp_path / "out")
    inter = tmp_path / "out" / f"{data.name}.inter"
    lines = inter.read_text().splitlines()
    k = next(i for i, line in enumerate(lines) if line.endswith("\t2"))
    lines[k] = lines[k][:-1] + "1"
    inter.write_text("\n".join(lines) + "\n")
    with pytest.raises(AssertionError):
        assert_same(data, load_dataset(tmp_path / "out"))


def test_refuses_a_folder_with_another_dataset(tmp_path):
    to_mmrec(small_synthetic(), tmp_path / "out", name="a")
    with pytest.raises(DataError, match="another dataset"):
        to_mmrec(small_synthetic(), tmp_path / "out", name="b")


def test_ml100k_round_trip(tmp_path):
    data = load_dataset(shared_dataset("ml-100k"))
    to_mmrec(data, tmp_path / "ml")
    back = load_dataset(tmp_path / "ml")
    assert back.name == "ml-100k"
    assert_same(data, back)
    assert original_ids(back, "item")[0] == data.item_info["item_id"][0]


def test_cli_convert_takes_data_settings(tmp_path, capsys):
    table = tmp_path / "pairs.csv"
    rows = [f"u{u},it{(u * 7 + j) % 40},{j}" for u in range(30) for j in range(8)]
    table.write_text("uid,iid,ts\n" + "\n".join(rows) + "\n")
    settings = ["format=table", "data.columns.user=uid", "columns.item=iid", "columns.timestamp=ts", "kcore=null"]
    assert main(["data", "convert", str(table), "--out", str(tmp_path / "out"), *settings]) == 0
    assert "-> " in capsys.readouterr().out
    from gnnrec.cli import data_settings

    original = load_dataset(**data_settings(str(table), settings))
    back = load_dataset(tmp_path / "out")
    assert_same(original, back)
    assert set(original_ids(back, "user")) == {f"u{u}" for u in range(30)}
