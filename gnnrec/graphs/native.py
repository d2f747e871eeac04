"""The propagation product's C kernel (``csr_kernel.c``), built and loaded by gnnrec/native.py.

Why: torch's CSR x dense kernel runs at 2.3-2.5x the product's memory-traffic floor on this project's CPUs;
the C kernel keeps each output row in vector registers, prefetches the input rows it gathers and adds
Horner's ``+ base`` in the same pass (measured in benchmarks/perf.md, docs/performance.md). Without a working
C compiler the products use torch's kernel, with one warning saying why.
"""
from __future__ import annotations

import ctypes
from pathlib import Path

import torch

from gnnrec.native import kernel, kernel_status

SOURCE = Path(__file__).with_name("csr_kernel.c")
SYMBOL = "gnnrec_csr_spmm_add"
_P = ctypes.c_void_p
ARGTYPES = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, _P, _P, _P, _P, _P, ctypes.c_float, ctypes.c_float, _P,
            ctypes.c_int]


def _load():
    return kernel(SOURCE, SYMBOL, ARGTYPES, "propagation")


def native_status() -> str:
    """Which kernel the fused propagation uses, and why (builds the C kernel if that has not happened yet)."""
    _load()
    return kernel_status(SOURCE, SYMBOL)


def csr_spmm_add(a: torch.Tensor, x: torch.Tensor, base: torch.Tensor | None = None,
                 beta: float = 1.0, alpha: float = 1.0) -> torch.Tensor | None:
    """``alpha * a @ x + beta * base`` with the C kernel, or None where it does not apply (not a float32 CPU CSR
    matrix, or the kernel could not be built): the caller then uses torch's kernel."""
    if (a.layout != torch.sparse_csr or a.dim() != 2 or a.values().dim() != 1 or a.device.type != "cpu"
            or x.device.type != "cpu" or x.dim() != 2 or a.dtype != torch.float32 or x.dtype != torch.float32
            or a.shape[1] != x.shape[0]):
        return None
    fn = _load()
    if fn is None:
        return None
    if base is not None:
        if base.shape != (a.shape[0], x.shape[1]) or base.dtype != torch.float32 or base.device.type != "cpu":
            return None
        base = base.contiguous()
    crow, col, val = a.crow_indices().contiguous(), a.col_indices().contiguous(), a.values().contiguous()
    x = x.contiguous()
    out = torch.empty((a.shape[0], x.shape[1]), dtype=torch.float32)
    fn(int(crow.dtype == torch.int64), a.shape[0], x.shape[1], crow.data_ptr(), col.data_ptr(),
       val.data_ptr(), x.data_ptr(), None if base is None else base.data_ptr(), alpha, beta,
       out.data_ptr(), torch.get_num_threads())
    return out
