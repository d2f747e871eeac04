"""LLMRec's implicit-feedback augmentation: per user, the LLM picks one liked and one disliked item from a
base recommender's top candidates. Result: at most one (user, positive, negative) triple per user."""
from __future__ import annotations

from collections import Counter

import numpy as np
import scipy.sparse as sp
import torch

from gnnrec.augment.parse import TitleMatcher, count_failures, parse_edge_answer
from gnnrec.augment.prompts import numbered, render, user_histories
from gnnrec.data.augmented import read_edges, write_edges  # noqa: F401  (the file format)
from gnnrec.topk import topk_items


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
