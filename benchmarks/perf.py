"""Each hot path next to its physical floor, measured in one run on this machine.

Run from the repository root: ``python benchmarks/perf.py [--quick] [--resume] [--out DIR]``. Writes
``benchmarks/results/perf.json`` and ``benchmarks/perf.md`` (``--quick``: tiny sizes, a smoke run, written to
``benchmarks/_work/perf_quick`` unless ``--out`` says otherwise).

Floors: the copy bandwidth is measured first (one large tensor copy, bytes read + written per second); a
kernel's memory-traffic floor is the bytes it must move once (sparse values and indices, the dense input read
once and the output written once; Adam's parameters, gradients and two moments read and three written) over
that bandwidth. A batch's floor is the sum of its kernels' floors. kNN is compared with the float32 GEMM of
the same blocks, evaluation with the score product plus top-k of the same batches. Times are the minimum over
repeats (the least disturbed by other work); a training step is timed after ``STEADY`` untimed steps of the same
variant, as training runs it. Sections are saved as they finish: ``--resume`` keeps those
already in the JSON for the same settings, so an interrupted run continues where it stopped.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gnnrec.allocator import keep_freed_memory  # noqa: E402
from gnnrec.data import RecDataset, interactions_to_csr, load_dataset, make_synthetic  # noqa: E402
from gnnrec.data.sampler import BPRSampler  # noqa: E402
from gnnrec.eval import FullRankingEvaluator  # noqa: E402
from gnnrec.graphs.adjacency import sym_normalize, bipartite_adjacency, to_torch_csr  # noqa: E402
from gnnrec.graphs.knn import knn_topk  # noqa: E402
from gnnrec.graphs.native import csr_spmm_add, native_status  # noqa: E402
from gnnrec.graphs.spmm import PROPAGATION_MODES, FixedSparse, propagation  # noqa: E402
from gnnrec.models import FREEDOM, LightGCN  # noqa: E402
from gnnrec.models.modalities import ModalityProjections  # noqa: E402
from gnnrec.report import markdown_table  # noqa: E402
from gnnrec.topk import topk_items  # noqa: E402

SHARED = Path(os.environ.get("GNNREC_SHARED", ROOT.parent / "shared")) / "datasets"
SIZES = {  # full run / --quick
    "full": {"copy_mb": 256, "dim": 64, "layers": 3, "batch": 2048, "repeat": 7, "knn_items": 10_000,
             "knn_dim": 384, "knn_k": 10, "wide_features": {"image": 4096, "text": 384}, "epochs": 3},
    "quick": {"copy_mb": 16, "dim": 16, "layers": 2, "batch": 256, "repeat": 2, "knn_items": 600, "knn_dim": 32,
              "knn_k": 5, "wide_features": {"image": 64, "text": 16}, "epochs": 1},
}
STEADY = 3  # untimed steps of the same variant before each timed training step (timed_many's warm)
USED_KERNEL = "gnnrec C kernel, int32 indices (fused operator)"
TARGETS = {"product": 1.5, "lightgcn_batch": 1.5, "freedom_batch": 1.5, "knn": 1.3, "evaluation": 1.2,
           "freedom_reg": 1.5, "epoch": 0.5}


def timed_many(fns: dict, repeat: int, warm: int = 0) -> dict:
    """Minimum and median seconds of ``repeat`` calls of each function after one warm-up call each; the
    functions take turns, so a change in the machine's load affects them alike. With ``warm``, each timed call
    follows that many untimed calls of the same function: a training step is then timed as training runs it,
    after steps like it (its tables in the cache), not after another variant's step evicted them."""
    times = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(repeat):
        for name, fn in fns.items():
            for _ in range(warm):
                fn()
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: {"min_s": min(t), "median_s": float(np.median(t))} for name, t in times.items()}


def timed(fn, repeat: int) -> dict:
    return timed_many({"fn": fn}, repeat)["fn"]


def copy_bandwidth(size: dict) -> dict:
    """Bytes read + written per second by a large tensor copy: the memory-traffic yardstick of every floor."""
    src = torch.ones(size["copy_mb"] * 2**20 // 4)
    dst = torch.empty_like(src)
    t = timed(lambda: dst.copy_(src), size["repeat"] * 2)
    return {"bytes_per_s": 2 * src.numel() * 4 / t["min_s"], **t}


def product_bytes(matrix: torch.Tensor, dim: int) -> int:
    """Bytes a CSR matrix x dense (N, dim) product must move: values, indices, row pointers, input, output."""
    nnz = matrix._nnz()
    index = matrix.col_indices().element_size()
    return (nnz * (matrix.values().element_size() + index) + (matrix.shape[0] + 1) * index
            + (matrix.shape[1] + matrix.shape[0]) * dim * 4)


def adam_bytes(params) -> int:
    """Fused Adam: parameters, gradients and both moments read, parameters and moments written."""
    return 7 * 4 * sum(p.numel() for p in params)


def tiktok_or_synthetic(quick: bool) -> RecDataset:
    if not quick and (SHARED / "tiktok").exists():
        return load_dataset(str(SHARED / "tiktok"), drop_cold=False)
    if quick:
        return make_synthetic(n_users=300, n_items=200, n_clusters=4, mean_interactions=15, seed=1).validate()
    return make_synthetic(n_users=9319, n_items=6710, mean_interactions=7, seed=1).validate()  # TikTok's size


def with_wide_features(data: RecDataset, widths: dict[str, int]) -> RecDataset:
    """The same interactions with random features of Amazon-Elec's widths (the raw tables FREEDOM trains)."""
    rng = np.random.default_rng(0)
    feats = {n: rng.standard_normal((data.n_items, w), dtype=np.float32) for n, w in widths.items()}
    return RecDataset(data.name + "-wide", data.train, data.valid, data.test, features=feats)


def product_candidates(data: RecDataset, size: dict, bw: float) -> dict:
    """The propagation product with each candidate kernel, next to its memory-traffic floor."""
    adj = sym_normalize(bipartite_adjacency(data.train))
    x = torch.randn(adj.shape[0], size["dim"], generator=torch.Generator().manual_seed(0))
    csr = to_torch_csr(adj)
    csr32 = torch.sparse_csr_tensor(csr.crow_indices().int(), csr.col_indices().int(), csr.values(), size=adj.shape)
    coo = csr.to_sparse_coo().coalesce()
    cands = {"torch.sparse.mm CSR int64 (legacy)": lambda: torch.sparse.mm(csr, x),
             "torch.sparse.mm CSR int32": lambda: torch.sparse.mm(csr32, x),
             "torch.sparse.mm COO": lambda: torch.sparse.mm(coo, x),
             "torch.sparse.mm CSR reduce='sum' (torch operator)": lambda: torch.sparse.mm(csr, x, reduce="sum"),
             "torch.sparse.mm CSR int32 reduce='sum'": lambda: torch.sparse.mm(csr32, x, reduce="sum"),
             "gnnrec C kernel, int64 indices": lambda: csr_spmm_add(csr, x),
             USED_KERNEL: lambda: csr_spmm_add(used, x)}
    used = FixedSparse(csr).matrix  # what the fused operator multiplies with (int32 indices on CPU)
    if csr_spmm_add(used, x) is None:
        raise RuntimeError(f"the C kernel is not available: {native_status()}")
    try:
        from torch_geometric import EdgeIndex
        from torch_geometric.utils import spmm as pyg_spmm

        edges = EdgeIndex(torch.stack([coo.indices()[0], coo.indices()[1]]), sparse_size=tuple(adj.shape),
                          sort_order="row")
        values = coo.values()
        cands["PyG EdgeIndex.matmul"] = lambda: edges.matmul(x, input_value=values)
        cands["PyG utils.spmm (CSR)"] = lambda: pyg_spmm(csr, x)
    except ImportError:
        pass
    floor = product_bytes(used, size["dim"]) / bw  # the used matrix's index width: the bytes it must move
    return {"nodes": adj.shape[0], "nnz": int(adj.nnz), "dim": size["dim"], "floor_s": floor,
            "kernels": timed_many(cands, size["repeat"])}


def batch_triples(data: RecDataset, batch: int, seed: int = 0) -> list[torch.Tensor]:
    triples = torch.from_numpy(BPRSampler(data.train).sample(np.random.default_rng(seed)))
    return [triples[:, s : s + batch] for s in range(0, triples.shape[1], batch)]


def train_step(model, opt, triple) -> None:
    opt.zero_grad()
    model.loss(*triple)[0].backward()
    opt.step()


def lightgcn_batch(data: RecDataset, size: dict, bw: float) -> dict:
    """One LightGCN batch (forward, backward, Adam step) with each operator, next to its kernels' floor."""
    torch.manual_seed(0)
    model = LightGCN(data, embedding_dim=size["dim"], num_layers=size["layers"])
    opt = model.configure_optimizers()
    triple = batch_triples(data, size["batch"])[0]
    def step_with(mode):
        with propagation(mode):
            train_step(model, opt, triple)

    out = timed_many({mode: lambda mode=mode: step_with(mode) for mode in PROPAGATION_MODES}, size["repeat"],
                     warm=STEADY)
    products = 2 * size["layers"] * product_bytes(model._adj.matrix, size["dim"])
    out["floor_s"] = (products + adam_bytes(model.parameters())) / bw
    return out


def larger_graph(size: dict, bw: float, quick: bool) -> dict:
    """The product and a LightGCN batch on the quarter of Amazon-Elec (64k nodes, a 16 MB 64-d input), where
    the input no longer stays in the cache as TikTok's 4 MB does: the floors count each input row read once,
    the kernel gathers one row per non-zero and those gathers now miss the cache."""
    data = elec_quarter(quick)
    used = FixedSparse(to_torch_csr(sym_normalize(bipartite_adjacency(data.train)))).matrix
    x = torch.randn(used.shape[0], size["dim"], generator=torch.Generator().manual_seed(0))
    kernels = timed_many({USED_KERNEL: lambda: csr_spmm_add(used, x),
                          "torch.sparse.mm CSR reduce='sum' (torch operator)":
                              lambda: torch.sparse.mm(used, x, reduce="sum")}, size["repeat"])
    return {"nodes": used.shape[0], "nnz": int(used._nnz()), "floor_s": product_bytes(used, size["dim"]) / bw,
            "kernels": kernels, "batch": lightgcn_batch(data, size, bw)}


def elec_quarter(quick: bool) -> RecDataset:
    """A quarter of Amazon-Elec (users, items, interactions; Zipf-like popularity), as the issue profiled."""
    n_users, n_items, n_inter = (300, 200, 3000) if quick else (48_100, 15_750, 422_297)
    rng = np.random.default_rng(0)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    users = rng.integers(n_users, size=n_inter)
    items = rng.choice(n_items, size=n_inter, p=popularity / popularity.sum())
    train = interactions_to_csr(users, items, (n_users, n_items))
    empty = sp.csr_matrix((n_users, n_items), dtype=np.float32)
    narrow = {n: rng.standard_normal((n_items, 16), dtype=np.float32) for n in ("image", "text")}
    return RecDataset("elec-quarter", train, empty, empty, features=narrow)


def freedom_batch(size: dict, bw: float, cache: Path, quick: bool) -> dict:
    """One FREEDOM batch with reg_weight 0 and 1e-4 (row-sparse feature updates), and 1e-4 with dense feature
    updates (MMRec's form), at a quarter of Amazon-Elec with Elec's feature widths (4096-d image, 384-d text).

    The frozen item graph is built from 16-d features (its size, k edges per item, does not depend on the
    width; the kNN cost of 4096-d would dominate the run), then the trained tables are replaced by wide ones.
    The reg_weight > 0 batch adds three float32 GEMMs per table, the fewest its maths allows (the batch's
    feature differences projected, and the backward to the weights and to the distinct rows; timed alone as
    ``projection_gemm``), and Adam on the distinct rows (memory-traffic floor ``row_adam_floor_s``)."""
    data = elec_quarter(quick)
    rng = np.random.default_rng(1)
    wide = {n: rng.standard_normal((data.n_items, w), dtype=np.float32) for n, w in size["wide_features"].items()}
    triple = batch_triples(data, size["batch"])[0]
    steps = {}
    for name, reg, sparse in (("reg0", 0.0, True), ("reg1e-4", 1e-4, True), ("reg1e-4_dense", 1e-4, False)):
        torch.manual_seed(0)
        model = FREEDOM(data, embedding_dim=size["dim"], reg_weight=reg, sparse_features=sparse,
                        graph_cache_dir=str(cache))
        model.modalities = ModalityProjections(wide, size["dim"], trainable=True, sparse=sparse)
        model.on_train_epoch_start()  # this epoch's pruned graph
        steps[name] = (lambda m, o: lambda: train_step(m, o, triple))(model, model.configure_optimizers())
        if name == "reg0":
            dense = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("modalities.tables")]
            products = (2 * model.num_layers * product_bytes(model._train_adj.matrix, size["dim"])
                        + 2 * model.num_mm_layers * product_bytes(model.item_graph.matrix, size["dim"]))
            floor = (products + adam_bytes(dense)) / bw
    rows = torch.unique(torch.cat([triple[1], triple[2]]))
    diffs = {n: torch.from_numpy(w[triple[1].numpy()] - w[triple[2].numpy()]) for n, w in wide.items()}
    weights = {n: torch.randn(size["dim"], w.shape[1]) for n, w in wide.items()}
    coeff = torch.randn(len(rows), size["dim"])

    def projection_gemm():
        for n, d in diffs.items():
            y = d @ weights[n].T
            y.T @ d, coeff @ weights[n]

    steps["projection_gemm"] = projection_gemm
    out = timed_many(steps, size["repeat"], warm=STEADY)
    return {**out, "floor_s": floor, "data": f"{data.n_users:,} users, {data.n_items:,} items, "
            f"{data.train.nnz:,} interactions", "features": size["wide_features"], "batch_rows": len(rows),
            "row_adam_floor_s": 7 * 4 * len(rows) * sum(size["wide_features"].values()) / bw}


def knn(size: dict) -> dict:
    """kNN item graph (knn_topk, float32) vs the float32 GEMM of the same row blocks."""
    x = torch.nn.functional.normalize(torch.randn(size["knn_items"], size["knn_dim"],
                                                  generator=torch.Generator().manual_seed(0)), dim=1)
    row_block = 2048
    buf = torch.empty(min(row_block, len(x)), len(x))

    def gemm():
        for s in range(0, len(x), row_block):
            rows = x[s : s + row_block]
            torch.mm(rows, x.T, out=buf[: len(rows)])

    repeat = max(1, size["repeat"] // 3)
    return {"items": len(x), "dim": x.shape[1], "k": size["knn_k"],
            "knn": timed(lambda: knn_topk(x, size["knn_k"], row_block=row_block), repeat), "gemm": timed(gemm, repeat)}


def evaluation(data: RecDataset, size: dict) -> dict:
    """Full-ranking evaluation of the test split vs the score product + top-k of the same batches."""
    torch.manual_seed(0)
    model = LightGCN(data, embedding_dim=size["dim"], num_layers=size["layers"]).eval()
    evaluator = FullRankingEvaluator(data, "test", "strict")
    with torch.no_grad():
        user_emb, item_emb = model()
    users = torch.from_numpy(evaluator.users)
    batch, k = 4096, max(evaluator.ks)
    buf = torch.empty(min(batch, len(users)), data.n_items)

    def product(with_topk: bool):
        for s in range(0, len(users), batch):
            rows = user_emb[users[s : s + batch]]
            scores = torch.mm(rows, item_emb.T, out=buf[: len(rows)])
            if with_topk:
                topk_items(scores, k)

    scorer = model.eval_scorer() if hasattr(model, "eval_scorer") else model.score_fn()
    return {"users": len(users), "items": data.n_items,
            "evaluation": timed(lambda: evaluator.evaluate(scorer, batch), size["repeat"]),
            "product": timed(lambda: product(False), size["repeat"]),
            "product_topk": timed(lambda: product(True), size["repeat"])}


def lightgcn_epoch_times(data: RecDataset, size: dict, mode: str) -> dict:
    """Seconds per LightGCN training epoch (all BPR batches of one sampled epoch) with one operator."""
    batches = batch_triples(data, size["batch"])
    torch.manual_seed(0)
    model = LightGCN(data, embedding_dim=size["dim"], num_layers=size["layers"])

    def epoch(opt=model.configure_optimizers()):
        with propagation(mode):
            for triple in batches:
                train_step(model, opt, triple)

    return {"batches": len(batches), **timed(epoch, max(1, size["epochs"] - 1))}


def lightgcn_epoch(quick: bool, size: dict) -> dict:
    """The epoch with each (operator, allocator) variant in a fresh process of its own, so that each allocator
    setting holds from the process's start: "legacy" (the old operator, glibc's default allocator) is the
    epoch before issue 13's changes; "fused_kept" is what `gnnrec train` runs now."""
    out = {}
    for name, mode, keep in (("legacy", "legacy", False), ("fused", "fused", False), ("fused_kept", "fused", True),
                             ("torch_kept", "torch", True)):
        cmd = [sys.executable, __file__, "--epoch-probe", mode, "--keep" if keep else "--no-keep"]
        done = subprocess.run(cmd + (["--quick"] if quick else []), capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"epoch probe {name} failed: {done.stderr[-2000:]}")
        probe = json.loads(done.stdout.strip().splitlines()[-1])
        out["batches"] = probe.pop("batches")
        out[name] = probe
    return out


def rows_of(res: dict) -> list[list]:
    """The perf.md table: path, measured, floor (or baseline), ratio, target."""
    ms = lambda s: f"{s * 1e3:.2f}"  # noqa: E731
    rows = []
    p = res["product"]
    used = p["kernels"][USED_KERNEL]["min_s"]
    rows.append(["propagation product (vs memory-traffic floor)", ms(used), ms(p["floor_s"]),
                 f"{used / p['floor_s']:.2f}", f"<= {TARGETS['product']}"])
    lb = res["lightgcn_batch"]
    rows.append(["LightGCN batch, fused (vs kernels' floors)", ms(lb["fused"]["min_s"]), ms(lb["floor_s"]),
                 f"{lb['fused']['min_s'] / lb['floor_s']:.2f}", f"<= {TARGETS['lightgcn_batch']}"])
    for mode in ("torch", "legacy"):
        rows.append([f"LightGCN batch, {mode} operator (vs kernels' floors)", ms(lb[mode]["min_s"]),
                     ms(lb["floor_s"]), f"{lb[mode]['min_s'] / lb['floor_s']:.2f}", ""])
    fb = res["freedom_batch"]
    rows.append(["FREEDOM batch, reg_weight 0 (vs kernels' floors)", ms(fb["reg0"]["min_s"]), ms(fb["floor_s"]),
                 f"{fb['reg0']['min_s'] / fb['floor_s']:.2f}", f"<= {TARGETS['freedom_batch']}"])
    rows.append(["FREEDOM batch, reg_weight 1e-4 row-sparse (vs reg_weight 0)", ms(fb["reg1e-4"]["min_s"]),
                 ms(fb["reg0"]["min_s"]), f"{fb['reg1e-4']['min_s'] / fb['reg0']['min_s']:.2f}",
                 f"<= {TARGETS['freedom_reg']}"])
    reg_floor = fb["reg0"]["min_s"] + fb["projection_gemm"]["min_s"] + fb["row_adam_floor_s"]
    rows.append(["FREEDOM batch, reg_weight 1e-4 row-sparse (vs reg_weight 0 + projection GEMMs + row Adam's "
                 "floor)", ms(fb["reg1e-4"]["min_s"]), ms(reg_floor), f"{fb['reg1e-4']['min_s'] / reg_floor:.2f}",
                 ""])
    rows.append(["FREEDOM batch, reg_weight 1e-4 dense features (vs reg_weight 0)",
                 ms(fb["reg1e-4_dense"]["min_s"]), ms(fb["reg0"]["min_s"]),
                 f"{fb['reg1e-4_dense']['min_s'] / fb['reg0']['min_s']:.2f}", ""])
    if "larger_graph" in res:
        g = res["larger_graph"]
        used, where = g["kernels"][USED_KERNEL]["min_s"], f"quarter Amazon-Elec graph, {g['nodes']:,} nodes"
        rows.append([f"propagation product, {where} (vs memory-traffic floor)", ms(used), ms(g["floor_s"]),
                     f"{used / g['floor_s']:.2f}", f"<= {TARGETS['product']}"])
        rows.append([f"LightGCN batch, fused, {where} (vs kernels' floors)", ms(g["batch"]["fused"]["min_s"]),
                     ms(g["batch"]["floor_s"]), f"{g['batch']['fused']['min_s'] / g['batch']['floor_s']:.2f}",
                     f"<= {TARGETS['lightgcn_batch']}"])
    k = res["knn"]
    rows.append([f"kNN {k['items']:,} x {k['dim']}-d, k = {k['k']} (vs float32 GEMM)", ms(k["knn"]["min_s"]),
                 ms(k["gemm"]["min_s"]), f"{k['knn']['min_s'] / k['gemm']['min_s']:.2f}", f"<= {TARGETS['knn']}"])
    e = res["evaluation"]
    rows.append(["evaluation, test split (vs score product + top-k)", ms(e["evaluation"]["min_s"]),
                 ms(e["product_topk"]["min_s"]), f"{e['evaluation']['min_s'] / e['product_topk']['min_s']:.2f}",
                 f"<= {TARGETS['evaluation']}"])
    rows.append(["evaluation, test split (vs bare score product)", ms(e["evaluation"]["min_s"]),
                 ms(e["product"]["min_s"]), f"{e['evaluation']['min_s'] / e['product']['min_s']:.2f}", ""])
    ep = res["lightgcn_epoch"]
    rows.append([f"LightGCN training epoch ({ep['batches']} batches), fused, freed memory kept (vs legacy "
                 "operator, default allocator; each in a fresh process)", ms(ep["fused_kept"]["min_s"]),
                 ms(ep["legacy"]["min_s"]), f"{ep['fused_kept']['min_s'] / ep['legacy']['min_s']:.2f}",
                 f"<= {TARGETS['epoch']}"])
    rows.append([f"LightGCN training epoch ({ep['batches']} batches), fused, default allocator (vs legacy "
                 "operator, default allocator)", ms(ep["fused"]["min_s"]), ms(ep["legacy"]["min_s"]),
                 f"{ep['fused']['min_s'] / ep['legacy']['min_s']:.2f}", ""])
    rows.append([f"LightGCN training epoch ({ep['batches']} batches), torch operator, freed memory kept (vs legacy "
                 "operator, default allocator)", ms(ep["torch_kept"]["min_s"]), ms(ep["legacy"]["min_s"]),
                 f"{ep['torch_kept']['min_s'] / ep['legacy']['min_s']:.2f}", ""])
    return rows


def write_markdown(res: dict, path: Path, quick: bool) -> None:
    p = res["product"]
    cand_rows = [[name, f"{t['min_s'] * 1e3:.2f}", f"{t['median_s'] * 1e3:.2f}", f"{t['min_s'] / p['floor_s']:.2f}"]
                 for name, t in p["kernels"].items()]
    text = ["# Performance against the floor", "",
            f"Generated by `python benchmarks/perf.py{' --quick' if quick else ''}` on {res['machine']} "
            f"({res['date']}). Copy bandwidth measured in the same run: "
            f"**{res['bandwidth']['bytes_per_s'] / 1e9:.1f} GB/s** (read + write); load average at the start "
            f"{res['load']:.1f} (other work on the machine inflates every time). Data: {res['data']}; FREEDOM rows: "
            f"{res['freedom_batch']['data']} with {res['freedom_batch']['features']} feature widths. Times are the "
            f"minimum over repeats; a training batch is timed after {STEADY} untimed batches of the same variant (as "
            "training runs them, not after another variant evicted its tables from the cache); ratio = measured / floor (or / baseline). Freed memory is kept in the process "
            "as in training (`train.keep_freed_memory`, gnnrec/allocator.py) except where a row says "
            "\"default allocator\" (those epochs run in fresh processes). Operator choice and the row-sparse "
            "feature updates: [docs/performance.md](../docs/performance.md).", "",
            markdown_table(["path", "measured ms", "floor or baseline ms", "ratio", "target"], rows_of(res)), "",
            f"## Propagation product candidates ({p['nodes']:,} nodes, {p['nnz']:,} non-zeros, {p['dim']}-d)", "",
            f"Memory-traffic floor {p['floor_s'] * 1e3:.2f} ms: the bytes of the int32-index matrix the fused operator "
            "multiplies (int64 indices move 4 more bytes per non-zero and row), input read once, output written once.",
            "",
            markdown_table(["kernel", "min ms", "median ms", "x floor"], cand_rows), ""]
    path.write_text("\n".join(text))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of every section")
    parser.add_argument("--resume", action="store_true", help="keep sections already in the JSON (same settings)")
    parser.add_argument("--out", help="folder for perf.json and perf.md (default: benchmarks/results and "
                                      "benchmarks; --quick: benchmarks/_work/perf_quick)")
    parser.add_argument("--epoch-probe", choices=PROPAGATION_MODES, help=argparse.SUPPRESS)
    parser.add_argument("--keep", action=argparse.BooleanOptionalAction, default=True, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message=".*[Ss]parse.*beta.*")
    size = SIZES["quick" if args.quick else "full"]
    if args.epoch_probe:  # one epoch variant, in the fresh process lightgcn_epoch starts
        keep_freed_memory(args.keep)
        print(json.dumps(lightgcn_epoch_times(tiktok_or_synthetic(args.quick), size, args.epoch_probe)))
        return {}
    keep_freed_memory(True)  # as `gnnrec train` does by default (train.keep_freed_memory)
    if args.out:
        json_path, md_path = Path(args.out) / "perf.json", Path(args.out) / "perf.md"
    elif args.quick:
        json_path = md_path = ROOT / "benchmarks" / "_work" / "perf_quick"
        json_path, md_path = json_path / "perf.json", md_path / "perf.md"
    else:
        json_path, md_path = ROOT / "benchmarks" / "results" / "perf.json", ROOT / "benchmarks" / "perf.md"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    cache = ROOT / "benchmarks" / "_work" / "perf_cache"
    res = {"machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPUs, "
                      f"{torch.get_num_threads()} torch threads, torch {torch.__version__}".replace("  ", " "),
           "date": time.strftime("%Y-%m-%d"), "load": os.getloadavg()[0], "settings": size, "sections": {}}
    if args.resume and json_path.exists():
        earlier = json.loads(json_path.read_text())
        if earlier.get("settings") == json.loads(json.dumps(size)):
            res["sections"] = earlier.get("sections", {})
            res["load"] = earlier.get("load", res["load"])  # the load when the kept sections were measured
    data = tiktok_or_synthetic(args.quick)
    res["data"] = f"{data.name}: {data.n_users:,} users, {data.n_items:,} items, {data.train.nnz:,} training interactions"
    sections = res["sections"]

    def run(name, fn):
        if name not in sections:
            start = time.perf_counter()
            sections[name] = fn()
            sections[name]["section_s"] = time.perf_counter() - start
            json_path.write_text(json.dumps(res, indent=2))
        print(f"{name}: done ({sections[name]['section_s']:.1f} s)", flush=True)
        return sections[name]

    bw = run("bandwidth", lambda: copy_bandwidth(size))["bytes_per_s"]
    run("product", lambda: product_candidates(data, size, bw))
    run("lightgcn_batch", lambda: lightgcn_batch(data, size, bw))
    run("freedom_batch", lambda: freedom_batch(size, bw, cache, args.quick))
    run("larger_graph", lambda: larger_graph(size, bw, args.quick))
    run("knn", lambda: knn(size))
    run("evaluation", lambda: evaluation(data, size))
    run("lightgcn_epoch", lambda: lightgcn_epoch(args.quick, size))
    flat = {**sections, "machine": res["machine"], "date": res["date"], "data": res["data"], "load": res["load"]}
    print(markdown_table(["path", "measured ms", "floor or baseline ms", "ratio", "target"], rows_of(flat)))
    write_markdown(flat, md_path, args.quick)
    json_path.write_text(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
