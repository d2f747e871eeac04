"""Feature standardisation, a data-level option for every model (``data.feature_norm``).

Raw modality features come at very different scales (TikTok: image rows have L2 norms around 33, audio
around 4.5), and models that project raw features linearly (VBPR) are sensitive to that. ``none`` keeps the
features as published (what the papers did); ``zscore`` centres and scales each dimension; ``l2`` scales
each row to unit length.
"""
from __future__ import annotations

import numpy as np

from gnnrec.errors import ConfigError

FEATURE_NORMS = ("none", "zscore", "l2")


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
