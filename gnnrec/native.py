"""gnnrec's C kernels: each ``*.c`` file in the package is compiled once per machine and loaded with ctypes.

Why C and not a torch extension: the kernels are plain C with OpenMP, so each builds in about a second with
the system compiler and no torch headers, and shares torch's OpenMP threads (torch's wheel ships
``libgomp.so.1``, which the kernels link against by that name). The kernels and their measured gains:
``gnnrec/graphs/csr_kernel.c`` (the propagation product), ``gnnrec/models/row_adam.c`` (Adam on a table's
touched rows), ``gnnrec/models/rows.c`` (BPR score differences, row scatter-adds) and ``gnnrec/topk.c`` (top-k
with the tie rule); docs/performance.md.

``make install`` builds them all (``main()``); otherwise a kernel's first use builds it. Libraries are cached
under ``$GNNREC_NATIVE_DIR`` (default ``~/.cache/gnnrec/native``), named by a hash of the source, the
compiler, its flags and the CPU's feature flags (``-march=native`` code must not run elsewhere). Without a
working C compiler the callers use torch's operations, with one warning per kernel saying why.
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

PACKAGE = Path(__file__).parent
# tried in this order; -fno-math-errno lets sqrtf vectorise (no kernel reads errno)
FLAG_SETS = (["-O3", "-march=native", "-fno-math-errno", "-fopenmp"], ["-O3", "-fno-math-errno", "-fopenmp"],
             ["-O3"])
_loaded: dict[tuple[str, str], dict] = {}  # (source, symbol) -> {"fn": ctypes function or None, "status": str}


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


def library_path(source: Path, cc: str, version: str, flags: list[str]) -> Path:
    key = hashlib.sha256("\n".join([source.read_text(), cc, version, *flags, platform.machine(),
                                    _cpu_flags()]).encode()).hexdigest()[:16]
    return build_dir() / f"{source.stem}-{key}.so"


def build(source: Path) -> Path:
    """Compile ``source`` (if not already cached) and return the library's path; raises RuntimeError with the
    compiler's message when no flag set compiles."""
    cc = compiler()
    if cc is None:
        raise RuntimeError("no C compiler found (looked for $CC, cc, gcc, clang)")
    version = "".join(subprocess.run([cc, "--version"], capture_output=True, text=True).stdout.splitlines()[:1])
    errors = []
    for flags in FLAG_SETS:
        path = library_path(source, cc, version, flags)
        if path.exists():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".so", delete=False) as tmp:
            pass
        result = subprocess.run([cc, *flags, "-shared", "-fPIC", "-std=gnu99", str(source), "-o", tmp.name],
                                capture_output=True, text=True)
        if result.returncode == 0:
            os.replace(tmp.name, path)  # atomic: processes building at once all end with a whole library
            return path
        os.unlink(tmp.name)
        errors.append(f"{' '.join(flags)}: {result.stderr.strip()[-400:]}")
    raise RuntimeError(f"{cc} could not compile {source.name}: " + " | ".join(errors))


def kernel(source: Path, symbol: str, argtypes: list, purpose: str):
    """The C function ``symbol`` of ``source`` (built on first use), or None when it cannot be built or loaded:
    then one RuntimeWarning says that ``purpose`` falls back to torch, and why."""
    key = (str(source), symbol)
    if key not in _loaded:
        try:
            path = build(source)
            fn = getattr(ctypes.CDLL(str(path)), symbol)
            fn.argtypes, fn.restype = argtypes, None
            _loaded[key] = {"fn": fn, "status": f"C kernel {path}"}
        except (RuntimeError, OSError, AttributeError) as err:
            _loaded[key] = {"fn": None, "status": f"torch (the C kernel is unavailable: {err})"}
            warnings.warn(f"gnnrec: {purpose} uses torch's slower operations: {err}", RuntimeWarning)
    return _loaded[key]["fn"]


def kernel_status(source: Path, symbol: str) -> str:
    """"C kernel <library>" or why torch is used instead (after ``kernel`` was called)."""
    return _loaded.get((str(source), symbol), {"status": "not loaded"})["status"]


def sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.c"))


def main() -> None:
    """Build every kernel; the install goes on without them (torch's operations are used)."""
    for source in sources():
        try:
            print(f"gnnrec: C kernel built: {build(source)}")
        except (RuntimeError, OSError) as err:
            print(f"gnnrec: {source.name} could not be built, torch's operations will be used: {err}",
                  file=sys.stderr)


if __name__ == "__main__":
    main()
