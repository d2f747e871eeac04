"""Robust parsing of LLM answers. Every answer maps to catalogue ids by number or by (fuzzy) title, or is
counted as a failure by reason; no parser ever invents an id."""
from __future__ import annotations

import difflib
import re
from collections import Counter

FAILURES = ("empty", "malformed", "out_of_pool", "out_of_catalogue", "same_item")
TITLE_CUTOFF = 0.85  # difflib ratio a typo'd title must reach to match


def normalize_title(title: str) -> str:
    """Lower case, no year in brackets, no punctuation, single spaces: "Toy Story (1995)" -> "toy story"."""
    title = re.sub(r"\(\d{4}\)", " ", str(title).lower())
    return " ".join(re.sub(r"[^\w\s]", " ", title).split())


class TitleMatcher:
    """Exact, then fuzzy, lookup of a title among item titles (one entry per item id)."""

    def __init__(self, titles):
        self.norm = [normalize_title(t) for t in titles]
        self.index: dict[str, int] = {}
        for item, t in enumerate(self.norm):
            self.index.setdefault(t, item)  # duplicates: the lower id wins, deterministically

    def match(self, text: str, among: list[int] | None = None) -> int | None:
        key = normalize_title(text)
        if not key:
            return None
        if among is None:
            if key in self.index:
                return self.index[key]
            names = list(self.index)
            best = difflib.get_close_matches(key, names, n=1, cutoff=TITLE_CUTOFF)
            return self.index[best[0]] if best else None
        names = {self.norm[i]: i for i in reversed(among)}
        if key in names:
            return names[key]
        best = difflib.get_close_matches(key, list(names), n=1, cutoff=TITLE_CUTOFF)
        return names[best[0]] if best else None


LIKE = re.compile(r"(?<!dis)lik(?:e|es|ed|ing)?\s*(?:most)?\s*[:=\-]\s*(.+?)(?=(?:,|;|\n|\.\s|\s+dislik|$))", re.I)
DISLIKE = re.compile(r"dislik(?:e|es|ed|ing)?\s*(?:most)?\s*[:=\-]\s*(.+?)(?=(?:,|;|\n|\.\s|$))", re.I)
BARE_PAIR = re.compile(r"^\s*(\d+)\s*(?:,|;|/|and)\s*(\d+)\s*\.?\s*$", re.I)  # "3, 7" and nothing else
NUMBER = re.compile(r"^\s*(?:#|no\.?|number|candidate)?\s*(\d+)\b", re.I)


def resolve_choice(text: str, pool: list[int], matcher: TitleMatcher) -> tuple[int | None, str | None]:
    """An item id for one chosen candidate (a number into the pool, or a title), or a failure reason."""
    text = text.strip().strip("\"'*[]<>")
    num = NUMBER.match(text)
    if num:
        k = int(num.group(1))
        return (pool[k - 1], None) if 1 <= k <= len(pool) else (None, "out_of_pool")
    item = matcher.match(text, among=pool)
    if item is not None:
        return item, None
    return (None, "out_of_pool") if matcher.match(text) is not None else (None, "out_of_catalogue")


def parse_edge_answer(answer: str, pool: list[int], matcher: TitleMatcher) -> tuple[tuple[int, int] | None, str | None]:
    """``(positive, negative)`` item ids from an answer such as "like: 3, dislike: 7", or a failure reason.

    An unlabelled answer is read only when it is nothing but two numbers ("3, 7"): a numbered list of titles
    ("1. Fargo\n2. Heat") is not a choice and counts as malformed."""
    if not answer or not answer.strip():
        return None, "empty"
    like, dislike = LIKE.search(answer), DISLIKE.search(answer)
    bare = BARE_PAIR.match(answer)
    if like and dislike:
        parts = [like.group(1), dislike.group(1)]
    elif bare:
        parts = [bare.group(1), bare.group(2)]
    else:
        return None, "malformed"
    chosen = []
    for part in parts:
        item, why = resolve_choice(part, pool, matcher)
        if item is None:
            return None, why
        chosen.append(item)
    if chosen[0] == chosen[1]:
        return None, "same_item"
    return (chosen[0], chosen[1]), None


def parse_fields(answer: str, fields: list[str]) -> tuple[dict[str, str], str | None]:
    """``{field: value}`` from "field: value; field: value" answers (any order, any separator, chatter around
    them ignored), or a failure reason when no field is found."""
    if not answer or not answer.strip():
        return {}, "empty"
    names = "|".join(re.escape(f) for f in sorted(fields, key=len, reverse=True))
    pattern = re.compile(rf"(?i:\b({names}))\s*[:=]\s*(.*?)(?=\s*(?:[;\n|]|\.[ \t]+[A-Z][a-z]{{2,}}[ \t]|,?\s*(?i:\b(?:{names}))\s*[:=])|$)", re.S)
    found = {}
    for name, value in pattern.findall(answer):
        value = value.strip().strip(".,\"'*")
        key = next(f for f in fields if f.lower() == name.lower())
        if value and key not in found:
            found[key] = value
    return (found, None) if found else ({}, "malformed")


def count_failures(reasons) -> dict[str, int]:
    counts = Counter(r for r in reasons if r is not None)
    return {reason: counts.get(reason, 0) for reason in FAILURES}
