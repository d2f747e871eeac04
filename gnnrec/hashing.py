"""SHA-256 digests: of files (dataset cards), of sequences of texts, arrays and settings (caches, manifests)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import scipy.sparse as sp


def sha256_hex(parts, terminator: bytes = b"") -> str:
    """Hex digest of ``parts`` (str, bytes or numpy arrays) in order, each followed by ``terminator``."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            part = np.ascontiguousarray(part).tobytes()
        elif isinstance(part, str):
            part = part.encode("utf-8")
        digest.update(part)
        digest.update(terminator)
    return digest.hexdigest()


def csr_structure_sha256(*matrices) -> str:
    """Hex digest of each matrix's sparsity structure in order (row pointers, then sorted column indices, as
    int64): equal only for the same interactions, whatever the stored values."""
    parts = []
    for mat in matrices:
        mat = sp.csr_matrix(mat)
        mat.sort_indices()
        parts += [np.asarray(mat.indptr, dtype=np.int64), np.asarray(mat.indices, dtype=np.int64)]
    return sha256_hex(parts)


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Hex digest of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
