"""LLMRec's denoised robustification, as pure functions: noisy-edge pruning and masked-feature
reconstruction with the scaled cosine error (GraphMAE's SCE)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def keep_smallest(losses: torch.Tensor, keep_share: float) -> torch.Tensor:
    """Mean of the ``floor(keep_share x n)`` (at least one) smallest per-triple losses: the largest-loss share,
    the likeliest noisy edges, is dropped (the paper's intent; LLMRec's public code keeps the largest)."""
    if not 0 < keep_share <= 1:
        raise ValueError(f"keep_share must be in (0, 1], got {keep_share}")
    k = max(1, int(keep_share * len(losses)))
    return torch.topk(losses, k, largest=False, sorted=False).values.mean()


def prune_noisy(losses: torch.Tensor, augmented: torch.Tensor | None, keep_share: float, scope: str) -> torch.Tensor:
    """Mean BPR loss after noisy-edge pruning. ``scope`` "augmented": the largest-loss share is dropped among the
    LLM-augmented triples only (real interactions all count); "batch": among all triples of the batch."""
    if scope == "batch":
        return keep_smallest(losses, keep_share)
    if scope != "augmented":
        raise ValueError(f"prune_scope must be 'augmented' or 'batch', got '{scope}'")
    if augmented is None or not augmented.any():
        return losses.mean()
    real, aug = losses[~augmented], losses[augmented]
    kept = max(1, int(keep_share * len(aug)))
    return (real.sum() + keep_smallest(aug, keep_share) * kept) / (len(real) + kept)


def mask_rows(n: int, share: float, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """Ids of ``round(share x n)`` distinct rows chosen uniformly (at least one when ``share > 0``)."""
    if share <= 0:
        return torch.empty(0, dtype=torch.long, device=device)
    k = min(n, max(1, round(share * n)))
    return torch.randperm(n, generator=generator)[:k].to(device)


def scaled_cosine_error(recon: torch.Tensor, target: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
    """Mean over rows of ``(1 - cos(recon, target)) ** alpha``; ``alpha > 1`` down-weights easy rows."""
    cos = F.cosine_similarity(recon, target, dim=-1)
    return (1 - cos).pow(alpha).mean()
