"""LLMRec's implicit-feedback augmentation: per user, the LLM picks one liked and one disliked item from a
base recommender's top candidates. Result: at most one (user, positive, negative) triple per user."""
from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from gnnrec.augment.parse import TitleMatcher, count_failures, parse_edge_answer
from gnnrec.augment.prompts import numbered, render, user_histories
from gnnrec.errors import DataError
from gnnrec.eval.metrics import topk_items

HEADER = ["user", "positive", "negative"]


@torch.no_grad()
def candidate_pools(model, train: sp.csr_matrix, k: int, batch_size: int = 1024) -> np.ndarray:
    """(n_users, k) ids of each user's top-``k`` items under ``model`` among items not in train."""
    score = model.score_fn()
    pools = []
    for start in range(0, train.shape[0], batch_size):
        users = torch.arange(start, min(start + batch_size, train.shape[0]))
        scores = score(users).cpu()
        block = train[start : start + len(users)].tocoo()
        scores[torch.from_numpy(block.row.astype(np.int64)), torch.from_numpy(block.col.astype(np.int64))] = -torch.inf
        pools.append(topk_items(scores, k).numpy())
    return np.concatenate(pools)


def edge_prompts(template: str, item_texts: list[str], histories, pools) -> list[list[dict]]:
    return [render(template, history=numbered(item_texts[i] for i in hist),
                   candidates=numbered(item_texts[i] for i in pool))
            for hist, pool in zip(histories, pools)]


def augment_edges(lm, train: sp.csr_matrix, pools: np.ndarray, item_texts: list[str], titles, template: str,
                  history: int = 10, seed: int = 0) -> tuple[np.ndarray, dict]:
    """Ask ``lm`` once per user; return the parsed (user, pos, neg) triples and a failure report."""
    prompts = edge_prompts(template, item_texts, user_histories(train, history, seed), pools)
    answers = lm.complete(prompts, desc="augment edges")
    matcher = TitleMatcher(titles)
    rows, reasons, positions = [], [], Counter()
    for user, (answer, pool) in enumerate(zip(answers, pools)):
        pool = [int(i) for i in pool]
        pair, why = parse_edge_answer(answer, pool, matcher)
        reasons.append(why)
        if pair is not None:
            rows.append((user, *pair))
            positions[f"{pool.index(pair[0]) + 1},{pool.index(pair[1]) + 1}"] += 1
    triples = np.asarray(rows, dtype=np.int64).reshape(-1, 3)
    # which candidate ranks were picked: a model that copies its example, or always says "1, 10", shows here
    report = {"users": train.shape[0], "triples": len(triples), "failures": count_failures(reasons),
              "picked_ranks_like_dislike": dict(positions.most_common(10))}
    return triples, report


def write_edges(path: Path, triples: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        writer.writerows(triples.tolist())


def read_edges(path: str | Path, n_users: int, n_items: int) -> np.ndarray:
    """(m, 3) int64 triples from an edges CSV, checked against the dataset's id ranges."""
    path = Path(path)
    if not path.is_file():
        raise DataError("augmented edges file not found", path=path)
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header != HEADER:
            raise DataError(f"header must be {','.join(HEADER)}, got {header}", path=path, line=1)
        rows = []
        for line, row in enumerate(reader, start=2):
            try:
                u, p, n = (int(x) for x in row)
            except ValueError:
                raise DataError(f"expected three integer ids, got {row}", path=path, line=line) from None
            if not (0 <= u < n_users and 0 <= p < n_items and 0 <= n < n_items):
                raise DataError(f"id out of range for this dataset ({n_users} users, {n_items} items): {row}",
                                path=path, line=line)
            rows.append((u, p, n))
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)
