"""LLMRec's side-information augmentations: item attributes and user profiles, asked as "field: value"
answers, parsed, and embedded with the text encoder as new modalities in the feature store.

An answer with no "field: value" in it is still information (small models answer in prose: "The movie
Heat was directed by ..."): it is embedded as it is and counted as unstructured. Empty answers are counted
and embedded as the mean of the other rows (the same documented fill rule as missing images)."""
from __future__ import annotations

import scipy.sparse as sp

from gnnrec.augment.parse import count_failures, parse_fields
from gnnrec.augment.prompts import answer_form, numbered, render, user_histories


def ask_fields(lm, prompts: list[str], fields: list[str], desc: str) -> tuple[list[str | None], dict]:
    """One text per prompt: the parsed "field: value; ..." line, else the answer itself (unstructured), else
    ``None`` for empty answers; and the counts of each outcome."""
    texts, reasons, per_field = [], [], dict.fromkeys(fields, 0)
    for answer in lm.complete(prompts, desc=desc):
        found, why = parse_fields(answer, fields)
        reasons.append(why)
        for f in found:
            per_field[f] += 1
        raw = " ".join(answer.split()) or None
        texts.append("; ".join(f"{f}: {found[f]}" for f in fields if f in found) if found else raw)
    report = {"prompts": len(prompts), "structured": sum(r is None for r in reasons),
              "unstructured": sum(r == "malformed" for r in reasons), "failures": count_failures(reasons),
              "fields_found": per_field}
    return texts, report


def attribute_prompts(template: str, item_texts: list[str], fields: list[str]) -> list[str]:
    return [render(template, item=text, fields=", ".join(fields), form=answer_form(fields)) for text in item_texts]


def profile_prompts(template: str, train: sp.csr_matrix, item_texts: list[str], fields: list[str],
                    history: int, seed: int) -> list[str]:
    return [render(template, history=numbered(item_texts[i] for i in hist), fields=", ".join(fields),
                   form=answer_form(fields)) for hist in user_histories(train, history, seed)]
