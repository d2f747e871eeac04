"""Reading JSON-lines review and metadata files (plain or .gz) with line numbers; malformed lines are counted
and reported (first few line numbers), or raise with ``strict``, never dropped silently."""
from __future__ import annotations

import ast
import gzip
import json
import logging
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from gnnrec.errors import DataError

log = logging.getLogger(__name__)


@dataclass
class LineReport:
    path: str
    lines: int = 0
    bad: int = 0
    first_bad: list[str] = field(default_factory=list)

    def reject(self, line: int, why: str, strict: bool) -> None:
        if strict:
            raise DataError(why, path=self.path, line=line)
        self.bad += 1
        if len(self.first_bad) < 5:
            self.first_bad.append(f"line {line}: {why}")

    def log(self) -> None:
        if self.bad:
            log.warning("%s: skipped %d of %d lines (%s)", self.path, self.bad, self.lines, "; ".join(self.first_bad))


def open_lines(path: Path):
    """The file's lines as bytes (decoded one at a time, so a line that is not UTF-8 is one bad line)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path=path)
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def parse_record(text: str):
    """One JSON object; Amazon-2014 metadata lines are Python dict literals, read safely as literals."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        with warnings.catch_warnings():  # a garbled line is a counted bad line, not a SyntaxWarning on the console
            warnings.simplefilter("ignore", SyntaxWarning)
            return ast.literal_eval(text)


def read_records(path: Path, required: tuple[str, ...], pick, strict: bool = False) -> tuple[list, LineReport]:
    """``pick(record)`` for each JSON object that has every ``required`` key, and the line report.

    ``pick`` keeps only what is needed, so a multi-GB review file never sits in memory as dicts."""
    report, out, number = LineReport(str(path)), [], 0
    with open_lines(path) as fh:
        try:
            for number, raw in enumerate(fh, start=1):
                record = read_line(raw, number, report, strict)
                if record is None:
                    continue
                missing = [k for k in required if record.get(k) in (None, "")]
                if missing:
                    report.reject(number, f"missing {', '.join(missing)}", strict)
                    continue
                try:
                    out.append(pick(record))
                except KeyError as exc:
                    report.reject(number, f"missing field {exc}", strict)
                except (TypeError, ValueError) as exc:
                    report.reject(number, f"bad value ({exc})", strict)
        except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError; a cut .gz ends in EOFError
            raise DataError(f"not a readable {'gzip' if Path(path).suffix == '.gz' else 'text'} file after line "
                            f"{number} ({type(exc).__name__}: {exc})", path=path) from None
    report.log()
    return out, report


def read_line(raw: bytes, number: int, report: LineReport, strict: bool) -> dict | None:
    """One line's JSON object, or None for a blank line or (counted in ``report``) a malformed one."""
    if not raw.strip():
        return None
    report.lines += 1
    try:
        record = parse_record(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        report.reject(number, f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})", strict)
        return None
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        record = None
    if not isinstance(record, dict):
        report.reject(number, "not a JSON object", strict)
        return None
    return record
