"""Freed memory stays in the process: a repeated large allocation no longer page-faults (glibc only)."""
import subprocess
import sys

import pytest

from gnnrec.allocator import _libc

# a subprocess: the setting is process-wide, and the test must not change the allocator of the test session
PROBE = """
import resource, sys, torch
from gnnrec.allocator import keep_freed_memory
assert keep_freed_memory(sys.argv[1] == "on") is True
def step():  # a training step's pattern: a few large temporaries, written, then freed
    a, b = torch.ones(2 * 2**20), torch.ones(3 * 2**20)
    return float(a.sum() + b.sum())
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(_libc() is None, reason="the C library is not glibc: mallopt is not available")
def test_repeated_large_tensors_reuse_freed_memory_only_when_kept():
    def faults(mode):
        out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
        return int(out.stdout.strip())

    pages = 10 * 5 * 2**20 * 4 // 4096  # ten steps of 20 MB
    assert faults("off") > pages // 2  # glibc default: mmap'd afresh, every page faults again
    assert faults("on") < pages // 4  # kept: most of the heap's pages are reused (measured: 12% fault)


@pytest.mark.parametrize("setting, calls", [("true", [True]), ("false", [False])])
def test_training_keeps_freed_memory_unless_told_not_to(tmp_path, monkeypatch, setting, calls):
    import gnnrec.train
    from gnnrec.config import load_config

    seen = []
    monkeypatch.setattr(gnnrec.train, "keep_freed_memory", seen.append)  # each run sets it, either way
    gnnrec.train.train(load_config(None, [f"train.keep_freed_memory={setting}", "train.max_epochs=1",
                                          "data.synthetic.n_users=100", "data.synthetic.n_items=60",
                                          "train.progress_bar=false", f"output.dir={tmp_path}"]))
    assert seen == calls
