"""Amazon reviews in the three public layouts: 2014 (``reviews_<Cat>_5.json.gz`` + ``meta_<Cat>.json.gz``,
metadata as Python literals), 2018 (same names, JSON, list-valued fields) and 2023 (``<Cat>.jsonl(.gz)`` +
``meta_<Cat>.jsonl(.gz)``, items by ``parent_asin``, millisecond timestamps). The layout is detected per line.

Items get the metadata MMRec's text template uses (title, brand, categories, description) and their image
address; items without metadata keep empty fields and are counted."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gnnrec.data.ingest.records import read_records

META_FIELDS = ("title", "brand", "categories", "description", "image_url")


def review_row(r: dict) -> tuple[str, str, float, float]:
    if "user_id" in r:  # 2023
        item = r.get("parent_asin") or r["asin"]
        return str(r["user_id"]), str(item), float(r.get("rating", 0)), float(r.get("timestamp", 0)) / 1000.0
    return str(r["reviewerID"]), str(r["asin"]), float(r.get("overall", 0)), float(r.get("unixReviewTime", 0))


def flat(value) -> str:
    """Lists (of lists) of strings, as the 2014/2018/2023 files store categories and descriptions, as text."""
    def leaves(v):
        if isinstance(v, (list, tuple)):
            for x in v:
                yield from leaves(x)
        elif v is not None:
            yield " ".join(str(v).split())

    return ", ".join(dict.fromkeys(p for p in leaves(value) if p))  # each distinct part once, in order


def first_image(r: dict) -> str:
    if r.get("imUrl"):  # 2014
        return str(r["imUrl"])
    for key in ("imageURLHighRes", "imageURL"):  # 2018
        if r.get(key):
            return str(r[key][0])
    for image in r.get("images") or []:  # 2023
        if isinstance(image, dict):
            url = image.get("hi_res") or image.get("large")
            if url:
                return str(url)
    return ""


def meta_row(r: dict) -> tuple[str, dict]:
    item = r.get("parent_asin") or r.get("asin")
    if not item:
        raise ValueError("no asin or parent_asin")
    categories = r.get("categories", r.get("category"))
    return str(item), {"title": flat(r.get("title")), "brand": flat(r.get("brand") or r.get("store")),
                       "categories": flat(categories), "description": flat(r.get("description")),
                       "image_url": first_image(r)}


def read_amazon(reviews: Path, meta: Path | None = None, strict: bool = False) -> tuple[dict, dict]:
    """``(columns, report)``: user/item tokens, ratings and timestamps, plus item metadata by item token."""
    rows, review_report = read_records(reviews, (), pick=lambda r: review_row(r), strict=strict)
    users, items, ratings, times = (list(c) for c in zip(*rows)) if rows else ([], [], [], [])
    columns = {"user": np.asarray(users, dtype=object), "item": np.asarray(items, dtype=object),
               "rating": np.asarray(ratings, dtype=np.float64), "timestamp": np.asarray(times, dtype=np.float64),
               "meta": {}}
    report = {"reviews": review_report.__dict__}
    if meta is not None:
        metas, meta_report = read_records(meta, (), pick=meta_row, strict=strict)
        columns["meta"] = dict(metas)
        report["meta"] = meta_report.__dict__
    return columns, report
