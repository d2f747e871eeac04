"""Feature store: each encoded modality is ``<name>_feat.npy`` (one row per item id, loadable by every
gnnrec reader) plus ``<name>_feat.json``, a manifest of how it was made. A run whose manifest matches (same
model, template and input checksum) is skipped, so re-running an encode is free."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from gnnrec.errors import DataError
from gnnrec.hashing import sha256_hex


def inputs_checksum(texts: list[str]) -> str:
    """Digest of the texts (or image stamps) an encode reads, each terminated by a NUL byte."""
    return sha256_hex(texts, terminator=b"\0")


def chunk_folder(folder: Path, name: str, manifest: dict) -> Path:
    """Where the finished chunks of an encode in progress live, keyed by what is being encoded."""
    key = json.dumps({k: manifest.get(k) for k in ("model", "template", "inputs_sha256", "items")}, sort_keys=True)
    return Path(folder) / f".{name}_chunks_{sha256_hex([key])[:16]}"


def encode_resumably(work: Path, n: int, encode_range, chunk: int = 2048) -> tuple[np.ndarray, int]:
    """Rows ``[0, n)`` from ``encode_range(start, stop)``, computed ``chunk`` rows at a time; each finished chunk is
    saved in ``work`` at once, so an interrupted encode resumes at the first missing chunk. Returns the rows and
    how many came from an earlier run."""
    work.mkdir(parents=True, exist_ok=True)
    parts, resumed = [], 0
    for start in range(0, n, chunk):
        file = work / f"{start:010d}.npy"
        if file.is_file():
            part = np.load(file)
            resumed += len(part)
        else:
            part = np.asarray(encode_range(start, min(start + chunk, n)), dtype=np.float32)
            tmp = work / f"{start:010d}.tmp.npy"
            np.save(tmp, part)
            tmp.replace(file)  # a chunk file is complete or absent
        parts.append(part)
    return np.concatenate(parts), resumed


def paths(folder: Path, name: str) -> tuple[Path, Path]:
    folder = Path(folder)
    return folder / f"{name}_feat.npy", folder / f"{name}_feat.json"


def is_current(folder: Path, name: str, manifest: dict) -> bool:
    """Whether ``name`` is already stored with the same model, template and inputs."""
    array, meta = paths(folder, name)
    if not (array.is_file() and meta.is_file()):
        return False
    old = json.loads(meta.read_text(encoding="utf-8"))
    keys = ("model", "template", "inputs_sha256", "items")
    return all(old.get(k) == manifest.get(k) for k in keys)


def save(folder: Path, name: str, features: np.ndarray, manifest: dict) -> Path:
    if features.ndim != 2 or features.shape[0] != manifest["items"]:
        raise DataError(f"modality '{name}': {features.shape[0]} rows for {manifest['items']} items", field=name)
    if not np.isfinite(features).all():
        raise DataError(f"modality '{name}': the encoder produced NaN or inf", field=name)
    array, meta = paths(folder, name)
    array.parent.mkdir(parents=True, exist_ok=True)
    np.save(array, features.astype(np.float32))
    meta.write_text(json.dumps({**manifest, "dim": int(features.shape[1]), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                                "file": array.name}, indent=2), encoding="utf-8")
    return array
