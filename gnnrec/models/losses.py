"""Self-supervised losses the multimodal models share."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(anchor: torch.Tensor, positive: torch.Tensor, candidates: torch.Tensor | None = None,
             temperature: float = 0.2, reduction: str = "mean") -> torch.Tensor:
    """InfoNCE on cosine similarities: for each row i, -log of the softmax over cos(anchor_i, candidate_j) / t
    at cos(anchor_i, positive_i). ``candidates`` None: the positive rows themselves (in-batch negatives, as
    MGCN and SMORE); otherwise every row of ``candidates`` (all users or items, as LGMRec and DiffMM), which
    must include the positives. ``reduction``: mean or sum over rows (LGMRec sums, as MMRec does)."""
    anchor, positive = F.normalize(anchor, dim=-1), F.normalize(positive, dim=-1)
    candidates = positive if candidates is None else F.normalize(candidates, dim=-1)
    losses = torch.logsumexp(anchor @ candidates.T / temperature, dim=1) - (anchor * positive).sum(-1) / temperature
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got '{reduction}'")
    return losses.mean() if reduction == "mean" else losses.sum()
