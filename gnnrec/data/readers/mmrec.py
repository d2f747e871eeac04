"""MMRec format: ``<name>.inter`` (userID, itemID, x_label [, rating, timestamp]) and ``*.npy`` features."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gnnrec.data.dataset import RecDataset, interactions_to_csr
from gnnrec.data.readers.features import feature_path, load_features
from gnnrec.data.readers.table import read_rows, to_ids
from gnnrec.errors import DataError

USER, ITEM, LABEL = "userID", "itemID", "x_label"


def find_inter_file(folder: Path) -> Path:
    files = sorted(Path(folder).glob("*.inter"))
    if len(files) != 1:
        raise DataError(f"expected exactly one .inter file, found {[f.name for f in files]}", path=folder)
    return files[0]


def read_mmrec(folder: Path, modalities: list[str] | None = None) -> RecDataset:
    folder = Path(folder)
    path = find_inter_file(folder)
    head, rows, first = read_rows(path, "\t", header=True)
    for col in (USER, ITEM, LABEL):
        if col not in head:
            raise DataError(f"missing column '{col}' in header {head}", path=path, line=1, field=col)
    cols = list(zip(*rows)) if rows else [[] for _ in head]
    users = to_ids(cols[head.index(USER)], path, USER, first)
    items = to_ids(cols[head.index(ITEM)], path, ITEM, first)
    labels = to_ids(cols[head.index(LABEL)], path, LABEL, first)
    bad = np.flatnonzero(labels > 2)
    if len(bad):
        raise DataError(f"x_label must be 0 (train), 1 (valid) or 2 (test), got {labels[bad[0]]}",
                        path=path, line=first + int(bad[0]), field=LABEL)
    features = load_features(folder, modalities)
    n_items = int(items.max(initial=-1)) + 1
    for name, feat in features.items():  # extra rows would be phantom items in every ranking
        if feat.shape[0] != n_items:
            raise DataError(f"has {feat.shape[0]} rows but {path.name} has {n_items} items (ids 0..{n_items - 1}): "
                            "a feature file needs exactly one row per item id", path=feature_path(folder, name))
    shape = (int(users.max(initial=-1)) + 1, n_items)
    splits = [interactions_to_csr(users[labels == k], items[labels == k], shape) for k in range(3)]
    return RecDataset(path.stem, *splits, features=features, item_info=read_item_table(folder, n_items),
                      source=str(path))


def read_item_table(folder: Path, n_items: int) -> dict[str, np.ndarray]:
    """Columns of ``items.tsv`` (itemID first, as ``gnnrec data ingest`` writes it), one entry per item id."""
    path = Path(folder) / "items.tsv"
    if not path.is_file():
        return {}
    head, rows, first = read_rows(path, "\t", header=True)
    if not head or head[0] != ITEM:
        raise DataError(f"first column must be {ITEM}", path=path, line=1)
    ids = to_ids([r[0] for r in rows], path, ITEM, first)
    if len(ids) and ids.max() >= n_items:
        raise DataError(f"item id {ids.max()} beyond the {n_items} items of the .inter file", path=path)
    info = {}
    for k, col in enumerate(head[1:], start=1):
        values = np.full(n_items, "", dtype=object)
        values[ids] = [r[k] for r in rows]
        info[col] = values
    return info
