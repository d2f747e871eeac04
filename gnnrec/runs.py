"""Re-open a finished run: checkpoint (or run folder) -> config, dataset and model with the trained weights.

``Run.open(folder)`` is the Python API over it: score users, recommend with the dataset's original ids, and
re-evaluate (``gnnrec evaluate`` is a thin command over ``Run.evaluate``)."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import torch

from gnnrec.config import flatten, merge, parse_override, validate
from gnnrec.errors import GnnrecError
from gnnrec.recommend import known_items, original_ids, to_internal, top_k
from gnnrec.train import dataset_from_config, model_from_config


def resolve_checkpoint(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir() and not (path / "checkpoints").is_dir() and (path / "results.json").is_file():
        runs = sorted(p.name for p in path.glob("run[0-9][0-9][0-9]") if p.is_dir())
        raise GnnrecError(f"{path} is a search folder, not a run: give one of its runs ({', '.join(runs[:3]) or 'none'}"
                          f"{', ...' if len(runs) > 3 else ''}; results.md names the selected one)")
    if path.is_dir():
        path = path / "checkpoints" / "best.ckpt"
    if not path.is_file():
        raise GnnrecError(f"checkpoint not found: {path} (give a .ckpt file or a run folder)")
    return path


def read_checkpoint(path: Path) -> dict:
    """A checkpoint's contents; a truncated or foreign file is a clear error naming it, not a torch traceback."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types (RuntimeError, UnpicklingError, EOFError, ...)
        raise GnnrecError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {str(exc)[:200]}); "
                          "it may be truncated (an interrupted copy or a full disk) or not written by gnnrec") from None
    if not isinstance(ckpt, dict):
        raise GnnrecError(f"{path}: not a gnnrec checkpoint (holds a {type(ckpt).__name__}, not a dict)")
    return ckpt


RELOCATION_KEYS = ("data.source", "data.feature_dirs")  # may point at moved copies (the fingerprint checks the content)


def value_at(cfg: dict, dotted: str):
    for part in dotted.split("."):
        cfg = cfg.get(part) if isinstance(cfg, dict) else None
    return cfg


def load_run(path: str | Path, overrides: dict | list[str] | None = None):
    """Returns (config, dataset, model in eval mode). ``overrides``: {"data": {"source": ...}} or ["data.source=..."]
    (e.g. data moved since training): type-checked like a training config, and refused when the data they
    give are not the interactions and features the run was trained on (the checkpoint's fingerprint)."""
    cfg, dataset, model, _ = open_checkpoint(path, overrides)
    return cfg, dataset, model


def open_checkpoint(path: str | Path, overrides: dict | list[str] | None = None):
    """``load_run`` plus the dotted config keys the overrides changed."""
    ckpt_path = resolve_checkpoint(path)
    ckpt = read_checkpoint(ckpt_path)
    stored = ckpt.get("gnnrec_config")
    if stored is None:
        raise GnnrecError(f"{ckpt_path} was not written by gnnrec train (no gnnrec_config inside)")
    updates = [parse_override(text) for text in overrides] if isinstance(overrides, list) else [overrides or {}]
    cfg = copy.deepcopy(stored)
    for update in updates:
        cfg = merge(cfg, update)
    changed = sorted({k for update in updates for k in flatten(update)
                      if value_at(stored, k) != value_at(cfg, k)})
    if changed:
        cfg = validate(cfg)  # typed like a training config; a key the overrides did not name is not a change
    dataset = dataset_from_config(cfg)
    fingerprint = ckpt.get("gnnrec_data")
    if fingerprint is not None and fingerprint != dataset.fingerprint():
        raise GnnrecError(f"{ckpt_path}: these settings give other interactions (train, validation or test) or item "
                          f"features than the run was trained on (changed: "
                          f"{', '.join(changed) or 'nothing; the data files differ'}); a trained run can only be "
                          "evaluated on its own data (data.source may point to a moved copy of the same data)")
    model = model_from_config(cfg, dataset)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except (KeyError, RuntimeError) as exc:
        raise GnnrecError(f"{ckpt_path}: its weights do not fit the model its config describes ({str(exc)[:300]})") from None
    model.eval()
    return cfg, dataset, model, changed


@dataclass
class Evaluation:
    """``Run.evaluate``'s result: metrics per split (``{"test": {"recall@20": ...}}``) and per-user results
    (``gnnrec.eval.per_user.PerUserResults``; ``.path`` is set where they were written)."""

    protocol: str
    metrics: dict
    per_user: dict


@dataclass
class Run:
    """A finished training run, reopened: its config, dataset and trained model."""

    folder: Path
    config: dict
    dataset: object
    model: object
    changed: tuple = ()  # dotted config keys the overrides changed

    @classmethod
    def open(cls, path: str | Path, overrides: dict | list[str] | None = None) -> "Run":
        ckpt = resolve_checkpoint(path)
        cfg, dataset, model, changed = open_checkpoint(ckpt, overrides)
        return cls(ckpt.parent.parent, cfg, dataset, model, tuple(changed))

    def users(self, ids=None) -> np.ndarray:
        """Internal ids of the given original user ids (all users when None)."""
        return np.arange(self.dataset.n_users) if ids is None else to_internal(self.dataset, "user", ids)

    def scores(self, users) -> np.ndarray:
        """(len(users), n_items) scores of the given original user ids, nothing hidden."""
        import torch

        with torch.no_grad():
            return self.model.score_fn()(torch.from_numpy(self.users(users))).cpu().numpy()

    def recommend(self, users=None, k: int = 10, exclude: str = "known", batch_size: int = 4096) -> list[dict]:
        """Top ``k`` unseen items of each user (original ids; None = every user), best first:
        ``[{"user": id, "items": [ids], "scores": [floats]}]``. ``exclude``: known (train, valid and test items;
        default), train, or none."""
        internal = self.users(users)
        top = top_k(self.model.score_fn(), internal, k, known_items(self.dataset, exclude), batch_size)
        user_ids, item_ids = original_ids(self.dataset, "user"), original_ids(self.dataset, "item")
        out = []
        for u, items, scores in zip(internal, top.items, top.scores):
            keep = items >= 0
            out.append({"user": user_ids[u], "items": item_ids[items[keep]].tolist(),
                        "scores": scores[keep].astype(float).tolist()})
        return out

    def evaluate(self, splits=("valid", "test"), protocol: str | None = None,
                 per_user: str | Path | None = None) -> Evaluation:
        """Full-ranking metrics of the trained model on ``splits`` under ``protocol`` (default: the run's own).

        Per-user results are written into the run folder (``<split>_per_user.npz``, ``test_groups.json``) when
        the protocol is the run's own and the overrides only relocated the data (``RELOCATION_KEYS``), to
        ``per_user`` (an .npz path; ``FILE_<split>.npz`` for several splits) when given, else only returned:
        another protocol or other settings (``model.eval_samples=32`` ...) never overwrite the run's own files."""
        from gnnrec.eval import FullRankingEvaluator
        from gnnrec.eval.per_user import from_evaluation, write_run_results

        cfg = self.config
        protocol = protocol or cfg["eval"]["protocol"]
        splits = list(splits)
        into_run = (protocol == cfg["eval"]["protocol"] and (self.folder / "config.yaml").is_file()
                    and all(key in RELOCATION_KEYS for key in self.changed))
        metrics, per_user_results = {}, {}
        owner = {"model": cfg["model"]["name"], "seed": cfg["seed"]}
        with torch.no_grad():
            score = self.model.eval_scorer()
            for split in splits:
                ev = FullRankingEvaluator(self.dataset, split, protocol, cfg["eval"]["ks"])
                metrics[split], collected = ev.evaluate_per_user(score, cfg["eval"]["batch_size"])
                if per_user is None and not into_run:
                    per_user_results[split] = from_evaluation(self.dataset, ev, collected, **owner, run_dir=None)
                    continue
                target = None
                if per_user is not None:
                    target = Path(per_user)
                    target = target if target.suffix == ".npz" else target.with_name(target.name + ".npz")
                    target = target if len(splits) == 1 else target.with_name(f"{target.stem}_{split}{target.suffix}")
                per_user_results[split] = write_run_results(self.folder, self.dataset, ev, collected, **owner,
                                                            path=target)
        return Evaluation(protocol, metrics, per_user_results)
