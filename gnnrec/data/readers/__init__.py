"""Readers for the dataset formats users have, and ``detect_format`` to pick one from a folder's files."""
from __future__ import annotations

from pathlib import Path

from gnnrec.data.readers.generic import AUTO_SUFFIXES, SUFFIXES as TABLE_SUFFIXES, read_generic
from gnnrec.data.readers.lattice import read_lattice
from gnnrec.data.readers.lightgcn import read_lightgcn
from gnnrec.data.readers.mmrec import find_inter_file, read_mmrec
from gnnrec.data.readers.pickled import NAMES as PICKLE_NAMES, read_pickled
from gnnrec.data.readers.recbole import read_recbole
from gnnrec.data.readers.table import decode_utf8
from gnnrec.errors import DataError

READERS = {
    "mmrec": read_mmrec,
    "lightgcn": read_lightgcn,
    "pickle": read_pickled,
    "lattice": read_lattice,
    "recbole": read_recbole,
    "table": read_generic,
}


def inter_kind(path: Path) -> str:
    with open(path, "rb") as fh:
        header = decode_utf8(fh.readline(), path)
    return "recbole" if ":token" in header or ":float" in header else "mmrec"


def detect_format(folder: Path, name: str | None = None) -> str:
    """The format of a dataset folder, or of a single file (``.inter``; ``.csv``/``.tsv``/``.parquet``: table)."""
    folder = Path(folder)
    if not folder.exists():
        raise DataError("does not exist: no such file or folder", path=folder)
    if folder.is_file():
        if folder.suffix == ".inter":
            return inter_kind(folder)
        if folder.suffix.lower() in AUTO_SUFFIXES:
            return "table"
        raise DataError("cannot tell the format of this file: set data.format (table reads any delimited "
                        "interaction file)", path=folder)
    inter = sorted(folder.glob("*.inter"))
    if inter:
        return inter_kind(find_inter_file(folder, name) if name is not None else inter[0])
    if (folder / "train.txt").is_file():
        return "lightgcn"
    if (folder / "train.json").is_file():
        return "lattice"
    if any((folder / n).is_file() for n in PICKLE_NAMES["train"]):
        return "pickle"
    if any(p.suffix.lower() in AUTO_SUFFIXES for p in folder.iterdir()):
        return "table"
    raise DataError("cannot tell the dataset format: expected a .inter file (MMRec or RecBole), train.txt "
                    "(LightGCN), train.json (LATTICE), trnMat.pkl/train_mat.pkl, or .csv/.tsv/.parquet "
                    f"interaction files (other text files: data.format=table, readable: {', '.join(TABLE_SUFFIXES)})",
                    path=folder)
