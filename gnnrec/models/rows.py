"""Row lookups whose backward writes one gradient table per looked-up table.

``table[users]``, ``table[pos]`` and ``table[neg]`` each get their own zero-filled, full-size gradient table
in backward (index backward), which autograd then adds up: for a BPR batch that is three full-size fills and
adds per table for a few thousand rows. ``rows(table, pos, neg)`` gathers all the index sets in one autograd
node whose backward fills one table and adds each set's rows into it (``index_add_``): the same gradient,
fewer full-size passes (benchmarks/perf.md, docs/performance.md).
"""
from __future__ import annotations

import torch


class _Rows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, table, *indices):
        ctx.save_for_backward(*indices)
        ctx.shape = table.shape
        return tuple(table.index_select(0, i.reshape(-1)).view(*i.shape, *table.shape[1:]) for i in indices)

    @staticmethod
    def backward(ctx, *grads):
        grad = None
        for index, g in zip(ctx.saved_tensors, grads):
            if g is not None:
                grad = g.new_zeros(ctx.shape) if grad is None else grad
                grad.index_add_(0, index.reshape(-1), g.reshape(-1, *ctx.shape[1:]))
        return (grad, *([None] * len(grads)))


def rows(table: torch.Tensor, *indices: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``tuple(table[i] for i in indices)`` as one autograd node, for non-negative integer index tensors of any
    shape on the table's device."""
    return _Rows.apply(table, *indices)
