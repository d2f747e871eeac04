"""Pickled scipy matrices (users x items) as used by GTE, DiffMM, LATTICE-family repositories.

Accepted names: ``trnMat.pkl``/``valMat.pkl``/``tstMat.pkl`` and ``train_mat.pkl``/``valid_mat.pkl``/``test_mat.pkl``.
Only open pickles you trust: unpickling runs code.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from gnnrec.data.dataset import RecDataset, interactions_to_csr
from gnnrec.data.readers.features import load_features
from gnnrec.errors import DataError

NAMES = {
    "train": ("trnMat.pkl", "train_mat.pkl"),
    "valid": ("valMat.pkl", "valid_mat.pkl", "val_mat.pkl"),
    "test": ("tstMat.pkl", "test_mat.pkl"),
}


def find_pickle(folder: Path, split: str) -> Path | None:
    for name in NAMES[split]:
        if (folder / name).is_file():
            return folder / name
    return None


def load_matrix(path: Path) -> sp.coo_matrix:
    try:
        with open(path, "rb") as fh:
            obj = pickle.load(fh)
    except Exception as exc:  # a broken pickle can raise almost anything
        raise DataError(f"cannot unpickle: {exc}", path=path) from None
    if not sp.issparse(obj):
        raise DataError(f"expected a pickled scipy.sparse matrix, got {type(obj).__name__}", path=path)
    coo = sp.coo_matrix(obj)
    if coo.nnz and not np.isfinite(coo.data).all():
        raise DataError("matrix has NaN or inf values", path=path)
    return coo


def read_pickled(folder: Path, modalities: list[str] | None = None) -> RecDataset:
    folder = Path(folder)
    paths = {s: find_pickle(folder, s) for s in NAMES}
    if paths["train"] is None:
        raise DataError(f"no train matrix ({' or '.join(NAMES['train'])})", path=folder)
    mats = {s: load_matrix(p) for s, p in paths.items() if p is not None}
    shape = (max(m.shape[0] for m in mats.values()), max(m.shape[1] for m in mats.values()))
    splits = []
    for s in NAMES:
        m = mats.get(s)
        keep = m.data != 0 if m is not None else None
        splits.append(interactions_to_csr(m.row[keep], m.col[keep], shape) if m is not None
                      else sp.csr_matrix(shape, dtype=np.float32))
    return RecDataset(folder.name, *splits, features=load_features(folder, modalities), source=str(folder))
