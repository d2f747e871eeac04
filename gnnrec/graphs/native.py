"""The propagation product's C kernel (``csr_kernel.c``): compiled once per machine, loaded with ctypes.

Why: torch's CSR x dense kernel runs at 2.3-2.5x the product's memory-traffic floor on this project's CPUs;
the C kernel keeps each output row in vector registers, prefetches the input rows it gathers and adds
Horner's ``+ base`` in the same pass (measured in benchmarks/perf.md, docs/performance.md). It is plain C
with OpenMP, so it builds in about a second with the system compiler and no torch headers, and it shares
torch's OpenMP threads (torch's wheel ships ``libgomp.so.1``, which the kernel links against by that name).

``make install`` builds it (``gnnrec.graphs.native.main()``); otherwise the first product builds it. The
library is cached under ``$GNNREC_NATIVE_DIR`` (default ``~/.cache/gnnrec/native``), named by a hash of the
source, the compiler, its flags and the CPU's feature flags (``-march=native`` code must not run elsewhere).
Without a working C compiler the products use torch's kernel, with one warning saying why.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("csr_kernel.c")
FLAG_SETS = (["-O3", "-march=native", "-fopenmp"], ["-O3", "-fopenmp"], ["-O3"])  # tried in this order
_state: dict = {"fn": None, "status": "not loaded"}


def build_dir() -> Path:
    env = os.environ.get("GNNREC_NATIVE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gnnrec" / "native"


def compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith(("flags", "Features"))), "")  # x86, ARM
    except OSError:
        return platform.processor()


def library_path(cc: str, version: str, flags: list[str]) -> Path:
    key = hashlib.sha256("\n".join([SOURCE.read_text(), cc, version, *flags, platform.machine(),
                                    _cpu_flags()]).encode()).hexdigest()[:16]
    return build_dir() / f"csr_kernel-{key}.so"


def build() -> Path:
    """Compile the kernel (if not already cached) and return the library's path; raises RuntimeError with the
    compiler's message when no flag set compiles."""
    cc = compiler()
    if cc is None:
        raise RuntimeError("no C compiler found (looked for $CC, cc, gcc, clang)")
    version = "".join(subprocess.run([cc, "--version"], capture_output=True, text=True).stdout.splitlines()[:1])
    errors = []
    for flags in FLAG_SETS:
        path = library_path(cc, version, flags)
        if path.exists():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".so", delete=False) as tmp:
            pass
        result = subprocess.run([cc, *flags, "-shared", "-fPIC", "-std=gnu99", str(SOURCE), "-o", tmp.name],
                                capture_output=True, text=True)
        if result.returncode == 0:
            os.replace(tmp.name, path)  # atomic: processes building at once all end with a whole library
            return path
        os.unlink(tmp.name)
        errors.append(f"{' '.join(flags)}: {result.stderr.strip()[-400:]}")
    raise RuntimeError(f"{cc} could not compile {SOURCE.name}: " + " | ".join(errors))


def _load():
    if _state["fn"] is None and _state["status"] == "not loaded":
        try:
            path = build()
            fn = ctypes.CDLL(str(path)).gnnrec_csr_spmm_add
            p = ctypes.c_void_p
            fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, p, p, p, p, p, ctypes.c_float,
                           ctypes.c_float, p, ctypes.c_int]
            fn.restype = None
            _state.update(fn=fn, status=f"C kernel {path}")
        except (RuntimeError, OSError) as err:
            _state["status"] = f"torch's kernel (the C kernel is unavailable: {err})"
            warnings.warn(f"gnnrec: propagation uses torch's slower sparse kernel: {err}", RuntimeWarning)
    return _state["fn"]


def native_status() -> str:
    """Which kernel the fused propagation uses, and why (builds the C kernel if that has not happened yet)."""
    _load()
    return _state["status"]


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


def main() -> None:
    try:
        print(f"gnnrec: propagation kernel built: {build()}")
    except (RuntimeError, OSError) as err:  # the install goes on: training then uses torch's kernel
        print(f"gnnrec: the C propagation kernel could not be built, torch's kernel will be used: {err}",
              file=sys.stderr)
