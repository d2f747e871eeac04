"""Ingestion of raw public datasets into MMRec-format folders: Amazon reviews (2014/2018/2023) and MicroLens."""
from __future__ import annotations

from pathlib import Path

from gnnrec.data.ingest.amazon import META_FIELDS, read_amazon
from gnnrec.data.ingest.microlens import read_microlens
from gnnrec.data.ingest.writer import build_interactions, write_mmrec


def ingest_amazon(reviews: Path, out: Path, meta: Path | None = None, name: str | None = None, kcore: int | None = 5,
                  strict: bool = False, seed: int = 999) -> dict:
    columns, report = read_amazon(reviews, meta, strict)
    name = name or Path(reviews).name.split(".")[0].removeprefix("reviews_").removesuffix("_5")
    data, counts = build_interactions(name, columns["user"], columns["item"], columns["timestamp"],
                                      columns["meta"] if meta is not None else None, META_FIELDS, str(reviews))
    return write_mmrec(data, out, kcore, seed, report={**report, **counts})


def ingest_microlens(folder: Path, out: Path, name: str | None = None, kcore: int | None = None,
                     seed: int = 999) -> dict:
    columns = read_microlens(folder)
    name = name or Path(folder).name
    data, counts = build_interactions(name, columns["user"], columns["item"], columns["timestamp"], columns["meta"],
                                      ("title", "cover"), str(folder))
    return write_mmrec(data, out, kcore, seed, report={**columns["report"], **counts})


__all__ = ["ingest_amazon", "ingest_microlens"]
