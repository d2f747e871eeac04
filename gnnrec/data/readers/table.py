"""Line-numbered parsing of delimited text files, shared by the readers."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from gnnrec.errors import DataError


def require_file(path: Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path=path)
    return path


def decode_utf8(data: bytes, path: Path) -> str:
    """``data`` as text; bytes that are not UTF-8 are a DataError naming the file, line and byte offset
    (a UTF-8 byte-order mark, as Excel writes it, is dropped)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text: byte 0x{data[exc.start]:02x} at byte offset {exc.start} is not valid "
                        "UTF-8; save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)",
                        path=path, line=data.count(b"\n", 0, exc.start) + 1) from None
    return text[1:] if text.startswith("\ufeff") else text


def read_text(path: Path) -> str:
    """A whole text file, which must be UTF-8."""
    path = require_file(path)
    return decode_utf8(path.read_bytes(), path)


def split_quoted(text: str, sep: str, path: Path) -> list[list[str]]:
    """Rows of standard CSV (RFC 4180 quoting: ``"a, b"``, ``""`` for a quote, line breaks inside quotes);
    a quote left open, or text right after a closing quote, is a DataError naming the record's first line."""
    try:
        return list(csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True))
    except csv.Error as exc:
        start = record_line(text, sep)
        if "unexpected end of data" in str(exc):
            raise DataError("unclosed quote: the field starting with \" here has no closing quote (it would run "
                            "to the end of the file)", path=path, line=start) from None
        raise DataError(f"malformed quoted field ({exc}): a field that starts with a quote must end with one, "
                        "and a quote inside it is written twice (\"\"); quote the whole field",
                        path=path, line=start) from None


def record_line(text: str, sep: str, index: int | None = None) -> int:
    """The first line of record ``index`` of quoted text (records can span lines), or with None of the record
    that fails to parse; for error messages only (one pass in Python)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True)
    start = 1
    try:
        for i, _ in enumerate(reader):
            if i == index:
                return start
            start = reader.line_num + 1
    except csv.Error:
        pass
    return start


def read_rows(path: Path, sep: str | None, header: bool,
              quoted: bool = False) -> tuple[list[str] | None, list[list[str]], int]:
    """Split a text file into rows of fields; returns (header, rows, line number of the first row).

    ``quoted`` reads standard CSV quoting (one-character separators: CSV/TSV files from R, pandas, Excel);
    without it every separator splits (MMRec/RecBole files, written unquoted). The line numbers callers derive
    (first + row index) are exact unless a quoted field spans lines. Blank lines are an error when they sit
    between data rows, except at the end of the file.
    """
    path = require_file(path)
    text = read_text(path)
    quoted = quoted and sep is not None and len(sep) == 1
    if quoted:
        rows = split_quoted(text, sep, path)
    else:
        rows = [line.split(sep) for line in text.splitlines()]
    while rows and not any(field.strip() for field in rows[-1]):
        rows.pop()
    head = None
    first = 1
    if header:
        if not rows:
            raise DataError("empty file, expected a header line", path=path, line=1)
        head = [h.strip() for h in rows[0]]
        rows = rows[1:]
        first = 2
    if head is not None:
        widths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        bad = np.flatnonzero(widths != len(head))
        if len(bad):
            i = int(bad[0])
            line = record_line(text, sep, first - 1 + i) if quoted else first + i
            raise DataError(f"expected {len(head)} fields ({', '.join(head)}), found {widths[i]}: "
                            f"{(sep or ' ').join(rows[i])!r}", path=path, line=line)
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
