"""Embeddings for brand-new items (cold start), from their modality features alone.

A new item joins the frozen item graph the way a training item did (gnnrec/graphs/knn.py): in each modality its
k nearest items by cosine, the item itself counted among the k (so k - 1 training items) when the graph includes
self-loops, edge weight 1 (binary graphs) or the cosine clipped at 0, normalised D^-1/2 A D^-1/2 with D the row
sums (the new item's own row sum, and each neighbour's row sum in the training graph), modalities fused with
their weights. Its row of that graph, S_new, then aggregates embeddings as the model's item-graph branch does.

- ``item_graph`` (FREEDOM: h = S^n E_id): e_new = S_new . base with base = S^(n-1) E_id over the training items.
  The new item's own ID vector, which the self-loop would read, does not exist; it is taken to be e_new itself
  (the fixed point), so e_new = (sum over neighbours of S_new,j base_j) / (1 - S_new,new). For a binary graph
  this is the plain mean of the k - 1 neighbours' vectors. The LightGCN part of FREEDOM's item vector needs
  interactions, which a new item has none of, so it is zero.
- ``content`` (a documented fallback for every other dot-product model, LightGCN and MF included): the same
  S_new row (binary, k = 10, modalities weighted equally unless the model says otherwise) over the exported
  final item embeddings, i.e. the mean of the final vectors of the new item's content neighbours.

The neighbours are searched among the training items only: added items are served, but never become neighbours
of later ones, and the training items' vectors do not change (the graph stays frozen).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from gnnrec.errors import GnnrecError
from gnnrec.graphs.knn import check_weights, knn_topk, normalize_rows
from gnnrec.topk import topk_items

SPEC_FILE = "coldstart.json"
BASE_FILE = "coldstart_base.npy"
CONTENT_K = 10  # the content fallback's neighbours: FREEDOM's and LATTICE's default k


def feature_file(modality: str) -> str:
    return f"coldstart_feat_{modality}.npy"


def degree_file(modality: str) -> str:
    return f"coldstart_degree_{modality}.npy"


def graph_row(queries: dict[str, np.ndarray], features: dict[str, np.ndarray], k: int, weights: dict[str, float],
              binary: bool, include_self: bool, degrees: dict[str, np.ndarray] | None = None,
              batch_size: int = 1024) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """The new items' rows of the fused, normalised kNN graph over ``features`` (training items).

    Returns, per modality, (neighbour ids, weights already multiplied by the modality weight), both
    (n_queries, k'), and the total self-loop weight (n_queries,). ``degrees[m]``: the training items' row sums
    in modality m's unnormalised kNN adjacency (None or missing: binary, every row sums to k)."""
    n = len(next(iter(features.values())))
    others = k - 1 if include_self else k
    if not 0 < others <= n:
        raise GnnrecError(f"cold start needs 1 to {n} training neighbours per modality; knn k={k} "
                          f"({'with' if include_self else 'without'} the item itself) gives {others}")
    rows, self_weight = [], 0.0
    for name in sorted(features):
        items = normalize_rows(features[name], name)
        query = normalize_rows(queries[name], name)
        ids, sims = [], []
        for start in range(0, len(query), batch_size):  # (batch, n) similarities, never (n_new, n) at once
            block = query[start : start + batch_size] @ items.T
            top = topk_items(block, others)
            ids.append(top)
            sims.append(block.gather(1, top))
        ids, sims = torch.cat(ids).numpy(), torch.cat(sims).numpy()
        edge = np.ones_like(sims) if binary else sims.clip(min=0)
        loop = 1.0 if include_self else 0.0  # cos(x, x) = 1, binary or not
        own = edge.sum(1) + loop
        own = np.where(own > 0, own, 1.0)
        theirs = degrees[name][ids] if degrees and name in degrees else np.full(ids.shape, float(k))
        theirs = np.where(theirs > 0, theirs, 1.0)
        rows.append((ids, weights[name] * edge / np.sqrt(own[:, None] * theirs)))
        self_weight = self_weight + weights[name] * loop / own
    return rows, np.asarray(self_weight, dtype=np.float64)


def aggregate(rows: list[tuple[np.ndarray, np.ndarray]], self_weight: np.ndarray, base: np.ndarray) -> np.ndarray:
    """e_new = (S_new,neighbours . base) / (1 - S_new,new): the branch's output with the self-loop as a fixed point."""
    out = np.zeros((len(self_weight), base.shape[1]), dtype=np.float64)
    for ids, w in rows:
        out += np.einsum("qk,qkd->qd", w, base[ids])
    return (out / (1.0 - self_weight)[:, None]).astype(np.float32)


def weighted_degrees(features: np.ndarray, k: int, include_self: bool, name: str) -> np.ndarray:
    """Row sums of a non-binary kNN adjacency (clipped cosines of each item's k neighbours), as the graph had them."""
    _, values = knn_topk(features, k, include_self, name=name)
    return values.clamp(min=0).sum(1).numpy().astype(np.float32)


def branch_spec(model, dataset) -> tuple[dict, np.ndarray] | None:
    """(spec, base embeddings) for a model with a FREEDOM-style frozen item-graph branch, else None."""
    from gnnrec.models.freedom import FREEDOM

    if not isinstance(model, FREEDOM):
        return None
    hp = model.hparams
    with torch.no_grad():
        base = model.item_emb.weight
        for _ in range(model.num_mm_layers - 1):
            base = model.item_graph @ base
    spec = {"method": "item_graph", "rule": "e_new = S_new . S^(n-1) E_id, self-loop as a fixed point",
            "knn_k": int(hp.knn_k), "weights": check_weights(sorted(dataset.features), hp.modality_weights),
            "binary": True, "include_self": True, "num_mm_layers": int(model.num_mm_layers),
            "knn_backend": hp.knn_backend, "knn_precision": getattr(hp, "knn_precision", "float32")}
    return spec, base.detach().float().cpu().numpy()


def feature_encoders(config: dict, modalities: list[str]) -> dict[str, dict]:
    """The encoder each modality was made with, from the feature store manifests of ``data.feature_dirs``."""
    found = {}
    for folder in config["data"].get("feature_dirs") or []:
        for name in modalities:
            meta = Path(folder) / f"{name}_feat.json"
            if meta.is_file():
                m = json.loads(meta.read_text(encoding="utf-8"))
                found[name] = {k: m.get(k) for k in ("model", "template", "normalized")}
    return found


def write_cold_start(run, item_emb: np.ndarray, out: Path) -> tuple[dict, list[str]]:
    """Write what new-item embeddings need into the export ``out``; returns (manifest entry, files written)."""
    dataset, model = run.dataset, run.model
    if not dataset.features:
        return {"method": "none", "reason": f"dataset {dataset.name} has no item features"}, []
    if run.config["data"].get("feature_norm") == "zscore":  # new items' raw features would meet z-scored ones
        return {"method": "none", "reason": "data.feature_norm=zscore: the export does not carry the training "
                                            "features' mean and std, so a new item's raw features cannot be "
                                            "scaled the same way (train with feature_norm none or l2)"}, []
    branch = branch_spec(model, dataset)
    if branch is None:
        spec = {"method": "content", "rule": "e_new = S_new . item_emb (final embeddings of content neighbours)",
                "knn_k": CONTENT_K, "weights": check_weights(sorted(dataset.features), None), "binary": True,
                "include_self": True, "num_mm_layers": 1, "knn_backend": "exact"}
        base = item_emb
    else:
        spec, base = branch
    files = [BASE_FILE]
    np.save(out / BASE_FILE, np.ascontiguousarray(base, dtype=np.float32))
    for name, x in sorted(dataset.features.items()):
        np.save(out / feature_file(name), np.ascontiguousarray(x, dtype=np.float32))
        files.append(feature_file(name))
        if not spec["binary"]:
            np.save(out / degree_file(name), weighted_degrees(x, spec["knn_k"], spec["include_self"], name))
            files.append(degree_file(name))
    spec.update(modalities={n: int(x.shape[1]) for n, x in sorted(dataset.features.items())},
                encoders=feature_encoders(run.config, sorted(dataset.features)),
                feature_norm=run.config["data"].get("feature_norm", "none"))
    (out / SPEC_FILE).write_text(json.dumps(spec, indent=2), encoding="utf-8")
    return {"method": spec["method"], "file": SPEC_FILE}, [SPEC_FILE, *files]


@dataclass
class ColdStart:
    """The loaded cold-start part of an export: turns new items' features (or texts) into item embeddings."""

    spec: dict
    features: dict[str, np.ndarray]
    base: np.ndarray
    degrees: dict[str, np.ndarray]
    encoders: dict = field(default_factory=dict, repr=False)  # sentence-transformers models, loaded on first use

    @classmethod
    def load(cls, folder: Path) -> "ColdStart":
        spec = json.loads((folder / SPEC_FILE).read_text(encoding="utf-8"))
        names = sorted(spec["modalities"])
        degrees = {n: np.load(folder / degree_file(n)) for n in names if not spec["binary"]}
        return cls(spec, {n: np.load(folder / feature_file(n)) for n in names}, np.load(folder / BASE_FILE), degrees)

    def check(self, features: dict) -> dict[str, np.ndarray]:
        """The given features as (n, dim) float32 per modality; errors name a missing, unknown or wrong-width one."""
        widths = self.spec["modalities"]
        missing, unknown = sorted(set(widths) - set(features)), sorted(set(features) - set(widths))
        if missing or unknown:
            raise GnnrecError(f"a new item needs features for exactly the modalities {sorted(widths)}: "
                              f"missing {missing}, unknown {unknown}")
        out = {}
        for name, value in features.items():
            try:
                x = np.atleast_2d(np.asarray(value, dtype=np.float32))
            except (TypeError, ValueError):
                raise GnnrecError(f"features of modality '{name}' must be a list of numbers") from None
            if x.ndim != 2 or x.shape[1] != widths[name]:
                raise GnnrecError(f"features of modality '{name}' must have {widths[name]} values, got {x.shape[-1]}")
            if not np.isfinite(x).all() or not np.any(x, axis=1).all():
                raise GnnrecError(f"features of modality '{name}' must be finite and not all zero (cosine needs a "
                                  "direction)")
            if self.spec.get("feature_norm") == "l2":
                x = x / np.linalg.norm(x, axis=1, keepdims=True)
            out[name] = x
        return out

    def encode_text(self, texts: dict[str, str]) -> dict[str, np.ndarray]:
        """Features from raw text with the sentence-transformers model recorded for each named modality."""
        from gnnrec.encoders.text import encode_texts, load_sentence_model

        out = {}
        for name, text in texts.items():
            enc = self.spec.get("encoders", {}).get(name)
            if name not in self.spec["modalities"]:
                raise GnnrecError(f"unknown modality '{name}' for text; this export has "
                                  f"{sorted(self.spec['modalities'])}")
            if not enc or not enc.get("model") or ":" in str(enc["model"]):
                raise GnnrecError(f"modality '{name}' has no recorded text encoder in its feature manifest "
                                  f"({enc.get('model') if enc else 'none'}); send its features instead")
            if enc["model"] not in self.encoders:
                self.encoders[enc["model"]] = load_sentence_model(enc["model"])
            out[name] = encode_texts([text], self.encoders[enc["model"]], progress=False,
                                     normalize=bool(enc.get("normalized", True)))
        return out

    def embed(self, features: dict) -> np.ndarray:
        """(n_new, dim) embeddings of new items from their features (one row per item in every modality)."""
        x = self.check(features)
        counts = {len(v) for v in x.values()}
        if len(counts) != 1:
            raise GnnrecError(f"every modality needs the same number of new items, got {sorted(counts)}")
        s = self.spec
        rows, loop = graph_row(x, self.features, s["knn_k"], s["weights"], s["binary"], s["include_self"],
                               self.degrees)
        return aggregate(rows, loop, self.base)
