"""Data-layer settings and bad input found by a new-user trial: modality selection on every source, quoted CSV,
non-UTF-8 files, and messages that name the file actually at fault."""
import numpy as np
import pytest

from gnnrec.data import load_dataset
from gnnrec.data.augmented import read_edges
from gnnrec.data.readers import detect_format
from gnnrec.data.readers.generic import read_generic
from gnnrec.errors import ConfigError, DataError

SYNTHETIC = {"n_users": 300, "n_items": 200, "mean_interactions": 8}


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def mmrec_folder(path, modalities=("image", "text")):
    path.mkdir(exist_ok=True)
    write(path / "x.inter", "userID\titemID\tx_label\n0\t0\t0\n0\t1\t0\n1\t0\t0\n1\t1\t0\n0\t2\t0\n1\t2\t2\n")
    for name in modalities:
        np.save(path / f"{name}_feat.npy", np.ones((3, 4), dtype=np.float32))
    return path


# ---- data.modalities ------------------------------------------------------------------------------
def test_modalities_select_on_synthetic_and_after_feature_folders(tmp_path):
    assert sorted(load_dataset(synthetic=SYNTHETIC, modalities=["image"]).features) == ["image"]
    assert load_dataset(synthetic=SYNTHETIC, modalities=[]).features == {}  # []: no item modality at all
    assert sorted(load_dataset(synthetic=SYNTHETIC).features) == ["image", "text"]  # None: all
    folder = tmp_path / "store"
    folder.mkdir()
    np.save(folder / "video_feat.npy", np.ones((200, 3), dtype=np.float32))
    # a modality that only the feature folder has is selectable: the selection comes after the folders are read
    data = load_dataset(synthetic=SYNTHETIC, feature_dirs=[str(folder)], modalities=["video", "text"])
    assert sorted(data.features) == ["text", "video"]
    data = load_dataset(synthetic=SYNTHETIC, feature_dirs=[str(folder)], modalities=["video", "text"],
                        drop_modalities=["text"])
    assert sorted(data.features) == ["video"]


@pytest.mark.parametrize("source", ["synthetic", "mmrec", "table"])
def test_unknown_modality_is_a_config_error_naming_setting_name_and_choices(tmp_path, source):
    if source == "mmrec":
        kwargs = {"source": str(mmrec_folder(tmp_path / "mm"))}
    elif source == "table":
        write(tmp_path / "pairs.csv", "user,item\n" + "".join(f"u{u},i{i}\n" for u in range(6) for i in range(4)))
        np.save(tmp_path / "image_feat.npy", np.ones((4, 2), dtype=np.float32))
        np.save(tmp_path / "text_feat.npy", np.ones((4, 2), dtype=np.float32))
        kwargs = {"source": str(tmp_path / "pairs.csv"), "feature_dirs": [str(tmp_path)]}
        assert sorted(load_dataset(**kwargs, modalities=["image"]).features) == ["image"]
    else:
        kwargs = {"synthetic": SYNTHETIC}
    with pytest.raises(ConfigError, match=r"data.modalities names \['video'\], not among the item modalities "
                                          r"of .*: \['image', 'text'\]"):
        load_dataset(**kwargs, modalities=["video"])


def test_mmrec_modalities_keep_only_the_named_ones(tmp_path):
    folder = mmrec_folder(tmp_path / "mm")
    assert sorted(load_dataset(folder, modalities=["text"]).features) == ["text"]
    assert load_dataset(folder, modalities=[]).features == {}


def test_feature_files_of_unselected_modalities_are_not_read(tmp_path):
    folder = mmrec_folder(tmp_path / "mm")
    np.save(folder / "audio_feat.npy", np.ones((2, 3), dtype=np.float32))  # wrong row count: unreadable data
    store = tmp_path / "store"
    store.mkdir()
    np.save(store / "video.npy", np.full((2, 2), np.nan, dtype=np.float32))
    data = load_dataset(folder, modalities=["image", "text"], feature_dirs=[str(store)])
    assert sorted(data.features) == ["image", "text"]
    with pytest.raises(DataError, match="audio_feat.npy"):
        load_dataset(folder)
    with pytest.raises(DataError, match="video.npy"):
        load_dataset(folder, modalities=["image", "video"], feature_dirs=[str(store)])


# ---- quoted CSV -----------------------------------------------------------------------------------
def test_quoted_csv_as_r_and_pandas_write_it(tmp_path):
    write(tmp_path / "r.csv", '"user","item","note"\n"u1","i1","a"\n"Smith, u0","i1","said ""hi"""\n'
                              '"u2","i2","two\nlines"\n"u2","i1",""\n')
    d = read_generic(tmp_path / "r.csv")
    assert list(d.user_info["user_id"]) == ["Smith, u0", "u1", "u2"]
    assert list(d.item_info["item_id"]) == ["i1", "i2"]
    pairs = sorted(zip(d.user_info["user_id"][d.users], d.item_info["item_id"][d.items]))
    assert pairs == [("Smith, u0", "i1"), ("u1", "i1"), ("u2", "i1"), ("u2", "i2")]
    write(tmp_path / "t.tsv", 'user\titem\n"a\tb"\t"x"\n')  # TSV quoting too
    d = read_generic(tmp_path / "t.tsv")
    assert list(d.user_info["user_id"]) == ["a\tb"] and list(d.item_info["item_id"]) == ["x"]


def test_unclosed_quote_names_file_and_line(tmp_path):
    write(tmp_path / "q.csv", 'user,item\nu1,i2\n"u3,i4\nu5,i6\n')
    with pytest.raises(DataError, match=r"q.csv, line 3: unclosed quote"):
        read_generic(tmp_path / "q.csv")
    write(tmp_path / "junk.csv", 'user,item\nu1,i2\n"u3"x,i4\n')
    with pytest.raises(DataError, match=r"junk.csv, line 3: malformed quoted field"):
        read_generic(tmp_path / "junk.csv")


def test_wrong_field_count_after_a_multiline_field_names_the_right_line(tmp_path):
    write(tmp_path / "m.csv", 'user,item,note\nu1,i1,"one\ntwo\nthree"\nu2,i2\n')
    with pytest.raises(DataError, match=r"m.csv, line 5: expected 3 fields"):
        read_generic(tmp_path / "m.csv")


def test_unquoted_formats_keep_quotes_literally(tmp_path):
    folder = tmp_path / "mm"
    folder.mkdir()
    write(folder / "x.inter", "userID\titemID\tx_label\n0\t0\t0\n0\t1\t0\n1\t0\t0\n1\t1\t2\n")
    write(folder / "items.tsv", 'itemID\ttitle\n0\t"Weird Al" live\n1\tsay "hi\n')  # gnnrec writes TSV unquoted
    d = load_dataset(folder)
    assert list(d.item_info["title"]) == ['"Weird Al" live', 'say "hi']


def test_byte_order_mark_is_dropped(tmp_path):
    (tmp_path / "bom.csv").write_bytes("\ufeffuser,item\nu1,i1\n".encode("utf-8"))
    assert list(read_generic(tmp_path / "bom.csv").user_info["user_id"]) == ["u1"]


# ---- non-UTF-8 files ------------------------------------------------------------------------------
def test_non_utf8_files_are_data_errors_naming_file_line_and_offset(tmp_path):
    (tmp_path / "l.csv").write_bytes("user,item\nu1,i1\nJos\xe9,i1\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"l.csv, line 3: not UTF-8 text: byte 0xe9 at byte offset 19"):
        read_generic(tmp_path / "l.csv")
    mm = tmp_path / "mm"
    mm.mkdir()
    (mm / "x.inter").write_bytes("userID\titemID\tx_label\xe9\n0\t0\t0\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"x.inter, line 1: not UTF-8 text"):
        detect_format(mm)
    with pytest.raises(DataError, match=r"x.inter, line 1: not UTF-8 text"):
        load_dataset(mm, format="mmrec")
    lattice = tmp_path / "lattice"
    lattice.mkdir()
    (lattice / "train.json").write_bytes(b'{"0": [1],\n "1": [2]} \xff')
    with pytest.raises(DataError, match=r"train.json, line 2: not UTF-8 text"):
        load_dataset(lattice)
    (tmp_path / "edges.csv").write_bytes(b"user,positive,negative\n0,1,\xa02\n")
    with pytest.raises(DataError, match=r"edges.csv, line 2: not UTF-8 text"):
        read_edges(tmp_path / "edges.csv", 3, 3)


# ---- messages that name the right file ------------------------------------------------------------
def test_nan_in_a_feature_file_names_that_file_and_row(tmp_path):
    folder = mmrec_folder(tmp_path / "mm", modalities=("text",))
    feat = np.ones((3, 4), dtype=np.float32)
    feat[2, 1] = np.inf
    np.save(folder / "image_feat.npy", feat)
    with pytest.raises(DataError, match=r"image_feat.npy: feature matrix has NaN or inf in 1 rows \(first: row 2\)"):
        load_dataset(folder)
    store = tmp_path / "store"
    store.mkdir()
    np.save(store / "video.npy", np.full((200, 2), np.nan, dtype=np.float32))
    with pytest.raises(DataError, match=r"video.npy: feature matrix has NaN or inf in 200 rows"):
        load_dataset(synthetic=SYNTHETIC, feature_dirs=[str(store)])


def test_invalid_npy_files_say_what_is_wrong(tmp_path):
    folder = mmrec_folder(tmp_path / "mm", modalities=("image",))
    (folder / "text_feat.npy").write_bytes(b"garbage, not an array")
    with pytest.raises(DataError, match=r"text_feat.npy: not a valid .npy array file"):
        load_dataset(folder)
    np.save(folder / "text_feat.npy", np.array([[{"a": 1}]] * 3, dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"text_feat.npy: cannot read feature matrix: it holds Python objects"):
        load_dataset(folder)


@pytest.mark.parametrize("fmt", ["auto", "table", "mmrec", "pickle", "lattice", "lightgcn"])
def test_missing_source_says_it_does_not_exist(tmp_path, fmt):
    with pytest.raises(DataError, match=r"pairs.csv: data.source does not exist: no such file or folder"):
        load_dataset(str(tmp_path / "pairs.csv"), format=fmt)
