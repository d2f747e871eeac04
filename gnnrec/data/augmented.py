"""LLM-augmented (user, positive, negative) triples on disk: a CSV with the header user,positive,negative.

Written by ``gnnrec augment edges``, read by the data layer for any model (``data.augment.edges``).
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from gnnrec.data.readers.table import read_text
from gnnrec.errors import DataError

HEADER = ["user", "positive", "negative"]


def write_edges(path: Path, triples: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        writer.writerows(triples.tolist())


def read_edges(path: str | Path, n_users: int, n_items: int) -> np.ndarray:
    """(m, 3) int64 triples from an edges CSV, checked against the dataset's id ranges."""
    path = Path(path)
    if not path.is_file():
        raise DataError("augmented edges file not found", path=path)
    reader = csv.reader(io.StringIO(read_text(path), newline=""))  # UTF-8 checked, named
    header = next(reader, None)
    if header != HEADER:
        raise DataError(f"header must be {','.join(HEADER)}, got {header}", path=path, line=1)
    rows = []
    for line, row in enumerate(reader, start=2):
        try:
            u, p, n = (int(x) for x in row)
        except ValueError:
            raise DataError(f"expected three integer ids, got {row}", path=path, line=line) from None
        if not (0 <= u < n_users and 0 <= p < n_items and 0 <= n < n_items):
            raise DataError(f"id out of range for this dataset ({n_users} users, {n_items} items): {row}",
                            path=path, line=line)
        rows.append((u, p, n))
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)
