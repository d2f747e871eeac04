"""Top-K selection with a fixed tie rule, used by evaluation, recommendation, kNN graphs and models.

Tie rule: higher score first, equal scores ordered by lower item id. On CPU (float32, k <= 256) one scan of
a C kernel (``topk.c``) applies the rule directly; elsewhere ``torch.topk``, which leaves ties at the K-th
place arbitrary, is followed by an exact fix-up of the rows whose K-th and (K+1)-th scores are equal.
"""
from __future__ import annotations

import ctypes
from pathlib import Path

import torch

from gnnrec.native import kernel

TOPK_SOURCE = Path(__file__).with_name("topk.c")
KERNEL_MAX_K = 256  # the kernel's sorted insert costs O(k) per entering score
_I64, _P = ctypes.c_int64, ctypes.c_void_p
TOPK_ARGS = [_I64, _I64, _I64, _P, _I64, _P, _P, ctypes.c_int]


def order_by_score_then_id(scores: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Sort candidate item ids per row by score descending, then id ascending."""
    idx, _ = torch.sort(idx, dim=1)
    vals = scores.gather(1, idx)
    order = torch.sort(vals, dim=1, descending=True, stable=True).indices
    return idx.gather(1, order)


def native_topk(scores: torch.Tensor, k: int) -> torch.Tensor | None:
    """The C kernel's top-k ids (tie rule applied, NaN last), or None where it does not apply: not a float32
    CPU matrix with unit column stride, k above KERNEL_MAX_K, or no C compiler."""
    if (scores.dim() != 2 or scores.dtype != torch.float32 or scores.device.type != "cpu" or k > KERNEL_MAX_K
            or k < 1 or (scores.stride(1) != 1 and scores.shape[1] > 1)):
        return None
    fn = kernel(TOPK_SOURCE, "gnnrec_row_topk", TOPK_ARGS, "top-k selection")
    if fn is None:
        return None
    rows = scores.detach()
    idx = torch.empty((rows.shape[0], k), dtype=torch.int64)
    val = torch.empty((rows.shape[0], k), dtype=torch.float32)
    fn(rows.shape[0], rows.shape[1], rows.stride(0), rows.data_ptr(), k, idx.data_ptr(), val.data_ptr(),
       torch.get_num_threads())
    return idx


def topk_items(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Ids of the top ``k`` items per row under the tie rule; ``scores`` is (batch, n_items)."""
    n_items = scores.shape[1]
    k = min(k, n_items)
    if scores.shape[0] == 0 or k == 0:
        return torch.empty((scores.shape[0], k), dtype=torch.int64, device=scores.device)
    native = native_topk(scores, k)
    if native is not None:
        return native
    probe = min(k + 1, n_items)
    vals, idx = torch.topk(scores, probe, dim=1)
    idx = idx[:, :k]
    if probe > k:
        tied = vals[:, k] == vals[:, k - 1]
        if tied.any():
            rows = tied.nonzero().squeeze(1)
            sub = scores[rows]
            kth = vals[rows, k - 1 : k]
            above = sub > kth
            equal = sub == kth
            room = k - above.sum(1, keepdim=True)
            chosen = above | (equal & (equal.cumsum(1) <= room))
            idx = idx.clone()
            idx[rows] = chosen.nonzero()[:, 1].view(len(rows), k)
    return order_by_score_then_id(scores, idx)
