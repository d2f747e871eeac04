"""Generic interaction files (data.format: table) and folders holding several MMRec datasets (issue 15, items 1-2)."""
import importlib.util

import numpy as np
import pytest

from gnnrec.config import DEFAULTS
from gnnrec.data import Interactions, load_dataset
from gnnrec.data.readers import detect_format
from gnnrec.data.readers.generic import read_generic
from gnnrec.errors import ConfigError, DataError
from gnnrec.recommend import original_ids, to_internal


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def pairs(data, split="train"):
    """(original user id, original item id) pairs of a split, as a sorted list."""
    users, items = original_ids(data, "user"), original_ids(data, "item")
    coo = getattr(data, split).tocoo()
    return sorted(zip(users[coo.row], items[coo.col]))


def log_pairs(log: Interactions):
    users, items = log.user_info["user_id"], log.item_info["item_id"]
    return sorted(zip(users[log.users].astype(str), items[log.items].astype(str)))


def test_lastfm_lightgcn_pytorch_layout_one_based_no_header(tmp_path):
    folder = tmp_path / "lastfm"
    folder.mkdir()
    write(folder / "data1.txt", "1 51 13883\n1 52 11690\n2 51 5\n2 60 7\n3 52 1\n")
    write(folder / "test1.txt", "1 60 4\n3 51 9\n")
    log = read_generic(folder, header=False, columns={"weight": 2})
    assert isinstance(log, Interactions) and log.name == "lastfm"
    assert (log.n_users, log.n_items) == (3, 3)  # 1-based ids map to 0..2, no phantom user/item 0
    assert list(log.user_info["user_id"]) == ["1", "2", "3"]
    assert list(log.item_info["item_id"]) == ["51", "52", "60"]
    assert log_pairs(log) == sorted([("1", "51"), ("1", "52"), ("2", "51"), ("2", "60"), ("3", "52"),
                                     ("1", "60"), ("3", "51")])
    one = load_dataset(folder / "data1.txt", format="table", header=False, valid_ratio=0, drop_cold=False)
    assert one.name == "data1"
    everything = {p for s in ("train", "valid", "test") for p in pairs(one, s)}
    assert everything == {("1", "51"), ("1", "52"), ("2", "51"), ("2", "60"), ("3", "52")}
    assert list(to_internal(one, "item", ["60", "51"])) == [2, 0]  # original ids round-trip


def test_microlens_pairs_csv_with_header_is_detected(tmp_path):
    path = write(tmp_path / "MicroLens-100k_pairs.csv",
                 "user,item,timestamp\n" + "".join(f"u{u},i{(u * 3 + k) % 7},{1000 + u * 10 + k}\n"
                                                   for u in range(6) for k in range(5)))
    assert detect_format(path) == "table"
    d = load_dataset(str(path), columns={"timestamp": "timestamp"}, split={"method": "temporal"}, valid_ratio=0,
                     drop_cold=False)
    assert d.name == "MicroLens-100k_pairs" and (d.n_users, d.n_items) == (6, 7)
    assert d.train.nnz + d.valid.nnz + d.test.nnz == 30
    # temporal: each user's last interaction (k=4) is in test, spoken in original ids
    assert pairs(d, "test") == sorted((f"u{u}", f"i{(u * 3 + 4) % 7}") for u in range(6))


def test_movielens_ratings_with_threshold(tmp_path):
    path = write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n"
                 "1,31,2.5,1260759144\n1,1029,3.0,1260759179\n1,1061,4.0,1260759182\n"
                 "7,31,5.0,1260759185\n7,1061,3.5,1260759200\n")
    cols = {"user": "userId", "item": "movieId", "rating": "rating", "timestamp": "timestamp"}
    log = read_generic(path, columns=cols, rating_threshold=3.5)
    assert log_pairs(log) == [("1", "1061"), ("7", "1061"), ("7", "31")]
    assert list(log.timestamps) == [1260759182, 1260759185, 1260759200]
    assert list(log.item_info["item_id"]) == ["31", "1061"]  # numeric ids keep numeric order
    assert read_generic(path, columns=cols).n_items == 3  # without a threshold every row is kept
    with pytest.raises(ConfigError, match="rating_threshold needs a rating column"):
        read_generic(path, columns={"user": "userId", "item": "movieId"}, rating_threshold=3)


def test_string_ids_split_column_and_positions(tmp_path):
    path = write(tmp_path / "log.tsv", "alice\tbook\ttrain\nalice\tpen\ttest\nbob\tpen\ttrain\n"
                 "bob\tbook\tvalid\ncarol\tbook\t0\ncarol\tink\t2\n")
    d = load_dataset(path, header=False, columns={"split": 2}, valid_ratio=0, drop_cold=False)
    assert pairs(d, "train") == [("alice", "book"), ("bob", "pen"), ("carol", "book")]
    assert pairs(d, "valid") == [("bob", "book")]
    assert pairs(d, "test") == [("alice", "pen"), ("carol", "ink")]
    assert list(to_internal(d, "user", ["carol", "alice"])) == [2, 0]
    write(tmp_path / "bad.tsv", "alice\tbook\ttrain\nbob\tpen\tholdout\n")
    with pytest.raises(DataError, match=r"bad.tsv, line 2.*'holdout' is not train/valid/test"):
        read_generic(tmp_path / "bad.tsv", header=False, columns={"split": 2})


def test_malformed_lines_name_file_and_line(tmp_path):
    write(tmp_path / "short.csv", "user,item,timestamp\na,x,1\nb,y\n")
    with pytest.raises(DataError, match=r"short.csv, line 3: expected 3 fields"):
        read_generic(tmp_path / "short.csv")
    write(tmp_path / "noheader.txt", "1 2 3\n4 5 6\n7 8\n")
    with pytest.raises(DataError, match=r"noheader.txt, line 3: expected 3 fields"):
        read_generic(tmp_path / "noheader.txt", header=False)
    write(tmp_path / "ts.csv", "user,item,timestamp\na,x,1\nb,y,yesterday\n")
    with pytest.raises(DataError, match=r"ts.csv, line 3, field 'timestamp'.*'yesterday' is not a number"):
        read_generic(tmp_path / "ts.csv", columns={"timestamp": "timestamp"})
    write(tmp_path / "r.csv", "u,i,r\na,x,4\nb,y,\n")
    with pytest.raises(DataError, match=r"r.csv, line 3, field 'r'"):
        read_generic(tmp_path / "r.csv", columns={"user": "u", "item": "i", "rating": "r"}, rating_threshold=3)
    write(tmp_path / "pairs.txt", "1 2 3\n4 5 6\n")
    with pytest.raises(DataError, match=r"pairs.txt, line 1, field 'user': missing column 'user'.*data.header=false"):
        read_generic(tmp_path / "pairs.txt")
    with pytest.raises(ConfigError, match="positions"):
        read_generic(tmp_path / "pairs.txt", header=False, columns={"rating": "r"})
    with pytest.raises(DataError, match=r"pairs.txt, line 1, field 'rating': data.columns.rating is position 3"):
        read_generic(tmp_path / "pairs.txt", header=False, columns={"rating": 3})


def test_table_options_rejected_for_other_formats(tmp_path):
    write(tmp_path / "a.inter", "userID\titemID\tx_label\n0\t0\t0\n0\t1\t2\n1\t1\t0\n1\t0\t1\n")
    with pytest.raises(ConfigError, match="data.rating_threshold apply to data.format=table only"):
        load_dataset(tmp_path, rating_threshold=3)
    assert load_dataset(tmp_path, columns=DEFAULTS["data"]["columns"]).train.nnz == 2  # defaults are fine


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is not None or importlib.util.find_spec("pandas") is not None,
                    reason="a Parquet library is installed")
def test_parquet_without_library_is_a_clear_error(tmp_path):
    write(tmp_path / "x.parquet", "not really parquet")
    assert detect_format(tmp_path / "x.parquet") == "table"
    with pytest.raises(DataError, match="x.parquet: reading Parquet needs pyarrow"):
        load_dataset(tmp_path / "x.parquet")


INTER = "userID\titemID\tx_label\n0\t0\t0\n0\t1\t2\n1\t1\t0\n1\t0\t1\n"


def test_folder_with_several_mmrec_datasets(tmp_path):
    write(tmp_path / "sports.inter", INTER)
    write(tmp_path / "clothing.inter", INTER + "2\t2\t0\n2\t0\t0\n")
    write(tmp_path / "tiktok.inter", INTER)
    with pytest.raises(DataError, match=r"several datasets here: \['clothing', 'sports', 'tiktok'\].*data.name"):
        load_dataset(tmp_path)
    by_name = load_dataset(tmp_path, name="clothing")
    assert by_name.name == "clothing" and by_name.n_users == 3
    by_file = load_dataset(tmp_path / "sports.inter")
    assert by_file.name == "sports" and by_file.n_users == 2
    assert load_dataset(str(tmp_path / "clothing.inter"), format="mmrec").train.nnz == 4
    with pytest.raises(DataError, match=r"no baby.inter \(data.name\) here; found \['clothing.inter'"):
        load_dataset(tmp_path, name="baby")


def test_dataset_name_comes_from_the_file_not_the_folder(tmp_path):
    folder = tmp_path / "5-core"
    folder.mkdir()
    write(folder / "baby.inter", INTER)
    assert load_dataset(folder).name == "baby"
    lattice = tmp_path / "sports" / "5-core"
    lattice.mkdir(parents=True)
    for split, text in (("train", '{"0": [0, 1], "1": [1]}'), ("val", '{"1": [0]}'), ("test", '{"0": [2]}')):
        write(lattice / f"{split}.json", text)
    assert load_dataset(lattice).name == "sports"


def test_parquet_interactions_with_string_ids(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is not installed (it is in the test extra)")
    import pyarrow as pa

    from gnnrec.recommend import original_ids

    table = pa.table({"u": ["ann", "ann", "bob", "bob", "cy", "cy"], "i": ["x", "y", "x", "z", "y", "z"],
                      "r": [5, 2, 4, 5, 1, 4]})
    pq.write_table(table, tmp_path / "ratings.parquet")
    data = load_dataset(tmp_path / "ratings.parquet", columns={"user": "u", "item": "i", "rating": "r"},
                        rating_threshold=4, valid_ratio=0, drop_cold=False,
                        split={"method": "random", "valid_ratio": 0.0, "test_ratio": 0.0})
    assert data.train.nnz + data.valid.nnz + data.test.nnz == 4  # rows rated >= 4
    assert sorted(original_ids(data, "user")) == ["ann", "bob", "cy"]
    assert sorted(original_ids(data, "item")) == ["x", "z"]  # y was only rated below the threshold


def test_lastfm_keeps_its_own_test_file_with_split_files(tmp_path):
    from gnnrec.recommend import original_ids

    folder = tmp_path / "lastfm"
    folder.mkdir()
    write(folder / "data1.txt", "1 51 13883\n1 52 11690\n1 53 10\n2 51 5\n2 60 7\n2 53 3\n3 52 1\n3 53 2\n")
    write(folder / "test1.txt", "1 60 4\n3 51 9\n")
    data = load_dataset(folder, format="table", header=False, split_files={"test": ["test1.txt"]},
                        valid_ratio=0, drop_cold=False)
    users, items = original_ids(data, "user"), original_ids(data, "item")
    test = {(users[u], items[i]) for u, i in zip(*data.test.nonzero())}
    assert test == {("1", "60"), ("3", "51")} and data.train.nnz == 8 and data.valid.nnz == 0
    with pytest.raises(ConfigError, match=r"data.split_files names \['test9.txt'\]"):
        load_dataset(folder, format="table", header=False, split_files={"test": ["test9.txt"]})
