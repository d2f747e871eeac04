"""LightGCN text format: ``train.txt``/``test.txt`` (optionally ``valid.txt``), one ``user item item ...`` line per user."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gnnrec.data.dataset import RecDataset, interactions_to_csr
from gnnrec.data.readers.table import read_rows, to_ids


def read_adjacency_lists(path: Path) -> tuple[np.ndarray, np.ndarray]:
    _, rows, first = read_rows(path, None, header=False)
    rows = [r for r in rows if r]
    lengths = np.fromiter((len(r) - 1 for r in rows), dtype=np.int64, count=len(rows))
    line_of_row = first + np.arange(len(rows))
    heads = to_ids([r[0] for r in rows], path, "user", first)
    flat = [tok for r in rows for tok in r[1:]]
    items = to_ids(flat, path, "item", first, lines=np.repeat(line_of_row, lengths))
    return np.repeat(heads, lengths), items


def read_lightgcn(folder: Path) -> RecDataset:
    folder = Path(folder)
    names = ["train", "valid", "test"]
    pairs = {n: read_adjacency_lists(folder / f"{n}.txt") for n in names
             if n != "valid" or (folder / "valid.txt").is_file()}
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    n_users = max(int(u.max(initial=-1)) for u, _ in pairs.values()) + 1
    n_items = max(int(i.max(initial=-1)) for _, i in pairs.values()) + 1
    mats = [interactions_to_csr(*pairs.get(n, empty), (n_users, n_items)) for n in names]
    return RecDataset(folder.name, *mats, source=str(folder))
