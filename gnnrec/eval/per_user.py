"""Per-user results of a final evaluation, saved beside metrics.json so that comparisons, significance tests
and user groups need no re-scoring.

File format (``<run>/test_per_user.npz``, ``<run>/valid_per_user.npz``; ``numpy.savez_compressed``, read with
``allow_pickle=False``), one row per evaluated user in evaluation order:
``meta`` (0-d unicode array holding a JSON object: dataset, model, protocol, split, split_hash, seed, ks,
n_items, tail_share, cold_degree, run_dir), ``users`` (int64 internal ids), ``user_ids`` (unicode, the
dataset's own ids), ``train_degree`` (int64), float64 per-user arrays ``recall@K`` ``ndcg@K`` ``precision@K``
``map@K`` ``hit@K`` ``avg_popularity@K`` ``tail_share@K`` ``novelty@K`` ``recall_head@K`` ``recall_tail@K``,
and the aggregates ``item_counts@K`` and ``item_train_count`` (int64, one entry per item).
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from gnnrec.errors import GnnrecError
from gnnrec.hashing import csr_structure_sha256
from gnnrec.eval.beyond import BEYOND_METRICS, COLD_DEGREE, TAIL_SHARE, catalogue_metrics, user_mean
from gnnrec.eval.metrics import METRICS
from gnnrec.recommend import original_ids

PER_USER_METRICS = (*METRICS, *BEYOND_METRICS, "recall_head", "recall_tail")  # one float64 array per name@K
META_KEYS = ("dataset", "model", "protocol", "split", "split_hash", "seed", "ks", "n_items", "tail_share",
             "cold_degree", "run_dir")


@dataclass
class PerUserResults:
    """One split's per-user results: ``metrics`` maps every per-user array's name (``recall@20``,
    ``novelty@10``, ``recall_tail@20`` ...) to a float64 array aligned with ``users``."""

    meta: dict
    users: np.ndarray
    user_ids: np.ndarray
    train_degree: np.ndarray
    metrics: dict[str, np.ndarray]
    item_counts: dict[int, np.ndarray]
    item_train_count: np.ndarray
    path: Path | None = field(default=None, compare=False)

    @property
    def ks(self) -> list[int]:
        return [int(k) for k in self.meta["ks"]]

    def means(self) -> dict[str, float]:
        """User means of every per-user array (NaN rows, e.g. recall_tail of users without tail items, skipped),
        plus coverage@K and gini@K: the numbers metrics.json holds for this split. Where no user has a value,
        the metrics.json ones are 0.0 as there (the evaluator's rule for an empty split); head/tail recall,
        which metrics.json does not hold, is NaN (undefined)."""
        out = {name: user_mean(v, float("nan") if name.startswith(("recall_head@", "recall_tail@")) else 0.0)
               for name, v in self.metrics.items()}
        out.update(catalogue_metrics(self.item_counts))
        out["users"] = len(self.users)
        return out


def split_hash(heldout: sp.csr_matrix, mask: sp.csr_matrix) -> str:
    """sha256 of the held-out and mask CSR structures (indptr + indices): equal only for the same split."""
    return csr_structure_sha256(heldout, mask)


def from_evaluation(dataset, evaluator, collected: dict[str, np.ndarray], *, model: str, seed: int,
                    run_dir: str | Path | None) -> PerUserResults:
    """Per-user results from a ``FullRankingEvaluator`` and its ``collect``-ed rows."""
    users = collected["users"].astype(np.int64)
    meta = {"dataset": dataset.name, "model": model, "protocol": evaluator.protocol, "split": evaluator.split,
            "split_hash": split_hash(evaluator.heldout, evaluator.mask), "seed": int(seed),
            "ks": [int(k) for k in evaluator.ks], "n_items": int(evaluator.n_items), "tail_share": TAIL_SHARE,
            "cold_degree": COLD_DEGREE, "run_dir": str(Path(run_dir).resolve()) if run_dir else ""}
    names = [f"{m}@{k}" for m in PER_USER_METRICS for k in evaluator.ks]
    return PerUserResults(
        meta=meta, users=users, user_ids=original_ids(dataset, "user")[users].astype(str),
        train_degree=evaluator.train_degree[users].astype(np.int64),
        metrics={name: collected[name].astype(np.float64) for name in names},
        item_counts={k: collected[f"item_counts@{k}"].astype(np.int64) for k in evaluator.ks},
        item_train_count=evaluator.item_train_count.astype(np.int64))


def save_per_user(path: str | Path, results: PerUserResults) -> Path:
    """Write ``results`` in the per-user file format; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"meta": np.array(json.dumps(results.meta)), "users": results.users.astype(np.int64),
              "user_ids": np.asarray(results.user_ids).astype(str),
              "train_degree": results.train_degree.astype(np.int64),
              **{name: v.astype(np.float64) for name, v in results.metrics.items()},
              **{f"item_counts@{k}": v.astype(np.int64) for k, v in results.item_counts.items()},
              "item_train_count": results.item_train_count.astype(np.int64)}
    with open(path, "wb") as fh:  # a file handle: savez would append ".npz" to a name without it
        np.savez_compressed(fh, **arrays)
    return path


def load_per_user(path: str | Path) -> PerUserResults:
    """Read a per-user file; a missing, damaged or foreign file is a ``GnnrecError`` naming it."""
    path = Path(path)
    if not path.is_file():
        raise GnnrecError(f"per-user results not found: {path} (written by the final evaluation of `gnnrec train` "
                          f"or by `gnnrec evaluate RUN`)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise GnnrecError(f"{path}: not a readable per-user results file "
                          f"({type(exc).__name__}: {str(exc)[:200]})") from None
    try:
        meta = json.loads(str(arrays.pop("meta")[()]))
    except (KeyError, ValueError, TypeError) as exc:
        raise GnnrecError(f"{path}: per-user results need a 'meta' entry holding a JSON object ({exc})") from None
    if not isinstance(meta, dict) or (missing := [k for k in META_KEYS if k not in meta]):
        raise GnnrecError(f"{path}: 'meta' lacks {missing if isinstance(meta, dict) else list(META_KEYS)}")
    ks = [int(k) for k in meta["ks"]]
    required = ["users", "user_ids", "train_degree", "item_train_count",
                *(f"{m}@{k}" for m in PER_USER_METRICS for k in ks),
                *(f"item_counts@{k}" for k in ks)]
    if missing := [name for name in required if name not in arrays]:
        raise GnnrecError(f"{path}: per-user results lack {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
    n = len(arrays["users"])
    per_item = {"item_train_count", *(f"item_counts@{k}" for k in ks)}
    for name, values in arrays.items():
        expected = int(meta["n_items"]) if name in per_item else n
        if values.ndim != 1 or len(values) != expected:
            raise GnnrecError(f"{path}: '{name}' has shape {values.shape}, expected ({expected},)")
    fixed = {"users", "user_ids", "train_degree", *per_item}
    return PerUserResults(
        meta=meta, users=arrays["users"].astype(np.int64), user_ids=arrays["user_ids"],
        train_degree=arrays["train_degree"].astype(np.int64),
        metrics={name: v.astype(np.float64) for name, v in arrays.items() if name not in fixed},
        item_counts={k: arrays[f"item_counts@{k}"].astype(np.int64) for k in ks},
        item_train_count=arrays["item_train_count"].astype(np.int64), path=path)


def write_run_results(run_dir: str | Path, dataset, evaluator, collected, *, model: str, seed: int,
                      path: str | Path | None = None) -> PerUserResults:
    """Save one split's per-user results as ``<run_dir>/<split>_per_user.npz`` (or ``path``); for the test
    split also ``test_groups.json`` beside it (``gnnrec.eval.groups``)."""
    from gnnrec.eval.groups import save_group_table

    results = from_evaluation(dataset, evaluator, collected, model=model, seed=seed, run_dir=run_dir)
    target = Path(path) if path else Path(run_dir) / f"{evaluator.split}_per_user.npz"
    results.path = save_per_user(target, results)
    if evaluator.split == "test":
        groups = "test_groups.json" if path is None else f"{target.stem}_groups.json"
        save_group_table(target.parent / groups, results)
    return results
