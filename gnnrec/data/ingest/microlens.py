"""MicroLens (100k, 1M and the large-scale release share a layout): ``MicroLens-*_pairs.csv`` (user, item,
timestamp; with a header), ``MicroLens-*_title_en.csv`` (id, title; no header) and ``covers/<item>.jpg``."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gnnrec.data.readers.table import read_rows
from gnnrec.errors import DataError


def find_one(folder: Path, pattern: str, required: bool = True) -> Path | None:
    files = sorted(Path(folder).glob(pattern))
    if len(files) > 1 or (required and not files):
        raise DataError(f"expected one file matching {pattern}, found {[f.name for f in files]}", path=folder)
    return files[0] if files else None


def read_pairs(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    head, rows, first = read_rows(path, ",", header=True, quoted=True)
    lowered = [h.lower() for h in head]
    try:
        cols = [lowered.index(c) for c in ("user", "item", "timestamp")]
    except ValueError:
        raise DataError(f"header must name user, item and timestamp columns, got {head}", path=path, line=1) from None
    users, items, times = [], [], []
    for n, row in enumerate(rows, start=first):
        try:
            users.append(str(int(row[cols[0]])))
            items.append(str(int(row[cols[1]])))
            times.append(float(row[cols[2]]))
        except ValueError:
            raise DataError(f"expected integer user and item ids and a numeric timestamp, got {row}",
                            path=path, line=n) from None
    return np.asarray(users), np.asarray(items), np.asarray(times)


def read_microlens(folder: Path) -> dict:
    """Columns of the folder: user/item tokens, timestamps and per-item metadata (title, cover path)."""
    from gnnrec.data.readers.items import read_item_texts

    folder = Path(folder)
    users, items, times = read_pairs(find_one(folder, "*pairs*.csv"))
    meta: dict[str, dict] = {}
    titles = find_one(folder, "*title*.csv", required=False)
    if titles:
        ids, texts = read_item_texts(titles)
        meta = {str(int(i)): {"title": t} for i, t in zip(ids, texts)}
    covers = folder / "covers"
    found = {p.stem: p for p in covers.iterdir()} if covers.is_dir() else {}
    tokens = [str(t) for t in np.unique(items)]
    for token in tokens:
        row = meta.setdefault(token, {"title": ""})
        row["cover"] = str(found[token].relative_to(folder)) if token in found else ""
    missing = sum(not meta[t]["cover"] for t in tokens)
    return {"user": users, "item": items, "timestamp": times, "meta": meta,
            "report": {"covers_missing": missing, "titles_file": str(titles) if titles else None}}
