"""Write any dataset gnnrec reads out in MMRec format, so gnnrec can feed data to other tools (MMRec, its
forks) and read it back unchanged: ``<name>.inter`` (userID, itemID, x_label: 0 train, 1 valid, 2 test),
``<modality>_feat.npy`` per item feature matrix, ``u_id_mapping.csv`` / ``i_id_mapping.csv`` (the original ids),
``items.tsv`` / ``users.tsv`` when there is metadata. The files are written by the same functions as
``gnnrec data ingest``."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from gnnrec.data.dataset import SPLITS, RecDataset
from gnnrec.data.ingest.writer import write_id_maps, write_inter, write_table
from gnnrec.errors import DataError

ID_COLUMNS = {"item": "item_id", "user": "user_id"}


def safe_name(name: str) -> str:
    """A file-name-safe dataset name (``<name>.inter``)."""
    cleaned = re.sub(r"[^\w.-]+", "_", str(name)).strip("._")
    return cleaned or "dataset"


def to_mmrec(dataset: RecDataset, out, name: str | None = None) -> dict:
    """Write ``dataset`` to the folder ``out`` in MMRec format; returns what was written (files and counts).

    Every interaction keeps its split, every item feature matrix is written as ``<modality>_feat.npy``, and the
    original ids (``item_info["item_id"]`` / ``user_info["user_id"]``, else the internal ids) go to the id maps,
    so that ``load_dataset(out)`` gives back the same splits, features, metadata and ids."""
    out = Path(out)
    name = safe_name(name or dataset.name)
    if out.is_dir() and [p.name for p in out.glob("*.inter") if p.stem != name]:
        raise DataError(f"already holds another dataset ({[p.name for p in out.glob('*.inter')]}); "
                        "write to an empty folder", path=out)
    out.mkdir(parents=True, exist_ok=True)
    users, items, labels = [], [], []
    for label, split in enumerate(SPLITS):
        coo = dataset.split(split).tocoo()
        users.append(coo.row)
        items.append(coo.col)
        labels.append(np.full(coo.nnz, label, dtype=np.int64))
    users, items, labels = np.concatenate(users), np.concatenate(items), np.concatenate(labels)
    write_inter(out / f"{name}.inter", users, items, labels)
    ids = {kind: ids_of(dataset, kind) for kind in ID_COLUMNS}
    write_id_maps(out, ids["user"], ids["item"])
    files = [f"{name}.inter", "u_id_mapping.csv", "i_id_mapping.csv"]
    for modality, feat in dataset.features.items():
        file = f"{safe_name(modality)}_feat.npy"
        np.save(out / file, np.ascontiguousarray(feat, dtype=np.float32))
        files.append(file)
    if write_table(out / "items.tsv", "itemID", dataset.item_info, dataset.n_items, skip=("item_id",)):
        files.append("items.tsv")
    if write_table(out / "users.tsv", "userID", dataset.user_info, dataset.n_users, skip=("user_id",)):
        files.append("users.tsv")
    return {"name": name, "out": str(out), "files": files, "users": dataset.n_users, "items": dataset.n_items,
            **{split: dataset.split(split).nnz for split in SPLITS},
            "features": {k: list(v.shape) for k, v in dataset.features.items()}}


def ids_of(dataset: RecDataset, kind: str) -> np.ndarray:
    """The original ids of the dataset's users or items by internal id (the internal ids where it has none)."""
    info, n = (dataset.user_info, dataset.n_users) if kind == "user" else (dataset.item_info, dataset.n_items)
    column = info.get(ID_COLUMNS[kind])
    if column is None:
        return np.arange(n).astype(str).astype(object)
    tokens = np.array([str(x) for x in column], dtype=object)
    if len(set(tokens.tolist())) != len(tokens):
        raise DataError(f"{kind} ids are not unique; they cannot be written as an id map", field=ID_COLUMNS[kind])
    return tokens
