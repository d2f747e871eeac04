"""The ranking metrics, vectorised over a batch of users (top-K with the tie rule: ``gnnrec.topk``)."""
from __future__ import annotations

import torch

from gnnrec.topk import topk_items  # noqa: F401  (part of gnnrec.eval's API)

METRICS = ("recall", "ndcg", "precision", "map", "hit")


def ranking_metrics(hits: torch.Tensor, n_relevant: torch.Tensor, ks) -> dict[str, torch.Tensor]:
    """Per-user metrics at each k from a (batch, K) 0/1 hit matrix in rank order.

    NDCG uses the ideal DCG over min(k, |relevant|) positions; MAP is MMRec's: the sum of precision at
    each hit divided by min(k, |relevant|).
    """
    hits = hits.to(torch.float64)
    width = hits.shape[1]
    ranks = torch.arange(1, width + 1, dtype=torch.float64, device=hits.device)
    discount = 1.0 / torch.log2(ranks + 1)
    cum_hits = hits.cumsum(1)
    dcg = (hits * discount).cumsum(1)
    longest = max(width, *ks)  # the ideal list is min(k, |relevant|) long even when fewer items were ranked
    ideal = (1.0 / torch.log2(torch.arange(2, longest + 2, dtype=torch.float64, device=hits.device))).cumsum(0)
    prec_at_hit = (cum_hits / ranks * hits).cumsum(1)
    n_rel = n_relevant.to(torch.float64)
    out = {}
    for k in ks:
        c = min(k, width) - 1
        n_hit = cum_hits[:, c]
        denom = torch.clamp(n_rel, max=k)
        out[f"recall@{k}"] = n_hit / n_rel
        out[f"precision@{k}"] = n_hit / k
        out[f"hit@{k}"] = (n_hit > 0).to(torch.float64)
        out[f"ndcg@{k}"] = dcg[:, c] / ideal[(denom.long() - 1).clamp(min=0)]
        out[f"map@{k}"] = prec_at_hit[:, c] / denom
    return out
