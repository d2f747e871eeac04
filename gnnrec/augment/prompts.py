"""Prompt templates (editable text files; the defaults live in ``gnnrec/augment/prompts/``) and the pieces
they are filled with: numbered item lists, answer forms and per-user histories.

A template is one user message, or a conversation: lines ``### system``, ``### user`` and ``### assistant``
start turns, so a file can hold worked examples (few-shot) before the final user turn, which carries the
``{placeholders}``. Braces meant literally are written ``{{`` and ``}}``."""
from __future__ import annotations

import re
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
    turns = [m.group(1) for m in TURN.finditer(text)]
    if turns and turns[-1] != "user":
        raise ConfigError(f"{file}: the last turn must be '### user' (the question), not '### {turns[-1]}'")
    used = {f for _, f, _, _ in string.Formatter().parse(text) if f}
    unknown = used - FIELDS[kind]
    if unknown:
        raise ConfigError(f"{file}: unknown placeholder(s) {sorted(unknown)}; a {kind} template may use "
                          f"{sorted(FIELDS[kind])}")
    return text


TURN = re.compile(r"^###[ \t]*(system|user|assistant)[ \t]*$", re.M)


def render(template: str, **fields) -> list[dict]:
    """The chat messages of ``template`` with ``fields`` filled in."""
    parts = TURN.split(template)
    turns = [("user", parts[0])] if parts[0].strip() else []
    turns += list(zip(parts[1::2], parts[2::2]))
    return [{"role": role, "content": text.strip().format(**fields)} for role, text in turns]


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
