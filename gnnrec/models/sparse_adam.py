"""Adam that updates only the rows a batch touched, for tables with sparse (row) gradients.

FREEDOM and BM3 train their raw item-feature tables (as MMRec does), but a batch reads only its own items'
rows. A dense gradient and a dense Adam update over a 4096-d table then cost far more than the rest of the
batch. With ``nn.Embedding(sparse=True)`` the gradient holds the touched rows only, and this optimiser applies
Adam's rule (same moments, bias correction and epsilon as ``torch.optim.Adam``) to those rows: "lazy" Adam.
It differs from dense Adam in one way, documented in docs/performance.md: dense Adam keeps moving a row by
its momentum in batches that do not touch it, lazy Adam does not. Every other parameter gets torch's Adam
(fused where available).
"""
from __future__ import annotations

import ctypes
from pathlib import Path

import torch

from gnnrec.errors import ConfigError
from gnnrec.native import kernel

ROW_ADAM = Path(__file__).with_name("row_adam.c")
_F, _I64, _P = ctypes.c_float, ctypes.c_int64, ctypes.c_void_p
ROW_ADAM_ARGS = [_I64, _I64, _P, _P, _P, _P, _P, _F, _F, _F, _F, _F, ctypes.c_int]


class RowSparseAdam(torch.optim.Adam):
    """``torch.optim.Adam`` whose groups flagged ``row_sparse`` get lazy row updates from sparse gradients."""

    def __init__(self, params, row_sparse: list[torch.nn.Parameter], **kwargs):
        if row_sparse and kwargs.get("weight_decay"):
            raise ConfigError("optim.weight_decay decays every row of a table each step, so a row-sparse update "
                              "cannot apply it: set optim.weight_decay to 0 or model.sparse_features to false")
        sparse_ids = {id(p) for p in row_sparse}
        dense = [p for p in params if id(p) not in sparse_ids]

        def groups():  # fresh dicts per attempt: the optimiser writes its defaults into them
            return [{"params": dense}] + ([{"params": list(row_sparse), "row_sparse": True}] if row_sparse else [])
        try:
            super().__init__(groups(), fused=True, **kwargs)
        except (RuntimeError, TypeError):  # no fused kernel for this device/dtype
            super().__init__(groups(), **kwargs)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        groups = self.param_groups
        self.param_groups = [g for g in groups if not g.get("row_sparse")]
        try:
            super().step()
        finally:
            self.param_groups = groups
        for group in groups:
            if group.get("row_sparse"):
                for p in group["params"]:
                    if p.grad is not None:
                        self._row_step(p, group)
        return loss

    def _row_step(self, p: torch.Tensor, group: dict) -> None:
        """Adam's update on the gradient's rows only: one pass with the C kernel, else a few torch passes."""
        grad = p.grad
        if not grad.is_sparse:
            raise ConfigError("a row-sparse parameter got a dense gradient: look its rows up with the "
                              "nn.Embedding(sparse=True) module, not through .weight")
        rows, values = grad._indices()[0], grad._values()
        if not grad.is_coalesced() and torch.unique(rows).numel() != rows.numel():  # repeated rows: sum them
            grad = grad.coalesce()
            rows, values = grad.indices()[0], grad.values()
        state = self.state[p]
        if not state:
            state["step"] = torch.zeros((), dtype=torch.float32)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["step"] += 1
        step = float(state["step"])
        beta1, beta2 = group["betas"]
        # Adam: p -= lr / b1 * m / (sqrt(v) / sqrt(b2) + eps) = lr * sqrt(b2) / b1 * m / (sqrt(v) + eps * sqrt(b2))
        bias1, bias2_sqrt = 1 - beta1 ** step, (1 - beta2 ** step) ** 0.5
        eps, step_size = group["eps"] * bias2_sqrt, group["lr"] * bias2_sqrt / bias1
        if _row_adam_native(p, state, rows, values, beta1, beta2, eps, step_size):
            return
        exp_avg, exp_avg_sq = self._scratch(p, len(rows))  # reused: fresh large buffers cost page faults
        torch.index_select(state["exp_avg"], 0, rows, out=exp_avg).lerp_(values, 1 - beta1)
        torch.index_select(state["exp_avg_sq"], 0, rows, out=exp_avg_sq).mul_(beta2).addcmul_(values, values,
                                                                                              value=1 - beta2)
        state["exp_avg"].index_copy_(0, rows, exp_avg)
        state["exp_avg_sq"].index_copy_(0, rows, exp_avg_sq)
        p.index_add_(0, rows, exp_avg.div_(exp_avg_sq.sqrt_().add_(eps)), alpha=-step_size)

    def _scratch(self, p: torch.Tensor, n_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Two (n_rows, ...) work buffers for ``p``'s moments, kept between steps and grown when needed."""
        buffers = self.__dict__.setdefault("_buffers", {})
        buf = buffers.get(id(p))
        if buf is None or buf.shape[1] < n_rows:
            buf = buffers[id(p)] = p.new_empty((2, max(n_rows, 1), *p.shape[1:]))
        return buf[0, :n_rows], buf[1, :n_rows]


def _row_adam_native(p, state, rows, values, beta1, beta2, eps, step_size) -> bool:
    """The update in one pass with the C kernel (row_adam.c) where it applies: float32 CPU tensors, contiguous.
    False when it does not (the caller then runs torch's operations)."""
    values = values.contiguous()
    tensors = (p, state["exp_avg"], state["exp_avg_sq"], values)
    if any(t.device.type != "cpu" or t.dtype != torch.float32 or not t.is_contiguous() for t in tensors):
        return False
    fn = kernel(ROW_ADAM, "gnnrec_row_adam", ROW_ADAM_ARGS, "the row-sparse Adam update")
    if fn is None:
        return False
    rows = rows.to(torch.int64).contiguous()
    width = p.numel() // p.shape[0] if p.shape[0] else 0
    fn(len(rows), width, rows.data_ptr(), values.data_ptr(), p.data_ptr(), state["exp_avg"].data_ptr(),
       state["exp_avg_sq"].data_ptr(), 1 - beta1, beta2, 1 - beta2, eps, step_size, torch.get_num_threads())
    return True
