"""MMRec format: ``<name>.inter`` (userID, itemID, x_label [, rating, timestamp]), ``*.npy`` features, and when
present the id maps ``u_id_mapping.csv`` / ``i_id_mapping.csv`` (original ids) and ``items.tsv`` / ``users.tsv``."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from gnnrec.data.dataset import RecDataset, interactions_to_csr
from gnnrec.data.readers.features import feature_path, load_features
from gnnrec.data.readers.table import read_rows, to_ids
from gnnrec.errors import DataError

USER, ITEM, LABEL = "userID", "itemID", "x_label"
log = logging.getLogger(__name__)


def find_inter_file(source: Path, name: str | None = None) -> Path:
    """The ``.inter`` file of a dataset: ``source`` itself, ``<name>.inter`` in the folder, or the folder's only one."""
    source = Path(source)
    if source.is_file():
        if source.suffix != ".inter":
            raise DataError("expected a .inter file or a folder holding one", path=source)
        if name is not None and source.stem != name:
            raise DataError(f"data.name is '{name}' but data.source is the file {source.name}", path=source)
        return source
    if not source.is_dir():
        raise DataError("dataset file or folder not found", path=source)
    files = sorted(source.glob("*.inter"))
    if name is not None:
        path = source / f"{name}.inter"
        if not path.is_file():
            raise DataError(f"no {name}.inter (data.name) here; found {[f.name for f in files]}", path=source)
        return path
    if len(files) == 1:
        return files[0]
    if not files:
        raise DataError("no .inter file in this folder", path=source)
    raise DataError(f"several datasets here: {[f.stem for f in files]}; pick one with data.name=<name> "
                    "or point data.source at its .inter file", path=source)


def read_mmrec(source: Path, modalities: list[str] | None = None, name: str | None = None) -> RecDataset:
    path = find_inter_file(source, name)
    folder = path.parent
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
    user_ids = read_id_map(folder / "u_id_mapping.csv", USER)
    item_ids = read_id_map(folder / "i_id_mapping.csv", ITEM)
    n_users = count_ids(users, user_ids, path, USER)
    n_items = count_ids(items, item_ids, path, ITEM)
    for name, feat in features.items():  # extra rows would be phantom items in every ranking
        if feat.shape[0] != n_items:
            raise DataError(f"has {feat.shape[0]} rows but {path.name} has {n_items} items (ids 0..{n_items - 1}): "
                            "a feature file needs exactly one row per item id", path=feature_path(folder, name))
    shape = (n_users, n_items)
    splits = [interactions_to_csr(users[labels == k], items[labels == k], shape) for k in range(3)]
    item_info = read_item_table(folder, n_items)
    user_info = read_item_table(folder, n_users, "users.tsv", USER)
    if item_ids is not None:
        item_info["item_id"] = item_ids
    if user_ids is not None:
        user_info["user_id"] = user_ids
    return RecDataset(path.stem, *splits, features=features, item_info=item_info, user_info=user_info,
                      source=str(path))


def read_id_map(path: Path, column: str) -> np.ndarray | None:
    """The original ids of ``u_id_mapping.csv`` / ``i_id_mapping.csv`` (tab-separated: the original id, e.g.
    ``token`` or ``asin``, and the dense ``userID``/``itemID``), indexed by dense id; None without the file."""
    if not path.is_file():
        return None
    head, rows, first = read_rows(path, "\t", header=True)
    if column not in head or len(head) < 2:  # another tool's layout: the dataset reads fine without it
        log.warning("%s: not a tab-separated id map with a '%s' column (header %s); original ids not read",
                    path, column, head)
        return None
    k = head.index(column)
    token = next(i for i in range(len(head)) if i != k)
    ids = to_ids([r[k] for r in rows], path, column, first)
    n = int(ids.max(initial=-1)) + 1
    if len(np.unique(ids)) != len(ids) or len(ids) != n:
        raise DataError(f"{column} must list each id 0..{n - 1} exactly once ({len(ids)} rows)", path=path)
    tokens = np.empty(n, dtype=object)
    tokens[ids] = [r[token] for r in rows]
    return tokens


def count_ids(ids: np.ndarray, mapping: np.ndarray | None, path: Path, column: str) -> int:
    """Number of users/items: the id map's length when there is one (ids without interactions stay), else max + 1."""
    n = int(ids.max(initial=-1)) + 1
    if mapping is None:
        return n
    if n > len(mapping):
        raise DataError(f"{column} {n - 1} is not in the id map ({len(mapping)} ids)", path=path, field=column)
    return len(mapping)


def read_item_table(folder: Path, n_items: int, file: str = "items.tsv", column: str = ITEM) -> dict[str, np.ndarray]:
    """Columns of ``items.tsv`` (itemID first, as ``gnnrec data ingest`` writes it; ``users.tsv``: userID first),
    one entry per id."""
    path = Path(folder) / file
    if not path.is_file():
        return {}
    head, rows, first = read_rows(path, "\t", header=True)
    if not head or head[0] != column:
        raise DataError(f"first column must be {column}", path=path, line=1)
    ids = to_ids([r[0] for r in rows], path, column, first)
    if len(ids) and ids.max() >= n_items:
        raise DataError(f"{column} {ids.max()} beyond the {n_items} ids of the .inter file", path=path)
    info = {}
    for k, col in enumerate(head[1:], start=1):
        values = np.full(n_items, "", dtype=object)
        values[ids] = [r[k] for r in rows]
        info[col] = values
    return info
