"""Line-numbered parsing of delimited text files, shared by the readers."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gnnrec.errors import DataError


def require_file(path: Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path=path)
    return path


def read_rows(path: Path, sep: str | None, header: bool) -> tuple[list[str] | None, list[list[str]], int]:
    """Split a text file into rows of fields; returns (header, rows, line number of the first row).

    Blank lines are an error when they sit between data rows, except at the end of the file.
    """
    path = require_file(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    head = None
    first = 1
    if header:
        if not lines:
            raise DataError("empty file, expected a header line", path=path, line=1)
        head = [h.strip() for h in lines[0].split(sep)]
        lines = lines[1:]
        first = 2
    rows = [line.split(sep) for line in lines]
    if head is not None:
        widths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        bad = np.flatnonzero(widths != len(head))
        if len(bad):
            i = int(bad[0])
            raise DataError(f"expected {len(head)} fields ({', '.join(head)}), found {widths[i]}: {lines[i]!r}",
                            path=path, line=first + i)
    return head, rows, first


def line_at(i: int, first_line: int | None, lines) -> int | None:
    if lines is not None:
        return int(lines[i])
    return None if first_line is None else first_line + i


def to_ids(values, path: Path, field: str, first_line: int | None, lines=None) -> np.ndarray:
    """Convert strings to non-negative int64 ids, naming the first offending line (if the format has lines)."""
    arr = np.asarray(values, dtype=object)
    try:
        ids = arr.astype(np.int64) if len(arr) else np.zeros(0, np.int64)
    except (ValueError, TypeError):
        for i, value in enumerate(arr):
            try:
                int(value)
            except (ValueError, TypeError):
                raise DataError(f"'{str(value).strip()}' is not an integer id", path=path,
                                line=line_at(i, first_line, lines),
                                field=field) from None
        raise
    neg = np.flatnonzero(ids < 0)
    if len(neg):
        i = int(neg[0])
        raise DataError(f"negative id {ids[i]}", path=path, line=line_at(i, first_line, lines), field=field)
    return ids


def to_floats(values, path: Path, field: str, first_line: int) -> np.ndarray:
    arr = np.asarray(values, dtype=object)
    try:
        return arr.astype(np.float64) if len(arr) else np.zeros(0)
    except (ValueError, TypeError):
        for i, value in enumerate(arr):
            try:
                float(value)
            except (ValueError, TypeError):
                raise DataError(f"'{str(value).strip()}' is not a number", path=path, line=first_line + i,
                                field=field) from None
        raise
