"""Run folders as `gnnrec train` writes them (config.yaml, metrics.json, test_per_user.npz, logs/metrics.csv),
made by hand with chosen per-user values, for the compare, plot and report tests."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import yaml

from gnnrec.config import DEFAULTS

KS = (5, 10, 20, 50)
N_ITEMS = 30


def fake_run(folder: Path, model: str = "lightgcn", seed: int = 1, recall=None, user_ids=None, dataset="toy",
             protocol="strict", split_hash="a" * 64, lr: float = 0.001, per_user: bool = True, rng_seed: int = 0,
             model_args: dict | None = None) -> Path:
    """A finished run whose test recall@K is ``recall`` per user (ndcg@K = recall / 2); other arrays random."""
    rng = np.random.default_rng(rng_seed)
    user_ids = np.asarray(user_ids if user_ids is not None else [f"u{i}" for i in range(len(recall))])
    recall = np.asarray(recall, dtype=np.float64)
    folder.mkdir(parents=True)
    cfg = copy.deepcopy(DEFAULTS)
    cfg["seed"], cfg["model"] = seed, {"name": model, **(model_args or {})}
    cfg["optim"]["lr"] = lr
    cfg["output"] = {"dir": str(folder.parent), "name": folder.name}
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    arrays = {"users": np.arange(len(recall), dtype=np.int64), "user_ids": user_ids.astype(str),
              "train_degree": rng.integers(1, 40, len(recall)).astype(np.int64)}
    for k in KS:
        arrays.update({f"recall@{k}": recall, f"ndcg@{k}": recall / 2, f"precision@{k}": recall / k,
                       f"map@{k}": recall / 3, f"hit@{k}": (recall > 0).astype(np.float64),
                       f"avg_popularity@{k}": rng.uniform(1, 50, len(recall)),
                       f"tail_share@{k}": rng.uniform(0, 1, len(recall)),
                       f"novelty@{k}": rng.uniform(1, 5, len(recall)),
                       f"recall_head@{k}": np.where(rng.uniform(size=len(recall)) < 0.2, np.nan, recall),
                       f"recall_tail@{k}": np.where(rng.uniform(size=len(recall)) < 0.5, np.nan, recall / 2),
                       f"item_counts@{k}": rng.integers(0, 5, N_ITEMS).astype(np.int64)})
    arrays["item_train_count"] = rng.integers(1, 100, N_ITEMS).astype(np.int64)
    test = {name: float(np.nanmean(arrays[name])) for name in arrays if "@" in name and "counts" not in name}
    test["users"] = float(len(recall))
    metrics = {"dataset": dataset, "model": model, "protocol": protocol, "best_epoch": 4, "epochs_trained": 5,
               "valid": dict(test), "test": test}
    (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    meta = {"dataset": dataset, "model": model, "protocol": protocol, "split": "test", "split_hash": split_hash,
            "seed": seed, "ks": list(KS), "n_items": N_ITEMS, "tail_share": 0.8, "cold_degree": 5,
            "run_dir": str(folder)}
    if per_user:
        np.savez_compressed(folder / "test_per_user.npz", meta=np.array(json.dumps(meta)), **arrays)
    logs = folder / "logs"
    logs.mkdir()
    lines = ["epoch,step,test/recall@20,train/loss,valid/ndcg@20,valid/recall@20"]  # epochs 1-based, as gnnrec logs
    for epoch in range(5):
        lines += [f"{epoch + 1}.0,{10 * epoch + 9},,,{0.1 + 0.02 * epoch},{0.2 + 0.03 * epoch - 0.05 * (epoch == 4)}",
                  f"{epoch + 1}.0,{10 * epoch + 9},,{1.0 / (epoch + 1)},,"]
    lines += ["4.0,50,,,0.16,0.29", f"4.0,50,{test['recall@20']},,,"]  # final evaluation of the best checkpoint
    (logs / "metrics.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder
