"""Row lookups and BPR score differences whose backward writes one gradient table per looked-up table.

``table[users]``, ``table[pos]`` and ``table[neg]`` each get their own zero-filled, full-size gradient table
in backward (index backward), which autograd then adds up: for a BPR batch that is three full-size fills and
adds per table for a few thousand rows. ``rows(table, pos, neg)`` gathers all the index sets in one autograd
node whose backward fills one table and adds each set's rows into it; ``bpr_differences`` computes a batch's
``<u, p> - <u, n>`` as one node whose backward adds each triple's rows straight into the gradient tables.
On float32 CPU tensors both use the C kernels of rows.c (torch's ``index_add_`` moves rows at about a quarter
of memory speed); elsewhere torch's operations. Same values and gradients either way, to float rounding
(benchmarks/perf.md, docs/performance.md).
"""
from __future__ import annotations

import ctypes
from pathlib import Path

import torch
from torch.autograd.function import once_differentiable

from gnnrec.graphs.spmm import joined
from gnnrec.native import kernel

SOURCE = Path(__file__).with_name("rows.c")
_I64, _P, _F, _INT = ctypes.c_int64, ctypes.c_void_p, ctypes.c_float, ctypes.c_int
ROWS_ADD_ARGS = [_I64, _I64, _P, _P, _P, _F, _P, _INT]
DIFFERENCES_ARGS = [_I64, _I64, _P, _P, _P, _P, _P, _P, _INT]
BPR_BACKWARD_ARGS = [_I64, _I64, _P, _P, _P, _P, _P, _P, _P, _P, _INT]


def _native(*tensors: torch.Tensor) -> bool:
    """Whether the C kernels apply: float32 (tables) or int64 (ids), contiguous, on CPU."""
    return all(t.device.type == "cpu" and t.is_contiguous() and t.dtype in (torch.float32, torch.int64)
               for t in tensors)


def _check_ids(ids: torch.Tensor, n_rows: int, what: str) -> torch.Tensor:
    """``ids`` as contiguous int64, after torch's indexing checks (integer type, every id in [0, n_rows)): the
    C kernels index raw memory, so a bad id must be an error here, as it is for ``table[ids]``."""
    if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        raise IndexError(f"{what}: ids must be integers, got {ids.dtype}")
    if ids.numel():
        low, high = torch.aminmax(ids)
        if int(low) < 0 or int(high) >= n_rows:
            raise IndexError(f"{what}: ids must lie in [0, {n_rows}), got ids from {int(low)} to {int(high)}")
    return ids.to(torch.int64).contiguous()


def add_rows_(out: torch.Tensor, index: torch.Tensor, src: torch.Tensor, alpha: float = 1.0,
              src_index: torch.Tensor | None = None) -> torch.Tensor:
    """``out.index_add_(0, index, alpha * src)`` for 2-d ``out`` and ``src`` and 1-d ``index``, or with
    ``src[src_index]`` in place of ``src`` (C kernel where it applies, without gathering ``src[src_index]``)."""
    if out.dim() != 2 or src.dim() != 2 or src.shape[1] != out.shape[1] or index.dim() != 1:
        raise ValueError(f"add_rows_: out and src must be 2-d with equal widths and index 1-d, got out "
                         f"{tuple(out.shape)}, src {tuple(src.shape)}, index {tuple(index.shape)}")
    n_src = src.shape[0] if src_index is None else len(src_index)
    if len(index) != n_src:
        raise ValueError(f"add_rows_: {len(index)} indices for {n_src} source rows")
    fn = None
    if out.dtype == src.dtype == torch.float32 and _native(out, src):
        index = _check_ids(index, out.shape[0], "add_rows_ index")
        src_index = None if src_index is None else _check_ids(src_index, src.shape[0], "add_rows_ src_index")
        fn = kernel(SOURCE, "gnnrec_rows_add", ROWS_ADD_ARGS, "row scatter-adds")
    if fn is None:
        return out.index_add_(0, index, src if src_index is None else src.index_select(0, src_index), alpha=alpha)
    fn(len(index), out.shape[1], index.data_ptr(), None if src_index is None else src_index.data_ptr(),
       src.data_ptr(), alpha, out.data_ptr(), torch.get_num_threads())
    return out


class _Rows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, table, *indices):
        ctx.save_for_backward(*indices)
        ctx.shape = table.shape
        return tuple(table.index_select(0, i.reshape(-1)).view(*i.shape, *table.shape[1:]) for i in indices)

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads):
        grad = None
        for index, g in zip(ctx.saved_tensors, grads):
            if g is not None:
                grad = g.new_zeros(ctx.shape) if grad is None else grad
                if grad.dim() == 2:
                    add_rows_(grad, index.reshape(-1), g.reshape(-1, ctx.shape[1]))
                else:
                    grad.index_add_(0, index.reshape(-1), g.reshape(-1, *ctx.shape[1:]))
        return (grad, *([None] * len(grads)))


def rows(table: torch.Tensor, *indices: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``tuple(table[i] for i in indices)`` as one autograd node, for non-negative integer index tensors of any
    shape on the table's device."""
    return _Rows.apply(table, *indices)


class _RowSquares(torch.autograd.Function):
    @staticmethod
    def forward(ctx, table, *indices):
        ctx.save_for_backward(table, *indices)
        flat = [table.index_select(0, i).view(-1) for i in indices]
        return torch.stack([torch.dot(f, f) for f in flat])

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        table, *indices = ctx.saved_tensors
        out = torch.zeros_like(table)
        for k, index in enumerate(indices):
            if out.device.type == "cpu":  # reading one number costs nothing here (no device sync)
                add_rows_(out, index, table, 2.0 * float(grad[k]), src_index=index)
            else:
                out.index_add_(0, index, table.index_select(0, index) * (2 * grad[k]))
        return (out, *([None] * len(indices)))


def row_squares(table: torch.Tensor, *indices: torch.Tensor) -> torch.Tensor:
    """``torch.stack([table[i].pow(2).sum() for i in indices])`` for a 2-d table, as one autograd node whose
    backward adds ``2 g table[i]`` into one zero-filled gradient table (the regulariser's squared norms)."""
    if table.dim() != 2 or table.dtype != torch.float32:  # bf16: index_add_ of 2 g x loses more than this
        return torch.stack([r.pow(2).sum() for r in rows(table, *indices)])
    return _RowSquares.apply(table, *(_check_ids(i.reshape(-1), table.shape[0], "row_squares") for i in indices))


def _zero_gradients(user_table: torch.Tensor, item_table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-filled gradient tables for the two tables; one buffer split in two where the tables themselves are
    consecutive row blocks of one buffer (graph propagation's output), so the propagation's backward receives
    its gradient without a copy (``joined``)."""
    if joined(user_table, item_table) is not None:
        both = user_table.new_zeros((user_table.shape[0] + item_table.shape[0], user_table.shape[1]))
        return both[: user_table.shape[0]], both[user_table.shape[0] :]
    return torch.zeros_like(user_table), torch.zeros_like(item_table)


class _BPRDifferences(torch.autograd.Function):
    @staticmethod
    def forward(ctx, user_table, item_table, users, pos, neg):
        ctx.save_for_backward(user_table, item_table, users, pos, neg)
        diff = user_table.new_empty(len(users))
        fn = kernel(SOURCE, "gnnrec_bpr_differences", DIFFERENCES_ARGS, "BPR score differences")
        fn(len(users), user_table.shape[1], users.data_ptr(), pos.data_ptr(), neg.data_ptr(),
           user_table.data_ptr(), item_table.data_ptr(), diff.data_ptr(), torch.get_num_threads())
        return diff

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        user_table, item_table, users, pos, neg = ctx.saved_tensors
        if not any(ctx.needs_input_grad[:2]):
            return None, None, None, None, None
        grad_users, grad_items = _zero_gradients(user_table, item_table)
        fn = kernel(SOURCE, "gnnrec_bpr_backward", BPR_BACKWARD_ARGS, "BPR score differences")
        grad = grad.to(torch.float32).contiguous()
        fn(len(users), user_table.shape[1], users.data_ptr(), pos.data_ptr(), neg.data_ptr(),
           user_table.data_ptr(), item_table.data_ptr(), grad.data_ptr(), grad_users.data_ptr(),
           grad_items.data_ptr(), torch.get_num_threads())
        needs = ctx.needs_input_grad
        return grad_users if needs[0] else None, grad_items if needs[1] else None, None, None, None


def bpr_differences(user_table: torch.Tensor, item_table: torch.Tensor, users: torch.Tensor, pos: torch.Tensor,
                    neg: torch.Tensor) -> torch.Tensor:
    """``<U[users], I[pos]> - <U[users], I[neg]>`` per triple (1-d id tensors of one length): one autograd node
    with the C kernels on float32 CPU tables, else torch's gathers and products."""
    if (user_table.dim() == item_table.dim() == 2 and user_table.dtype == item_table.dtype == torch.float32
            and _native(user_table, item_table)
            and kernel(SOURCE, "gnnrec_bpr_differences", DIFFERENCES_ARGS, "BPR score differences") is not None
            and kernel(SOURCE, "gnnrec_bpr_backward", BPR_BACKWARD_ARGS, "BPR score differences") is not None):
        if user_table.shape[1] != item_table.shape[1]:
            raise ValueError(f"bpr_differences: user rows have width {user_table.shape[1]}, item rows "
                             f"{item_table.shape[1]}")
        if not users.dim() == pos.dim() == neg.dim() == 1 or not len(users) == len(pos) == len(neg):
            raise ValueError(f"bpr_differences: users, pos and neg must be 1-d of one length, got shapes "
                             f"{tuple(users.shape)}, {tuple(pos.shape)}, {tuple(neg.shape)}")
        ids = (_check_ids(users, user_table.shape[0], "bpr_differences users"),
               _check_ids(pos, item_table.shape[0], "bpr_differences pos"),
               _check_ids(neg, item_table.shape[0], "bpr_differences neg"))
        return _BPRDifferences.apply(user_table, item_table, *ids)
    (u,), (p, n) = rows(user_table, users), rows(item_table, pos, neg)
    return (u * p).sum(-1) - (u * n).sum(-1)
