"""Item text tables: ``id,text`` lines without a header, as in MicroLens' ``MicroLens-100k_title_en.csv``.

The first comma separates the id from the text (titles contain commas). Rows come back in ascending id order.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gnnrec.data.readers.table import require_file, to_ids
from gnnrec.errors import DataError


def read_item_texts(path: Path) -> tuple[np.ndarray, list[str]]:
    path = require_file(path)
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    rows = [(i + 1, line.partition(",")) for i, line in enumerate(lines) if line.strip()]
    bad = [n for n, (_, sep, _) in rows if not sep]
    if bad:
        raise DataError("expected 'id,text'", path=path, line=bad[0])
    ids = to_ids([r[1][0].strip() for r in rows], path, "item id", None, lines=[n for n, _ in rows])
    texts = [r[1][2].strip() for r in rows]
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    dup = np.flatnonzero(ids[1:] == ids[:-1])
    if len(dup):
        raise DataError(f"item id {ids[dup[0]]} appears twice", path=path)
    return ids, [texts[i] for i in order]
