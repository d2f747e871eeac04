"""RecBole atomic files: ``<name>.inter`` and optional ``<name>.item`` / ``<name>.user`` with typed headers
(``user_id:token``, ``movie_title:token_seq``...). Ids are tokens, re-indexed densely; the data is unsplit."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gnnrec.data.readers.table import read_rows, to_floats
from gnnrec.data.split import Interactions
from gnnrec.errors import DataError


def parse_header(head: list[str], path: Path) -> list[str]:
    names = []
    for i, col in enumerate(head):
        name, sep, kind = col.partition(":")
        if not sep or not name:
            raise DataError(f"header field '{col}' is not of the form name:type", path=path, line=1,
                            field=f"column {i + 1}")
        names.append(name)
    return names


def read_atomic(path: Path) -> tuple[dict[str, np.ndarray], int]:
    head, rows, first = read_rows(path, "\t", header=True)
    names = parse_header(head, path)
    cols = list(zip(*rows)) if rows else [()] * len(names)
    return {n: np.asarray(c, dtype=object) for n, c in zip(names, cols)}, first


def tokens_to_ids(tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense ids for tokens; numeric tokens are ordered numerically so ids follow the source's order."""
    stripped = np.char.strip(tokens.astype(str))
    try:
        as_int = stripped.astype(np.int64)
        uniq, inverse = np.unique(as_int, return_inverse=True)
        return inverse.astype(np.int64), uniq.astype(str)
    except ValueError:
        uniq, inverse = np.unique(stripped, return_inverse=True)
        return inverse.astype(np.int64), uniq


def attach_info(table: dict[str, np.ndarray], key: str, vocab: np.ndarray, path: Path) -> dict[str, np.ndarray]:
    """Align a side table (.item/.user) to the dense ids; entries absent there become empty strings."""
    if key not in table:
        raise DataError(f"missing column '{key}'", path=path, line=1, field=key)
    keys = np.char.strip(table[key].astype(str))
    pos = {tok: i for i, tok in enumerate(keys)}
    idx = np.array([pos.get(tok, -1) for tok in vocab], dtype=np.int64)
    info = {}
    for name, values in table.items():
        if name == key:
            continue
        col = np.where(idx >= 0, np.char.strip(values.astype(str))[np.maximum(idx, 0)], "")
        info[name] = col.astype(object)
        if "title" in name and "title" not in table:
            info["title"] = info[name]
    info[key] = vocab.astype(object)
    return info


def read_recbole(source: Path, name: str | None = None) -> Interactions:
    from gnnrec.data.readers.mmrec import find_inter_file

    path = find_inter_file(source, name)
    table, first = read_atomic(path)
    for key in ("user_id", "item_id"):
        if key not in table:
            raise DataError(f"missing column '{key}' (RecBole header like {key}:token)", path=path, line=1,
                            field=key)
        empty = np.flatnonzero(np.char.strip(table[key].astype(str)) == "")
        if len(empty):
            raise DataError("empty id", path=path, line=first + int(empty[0]), field=key)
    users, user_vocab = tokens_to_ids(table["user_id"])
    items, item_vocab = tokens_to_ids(table["item_id"])
    ts = to_floats(table["timestamp"], path, "timestamp", first) if "timestamp" in table else None
    item_info, user_info = {}, {}
    if (p := path.with_suffix(".item")).is_file():
        item_info = attach_info(read_atomic(p)[0], "item_id", item_vocab, p)
    if (p := path.with_suffix(".user")).is_file():
        user_info = attach_info(read_atomic(p)[0], "user_id", user_vocab, p)
    item_info.setdefault("item_id", item_vocab.astype(object))
    user_info.setdefault("user_id", user_vocab.astype(object))
    return Interactions(path.stem, users, items, len(user_vocab), len(item_vocab), ts, item_info, user_info,
                        source=str(path))
