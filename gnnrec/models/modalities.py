"""Building blocks the multimodal models share: per-modality feature tables with linear projections, and
the frozen item-item graph."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.autograd.function import once_differentiable

from gnnrec.data.dataset import RecDataset
from gnnrec.errors import ConfigError
from gnnrec.graphs.adjacency import fixed_operator
from gnnrec.graphs.knn import item_graph
from gnnrec.graphs.spmm import FixedSparse
from gnnrec.models.rows import add_rows_


def require_features(dataset: RecDataset, model: str) -> dict[str, np.ndarray]:
    if not dataset.features:
        raise ConfigError(f"model '{model}' needs item features, and dataset '{dataset.name}' has none "
                          "(add *.npy feature files, or encode some with gnnrec's encoders)")
    return dataset.features


PROJECTION_INITS = {"pytorch": None, "xavier_normal": nn.init.xavier_normal_, "xavier_uniform": nn.init.xavier_uniform_}


class ModalityProjections(nn.Module):
    """Each modality's raw item features (trainable when ``trainable``, as MMRec's FREEDOM and BM3 do) and a
    linear map to ``dim``. Any number of modalities, named as in the dataset. With ``sparse``, trainable tables
    get row-sparse gradients when read by rows (``forward(items)``), which the Recommender's optimiser
    updates row by row.

    ``init`` sets the maps' weights as the model's reference does: ``pytorch`` (nn.Linear's default, as MMRec's
    FREEDOM and LATTICE), ``xavier_normal`` (MMRec's BM3) or ``xavier_uniform`` (LLMRec); biases keep
    nn.Linear's default, as in those references."""

    def __init__(self, features: dict[str, np.ndarray], dim: int, trainable: bool = True, init: str = "pytorch",
                 sparse: bool = False):
        super().__init__()
        if init not in PROJECTION_INITS:
            raise ConfigError(f"projection init must be one of {sorted(PROJECTION_INITS)}, got '{init}'")
        self.names = sorted(features)
        # sparse: row lookups give row-sparse gradients, updated lazily (gnnrec/models/sparse_adam.py)
        # trainable tables get their own copy: training (or loading trained weights) must never write into the
        # dataset's feature arrays, which the item graph, exports and ablations read as the raw features
        as_table = (lambda a: torch.tensor(a, dtype=torch.float32)) if trainable else (
            lambda a: torch.from_numpy(np.asarray(a, dtype=np.float32)))
        self.tables = nn.ModuleDict({n: nn.Embedding.from_pretrained(as_table(features[n]), freeze=not trainable,
                                                                     sparse=sparse and trainable)
                                     for n in self.names})
        self.proj = nn.ModuleDict({n: nn.Linear(features[n].shape[1], dim) for n in self.names})
        if PROJECTION_INITS[init] is not None:
            for layer in self.proj.values():
                PROJECTION_INITS[init](layer.weight)

    def forward(self, items: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Projected features of all items, or of the rows ``items`` only (a batch: far cheaper at scale; each
        distinct row is projected once, so a row-sparse gradient holds each row once)."""
        if items is None:
            return {n: self.proj[n](self.tables[n].weight) for n in self.names}
        rows, where = torch.unique(items, return_inverse=True)
        return {n: self.proj[n](self.tables[n](rows))[where] for n in self.names}

    def differences(self, first: torch.Tensor, second: torch.Tensor) -> dict[str, torch.Tensor]:
        """``proj(x[first]) - proj(x[second])`` per modality, row by row: all a BPR term on projected features
        needs, computed as ``W (x[first] - x[second])`` (the bias cancels; equal to float rounding)."""
        return {n: _ProjectedDifference.apply(self.tables[n].weight, self.proj[n].weight, self.proj[n].bias, first,
                                              second, self.tables[n].sparse) for n in self.names}


class _ProjectedDifference(torch.autograd.Function):
    """``W (x[first] - x[second])`` for a feature table x, as one autograd node.

    Why: projecting the difference, not both rows, halves the forward GEMM, and the backward does one GEMM
    per distinct row (their coefficients are summed first, a small scatter of dim-wide rows). The table's
    gradient holds each distinct row once, sorted: row-sparse when ``sparse``, else dense. The bias cancels;
    it is an input all the same and gets its exact gradient, zero, so that it is a used parameter (DDP) and
    weight decay still reaches it. Under autocast the product runs in the autocast type and the backward casts
    the incoming gradient back to the features' type. FREEDOM with reg_weight > 0 spends most of its batch
    here (benchmarks/perf.md)."""

    @staticmethod
    def forward(ctx, table, weight, bias, first, second, sparse):
        ids, where = torch.unique(torch.cat([first, second]), return_inverse=True)
        a, b = where[: len(first)], where[len(first):]
        x = table.index_select(0, ids)
        diff = x.index_select(0, a).sub_(x.index_select(0, b))
        ctx.save_for_backward(diff, weight, ids, a, b)
        ctx.table_shape, ctx.sparse = table.shape, sparse
        ctx.bias = None if bias is None else (bias.shape, bias.dtype, bias.device)
        return diff @ weight.T

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        diff, weight, ids, a, b = ctx.saved_tensors
        grad = grad.to(diff.dtype)
        grad_weight = grad.T @ diff if ctx.needs_input_grad[1] else None
        grad_bias = None
        if ctx.bias is not None and ctx.needs_input_grad[2]:
            shape, dtype, device = ctx.bias
            grad_bias = torch.zeros(shape, dtype=dtype, device=device)
        grad_table = None
        if ctx.needs_input_grad[0]:
            coeff = add_rows_(add_rows_(grad.new_zeros(len(ids), grad.shape[1]), a, grad), b, grad, alpha=-1.0)
            values = coeff @ weight
            if ctx.sparse:
                grad_table = torch.sparse_coo_tensor(ids[None], values, ctx.table_shape, is_coalesced=True)
            else:
                grad_table = values.new_zeros(ctx.table_shape).index_copy_(0, ids, values)
        return grad_table, grad_weight, grad_bias, None, None, None


def gate(dim: int) -> nn.Sequential:
    """sigmoid(W x + b): the behaviour-driven gate MGCN and SMORE put on modality vectors."""
    return nn.Sequential(nn.Linear(dim, dim), nn.Sigmoid())


def frozen_item_graph(features: dict[str, np.ndarray], k: int, weights: dict | None, cache_dir: str | None,
                      binary: bool = True, backend: str = "exact", precision: str = "float32") -> FixedSparse:
    """The fused kNN item graph (section 4 of the reference) as a constant sparse operator (``graph @ h``)."""
    matrix = item_graph(features, k=k, weights=weights, binary=binary, cache_dir=cache_dir, backend=backend,
                        precision=precision)
    return fixed_operator(matrix)
