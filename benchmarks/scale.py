"""Scale checks on this machine: the kNN item graph of 200,000 items with 384-d features, and one FREEDOM
training epoch on a synthetic dataset of Amazon-Elec size (192k users, 63k items, 1.7M interactions).

Run from the repository root: ``python benchmarks/scale.py``. Writes ``benchmarks/results/scale.json`` and
``benchmarks/scale.md``. Memory is the process's resident set, sampled every 20 ms in a thread; "extra" is
the peak minus the level just before the measured step (inputs already in memory).
"""
from __future__ import annotations

import json
import platform
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gnnrec.allocator import keep_freed_memory  # noqa: E402
from gnnrec.data import RecDataset, interactions_to_csr  # noqa: E402
from gnnrec.data.sampler import BPRSampler  # noqa: E402
from gnnrec.graphs.knn import knn_topk  # noqa: E402
from gnnrec.graphs.spmm import FixedSparse  # noqa: E402
from gnnrec.models import FREEDOM  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


class PeakRSS:
    """Context manager: peak resident memory (MB) above the level at entry."""

    def __enter__(self):
        self.proc = psutil.Process()
        self.base = self.peak = self.proc.memory_info().rss
        self.running = True
        self.thread = threading.Thread(target=self.watch, daemon=True)
        self.thread.start()
        self.start = time.perf_counter()
        return self

    def watch(self):
        while self.running:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.02)

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        self.running = False
        self.thread.join()
        self.extra_mb = (self.peak - self.base) / 2**20
        self.peak_mb = self.peak / 2**20


def knn_scale(n_items=200_000, dim=384, k=10) -> dict:
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((n_items, dim), dtype=np.float32)
    with PeakRSS() as m:
        idx, _ = knn_topk(feats, k, row_block=2048, col_block=8192, progress=True, name="scale")
    dense_gb = n_items * n_items * 4 / 2**30
    return {"items": n_items, "dim": dim, "k": k, "seconds": m.seconds, "extra_mb": m.extra_mb,
            "dense_similarity_gb": dense_gb, "result_shape": list(idx.shape)}


def elec_sized_dataset(n_users=192_403, n_items=63_001, n_inter=1_689_188, seed=0) -> RecDataset:
    """Random interactions with Zipf-like item popularity, and Elec-like features (4096-d image, 384-d text)."""
    rng = np.random.default_rng(seed)
    users = rng.integers(n_users, size=int(n_inter * 1.05))
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    items = rng.choice(n_items, size=len(users), p=popularity / popularity.sum())
    train = interactions_to_csr(users, items, (n_users, n_items))
    empty = sp.csr_matrix((n_users, n_items), dtype=np.float32)
    features = {"image": rng.standard_normal((n_items, 4096), dtype=np.float32),
                "text": rng.standard_normal((n_items, 384), dtype=np.float32)}
    return RecDataset("elec-sized", train, empty, empty, features=features)


def freedom_epoch(batch_size=2048) -> dict:
    data = elec_sized_dataset()
    with PeakRSS() as build:
        model = FREEDOM(data, modality_weights={"image": 0.1, "text": 0.9})
    opt = model.configure_optimizers()  # as training builds it (fused Adam; row-sparse for sparse feature tables)
    sampler = BPRSampler(data.train)
    with PeakRSS() as epoch:
        rng = np.random.default_rng(0)
        model._train_adj = FixedSparse(model.pruner.sample(rng))
        triples = torch.from_numpy(sampler.sample(rng))
        for start in tqdm(range(0, triples.shape[1], batch_size), desc="FREEDOM epoch", unit="batch"):
            u, p, n = triples[:, start : start + batch_size]
            loss, _ = model.loss(u, p, n)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return {"users": data.n_users, "items": data.n_items, "interactions": data.train.nnz,
            "graph_seconds": build.seconds, "graph_extra_mb": build.extra_mb,
            "epoch_seconds": epoch.seconds, "batches": -(-data.train.nnz // batch_size),
            "epoch_extra_mb": epoch.extra_mb, "process_peak_gb": max(build.peak_mb, epoch.peak_mb) / 1024}


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--freedom-only", action="store_true",
                        help="keep the kNN figures of benchmarks/results/scale.json and measure the FREEDOM epoch")
    args = parser.parse_args()
    keep_freed_memory(True)  # as `gnnrec train` does by default (train.keep_freed_memory)
    out = {"machine": f"{platform.machine()}, {torch.get_num_threads()} threads, "
                      f"{psutil.virtual_memory().total / 2**30:.0f} GB RAM, torch {torch.__version__}",
           "date": time.strftime("%Y-%m-%d")}
    if args.freedom_only:
        earlier = json.loads((RESULTS / "scale.json").read_text())
        out["knn"] = {**earlier["knn"], "measured": f"earlier run, {earlier['machine']}, {earlier['date']}"}
    else:
        out["knn"] = knn_scale()
    print(json.dumps(out["knn"]), flush=True)
    out["freedom"] = freedom_epoch()
    print(json.dumps(out["freedom"]), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scale.json").write_text(json.dumps(out, indent=2))
    k, f = out["knn"], out["freedom"]
    text = ["# Scale", "", f"Generated by `python benchmarks/scale.py` on {out['machine']} ({out['date']}).", "",
            "## kNN item graph", "",
            f"{k['items']:,} synthetic items with {k['dim']}-d features, k = {k['k']}: **{k['seconds']:.0f} s**, "
            f"**{k['extra_mb']:.0f} MB** peak extra memory (target: under 2 GB). A dense similarity matrix "
            f"would need {k['dense_similarity_gb']:.0f} GB. Blocks of 2,048 rows x 8,192 columns; each block's own top-k merged with the running k best."
            + (f" (Measured in an {k['measured']}.)"
               if "measured" in k else ""),
            "", "## One FREEDOM epoch at Amazon-Elec size", "",
            f"{f['users']:,} users x {f['items']:,} items, {f['interactions']:,} training interactions (random, "
            "Zipf-like popularity), 4096-d image and 384-d text features; FREEDOM defaults (k = 10, two user-item "
            "layers, one item-graph layer, pruning p = 0.8, reg_weight 0, batch 2048). Freed memory is kept in the "
            "process, as `gnnrec train` does (`train.keep_freed_memory`).", "",
            f"- frozen item graph (both modalities): {f['graph_seconds']:.0f} s, {f['graph_extra_mb']:.0f} MB extra",
            f"- one epoch ({f['batches']} batches, pruning and sampling included): {f['epoch_seconds']:.0f} s, "
            f"{f['epoch_extra_mb']:.0f} MB extra",
            f"- process peak: **{f['process_peak_gb']:.1f} GB** (target: within 24 GB)", ""]
    (ROOT / "benchmarks" / "scale.md").write_text("\n".join(text))


if __name__ == "__main__":
    main()
