"""Raw-data ingestion: Amazon 2014/2018/2023 and MicroLens layouts, malformed lines, duplicates, missing
metadata and covers, and the MMRec folder read back by gnnrec."""
import gzip
import json

import numpy as np
import pytest

from gnnrec.cli import main
from gnnrec.data import load_dataset
from gnnrec.data.ingest import ingest_amazon, ingest_microlens
from gnnrec.errors import DataError

USERS, ITEMS = [f"U{u}" for u in range(6)], [f"B00{i}" for i in range(5)]


def pairs():
    """Every user reviews items 0-3 (plus item 4 for two users), one review per day."""
    out = [(u, ITEMS[i], 1_400_000_000 + 86400 * (k * 10 + i)) for k, u in enumerate(USERS) for i in range(4)]
    return out + [(USERS[0], ITEMS[4], 1_500_000_000), (USERS[1], ITEMS[4], 1_500_000_000)]


def write_lines(path, lines):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


def amazon_2014(tmp_path):
    reviews = [json.dumps({"reviewerID": u, "asin": a, "overall": 5.0, "unixReviewTime": t, "reviewText": "ok"})
               for u, a, t in pairs()]
    reviews.insert(3, '{"reviewerID": "U9", "asin": ')  # cut-off line
    reviews.insert(5, json.dumps({"asin": "B001", "overall": 4.0}))  # no reviewer
    reviews.append(json.dumps({"reviewerID": "U0", "asin": "B000", "overall": 1.0, "unixReviewTime": 1_600_000_000}))
    meta = [repr({"asin": a, "title": f"Toy {a}", "brand": "Acme", "categories": [["Toys", "Blocks"], ["Toys"]],
                  "description": "Fun.\tBlocks", "imUrl": f"http://img/{a}.jpg"}) for a in ITEMS[:4]]
    write_lines(tmp_path / "reviews_Toys_5.json.gz", reviews)
    write_lines(tmp_path / "meta_Toys.json.gz", meta)
    return tmp_path / "reviews_Toys_5.json.gz", tmp_path / "meta_Toys.json.gz"


def test_amazon_2014_layout_round_trip(tmp_path):
    reviews, meta = amazon_2014(tmp_path)
    report = ingest_amazon(reviews, tmp_path / "out", meta, kcore=2)
    assert report["reviews"]["bad"] == 2 and "line 4" in report["reviews"]["first_bad"][0]
    assert report["duplicates_dropped"] == 1 and report["items_without_metadata"] == 1
    assert report["users"] == 6 and report["items"] == 5 and report["interactions"] == 26
    data = load_dataset(str(tmp_path / "out"), valid_ratio=0.0)
    assert data.name == "Toys" and data.stats()["interactions"] == 26
    assert data.valid.nnz + data.test.nnz == report["valid"] + report["test"] > 0
    titles = list(data.item_info["title"])
    assert titles[:4] == ["Toy B000", "Toy B001", "Toy B002", "Toy B003"] and titles[4] == ""
    assert data.item_info["categories"][0] == "Toys, Blocks" and data.item_info["description"][0] == "Fun. Blocks"
    assert data.item_info["image_url"][1] == "http://img/B001.jpg"
    inter = (tmp_path / "out" / "Toys.inter").read_text().splitlines()
    assert inter[0].split("\t") == ["userID", "itemID", "timestamp", "x_label"]
    row = next(r.split("\t") for r in inter[1:] if r.startswith("0\t0\t"))
    assert row[2] == "1600000000"  # the duplicate review kept its latest version
    mapping = (tmp_path / "out" / "i_id_mapping.csv").read_text().splitlines()
    assert mapping[:2] == ["token\titemID", "B000\t0"]


def test_amazon_strict_mode_names_the_line(tmp_path):
    reviews, meta = amazon_2014(tmp_path)
    with pytest.raises(DataError, match="line 4"):
        ingest_amazon(reviews, tmp_path / "out", meta, kcore=2, strict=True)


def test_amazon_2018_and_2023_layouts(tmp_path):
    r2018 = [json.dumps({"reviewerID": u, "asin": a, "overall": 3.0, "unixReviewTime": t}) for u, a, t in pairs()]
    m2018 = [json.dumps({"asin": a, "title": f"T{a}", "brand": "B", "category": ["Beauty", "Skin"],
                         "description": ["Soft", "cream"], "imageURLHighRes": [f"http://hi/{a}.jpg"]}) for a in ITEMS]
    write_lines(tmp_path / "reviews_Beauty_5.json", r2018)
    write_lines(tmp_path / "meta_Beauty.json", m2018)
    report = ingest_amazon(tmp_path / "reviews_Beauty_5.json", tmp_path / "o18", tmp_path / "meta_Beauty.json", kcore=2)
    data = load_dataset(str(tmp_path / "o18"), valid_ratio=0.0)
    assert report["reviews"]["bad"] == 0 and data.item_info["categories"][0] == "Beauty, Skin"
    assert data.item_info["description"][0] == "Soft, cream" and data.item_info["image_url"][0] == "http://hi/B000.jpg"

    r2023 = [json.dumps({"user_id": u, "asin": a + "-v", "parent_asin": a, "rating": 5.0, "timestamp": t * 1000,
                         "text": "", "images": []}) for u, a, t in pairs()]
    m2023 = [json.dumps({"parent_asin": a, "title": f"N{a}", "store": "Shop", "categories": [],
                         "description": [], "images": [{"thumb": "t", "large": f"http://l/{a}.jpg", "hi_res": None}]})
             for a in ITEMS]
    write_lines(tmp_path / "All_Beauty.jsonl.gz", r2023)
    write_lines(tmp_path / "meta_All_Beauty.jsonl.gz", m2023)
    assert main(["data", "ingest", "amazon", str(tmp_path / "All_Beauty.jsonl.gz"), "--meta",
                 str(tmp_path / "meta_All_Beauty.jsonl.gz"), "--out", str(tmp_path / "o23"), "--kcore", "2"]) == 0
    data = load_dataset(str(tmp_path / "o23"), valid_ratio=0.0)
    assert data.name == "All_Beauty" and data.n_items == 5
    assert data.item_info["brand"][2] == "Shop" and data.item_info["image_url"][2] == "http://l/B002.jpg"
    inter = (tmp_path / "o23" / "All_Beauty.inter").read_text().splitlines()
    assert inter[1].split("\t")[2] == str(pairs()[0][2])  # milliseconds -> seconds


def microlens_folder(tmp_path, bad_line=False):
    from PIL import Image

    folder = tmp_path / "MicroLens-100k"
    (folder / "covers").mkdir(parents=True)
    lines = ["user,item,timestamp"] + [f"{u},{10 + i},{1_600_000_000 + 60 * (u * 7 + i)}"
                                       for u in range(1, 6) for i in range(4)]
    if bad_line:
        lines.insert(3, "2,abc,1600000000")
    (folder / "MicroLens-100k_pairs.csv").write_text("\n".join(lines) + "\n")
    (folder / "MicroLens-100k_title_en.csv").write_text("10, A cat, on a sofa\n11, Dance\n12, Cooking\n13, Travel\n")
    for item in (10, 11, 12):
        Image.new("RGB", (8, 8)).save(folder / "covers" / f"{item}.jpg")
    return folder


def test_microlens_layout(tmp_path):
    folder = microlens_folder(tmp_path)
    report = ingest_microlens(folder, tmp_path / "out")
    assert report["covers_missing"] == 1 and report["users"] == 5 and report["items"] == 4
    data = load_dataset(str(tmp_path / "out"), valid_ratio=0.0)
    assert list(data.item_info["title"]) == ["A cat, on a sofa", "Dance", "Cooking", "Travel"]
    assert data.item_info["cover"][0] == "covers/10.jpg" and data.item_info["cover"][3] == ""
    assert data.train.nnz + data.valid.nnz + data.test.nnz == 20
    with pytest.raises(DataError, match="line 4"):
        ingest_microlens(microlens_folder(tmp_path / "bad", bad_line=True), tmp_path / "out2")


def test_real_microlens_titles_feed_ingestion_metadata():
    from tests.conftest import shared_dataset
    from gnnrec.data.readers.items import read_item_texts

    ids, texts = read_item_texts(shared_dataset("microlens-100k") / "MicroLens-100k_title_en.csv")
    assert len(ids) == 19738 and np.all(np.diff(ids) > 0) and all(isinstance(t, str) for t in texts)


def test_review_lines_that_are_not_utf8_are_bad_lines_and_a_cut_gzip_is_a_clear_error(tmp_path):
    import gzip

    from gnnrec.data.ingest.records import read_records
    from gnnrec.errors import DataError

    good = [json.dumps({"reviewerID": f"u{i}", "asin": "a1"}).encode() for i in range(3)]
    latin = '{"reviewerID": "Andr\xe9", "asin": "a1"}'.encode("latin-1")
    path = tmp_path / "r.json.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(b"\n".join([good[0], latin, good[1], good[2]]) + b"\n")
    pick = lambda r: (r["reviewerID"], r["asin"])  # noqa: E731
    rows, report = read_records(path, ("reviewerID", "asin"), pick)
    assert rows == [("u0", "a1"), ("u1", "a1"), ("u2", "a1")] and report.bad == 1 and report.lines == 4
    assert "line 2: not UTF-8 text (byte 0xe9" in report.first_bad[0]
    with pytest.raises(DataError, match="line 2: not UTF-8"):
        read_records(path, ("reviewerID", "asin"), pick, strict=True)
    cut = tmp_path / "cut.json.gz"
    cut.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(DataError, match="not a readable gzip file"):
        read_records(cut, ("reviewerID", "asin"), pick)
