"""Dataset cards (``datasets/*.yaml``): check a local copy's files and statistics against what its card expects."""
from __future__ import annotations

from pathlib import Path

import yaml

from gnnrec.errors import DataError
from gnnrec.hashing import file_sha256


def load_card(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise DataError("dataset card not found", path=path)
    card = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(card, dict) or "expected" not in card:
        raise DataError("a dataset card is a mapping with at least an 'expected' section", path=path)
    return card


def check_against_card(card: dict, folder: Path, stats: dict) -> list[str]:
    """Human-readable mismatches (empty when the copy matches its card)."""
    problems = []
    for name, digest in (card.get("sha256") or {}).items():
        file = Path(folder) / name
        if not file.is_file():
            problems.append(f"{name}: missing")
        elif file_sha256(file) != digest:
            problems.append(f"{name}: sha256 differs from the card (file changed or corrupted)")
    for key, want in card["expected"].items():
        got = stats.get(key)
        if got != want:
            problems.append(f"{key}: card expects {want}, found {got}")
    return problems
