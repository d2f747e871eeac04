"""Generic interaction files (``data.format: table``): CSV, TSV, whitespace-separated text or Parquet, one file or
a folder of them, with the user/item (and optional timestamp, rating, split, weight) columns named by settings.

Ids of any type (strings, 1-based or sparse integers) are re-indexed densely; the original ids stay in
``user_info["user_id"]`` / ``item_info["item_id"]``. With a split column the result is a split ``RecDataset``,
otherwise an unsplit ``Interactions`` log that ``load_dataset`` k-cores and splits.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gnnrec.data.dataset import RecDataset, interactions_to_csr
from gnnrec.data.readers.recbole import tokens_to_ids
from gnnrec.data.readers.table import read_rows, require_file, to_floats
from gnnrec.data.split import Interactions
from gnnrec.errors import ConfigError, DataError

SUFFIXES = (".csv", ".tsv", ".parquet", ".txt")  # files of a folder that are read
AUTO_SUFFIXES = (".csv", ".tsv", ".parquet")  # a single file that `data.format: auto` takes as a table
ROLES = ("user", "item", "timestamp", "rating", "split", "weight")
DEFAULT_COLUMNS = {"user": "user", "item": "item", "timestamp": None, "rating": None, "split": None, "weight": None}
SPLIT_VALUES = {"train": 0, "0": 0, "valid": 1, "validation": 1, "val": 1, "1": 1, "test": 2, "2": 2}
SEPARATORS = {"tab": "\t", "\\t": "\t", "comma": ",", "space": None, "whitespace": None, "auto": "auto"}


def separator_for(path: Path, separator: str | None) -> str | None:
    """The field separator: given, or from the extension (.csv comma, .tsv tab, else any whitespace)."""
    sep = SEPARATORS.get(separator, separator) if separator is not None else "auto"
    if sep != "auto":
        return sep
    return {".csv": ",", ".tsv": "\t"}.get(path.suffix.lower())


def table_files(source: Path) -> list[Path]:
    source = Path(source)
    if source.is_file():
        return [source]
    if not source.exists():
        raise DataError("dataset file or folder not found", path=source)
    files = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
    if not files:
        raise DataError(f"no interaction files ({', '.join(SUFFIXES)}) in this folder", path=source)
    return files


def resolve_columns(columns: dict | None, header: bool) -> dict:
    cols = {**DEFAULT_COLUMNS, **(columns or {})}
    unknown = sorted(set(cols) - set(ROLES))
    if unknown:
        raise ConfigError(f"data.columns: unknown role(s) {unknown}; expected {list(ROLES)}")
    if not header:  # no names to match: the default user/item columns are the first two fields
        if cols["user"] == "user":
            cols["user"] = 0
        if cols["item"] == "item":
            cols["item"] = 1
        named = {r: c for r, c in cols.items() if isinstance(c, str)}
        if named:
            raise ConfigError(f"data.header is false, so data.columns must be 0-based positions; got names {named}")
    return {r: c for r, c in cols.items() if c is not None}


def read_parquet(path: Path) -> tuple[list[str], list[np.ndarray]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        try:
            import pandas as pd
        except ImportError:
            raise DataError("reading Parquet needs pyarrow or pandas (pip install pyarrow), neither is installed",
                            path=path) from None
        frame = pd.read_parquet(path)
        return [str(c) for c in frame.columns], [frame[c].to_numpy() for c in frame.columns]
    table = pq.read_table(path)
    return list(table.column_names), [table.column(i).to_numpy(zero_copy_only=False)
                                      for i in range(table.num_columns)]


def read_fields(path: Path, separator: str | None, header: bool) -> tuple[list[str] | None, list, int]:
    """Columns of one file as arrays of strings: (header, columns, line number of the first row)."""
    if path.suffix.lower() == ".parquet":
        head, cols = read_parquet(path)
        return head, [np.asarray(c).astype(str).astype(object) for c in cols], 1  # "line" = row number
    sep = separator_for(path, separator)
    head, rows, first = read_rows(path, sep, header, quoted=True)
    if head is None and rows:  # read_rows checks widths against a header; without one, against the first row
        widths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        bad = np.flatnonzero(widths != widths[0])
        if len(bad):
            i = int(bad[0])
            raise DataError(f"expected {widths[0]} fields (as on line {first}), found {widths[i]}: "
                            f"{(sep or ' ').join(rows[i])!r}", path=path, line=first + i)
    width = len(head) if head is not None else (len(rows[0]) if rows else 0)
    cols = [np.char.strip(np.asarray(c, dtype=str)).astype(object) for c in zip(*rows)] if rows else \
        [np.zeros(0, dtype=object) for _ in range(width)]
    return head, cols, first


def pick_columns(path: Path, head, cols, wanted: dict) -> dict[str, np.ndarray]:
    picked = {}
    for role, col in wanted.items():
        if isinstance(col, int) and not isinstance(col, bool):
            if not 0 <= col < len(cols):
                raise DataError(f"data.columns.{role} is position {col}, but rows have {len(cols)} fields",
                                path=path, line=1, field=role)
            picked[role] = cols[col]
        else:
            if head is None or str(col) not in head:
                hint = "" if head is None else " (a file without a header line needs data.header=false)"
                raise DataError(f"missing column '{col}' (data.columns.{role}) in header {head}{hint}",
                                path=path, line=1, field=str(col))
            picked[role] = cols[head.index(str(col))]
    return picked


def split_labels(values: np.ndarray, path: Path, first: int, field: str) -> np.ndarray:
    uniq, inverse = np.unique(np.char.lower(np.char.strip(values.astype(str))), return_inverse=True)
    codes = np.array([SPLIT_VALUES.get(u, -1) for u in uniq], dtype=np.int64)
    labels = codes[inverse]
    bad = np.flatnonzero(labels < 0)
    if len(bad):
        i = int(bad[0])
        raise DataError(f"split value '{values[i]}' is not train/valid/test or 0/1/2", path=path, line=first + i,
                        field=field)
    return labels


def read_file(path: Path, wanted: dict, separator, header: bool, rating_threshold) -> dict[str, np.ndarray]:
    head, cols, first = read_fields(require_file(path), separator, header)
    picked = pick_columns(path, head, cols, wanted)
    out = {}
    for role in ("user", "item"):
        empty = np.flatnonzero(picked[role].astype(str) == "")
        if len(empty):
            raise DataError("empty id", path=path, line=first + int(empty[0]), field=str(wanted[role]))
        out[role] = picked[role]
    for role in ("timestamp", "rating", "weight"):
        if role in picked:
            out[role] = to_floats(picked[role], path, str(wanted[role]), first)
    if "split" in picked:
        out["split"] = split_labels(picked["split"], path, first, str(wanted["split"]))
    if rating_threshold is not None:
        keep = out["rating"] >= rating_threshold
        out = {k: v[keep] for k, v in out.items()}
    return out


def file_splits(files: list[Path], split_files: dict | None) -> list[int] | None:
    """Per file, 0/1/2 (train/valid/test) from ``data.split_files`` ({valid: [names], test: [names]})."""
    if not split_files:
        return None
    names = {p.name for p in files}
    unknown = sorted({f for group in split_files.values() for f in group} - names)
    if unknown:
        raise ConfigError(f"data.split_files names {unknown}, not among the files read: {sorted(names)}")
    label = {f: (1 if kind == "valid" else 2) for kind, group in split_files.items() for f in group}
    return [label.get(p.name, 0) for p in files]


def read_generic(source: Path, columns: dict | None = None, header: bool = True, separator: str | None = None,
                 rating_threshold: float | None = None, split_files: dict | None = None) -> Interactions | RecDataset:
    source = Path(source)
    wanted = resolve_columns(columns, header)
    if rating_threshold is not None and "rating" not in wanted:
        raise ConfigError("data.rating_threshold needs a rating column: set data.columns.rating")
    files = table_files(source)
    parts = [read_file(p, wanted, separator, header, rating_threshold) for p in files]
    labels = file_splits(files, split_files)
    if labels is not None:
        if "split" in wanted:
            raise ConfigError("give data.columns.split or data.split_files, not both")
        for part, label in zip(parts, labels):
            part["split"] = np.full(len(part["user"]), label, dtype=np.int8)
    data = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    if len(data["user"]) == 0:
        raise DataError("no interactions" + (" at or above data.rating_threshold" if rating_threshold is not None
                                             else ""), path=source)
    users, user_vocab = tokens_to_ids(data["user"])
    items, item_vocab = tokens_to_ids(data["item"])
    name = source.stem if source.is_file() else source.name
    item_info = {"item_id": item_vocab.astype(object)}
    user_info = {"user_id": user_vocab.astype(object)}
    if "split" not in data:
        return Interactions(name, users, items, len(user_vocab), len(item_vocab), data.get("timestamp"),
                            item_info, user_info, source=str(source))
    shape = (len(user_vocab), len(item_vocab))
    mats = [interactions_to_csr(users[data["split"] == k], items[data["split"] == k], shape) for k in range(3)]
    return RecDataset(name, *mats, item_info=item_info, user_info=user_info, source=str(source))
