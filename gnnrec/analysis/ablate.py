"""Modality attribution (``gnnrec ablate``): how much a trained multimodal model's accuracy rests on each modality.

A modality is replaced at evaluation time while the trained weights are kept: by its mean row for every item
(the modality tells the items apart no more) or by its rows shuffled across items (same distribution, attached
to the wrong items). One mechanism serves every model: the model is rebuilt from a dataset holding the replaced
table, so whatever it derives from the features when built (frozen kNN item graphs, feature buffers) follows;
then the trained state dict is loaded, except the entries the features determine. Trained copies of a feature
table (trainable features, as FREEDOM, BM3, MGCN keep) get the same replacement applied to their trained rows;
any other feature-derived entry takes its rebuilt value and is listed in the result (``reset_from_features``).
Which entries are feature-derived is found by building the untrained model twice, from the intact and from the
replaced features, with the same seed: the entries that differ.

``retrain`` trains the run's config again with the modality removed (``data.drop_modalities``).
"""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from gnnrec.errors import DataError, GnnrecError
from gnnrec.eval import FullRankingEvaluator
from gnnrec.report import headline_k, markdown_table
from gnnrec.runs import load_run, resolve_checkpoint
from gnnrec.train import dataset_from_config, model_from_config, train

log = logging.getLogger(__name__)

MODES = ("mean", "shuffle")
ALL = "all"  # every modality replaced at once
CHECK_USERS = 256  # users whose scores decide whether a model reads its item features at all


@dataclass(frozen=True)
class Replacement:
    """What a modality's rows become: their mean for every item, or ``rows[permutation]`` (seeded)."""

    mode: str
    permutation: np.ndarray | None = None

    def __call__(self, rows):
        """The replaced rows of a numpy array or a torch tensor (items x dim), same type and dtype."""
        if self.mode == "mean":
            if torch.is_tensor(rows):
                return rows.mean(0, keepdim=True).expand_as(rows).clone()
            return np.repeat(rows.mean(axis=0, dtype=np.float64, keepdims=True).astype(rows.dtype), len(rows), axis=0)
        return rows[torch.from_numpy(self.permutation) if torch.is_tensor(rows) else self.permutation]


def replacements(modalities: list[str], mode: str, n_items: int, seed: int) -> dict[str, Replacement]:
    """One replacement per modality; a modality's permutation is the same alone and in ``all``."""
    if mode not in MODES:
        raise GnnrecError(f"unknown ablation mode '{mode}'; choose from {', '.join(MODES)}")
    return {m: Replacement(mode, np.random.default_rng([seed, i]).permutation(n_items) if mode == "shuffle" else None)
            for i, m in enumerate(sorted(modalities))}


def same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Exact equality of two state entries, sparse ones included (``torch.equal`` takes dense tensors only)."""
    if a.layout != b.layout or a.shape != b.shape:
        return False
    if a.layout == torch.sparse_coo:
        a, b = a.coalesce(), b.coalesce()
        return torch.equal(a.indices(), b.indices()) and torch.equal(a.values(), b.values())
    if a.layout == torch.sparse_csr:
        return all(torch.equal(x, y) for x, y in ((a.crow_indices(), b.crow_indices()),
                                                  (a.col_indices(), b.col_indices()), (a.values(), b.values())))
    return torch.equal(a, b)


class ModalityAblation:
    """A trained run whose item modalities can be replaced at evaluation time, its weights kept.

    ``dataset`` must hold the raw features: not the dataset ``load_run`` returns, whose feature arrays the
    trained model's trainable tables share memory with (loading the weights overwrote them); ``open`` loads it
    anew. Every model built here gets copies of the arrays, so nothing writes into ``dataset``."""

    @classmethod
    def open(cls, run: str | Path, overrides=None) -> "ModalityAblation":
        cfg, _, trained = load_run(run, overrides)
        return cls(cfg, dataset_from_config(cfg), trained)

    def __init__(self, cfg: dict, dataset, trained_model):
        self.cfg, self.dataset, self.trained = cfg, dataset, trained_model
        self.modalities = sorted(dataset.features)
        name = cfg["model"]["name"]
        if not self.modalities:
            raise GnnrecError(f"nothing to attribute: dataset '{dataset.name}' of this '{name}' run has no item "
                              "modalities")
        # ablated rebuilds compute their graphs in memory: one-off graphs do not belong in the shared cache
        self.build_cfg = copy.deepcopy(cfg)
        if self.build_cfg["model"].get("graph_cache_dir"):
            self.build_cfg["model"]["graph_cache_dir"] = None
        self.fresh_intact = self.fresh(self.replaced_dataset({}), cfg)
        self.fresh_state = self.fresh_intact.state_dict()
        self.table_of = self.feature_tables()
        shuffled = self.fresh(self.replaced_dataset(replacements(self.modalities, "shuffle", dataset.n_items, 0)))
        users = torch.arange(min(CHECK_USERS, dataset.n_users))
        with torch.no_grad():  # False for models whose features shape training only (BM3's losses)
            self.reads_features = not torch.equal(self.fresh_intact.score_fn()(users), shuffled.score_fn()(users))
        shuffled_state = shuffled.state_dict()
        holds_features = bool(self.table_of) or any(not same_tensor(v, shuffled_state[k])
                                                    for k, v in self.fresh_state.items())
        if not self.reads_features and not holds_features:
            raise GnnrecError(f"model '{name}' does not use item features (neither its scores nor its weights "
                              "change when every modality's rows are shuffled): nothing to attribute; ablation is "
                              "for multimodal models such as freedom, lattice, vbpr")

    def fresh(self, dataset, cfg: dict | None = None):
        """The untrained model built from ``dataset``, always from the same seed (same random initial weights)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.cfg["seed"])
            model = model_from_config(cfg or self.build_cfg, dataset)
        return model.eval()

    def feature_tables(self) -> dict[str, str]:
        """State-dict entries that hold a modality's feature table as built (name -> modality)."""
        raw = {m: torch.as_tensor(np.asarray(x, dtype=np.float32)) for m, x in self.dataset.features.items()}
        return {key: m for key, value in self.fresh_state.items() for m, x in raw.items()
                if value.layout == torch.strided and value.shape == x.shape and torch.equal(value, x)}

    def replaced_dataset(self, replaced: dict[str, Replacement]):
        features = {m: (replaced[m](x) if m in replaced else x.copy()) for m, x in self.dataset.features.items()}
        return replace(self.dataset, features=features)

    def model(self, replaced: dict[str, Replacement]):
        """The trained model with the modalities in ``replaced`` replaced, and the state entries reset from the
        rebuilt (untrained) model because the features determine them."""
        try:
            model = self.fresh(self.replaced_dataset(replaced))
        except DataError as exc:  # e.g. the mean row of a zscore-scaled table is zero: no cosine neighbours
            raise GnnrecError(f"the model cannot be rebuilt with {', '.join(sorted(replaced))} replaced by "
                              f"{'/'.join(sorted({r.mode for r in replaced.values()}))} rows: {exc}") from None
        rebuilt = model.state_dict()
        state, reset = {}, []
        for key, trained in self.trained.state_dict().items():
            if self.table_of.get(key) in replaced:
                state[key] = replaced[self.table_of[key]](trained)
            elif not same_tensor(self.fresh_state[key], rebuilt[key]):
                state[key] = rebuilt[key]
                reset.append(key)
            else:
                state[key] = trained
        model.load_state_dict(state)
        return model.eval(), reset


def evaluate(model, evaluators: dict, batch_size: int) -> dict:
    with torch.no_grad():
        score = model.eval_scorer()
        return {split: ev.evaluate(score, batch_size) for split, ev in evaluators.items()}


def drops(intact: dict, ablated: dict) -> tuple[dict, dict]:
    """Per split and metric: intact - ablated (positive = the modality helped), and that relative to intact."""
    absolute, relative = {}, {}
    for split, values in intact.items():
        names = [k for k in values if k != "users" and k in ablated[split]]
        absolute[split] = {k: values[k] - ablated[split][k] for k in names}
        relative[split] = {k: (absolute[split][k] / values[k] if values[k] else None) for k in names}
    return absolute, relative


def retrain_without(cfg: dict, run_dir: Path, modality: str) -> dict:
    """The run's config trained again without ``modality``; the run lands in ``<run>/ablate/without-<modality>``."""
    cfg = copy.deepcopy(cfg)
    cfg["data"]["drop_modalities"] = [*cfg["data"].get("drop_modalities", []), modality]
    cfg["train"]["resume"] = None
    cfg["output"] = {**cfg["output"], "dir": str(run_dir / "ablate"), "name": f"without-{modality}"}
    result = train(cfg)
    return {"run_dir": str(result.run_dir), "valid": result.metrics["valid"], "test": result.metrics["test"]}


def ablate(run: str | Path, modes=MODES, seed: int = 0, retrain: bool = False, overrides=None,
           splits=("valid", "test")) -> dict:
    """Metrics of the run intact and with each modality (and all at once) replaced by each mode, the drops, and
    with ``retrain`` the metrics of the config retrained without each modality. JSON-ready."""
    unknown = [m for m in modes if m not in MODES]
    if unknown or not (modes or retrain):
        raise GnnrecError(f"ablation modes must be among {', '.join(MODES)} (or none with --retrain), got "
                          f"{', '.join(unknown) or 'none'}")
    ablation = ModalityAblation.open(run, overrides)
    cfg, dataset, model = ablation.cfg, ablation.dataset, ablation.trained
    run_dir = resolve_checkpoint(run).parent.parent
    protocol, batch = cfg["eval"]["protocol"], cfg["eval"]["batch_size"]
    if not ablation.reads_features:
        if not retrain:
            raise GnnrecError(f"model '{cfg['model']['name']}' scores without reading its item features (they "
                              "shape its training only): replacing them at evaluation changes nothing; measure "
                              "them with --retrain")
        log.info("%s scores without reading item features: only the retrained runs measure them", cfg["model"]["name"])
        modes = ()
    evaluators = {s: FullRankingEvaluator(dataset, s, protocol, cfg["eval"]["ks"]) for s in splits}
    intact = evaluate(model, evaluators, batch)
    targets = [[m] for m in ablation.modalities] + ([ablation.modalities] if len(ablation.modalities) > 1 else [])
    rows, reset_keys = [], set()
    for mode in modes:
        per_modality = replacements(ablation.modalities, mode, dataset.n_items, seed)
        for target in targets:
            ablated_model, reset = ablation.model({m: per_modality[m] for m in target})
            reset_keys.update(reset)
            metrics = evaluate(ablated_model, evaluators, batch)
            absolute, relative = drops(intact, metrics)
            rows.append({"modality": target[0] if len(target) == 1 else ALL, "mode": mode, **metrics,
                         "drop": absolute, "relative_drop": relative})
            log.info("%s replaced by %s: test recall@20 %.4f (intact %.4f)", rows[-1]["modality"], mode,
                     metrics.get("test", metrics[splits[-1]]).get("recall@20", float("nan")),
                     intact.get("test", intact[splits[-1]]).get("recall@20", float("nan")))
    retrained = []
    if retrain:
        for m in ablation.modalities:
            if len(ablation.modalities) == 1:
                log.warning("not retrained without '%s': it is the run's only modality (compare with LightGCN)", m)
                continue
            out = retrain_without(cfg, run_dir, m)
            absolute, relative = drops({s: intact[s] for s in splits}, out)
            retrained.append({"modality": m, **out, "drop": absolute, "relative_drop": relative})
    if reset_keys:
        log.info("state entries rebuilt from the replaced features (not trained ones): %s", sorted(reset_keys))
    return {"run": str(run_dir), "model": cfg["model"]["name"], "dataset": dataset.name, "protocol": protocol,
            "modalities": ablation.modalities, "modes": list(modes), "seed": seed, "intact": intact,
            "ablations": rows, "retrained": retrained, "reset_from_features": sorted(reset_keys)}


def headline_metrics(result: dict) -> list[str]:
    """The metrics a table shows: Recall and NDCG at 20 (or at the largest K evaluated)."""
    names = [k for k in next(iter(result["intact"].values())) if "@" in k]
    ks = sorted({int(k.split("@")[1]) for k in names})
    k = headline_k(ks)
    return [f"recall@{k}", f"ndcg@{k}"]


def ablation_table(result: dict) -> str:
    """Markdown: one row per replacement (and retrained run), test metrics with absolute and relative drops."""
    metrics = headline_metrics(result)
    split = "test" if "test" in result["intact"] else next(iter(result["intact"]))
    header = ["modality", "replaced by"]
    for name in metrics:
        header += [f"{split} {name}", "drop", "relative"]
    lines = [["-", "(intact)"] + sum(([result["intact"][split][n], "", ""] for n in metrics), [])]

    def row(modality, how, values, drop, relative):
        cells = [modality, how]
        for n in metrics:
            rel = relative[split][n]
            cells += [values[split][n], f"{drop[split][n]:+.4f}", "n/a" if rel is None else f"{100 * rel:+.1f}%"]
        return cells

    for r in result["ablations"]:
        lines.append(row(r["modality"], f"{r['mode']} rows", r, r["drop"], r["relative_drop"]))
    for r in result["retrained"]:
        lines.append(row(r["modality"], "removed, retrained", r, r["drop"], r["relative_drop"]))
    return markdown_table(header, lines)
