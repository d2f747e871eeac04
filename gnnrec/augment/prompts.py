"""Prompt templates (editable text files; the defaults live in ``gnnrec/augment/prompts/``) and the pieces
they are filled with: numbered item lists, answer forms and per-user histories."""
from __future__ import annotations

import string
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from gnnrec.errors import ConfigError

PROMPT_DIR = Path(__file__).parent / "prompts"
FIELDS = {"edges": {"history", "candidates"}, "attributes": {"item", "fields", "form"},
          "profiles": {"history", "fields", "form"}}


def load_template(kind: str, path: str | None = None) -> str:
    """The template for ``kind`` (edges, attributes, profiles): the user's file, or the packaged default."""
    file = Path(path) if path else PROMPT_DIR / f"{kind}.txt"
    if not file.is_file():
        raise ConfigError(f"prompt template not found: {file} (augment.prompts.{kind})")
    text = file.read_text(encoding="utf-8")
    used = {f for _, f, _, _ in string.Formatter().parse(text) if f}
    unknown = used - FIELDS[kind]
    if unknown:
        raise ConfigError(f"{file}: unknown placeholder(s) {sorted(unknown)}; a {kind} template may use "
                          f"{sorted(FIELDS[kind])}")
    return text


def numbered(lines) -> str:
    return "\n".join(f"{k}. {line}" for k, line in enumerate(lines, start=1))


def answer_form(fields: list[str]) -> str:
    """"director: ...\ncountry: ...": the shape the field parser reads back."""
    return "\n".join(f"{f}: ..." for f in fields)


def user_histories(train: sp.csr_matrix, size: int, seed: int) -> list[np.ndarray]:
    """Up to ``size`` training items per user, a seeded random sample (all of them when fewer)."""
    rng = np.random.default_rng(seed)
    out = []
    for u in range(train.shape[0]):  # prompt building, once per user; the LLM call dominates by far
        items = train.indices[train.indptr[u] : train.indptr[u + 1]]
        out.append(np.sort(rng.choice(items, size, replace=False)) if len(items) > size else items)
    return out
