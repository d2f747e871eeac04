"""LATTICE format: ``train.json``/``val.json``/``test.json`` mapping user id to a list of item ids, ``*.npy`` features."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from gnnrec.data.dataset import RecDataset, interactions_to_csr
from gnnrec.data.readers.features import load_features
from gnnrec.data.readers.table import read_text, to_ids
from gnnrec.errors import DataError


def read_user_lists(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        obj = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON: {exc.msg}", path=path, line=exc.lineno) from None
    if not isinstance(obj, dict):
        raise DataError("expected an object mapping user id to a list of item ids", path=path)
    for key, value in obj.items():
        if not isinstance(value, list):
            raise DataError(f"user {key}: expected a list of item ids, got {type(value).__name__}", path=path,
                            field=str(key))
    keys = list(obj)
    users = to_ids(keys, path, "user id", None)
    lengths = np.fromiter((len(obj[k]) for k in keys), dtype=np.int64, count=len(keys))
    items = to_ids([i for k in keys for i in obj[k]], path, "item id", None)
    return np.repeat(users, lengths), items


def read_lattice(folder: Path, modalities: list[str] | None = None) -> RecDataset:
    folder = Path(folder)
    pairs = [read_user_lists(folder / f"{n}.json") for n in ("train", "val", "test")]
    features = load_features(folder, modalities)
    n_users = max(int(u.max(initial=-1)) for u, _ in pairs) + 1
    n_items = max([int(i.max(initial=-1)) + 1 for _, i in pairs] + [f.shape[0] for f in features.values()])
    mats = [interactions_to_csr(u, i, (n_users, n_items)) for u, i in pairs]
    name = folder.resolve().parent.name if re.fullmatch(r"\d+-core", folder.name) else folder.name  # data/sports/5-core
    return RecDataset(name, *mats, features=features, source=str(folder))
