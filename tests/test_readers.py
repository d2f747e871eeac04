import json
import pickle

import numpy as np
import pytest
import scipy.sparse as sp

from gnnrec.data import load_dataset
from gnnrec.data.readers import detect_format
from gnnrec.errors import DataError


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def dense(mat):
    return mat.toarray().astype(int)


def test_mmrec_reader_with_features_and_extra_columns(tmp_path):
    write(tmp_path / "toy.inter", "userID\titemID\trating\ttimestamp\tx_label\n"
          "0\t0\t5\t10\t0\n0\t1\t4\t11\t0\n0\t2\t3\t12\t1\n1\t1\t5\t13\t0\n1\t2\t2\t14\t2\n1\t0\t1\t15\t0\n")
    np.save(tmp_path / "image_feat.npy", np.arange(12, dtype=np.float16).reshape(3, 4))
    np.save(tmp_path / "text_feat.npy", np.ones((3, 2)))
    assert detect_format(tmp_path) == "mmrec"
    d = load_dataset(tmp_path)
    assert (d.n_users, d.n_items) == (2, 3)
    assert dense(d.train).tolist() == [[1, 1, 0], [1, 1, 0]]
    kept = load_dataset(tmp_path, drop_cold=False)
    assert dense(kept.valid).tolist() == [[0, 0, 1], [0, 0, 0]]
    assert dense(kept.test).tolist() == [[0, 0, 0], [0, 0, 1]]
    assert kept.report["cold_test_kept"] == 1
    assert sorted(d.features) == ["image", "text"]
    assert d.features["image"].dtype == np.float32 and d.features["image"].shape == (3, 4)
    # item 2 never occurs in train: its held-out interactions are reported and dropped
    assert d.valid.nnz == 0 and d.test.nnz == 0
    assert d.report == {"cold_valid_dropped": 1, "cold_test_dropped": 1}


def test_mmrec_minimal_columns(tmp_path):
    write(tmp_path / "a.inter", "userID\titemID\tx_label\n0\t0\t0\n0\t1\t2\n1\t1\t0\n1\t0\t1\n")
    d = load_dataset(tmp_path)
    assert d.train.nnz == 2 and d.valid.nnz == 1 and d.test.nnz == 1


def test_lightgcn_reader(tmp_path):
    write(tmp_path / "train.txt", "0 0 1 2\n1 2 3\n2 0\n")
    write(tmp_path / "test.txt", "0 3\n1 0 1\n")
    assert detect_format(tmp_path) == "lightgcn"
    d = load_dataset(tmp_path, valid_ratio=0)
    assert dense(d.train).tolist() == [[1, 1, 1, 0], [0, 0, 1, 1], [1, 0, 0, 0]]
    assert dense(d.test).tolist() == [[0, 0, 0, 1], [1, 1, 0, 0], [0, 0, 0, 0]]
    assert d.valid.nnz == 0
    carved = load_dataset(tmp_path, valid_ratio=0.5)
    assert carved.valid.nnz > 0 and carved.train.nnz + carved.valid.nnz == 6
    assert carved.valid.multiply(carved.train).nnz == 0


@pytest.mark.parametrize("names", [("trnMat.pkl", "valMat.pkl", "tstMat.pkl"), ("train_mat.pkl", None, "test_mat.pkl")])
def test_pickle_reader(tmp_path, names):
    train = sp.coo_matrix(np.array([[1, 0, 1], [0, 1, 1]], dtype=np.float64))
    test = sp.coo_matrix(np.array([[0, 1], [1, 0]], dtype=np.float64))  # narrower: shapes differ in GTE's data
    mats = [train, sp.coo_matrix((2, 3)), test]
    for name, mat in zip(names, mats):
        if name:
            with open(tmp_path / name, "wb") as fh:
                pickle.dump(mat, fh)
    assert detect_format(tmp_path) == "pickle"
    d = load_dataset(tmp_path, valid_ratio=0)
    assert (d.n_users, d.n_items) == (2, 3)
    assert dense(d.test).tolist() == [[0, 1, 0], [1, 0, 0]]


def test_pickle_reader_rejects_non_sparse(tmp_path):
    with open(tmp_path / "trnMat.pkl", "wb") as fh:
        pickle.dump([1, 2, 3], fh)
    with pytest.raises(DataError, match="trnMat.pkl.*scipy.sparse"):
        load_dataset(tmp_path)


def test_lattice_reader(tmp_path):
    write(tmp_path / "train.json", json.dumps({"0": [0, 1], "1": [1, 2]}))
    write(tmp_path / "val.json", json.dumps({"0": [2]}))
    write(tmp_path / "test.json", json.dumps({"1": [0]}))
    np.save(tmp_path / "image_feat.npy", np.ones((3, 5), dtype=np.float32))
    assert detect_format(tmp_path) == "lattice"
    d = load_dataset(tmp_path)
    assert dense(d.valid).tolist() == [[0, 0, 1], [0, 0, 0]]
    assert d.features["image"].shape == (3, 5)


def test_recbole_reader_with_metadata_and_split(tmp_path):
    rows = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    rng = np.random.default_rng(0)
    for u in range(5):
        for t, i in enumerate(rng.choice(8, size=6, replace=False)):
            rows.append(f"u{u}\t{100 + i}\t4\t{t}")
    write(tmp_path / "ml.inter", "\n".join(rows) + "\n")
    write(tmp_path / "ml.item", "item_id:token\tmovie_title:token_seq\n" +
          "".join(f"{100 + i}\tMovie {i}\n" for i in range(8)))
    assert detect_format(tmp_path) == "recbole"
    d = load_dataset(tmp_path, split={"method": "temporal"})
    assert d.n_users == 5 and d.train.nnz == 20 and d.valid.nnz == 5 and d.test.nnz == 5
    titles = d.item_info["title"]
    assert titles[0] == "Movie " + str(int(d.item_info["item_id"][0]) - 100)
    # temporal: each user's test item is their last by timestamp
    log = [r.split("\t") for r in rows[1:]]
    last = {}
    for user, item, _, ts in log:
        if user not in last or float(ts) > last[user][1]:
            last[user] = (item, float(ts))
    vocab = list(d.item_info["item_id"])
    for u, user in enumerate(sorted(last)):
        assert d.test[u].indices.tolist() == [vocab.index(last[user][0])]


# ---- bad input ------------------------------------------------------------------------------------
def test_missing_folder_and_files(tmp_path):
    with pytest.raises(DataError, match="absent: data.source does not exist"):
        load_dataset(tmp_path / "absent")
    with pytest.raises(DataError, match="absent: does not exist"):
        detect_format(tmp_path / "absent")
    with pytest.raises(DataError, match="cannot tell the dataset format"):
        load_dataset(tmp_path)
    write(tmp_path / "train.txt", "0 1\n")
    with pytest.raises(DataError, match="test.txt: file not found"):
        load_dataset(tmp_path)


def test_malformed_row_names_file_and_line(tmp_path):
    write(tmp_path / "x.inter", "userID\titemID\tx_label\n0\t0\t0\n0\t1\n")
    with pytest.raises(DataError, match=r"x.inter, line 3: expected 3 fields"):
        load_dataset(tmp_path)


def test_non_integer_id_names_line_and_field(tmp_path):
    write(tmp_path / "x.inter", "userID\titemID\tx_label\n0\t0\t0\n0\tabc\t0\n")
    with pytest.raises(DataError, match=r"line 3, field 'itemID': 'abc' is not an integer"):
        load_dataset(tmp_path)


def test_negative_id(tmp_path):
    write(tmp_path / "train.txt", "0 1 2\n1 -4\n")
    write(tmp_path / "test.txt", "0 3\n")
    with pytest.raises(DataError, match=r"train.txt, line 2, field 'item': negative id -4"):
        load_dataset(tmp_path)


def test_bad_split_label(tmp_path):
    write(tmp_path / "x.inter", "userID\titemID\tx_label\n0\t0\t7\n")
    with pytest.raises(DataError, match=r"line 2, field 'x_label'"):
        load_dataset(tmp_path)


def test_missing_column(tmp_path):
    write(tmp_path / "x.inter", "userID\titem\tx_label\n0\t0\t0\n")
    with pytest.raises(DataError, match="missing column 'itemID'"):
        load_dataset(tmp_path)


def test_feature_rows_must_match_items(tmp_path):
    write(tmp_path / "x.inter", "userID\titemID\tx_label\n0\t0\t0\n0\t1\t0\n1\t2\t0\n1\t0\t2\n")
    np.save(tmp_path / "image_feat.npy", np.ones((2, 4)))
    with pytest.raises(DataError, match=r"image_feat.npy: has 2 rows but x.inter has 3 items"):
        load_dataset(tmp_path)


def test_nan_features(tmp_path):
    write(tmp_path / "x.inter", "userID\titemID\tx_label\n0\t0\t0\n0\t1\t0\n1\t0\t2\n")
    feat = np.ones((2, 3))
    feat[1, 2] = np.nan
    np.save(tmp_path / "text_feat.npy", feat)
    with pytest.raises(DataError, match=r"text_feat.npy: feature matrix has NaN or inf in 1 rows \(first: row 1\)"):
        load_dataset(tmp_path)


def test_empty_train(tmp_path):
    write(tmp_path / "x.inter", "userID\titemID\tx_label\n0\t0\t2\n")
    with pytest.raises(DataError, match="train split is empty"):
        load_dataset(tmp_path)


def test_cold_users_reported_and_dropped(tmp_path):
    write(tmp_path / "train.txt", "0 0 1\n1 1 2\n")
    write(tmp_path / "test.txt", "0 2\n5 0\n")  # user 5 never trains
    d = load_dataset(tmp_path, valid_ratio=0)
    assert d.n_users == 6
    assert d.test.nnz == 1 and d.report["cold_test_dropped"] == 1


def test_invalid_json_names_line(tmp_path):
    write(tmp_path / "train.json", '{"0": [1, 2],\n "1": [3,, 4]}')
    with pytest.raises(DataError, match=r"train.json, line 2: invalid JSON"):
        load_dataset(tmp_path)
