"""Sparse x dense products with a cheap backward.

torch's autograd for a CSR matrix times a dense one rebuilds the transpose on every backward (about 4x the
forward's cost). The propagation matrices here are fixed, so the transpose is made once: for symmetric
matrices (the normalised user-item adjacency) it is the matrix itself.
"""
from __future__ import annotations

import torch


class _SparseMM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, a_t, x):
        ctx.a_t = a_t
        return torch.sparse.mm(a, x)

    @staticmethod
    def backward(ctx, grad):
        return None, None, torch.sparse.mm(ctx.a_t, grad)


def spmm(a: torch.Tensor, x: torch.Tensor, a_t: torch.Tensor | None = None) -> torch.Tensor:
    """``a @ x`` for a constant sparse ``a``; ``a_t`` is its transpose (default: ``a`` is symmetric)."""
    return _SparseMM.apply(a, a if a_t is None else a_t, x)


class FixedSparse:
    """A constant sparse matrix and its transpose, moved to a device once and kept there."""

    def __init__(self, matrix: torch.Tensor, transpose: torch.Tensor | None = None):
        self.matrix, self.transpose = matrix, transpose

    def to(self, device) -> "FixedSparse":
        if self.matrix.device != device:
            self.matrix = self.matrix.to(device)
            self.transpose = None if self.transpose is None else self.transpose.to(device)
        return self

    def __matmul__(self, x: torch.Tensor) -> torch.Tensor:
        return spmm(self.to(x.device).matrix, x, self.transpose)
