"""``gnnrec augment edges|items|users``: run one augmentation from a config and write its outputs.

Outputs go to ``augment.out`` (default ``runs/augment/<dataset>``): ``edges.csv`` (user, positive,
negative internal ids), ``features/attributes_feat.npy`` (one row per item) and
``features/users/profile_feat.npy`` (one row per user) with manifests, the parsed texts as CSV, a JSON
report per step (LLM throughput, parse failures by reason) and the LLM answer cache that makes reruns free.
"""
from __future__ import annotations

import csv
import json
import logging
import time
from pathlib import Path

import numpy as np

from gnnrec.augment.edges import augment_edges, candidate_pools, write_edges
from gnnrec.augment.prompts import load_template
from gnnrec.augment.texts import ask_fields, attribute_prompts, profile_prompts
from gnnrec.encoders import store
from gnnrec.encoders.text import embed_with_mean_fill, encode_texts, render_texts, resolve_model
from gnnrec.errors import ConfigError
from gnnrec.llm import build_llm

log = logging.getLogger(__name__)
KINDS = {"edges": "edges", "items": "attributes", "users": "profiles"}


def output_folder(cfg: dict, dataset) -> Path:
    return Path(cfg["augment"]["out"] or Path(cfg["output"]["dir"]) / "augment" / dataset.name)


def language_model(cfg: dict, step: str, out: Path):
    options = dict(cfg["llm"])
    options["cache"] = options["cache"] or str(out / "llm_cache.jsonl")
    options["max_new_tokens"] = cfg["augment"]["max_new_tokens"][step]
    options["seed"] = cfg["augment"]["seed"]
    return build_llm(**options)


def item_texts(cfg: dict, dataset) -> list[str]:
    return render_texts(dataset, cfg["augment"]["item_text"])


def titles(cfg: dict, dataset) -> np.ndarray:
    column = cfg["augment"]["title_field"]
    if column not in dataset.item_info:
        raise ConfigError(f"augment.title_field '{column}' is not an item metadata column of {dataset.name}; "
                          f"available: {sorted(dataset.item_info)}")
    return dataset.item_info[column]


def write_report(out: Path, step: str, report: dict, lm) -> dict:
    """``llm``: this run's LLM use; ``llm_generation``: that of the run that generated the answers (a rerun
    answered from the cache keeps the throughput measured when they were made)."""
    path = out / f"{step}_report.json"
    stats = {"backend": type(lm).__name__, "model": lm.model, "device": str(getattr(lm, "device", "remote")),
             **lm.stats.as_dict()}
    generation = stats
    if lm.stats.generated == 0 and path.is_file():
        generation = json.loads(path.read_text(encoding="utf-8")).get("llm_generation", stats)
    report = {**report, "llm": stats, "llm_generation": generation, "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return report


def run_edges(cfg: dict, dataset) -> dict:
    from gnnrec.runs import load_run

    acfg, out = cfg["augment"], output_folder(cfg, dataset)
    if not acfg["base"]:
        raise ConfigError("augment.base must name the run folder of a trained recommender (e.g. LightGCN): "
                          "the LLM picks from its top candidates")
    _, base_data, base = load_run(acfg["base"], overrides={"data": {"source": cfg["data"]["source"]}})
    if base_data.train.shape != dataset.train.shape or (base_data.train != dataset.train).nnz:
        raise ConfigError(f"augment.base {acfg['base']} was trained on a different split of the data than this "
                          "config loads (same data.* settings and seed are needed)")
    pools = candidate_pools(base, dataset.train, acfg["candidates"])
    lm = language_model(cfg, "edges", out)
    triples, report = augment_edges(lm, dataset.train, pools, item_texts(cfg, dataset), titles(cfg, dataset),
                                    load_template("edges", acfg["prompts"]["edges"]), acfg["history"], acfg["seed"])
    write_edges(out / "edges.csv", triples)
    return write_report(out, "edges", {**report, "file": str(out / "edges.csv")}, lm)


def run_texts(cfg: dict, dataset, kind: str) -> dict:
    """Item attributes (``kind`` attributes) or user profiles (``profiles``), embedded into the store."""
    acfg, out = cfg["augment"], output_folder(cfg, dataset)
    template = load_template(kind, acfg["prompts"][kind])
    names = item_texts(cfg, dataset)
    if kind == "attributes":
        fields, folder, name = acfg["attributes"], out / "features", "attributes"
        prompts = attribute_prompts(template, names, fields)
    else:
        fields, folder, name = acfg["profile"], out / "features" / "users", "profile"
        prompts = profile_prompts(template, dataset.train, names, fields, acfg["history"], acfg["seed"])
    lm = language_model(cfg, kind, out)
    texts, report = ask_fields(lm, prompts, fields, desc=f"augment {kind}")
    out.mkdir(parents=True, exist_ok=True)
    with open(out / f"{kind}.csv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([["id", "text"], *([i, t or ""] for i, t in enumerate(texts))])
    write_report(out, kind, report, lm)  # the answers are safe before the (separate) embedding step
    features, filled = embed_with_mean_fill(texts, lambda batch: encode_texts(batch, acfg["encoder"]))
    manifest = {"modality": name, "model": acfg["encoder"], "resolved_model": resolve_model(acfg["encoder"]),
                "template": template, "source": f"{lm.model} answers, {out / f'{kind}.csv'}",
                "items": len(texts), "rows": "users" if kind == "profiles" else "items",
                "inputs_sha256": store.inputs_checksum([t or "" for t in texts]), "mean_filled_rows": filled}
    path = store.save(folder, name, features, manifest)
    return write_report(out, kind, {**report, "mean_filled_rows": filled, "file": str(path)}, lm)


def run_augment(cfg: dict, target: str) -> dict:
    """``target``: edges, items (attributes) or users (profiles)."""
    from gnnrec.train import dataset_from_config

    if target not in KINDS:
        raise ConfigError(f"augment target must be one of {sorted(KINDS)}, got '{target}'")
    # the augmentations read the raw interactions and metadata, never earlier augmentation outputs
    raw = {**cfg, "data": {**cfg["data"], "feature_dirs": [], "augment": {**cfg["data"]["augment"], "edges": None}}}
    dataset = dataset_from_config(raw)
    step = KINDS[target]
    return run_edges(cfg, dataset) if step == "edges" else run_texts(cfg, dataset, step)
