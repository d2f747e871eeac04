"""Feature preparation, data-level options for every model: filling empty rows (``data.feature_fill``) and
standardisation (``data.feature_norm``).

Items without content (a missing image) often arrive as all-zero rows, for which cosine similarity is
undefined; ``feature_fill: mean`` gives them the mean of the other rows, the rule the encoders use.

Raw modality features come at very different scales (TikTok: image rows have L2 norms around 33, audio
around 4.5), and models that project raw features linearly (VBPR) are sensitive to that. ``none`` keeps the
features as published (what the papers did); ``zscore`` centres and scales each dimension; ``l2`` scales
each row to unit length.
"""
from __future__ import annotations

import numpy as np

from gnnrec.errors import ConfigError, DataError

FEATURE_NORMS = ("none", "zscore", "l2")
FEATURE_FILLS = ("none", "mean")


def fill_missing(rows: list[np.ndarray | None]) -> np.ndarray:
    """Stack per-item vectors; items without one (missing image, empty answer) get the mean of the others."""
    good = [r for r in rows if r is not None]
    if not good:
        raise DataError("no item has a vector (every input is missing, unreadable, empty or all zeros): "
                        "there is nothing to fill the others from")
    mean = np.mean(good, axis=0)
    return np.stack([mean if r is None else r for r in rows]).astype(np.float32)


def fill_zero_rows(features: np.ndarray) -> tuple[np.ndarray, int]:
    """All-zero rows replaced by the mean of the other rows, and how many were filled."""
    x = np.asarray(features, dtype=np.float32)
    empty = ~x.any(axis=1)
    if not empty.any():
        return x, 0
    rows = [None if e else r for e, r in zip(empty, x)]
    return fill_missing(rows), int(empty.sum())


def standardize(features: np.ndarray, method: str) -> np.ndarray:
    """One feature table (rows = items or users) scaled by ``method``; a new float32 array."""
    if method not in FEATURE_NORMS:
        raise ConfigError(f"data.feature_norm must be one of {FEATURE_NORMS}, got '{method}'")
    x = np.asarray(features, dtype=np.float32)
    if method == "none":
        return x
    if method == "zscore":
        x64 = x.astype(np.float64)
        std = x64.std(axis=0)
        std[std == 0] = 1.0  # a constant dimension is only centred
        return ((x64 - x64.mean(axis=0)) / std).astype(np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)  # all-zero rows stay zero


def standardize_all(tables: dict[str, np.ndarray], method: str) -> dict[str, np.ndarray]:
    return {name: standardize(x, method) for name, x in tables.items()}
