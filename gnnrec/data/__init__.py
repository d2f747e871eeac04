"""Data layer: one dataset type, readers for common formats, splitting, and the synthetic default."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from gnnrec.data.augmented import read_edges
from gnnrec.data.cold import ColdItems, split_cold_items
from gnnrec.data.dataset import RecDataset, interactions_to_csr
from gnnrec.data.readers import READERS, detect_format
from gnnrec.data.readers.features import feature_files, load_features
from gnnrec.data.readers.generic import DEFAULT_COLUMNS
from gnnrec.data.scaling import FEATURE_NORMS, fill_zero_rows, standardize_all
from gnnrec.data.split import VALID_CARVINGS, Interactions, carve_valid
from gnnrec.data.synthetic import make_synthetic
from gnnrec.errors import ConfigError, DataError

log = logging.getLogger(__name__)

__all__ = ["RecDataset", "ColdItems", "Interactions", "load_dataset", "make_synthetic", "interactions_to_csr"]


def load_dataset(source: str = "synthetic", format: str = "auto", split: dict | None = None,
                 kcore: int | None = None, valid_ratio: float = 0.1, drop_cold: bool = True,
                 modalities: list[str] | None = None, synthetic: dict | None = None, seed: int = 999,
                 feature_dirs: list[str] | None = None, augment: dict | None = None,
                 feature_norm: str = "none", feature_fill: str = "none", name: str | None = None,
                 columns: dict | None = None, header: bool = True, separator: str | None = None,
                 rating_threshold: float | None = None, valid_carving: str = "ratio", valid_min_history: int = 3,
                 valid_keep_items: bool = True, split_files: dict | None = None,
                 cold_items: float = 0.0, drop_modalities: list[str] | None = None,
                 split_seed: int | None = None) -> RecDataset:
    """Load (or generate) a dataset and give it a train/valid/test split.

    Unsplit logs (RecBole) are k-core filtered and split by ``split`` (``method`` mmrec/random/temporal);
    datasets that come without a validation split get one carved from train (``valid_ratio`` per user)
    so that model selection never looks at test: ``valid_carving`` ratio | leave_one_out, at least one item for
    users with ``valid_min_history`` training items, never an item's last training interaction when
    ``valid_keep_items`` (see :func:`gnnrec.data.split.carve_valid`). A feature folder's ``users/`` subfolder
    holds user features (one row per user). ``augment`` (``edges``, ``graph``) attaches LLM-made triples.
    ``feature_fill`` (none | mean) gives all-zero feature rows (items without content) the mean of the
    others; ``feature_norm`` (none | zscore | l2) then scales every feature table.
    ``name`` picks ``<name>.inter`` in a folder of several datasets; ``columns``, ``header``, ``separator`` and
    ``rating_threshold`` describe a generic interaction file (format ``table``); ``split_files`` names the files
    of such a folder that hold the valid and test rows. ``cold_items`` (a share) takes that many items out of
    training entirely and keeps their held-out interactions in ``dataset.cold`` (:mod:`gnnrec.data.cold`).
    ``modalities`` keeps only the named item modalities (None: all, []: none) and ``drop_modalities`` removes
    some (the same data with one modality fewer: ``gnnrec ablate --retrain``), both after every feature file
    (feature folders included) is read; a name that no modality has is a ConfigError.
    """
    if split_seed is not None:  # the data's own seed: runs of several seeds then share one split
        seed = split_seed
    if feature_norm not in FEATURE_NORMS:  # checked before any file is read
        raise ConfigError(f"data.feature_norm must be one of {FEATURE_NORMS}, got '{feature_norm}'")
    if cold_items and feature_norm == "zscore":
        raise ConfigError("data.cold_items cannot be combined with data.feature_norm=zscore: the cold items would "
                          "need the training items' mean and std, which an export does not carry; use none or l2")
    if valid_carving not in VALID_CARVINGS:
        raise ConfigError(f"data.valid_carving must be one of {VALID_CARVINGS}, got '{valid_carving}'")
    if str(source) == "synthetic":
        data = make_synthetic(**(synthetic or {}))
    else:
        if not Path(source).exists():
            raise DataError("data.source does not exist: no such file or folder", path=source)
        fmt = detect_format(source, name) if format == "auto" else format
        if fmt not in READERS:
            raise ConfigError(f"data.format must be 'auto' or one of {sorted(READERS)}, got '{format}'")
        table_opts = {"columns": columns, "header": header, "separator": separator,
                      "rating_threshold": rating_threshold, "split_files": split_files}
        if fmt != "table":
            set_opts = [k for k, v in table_opts.items()
                        if v != {"columns": None, "header": True, "separator": None, "rating_threshold": None,
                                 "split_files": None}[k]
                        and not (k == "columns" and v == DEFAULT_COLUMNS)]
            if set_opts:
                raise ConfigError(f"data.{', data.'.join(set_opts)} apply to data.format=table only; "
                                  f"this dataset is read as '{fmt}'")
        if name is not None and fmt not in ("mmrec", "recbole"):
            raise ConfigError(f"data.name picks a .inter file (mmrec, recbole); this dataset is read as '{fmt}'")
        reader = READERS[fmt]
        if fmt == "mmrec":
            data = reader(Path(source), modalities, name=name)  # feature files of other modalities are not read
        elif fmt == "recbole":
            data = reader(Path(source), name=name)
        elif fmt == "table":
            data = reader(Path(source), **table_opts)
        elif fmt in ("pickle", "lattice"):
            data = reader(Path(source), modalities)
        else:
            data = reader(Path(source))
    if isinstance(data, Interactions):
        data = data.dedupe()
        if kcore:
            data = data.kcore(kcore)
        data = data.split(seed=seed, **(split or {}))
    elif kcore:
        raise ConfigError("data.kcore applies to unsplit logs only; this dataset comes split")
    for folder in feature_dirs or []:  # encoded modalities from a feature store; validate() checks row counts
        if not Path(folder).is_dir():
            raise DataError("feature folder not found (data.feature_dirs)", path=folder)
        data.features.update(load_features(Path(folder), modalities))
        if (Path(folder) / "users").is_dir():
            data.user_features.update(load_features(Path(folder) / "users"))
    listed = set(data.features)  # the modalities there are, read or not (unselected files are not read)
    for folder in [*([] if str(source) == "synthetic" else [Path(source)]), *map(Path, feature_dirs or [])]:
        listed |= set(feature_files(folder if folder.is_dir() else folder.parent))
    data.features = select_modalities(data.features, modalities, drop_modalities, data.name, listed)
    if data.valid.nnz == 0 and valid_ratio > 0:
        carved = carve_valid(data.train, valid_ratio, seed, valid_carving, valid_min_history, valid_keep_items,
                             test=data.test)
        data.train, data.valid = carved.train, carved.valid
        data.report.update(carved.report(valid_carving))
        log.info("%s has no validation split: carved %d interactions from %d users out of train "
                 "(data.valid_carving=%s%s; %d users with %d+ items got none, all their items protected; "
                 "%d test interactions made cold)", data.name, carved.interactions, carved.users, valid_carving,
                 f", valid_ratio={valid_ratio:g}" if valid_carving == "ratio" else "", carved.users_missed,
                 valid_min_history, carved.cold_test)
        if carved.too_small:
            log.warning("%s: the carved validation set has %d users; the standard error of validation "
                        "Recall@20 can be up to %.4f (0.5/sqrt(users)): models closer than about twice that "
                        "cannot be told apart on validation",
                        data.name, carved.users, carved.se_max)
    if augment and augment.get("edges"):
        data.augmented_edges = read_edges(augment["edges"], data.n_users, data.n_items)
        data.augment_graph = bool(augment.get("graph"))
    if cold_items:
        data = split_cold_items(data, cold_items, seed)
    data = data.validate(drop_cold=drop_cold)
    if data.cold is not None:  # cold-start is evaluated for users the model knows
        data.cold.drop_users(np.diff(data.train.indptr) > 0)
    if feature_fill == "mean":
        for tables, kind in ((data.features, "item"), (data.user_features, "user")):
            for name in list(tables):
                tables[name], filled = fill_zero_rows(tables[name])
                if filled:
                    log.warning("%s feature '%s': %d all-zero rows filled with the mean of the others", kind, name,
                                filled)
                    data.report.setdefault("feature_rows_filled", {})[name] = filled
    if feature_norm != "none":
        data.features = standardize_all(data.features, feature_norm)
        data.user_features = standardize_all(data.user_features, feature_norm)
        data.report["feature_norm"] = feature_norm
    if data.cold is not None:
        scale_cold_features(data, feature_fill, feature_norm)
    return data


def select_modalities(features: dict[str, np.ndarray], keep: list[str] | None, drop: list[str] | None,
                      dataset: str, listed: set[str] | None = None) -> dict[str, np.ndarray]:
    """The item modalities ``data.modalities`` keeps (None: all; []: none) less ``data.drop_modalities``.

    Applied once every source (reader, feature folders) is read, so both settings mean the same for every
    format; ``listed``: every modality the sources have, including files not read because ``keep`` leaves them
    out. A name no source has is an error, never silently nothing."""
    available = set(features) | set(listed or ())
    for key, names in (("data.modalities", keep), ("data.drop_modalities", drop)):
        unknown = sorted(set(names or ()) - available)
        if unknown:
            raise ConfigError(f"{key} names {unknown}, not among the item modalities of {dataset}: "
                              f"{sorted(available)}")
    selected = {k: v for k, v in features.items() if (keep is None or k in keep) and k not in (drop or ())}
    if keep is not None and len(selected) < len(available):
        log.info("%s: item modalities %s (data.modalities=%s%s)", dataset, sorted(selected) or "none", list(keep),
                 f", data.drop_modalities={list(drop)}" if drop else "")
    return selected


def scale_cold_features(data: RecDataset, feature_fill: str, feature_norm: str) -> None:
    """Cold items' features as the warm ones were treated, with statistics of the warm items only."""
    for name, x in data.cold.features.items():
        empty = ~np.any(x, axis=1)
        if feature_fill == "mean" and empty.any():
            x = x.copy()
            x[empty] = data.features[name].mean(axis=0)  # the warm rows are all filled by now
        data.cold.features[name] = standardize_all({name: x}, feature_norm)[name]
