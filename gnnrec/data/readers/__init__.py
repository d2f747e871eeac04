"""Readers for the dataset formats users have, and ``detect_format`` to pick one from a folder's files."""
from __future__ import annotations

from pathlib import Path

from gnnrec.data.readers.lattice import read_lattice
from gnnrec.data.readers.lightgcn import read_lightgcn
from gnnrec.data.readers.mmrec import read_mmrec
from gnnrec.data.readers.pickled import NAMES as PICKLE_NAMES, read_pickled
from gnnrec.data.readers.recbole import read_recbole
from gnnrec.errors import DataError

READERS = {
    "mmrec": read_mmrec,
    "lightgcn": read_lightgcn,
    "pickle": read_pickled,
    "lattice": read_lattice,
    "recbole": read_recbole,
}


def detect_format(folder: Path) -> str:
    folder = Path(folder)
    if not folder.exists():
        raise DataError("dataset folder not found", path=folder)
    if not folder.is_dir():
        raise DataError("expected a dataset folder", path=folder)
    inter = sorted(folder.glob("*.inter"))
    if inter:
        header = inter[0].open(encoding="utf-8").readline()
        return "recbole" if ":token" in header or ":float" in header else "mmrec"
    if (folder / "train.txt").is_file():
        return "lightgcn"
    if (folder / "train.json").is_file():
        return "lattice"
    if any((folder / n).is_file() for n in PICKLE_NAMES["train"]):
        return "pickle"
    raise DataError("cannot tell the dataset format: expected a .inter file (MMRec or RecBole), train.txt "
                    "(LightGCN), train.json (LATTICE) or trnMat.pkl/train_mat.pkl", path=folder)
