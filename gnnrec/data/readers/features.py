"""Item feature matrices stored as ``.npy`` files, one row per item id."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gnnrec.data.dataset import nonfinite_rows
from gnnrec.errors import DataError


def modality_name(path: Path) -> str:
    """``image_feat.npy`` -> ``image``; ``clip-text.npy`` -> ``clip-text``."""
    stem = Path(path).stem
    return stem[: -len("_feat")] if stem.endswith("_feat") else stem


NPY_MAGIC = b"\x93NUMPY"  # the first bytes of every file numpy.save writes


def load_feature(path: Path) -> np.ndarray:
    """One feature matrix, checked here where the file is known: a valid .npy, 2-D, numeric, finite."""
    with open(path, "rb") as fh:
        if fh.read(len(NPY_MAGIC)) != NPY_MAGIC:  # np.load would call it "pickled (object) data"
            raise DataError("not a valid .npy array file (no NumPy header): write feature matrices with "
                            "numpy.save", path=path)
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:
        reason = "it holds Python objects, not numbers" if "Object arrays" in str(exc) else str(exc)
        raise DataError(f"cannot read feature matrix: {reason}", path=path) from None
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read feature matrix (truncated or corrupt .npy file?): {exc}", path=path) from None
    if arr.ndim != 2:
        raise DataError(f"feature matrix must be 2-D (items x dim), got shape {arr.shape}", path=path)
    if not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"feature matrix has non-numeric dtype {arr.dtype}", path=path)
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    rows = nonfinite_rows(arr)
    if len(rows):
        raise DataError(f"feature matrix has NaN or inf in {len(rows)} rows (first: row {rows[0]})", path=path)
    return arr


def feature_path(folder: Path, name: str) -> Path:
    """The file a modality was read from (``<name>_feat.npy`` or ``<name>.npy``)."""
    for candidate in (Path(folder) / f"{name}_feat.npy", Path(folder) / f"{name}.npy"):
        if candidate.is_file():
            return candidate
    return Path(folder) / f"{name}_feat.npy"


def feature_files(folder: Path) -> dict[str, Path]:
    """The folder's feature files by modality name (``*.npy``), without reading them."""
    return {modality_name(p): p for p in sorted(Path(folder).glob("*.npy"))}


def load_features(folder: Path, only: list[str] | None = None) -> dict[str, np.ndarray]:
    """Every ``*.npy`` in ``folder`` keyed by modality name; with ``only``, just those of the named modalities
    that the folder has (the others are not read at all: a large unselected table costs nothing; whether a
    named modality exists anywhere is the caller's check, ``gnnrec.data.select_modalities``)."""
    files = feature_files(folder)
    if only is not None:
        files = {n: p for n, p in files.items() if n in only}
    return {name: load_feature(path) for name, path in files.items()}
