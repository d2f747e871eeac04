"""Sparse x dense products with a cheap backward, and the layer sums of graph propagation.

torch's autograd for a CSR matrix times a dense one rebuilds the transpose on every backward (about 4x the
forward's cost). The propagation matrices here are fixed, so the transpose is made once: for symmetric
matrices (the normalised user-item adjacency) it is the matrix itself.

Propagation ``scale x (x + A x + ... + A^L x)`` is linear in ``x``, so it runs as one autograd node by
Horner's rule (``s <- A s + x``, scaled in the last step), forward and backward (with ``A^T``): L products each way, no stored
layer outputs, no per-layer sums or divide, and with the row blocks (users, items) written into and read out
of one buffer, so neither the concatenation nor slice backward makes full-size zero-filled copies.

Operators (``set_propagation``): ``fused`` (default) runs each Horner step as one pass of the C kernel of
gnnrec/graphs/native.py (product, scale and ``+ x`` together), falling back to ``torch`` where the kernel does
not apply; ``torch`` is the same scheme with ``torch.sparse.mm(..., reduce="sum")``, torch's vectorised CSR
kernel; ``legacy`` is the previous operator (one autograd product per layer, python sums). All three are kept
for comparison; docs/performance.md has the measurements.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Sequence

import torch

from gnnrec.errors import ConfigError
from gnnrec.graphs.native import csr_spmm_add

PROPAGATION_MODES = ("fused", "torch", "legacy")
_mode = "fused"


def propagation_mode() -> str:
    return _mode


def set_propagation(mode: str) -> None:
    """Choose the operator: ``fused`` (default), ``torch`` or ``legacy`` (see the module's docstring)."""
    global _mode
    if mode not in PROPAGATION_MODES:
        raise ConfigError(f"propagation must be one of {PROPAGATION_MODES}, got '{mode}'")
    _mode = mode


@contextmanager
def propagation(mode: str):
    """``with propagation("legacy"): ...`` runs the block with that operator, then restores the previous one."""
    before = _mode
    set_propagation(mode)
    try:
        yield
    finally:
        set_propagation(before)


def sparse_product(a: torch.Tensor, x: torch.Tensor, base: torch.Tensor | None = None,
                   beta: float = 1.0, alpha: float = 1.0) -> torch.Tensor:
    """``alpha * a @ x (+ beta * base)`` with the fastest measured kernel: the C kernel (``fused``), else
    torch's ``reduce="sum"`` CSR kernel on CPU, else torch's default."""
    if _mode == "fused":
        out = csr_spmm_add(a, x, base, beta, alpha)
        if out is not None:
            return out
    if _mode != "legacy" and a.layout == torch.sparse_csr and x.device.type == "cpu":
        out = torch.sparse.mm(a, x, reduce="sum")
    else:
        out = torch.sparse.mm(a, x)
    if alpha != 1.0:
        out.mul_(alpha)
    return out if base is None else out.add_(base, alpha=beta)


class _SparseMM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, a_t, x):
        ctx.a_t = a_t
        return sparse_product(a, x)

    @staticmethod
    def backward(ctx, grad):
        return None, None, sparse_product(ctx.a_t, grad.contiguous())


def spmm(a: torch.Tensor, x: torch.Tensor, a_t: torch.Tensor | None = None) -> torch.Tensor:
    """``a @ x`` for a constant sparse ``a``; ``a_t`` is its transpose (default: ``a`` is symmetric)."""
    return _SparseMM.apply(a, a if a_t is None else a_t, x)


def power_sum(a: torch.Tensor, x: torch.Tensor, num_layers: int, scale: float) -> torch.Tensor:
    """``scale x (x + a x + ... + a^L x)`` by Horner's rule: L steps ``s <- a s + x``, the last one
    ``s <- scale a s + scale x``, each one pass (the scale costs no pass of its own).

    ``x`` may be overwritten by the caller afterwards: the result never aliases it."""
    if num_layers == 0:
        return x * scale
    total = x
    for layer in range(num_layers):
        factor = scale if layer == num_layers - 1 else 1.0
        total = sparse_product(a, total, x, beta=factor, alpha=factor)
    return total


def joined(*blocks: torch.Tensor) -> torch.Tensor | None:
    """The contiguous 2-d tensor whose consecutive row blocks ``blocks`` are, or None if they are not."""
    first = blocks[0]
    if first.dim() != 2 or any(b.dim() != 2 or not b.is_contiguous() or b.shape[1] != first.shape[1]
                               or b.dtype != first.dtype or b.device != first.device for b in blocks):
        return None
    base = first._base
    if base is None or base.dim() != 2 or not base.is_contiguous() or base.stride() != first.stride():
        return None
    if first.data_ptr() != base.data_ptr() or base.shape[0] != sum(b.shape[0] for b in blocks):
        return None
    offset = first.data_ptr()
    for b in blocks:
        if b._base is not base or b.data_ptr() != offset:
            return None
        offset += b.numel() * b.element_size()
    return base


class _PowerSum(torch.autograd.Function):
    """Autograd node of ``power_sum`` over row blocks: inputs and outputs are the blocks (e.g. users, items),
    each output block plus its ``plus`` term (None: nothing added)."""

    @staticmethod
    def forward(ctx, op, num_layers, scale, n_blocks, *blocks_and_plus):
        blocks, plus = blocks_and_plus[:n_blocks], blocks_and_plus[n_blocks:]
        ctx.op, ctx.num_layers, ctx.scale = op, num_layers, scale
        ctx.sizes, ctx.with_plus = [b.shape[0] for b in blocks], [p is not None for p in plus]
        x = blocks[0].contiguous() if len(blocks) == 1 else torch.cat(blocks)
        out = power_sum(op.matrix, x, num_layers, scale)
        parts = out.split(ctx.sizes)
        for part, extra in zip(parts, plus):
            if extra is not None:  # in place, in the buffer: the blocks stay one buffer (see ``joined``)
                if extra.shape != part.shape:
                    raise ValueError(f"propagate: a plus term of shape {tuple(extra.shape)} for a block of shape "
                                     f"{tuple(part.shape)}")
                part.add_(extra)
        return out if len(blocks) == 1 else parts

    @staticmethod
    def backward(ctx, *grads):
        whole = joined(*grads) if all(g is not None for g in grads) else None
        if len(grads) == 1:
            grad = grads[0].contiguous()
        elif whole is not None:  # the blocks' gradients already are one buffer (bpr_differences makes them so)
            grad = whole
        else:  # one buffer for the blocks' gradients: no zero-filled full-size tensor per block
            like = next(g for g in grads if g is not None)
            grad = like.new_empty((sum(ctx.sizes), *like.shape[1:]))
            for g, part in zip(grads, grad.split(ctx.sizes)):
                part.zero_() if g is None else part.copy_(g)
        a_t = ctx.op.matrix if ctx.op.transpose is None else ctx.op.transpose
        out = power_sum(a_t, grad, ctx.num_layers, ctx.scale)
        grad_plus = [g if used else None for g, used in zip(grad.split(ctx.sizes), ctx.with_plus)]
        return (None, None, None, None, *((out,) if len(ctx.sizes) == 1 else out.split(ctx.sizes)), *grad_plus)


def propagate(op: "FixedSparse", x: torch.Tensor | Sequence[torch.Tensor], num_layers: int,
              mean: bool = False, plus: Sequence[torch.Tensor | None] | None = None
              ) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """Sum (or mean) of ``x, A x, ..., A^L x`` with A = ``op``; ``x`` is one tensor or its row blocks (e.g. the
    user and item tables, which then need no concatenation), and the result has the same form. ``plus``: one
    term (or None) per block added to that block of the result, as ``result + plus`` would, but inside the
    result's buffer (in the result's dtype), so that gradients of the blocks can come back as one buffer
    (``joined``)."""
    blocks = [x] if isinstance(x, torch.Tensor) else list(x)
    plus = [None] * len(blocks) if plus is None else list(plus)
    if len(plus) != len(blocks):
        raise ValueError(f"propagate: {len(plus)} plus terms for {len(blocks)} blocks")
    if _mode == "legacy":
        whole = blocks[0] if len(blocks) == 1 else torch.cat(blocks)
        total = whole
        for _ in range(num_layers):
            whole = op @ whole
            total = total + whole
        total = total / (num_layers + 1) if mean else total
        parts = [t if extra is None else t + extra
                 for t, extra in zip(total.split([b.shape[0] for b in blocks]), plus)]
        return parts[0] if isinstance(x, torch.Tensor) else tuple(parts)
    op.to(blocks[0].device)
    return _PowerSum.apply(op, num_layers, 1.0 / (num_layers + 1) if mean else 1.0, len(blocks), *blocks, *plus)


def with_index_dtype(matrix: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """The same CSR matrix with int32 or int64 row pointers and column indices (other layouts unchanged)."""
    if matrix is None or matrix.layout != torch.sparse_csr or matrix.crow_indices().dtype == dtype:
        return matrix
    if dtype == torch.int32 and max(matrix._nnz(), *matrix.shape) >= 2**31:
        return matrix
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        return torch.sparse_csr_tensor(matrix.crow_indices().to(dtype), matrix.col_indices().to(dtype),
                                       matrix.values(), size=matrix.shape, check_invariants=False)


def on_device(matrix: torch.Tensor | None, device) -> torch.Tensor | None:
    """``matrix`` on ``device``, with int32 CSR indices on CPU (the C kernel reads half the index bytes) and
    int64 elsewhere."""
    if matrix is None:
        return None
    device = torch.device(device)
    return with_index_dtype(matrix.to(device), torch.int32 if device.type == "cpu" else torch.int64)


class FixedSparse:
    """A constant sparse matrix and its transpose, moved to a device once and kept there.

    On CPU a CSR matrix keeps int32 indices (below 2^31 non-zeros and columns): the C kernel then reads half
    the index bytes (measured in benchmarks/perf.md); moved to another device it gets int64 again."""

    def __init__(self, matrix: torch.Tensor, transpose: torch.Tensor | None = None):
        self.matrix, self.transpose = on_device(matrix, matrix.device), on_device(transpose, matrix.device)

    def to(self, device) -> "FixedSparse":
        if self.matrix.device != torch.device(device):
            self.matrix, self.transpose = on_device(self.matrix, device), on_device(self.transpose, device)
        return self

    def __matmul__(self, x: torch.Tensor) -> torch.Tensor:
        return spmm(self.to(x.device).matrix, x, self.transpose)
