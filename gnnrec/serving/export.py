"""A trained run as a self-contained serving folder: embeddings, original ids, known items, index, manifest.

Serving then needs numpy (and FAISS for an index), not the dataset or the torch model: the final embeddings
come from ``model.forward()`` once, and every score is their dot product, which is checked against the
model's own ``score_fn`` on a few users before anything is written. Models that do not score that way (GTE)
are refused. ``manifest.json`` is written last and lists the sha256 of every file; ``Export.load`` checks them.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from gnnrec.config import dump_config
from gnnrec.errors import GnnrecError
from gnnrec.hashing import file_sha256
from gnnrec.models.base import Recommender
from gnnrec.recommend import id_index, known_items, lookup, original_ids
from gnnrec.runs import Run
from gnnrec.serving.ann import INDEXES, build_index, exact_top_k, faiss_module, index_top_k, recall_at_k
from gnnrec.serving.coldstart import SPEC_FILE, ColdStart, write_cold_start

FORMAT = "gnnrec-export/1"
SCORING = "dot: score(user, item) = user_emb[user] . item_emb[item]"


class DuplicateIdError(GnnrecError):
    """A new item's id is already served (HTTP 409)."""


def dot_embeddings(model, check_users: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """(user, item) float32 embeddings from one ``forward()``; refused unless their dot products are the scores."""
    name = type(model).__name__
    if type(model).score_fn is not Recommender.score_fn:
        raise GnnrecError(f"model {name} cannot be exported: its scores are not dot products of user and item "
                          "embeddings (GTE scores with sparse products over the interaction graph); for batch "
                          "top-K use `gnnrec recommend RUN --all --out recs.tsv`")
    with torch.no_grad():
        user, item = (t.detach().float().cpu().numpy() for t in model())
        probe = np.unique(np.linspace(0, model.n_users - 1, min(check_users, model.n_users)).astype(np.int64))
        expected = model.score_fn()(torch.from_numpy(probe)).float().cpu().numpy()
    got = user[probe] @ item.T
    if not np.allclose(got, expected, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(expected).max()))):
        raise GnnrecError(f"model {name} cannot be exported: forward()'s embeddings do not reproduce its scores "
                          f"(max difference {np.abs(got - expected).max():.3g} on {len(probe)} users)")
    return np.ascontiguousarray(user), np.ascontiguousarray(item)


def measure_recall(index, user: np.ndarray, item: np.ndarray, known: sp.csr_matrix, k: int, n_users: int,
                   seed: int, ef_search: int) -> dict:
    """Recall@k of the served index answers (seen items hidden) against exact scoring, on a user sample."""
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(len(user), min(n_users, len(user)), replace=False))
    exact = exact_top_k(user[sample], item, k, known[sample]).items
    found, fallback = index_top_k(index, user[sample], item, k, known[sample], ef_search)
    return {"k": k, "users": len(sample), "seed": seed, "value": recall_at_k(found.items, exact),
            "exact_fallback_users": fallback}


def is_export(folder: Path) -> bool:
    """Whether ``folder`` holds a manifest.json that this module wrote."""
    try:
        return json.loads((folder / "manifest.json").read_text(encoding="utf-8")).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def check_target(target: Path, overwrite: bool) -> None:
    """An export never lands on top of other files: an existing non-empty folder is replaced only when
    ``overwrite`` is set and it is a previous export (it has a manifest.json)."""
    if target.exists() and not target.is_dir():
        raise GnnrecError(f"export folder {target} is a file")
    if target.is_dir() and any(target.iterdir()):
        if not overwrite:
            raise GnnrecError(f"export folder {target} already exists and is not empty; pass --overwrite to replace "
                              "a previous export")
        if not is_export(target):
            raise GnnrecError(f"export folder {target} is not a gnnrec export (no manifest.json of format "
                              f"'{FORMAT}'): not replacing it")


def export_run(run, out, index: str = "hnsw", overrides=None, recall_k: int = 20, recall_users: int = 1000,
               seed: int = 0, hnsw_m: int = 32, ef_construction: int = 200, ef_search: int = 128,
               overwrite: bool = False) -> dict:
    """Write the serving folder ``out`` for ``run`` (a Run, run folder or checkpoint); returns the manifest.

    The files are written into a sibling folder and moved into ``out`` only when complete, so a failed or
    interrupted export leaves any previous one as it was."""
    if index not in INDEXES:
        raise GnnrecError(f"index must be one of {INDEXES}, got '{index}'")
    target = Path(out).resolve()  # "." or a symlink: the folder itself, with a name for the siblings
    check_target(target, overwrite)
    if not isinstance(run, Run):
        run = Run.open(run, overrides)
    target.parent.mkdir(parents=True, exist_ok=True)
    out = target.parent / f".{target.name}.partial"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    try:
        manifest = write_export(run, out, index, recall_k, recall_users, seed, hnsw_m, ef_construction, ef_search)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    replace_contents(out, target)
    return manifest


def replace_contents(new: Path, target: Path) -> None:
    """Move ``new``'s files into ``target`` (the folder itself stays: a shell inside it, or a link to it, keeps
    working). Its previous files are set aside first and deleted only once the new ones are all in place; on
    failure they are put back."""
    target.mkdir(parents=True, exist_ok=True)
    old = target.parent / f".{target.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    old.mkdir()
    for f in list(target.iterdir()):
        f.rename(old / f.name)
    try:
        for f in list(new.iterdir()):
            f.rename(target / f.name)
    except OSError:
        for f in list(target.iterdir()):
            shutil.rmtree(f) if f.is_dir() else f.unlink()
        for f in list(old.iterdir()):
            f.rename(target / f.name)
        old.rmdir()
        raise
    shutil.rmtree(old)
    new.rmdir()


def write_export(run: Run, out: Path, index: str, recall_k: int, recall_users: int, seed: int, hnsw_m: int,
                 ef_construction: int, ef_search: int) -> dict:
    user, item = dot_embeddings(run.model)
    known = known_items(run.dataset, "known")
    np.save(out / "user_emb.npy", user)
    np.save(out / "item_emb.npy", item)
    for kind in ("user", "item"):
        (out / f"{kind}_ids.json").write_text(json.dumps(original_ids(run.dataset, kind).tolist()), encoding="utf-8")
    sp.save_npz(out / "known.npz", known.astype(np.float32))
    dump_config(run.config, out / "config.yaml")
    files = ["user_emb.npy", "item_emb.npy", "user_ids.json", "item_ids.json", "known.npz", "config.yaml"]
    if (run.folder / "metrics.json").is_file():
        (out / "metrics.json").write_bytes((run.folder / "metrics.json").read_bytes())
        files.append("metrics.json")
    cold_start, cold_files = write_cold_start(run, item, out)  # features, kNN rule, base vectors for new items
    files += cold_files
    manifest = {"format": FORMAT, "model": run.config["model"]["name"], "dataset": run.dataset.name,
                "run": str(run.folder.resolve()), "n_users": len(user), "n_items": len(item), "dim": user.shape[1],
                "scoring": SCORING,
                "known_items": "train + valid + test interactions, hidden when exclude_seen",
                "index": {"type": "none"}, "cold_start": cold_start}
    if index != "none":
        ann = build_index(item, index, hnsw_m, ef_construction)
        name = f"items_{index}.faiss"
        faiss_module().write_index(ann, str(out / name))
        files.append(name)
        params = {"hnsw_m": hnsw_m, "ef_construction": ef_construction, "ef_search": ef_search}
        params = params if index == "hnsw" else {}
        manifest["index"] = {"type": index, "file": name, "metric": "inner_product", **params,
                             "recall": measure_recall(ann, user, item, known, recall_k, recall_users, seed, ef_search)}
    manifest["files"] = {f: file_sha256(out / f) for f in files}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


def check_files(folder: Path, manifest: dict) -> list[str]:
    """Files of the manifest that are missing or whose sha256 differs."""
    return [f for f, digest in manifest["files"].items()
            if not (folder / f).is_file() or file_sha256(folder / f) != digest]


@dataclass
class Export:
    """An export folder loaded for queries: everything in memory, id lookups built once."""

    folder: Path
    manifest: dict
    user_emb: np.ndarray
    item_emb: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray
    known: sp.csr_matrix
    index: object = None
    cold_start: ColdStart | None = None
    added: list = field(default_factory=list)  # original ids of items added after export (POST /items)
    lookups: dict = field(init=False, repr=False)
    unit_items: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        self.lookups = {"user": id_index(self.user_ids), "item": id_index(self.item_ids)}
        norms = np.linalg.norm(self.item_emb, axis=1, keepdims=True)
        self.unit_items = self.item_emb / np.maximum(norms, 1e-12)  # cosine, for similar items

    @classmethod
    def load(cls, folder, verify: bool = True) -> "Export":
        folder = Path(folder)
        try:
            manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise GnnrecError(f"{folder}: not a gnnrec export (manifest.json: {exc})") from None
        if manifest.get("format") != FORMAT:
            raise GnnrecError(f"{folder}: export format {manifest.get('format')!r}, this gnnrec reads {FORMAT}")
        bad = check_files(folder, manifest) if verify else []
        if bad:
            raise GnnrecError(f"{folder}: missing or changed since export (sha256 differs): {', '.join(bad)}")
        ids = {k: np.array(json.loads((folder / f"{k}_ids.json").read_text(encoding="utf-8")), dtype=object)
               for k in ("user", "item")}
        info = manifest["index"]
        index = faiss_module().read_index(str(folder / info["file"])) if info["type"] != "none" else None
        cold = ColdStart.load(folder) if (folder / SPEC_FILE).is_file() else None
        return cls(folder, manifest, np.load(folder / "user_emb.npy"), np.load(folder / "item_emb.npy"),
                   ids["user"], ids["item"], sp.load_npz(folder / "known.npz").tocsr(), index, cold)

    def internal(self, kind: str, ids) -> np.ndarray:
        return lookup(self.lookups[kind], kind, ids, f"export {self.folder.name}")

    def recommend(self, users, k: int = 10, exclude_seen: bool = True, items=None) -> list[dict]:
        """Top ``k`` items per original user id, best first; ``items``: an allow-list of original item ids
        (scored exactly, it is usually short). Seen (train, valid and test) items are hidden unless told."""
        rows = self.internal("user", users)
        seen = self.known[rows] if exclude_seen else None
        queries = self.user_emb[rows]
        if items is not None:
            cols = np.unique(self.internal("item", items))
            top = exact_top_k(queries, self.item_emb[cols], k, seen[:, cols] if seen is not None else None)
            top.items = np.where(top.items >= 0, cols[np.maximum(top.items, 0)], -1)
        elif self.index is None:
            top = exact_top_k(queries, self.item_emb, k, seen)
        else:
            ef_search = self.manifest["index"].get("ef_search", 128)
            top, _ = index_top_k(self.index, queries, self.item_emb, k, seen, ef_search)
        return [{"user": str(u), "items": self.item_ids[i[i >= 0]].tolist(), "scores": s[i >= 0].astype(float).tolist()}
                for u, i, s in zip(users, top.items, top.scores)]

    def similar_items(self, item, k: int = 10) -> dict:
        """The ``k`` items whose embeddings are closest in cosine to ``item``'s (itself left out), exactly."""
        i = self.internal("item", [item])
        itself = sp.csr_matrix((np.ones(1), (np.zeros(1), i)), shape=(1, len(self.item_emb)))
        top = exact_top_k(self.unit_items[i], self.unit_items, k, itself)
        keep = top.items[0] >= 0
        return {"item": str(item), "items": self.item_ids[top.items[0][keep]].tolist(),
                "scores": top.scores[0][keep].astype(float).tolist()}

    def add_items(self, ids, features: dict | None = None, texts: dict | None = None) -> np.ndarray:
        """Add brand-new items (original ``ids``) from their features per modality (one row per item) and/or
        raw texts (one item; encoded with the modality's recorded encoder); they become recommendable and
        findable by ``similar_items``. Returns their embeddings (gnnrec.serving.coldstart for the rule)."""
        if self.cold_start is None:
            raise GnnrecError(f"export {self.folder.name} cannot add items: it has no cold-start data "
                              f"({self.manifest.get('cold_start', {}).get('reason', 'exported before cold start')})")
        ids = [str(i) for i in ids]
        unique, counts = np.unique(np.array(ids, dtype=object).astype(str), return_counts=True)
        taken = sorted({i for i in ids if i in self.lookups["item"]} | set(unique[counts > 1].tolist()))
        if taken:
            raise DuplicateIdError(f"item id(s) {', '.join(taken[:10])} already exist in export {self.folder.name}")
        given = dict(features or {})
        if texts:
            if len(ids) != 1:
                raise GnnrecError("texts describe one new item at a time")
            given.update(self.cold_start.encode_text(texts))
        emb = self.cold_start.embed(given)
        if len(emb) != len(ids):
            raise GnnrecError(f"{len(ids)} new item id(s) but features for {len(emb)} item(s)")
        n = len(self.item_emb)
        self.item_emb = np.concatenate([self.item_emb, emb])
        self.unit_items = np.concatenate([self.unit_items, emb / np.maximum(np.linalg.norm(emb, axis=1,
                                                                                          keepdims=True), 1e-12)])
        self.item_ids = np.concatenate([self.item_ids, np.array(ids, dtype=object)])
        self.known = sp.hstack([self.known, sp.csr_matrix((self.known.shape[0], len(ids)))]).tocsr()
        self.lookups["item"].update({i: n + j for j, i in enumerate(ids)})
        if self.index is not None:
            self.index.add(np.ascontiguousarray(emb, dtype=np.float32))
        self.added += ids
        return emb
