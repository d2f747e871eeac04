"""From parsed interactions to an MMRec-format folder: dense ids, duplicates dropped (latest kept), k-core,
MMRec's split rule, then ``<name>.inter`` (userID, itemID, timestamp, x_label; tab-separated), the id
mappings ``u_id_mapping.csv`` / ``i_id_mapping.csv`` and ``items.tsv`` (item metadata), as MMRec's own
preprocessing writes them, so its users and gnnrec's can exchange folders."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from gnnrec.data.split import Interactions, assign_split


def clean(value) -> str:
    return " ".join(str(value).split())  # no tabs or newlines inside a TSV field


LINE_BREAKS = str.maketrans(dict.fromkeys("\t\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029", " "))


def tsv_field(value) -> str:
    """``value`` as one unquoted TSV field: tabs and anything ``splitlines`` breaks on become spaces."""
    return str(value).translate(LINE_BREAKS)


def build_interactions(name: str, users, items, timestamps, item_meta: dict | None, meta_fields,
                       source: str) -> tuple[Interactions, dict]:
    user_tokens, u = np.unique(np.asarray(users, dtype=str), return_inverse=True)
    item_tokens, i = np.unique(np.asarray(items, dtype=str), return_inverse=True)
    item_info = {"token": item_tokens.astype(object)}
    missing_meta = 0
    if item_meta is not None:
        empty = dict.fromkeys(meta_fields, "")
        rows = [item_meta.get(t) for t in item_tokens]
        missing_meta = sum(r is None for r in rows)
        for f in meta_fields:
            item_info[f] = np.asarray([clean((r or empty).get(f, "")) for r in rows], dtype=object)
    data = Interactions(name, u.astype(np.int64), i.astype(np.int64), len(user_tokens), len(item_tokens),
                        np.asarray(timestamps, dtype=np.float64), item_info, {"token": user_tokens.astype(object)},
                        source=source)
    return data, {"interactions_read": len(u), "users_read": len(user_tokens), "items_read": len(item_tokens),
                  "items_without_metadata": missing_meta}


def write_mmrec(data: Interactions, out: Path, kcore: int | None = 5, seed: int = 999,
                method: str = "mmrec", report: dict | None = None) -> dict:
    """Dedupe, k-core, split and write ``data`` to ``out``; returns (and writes) the ingestion report."""
    report = dict(report or {})
    before = len(data.users)
    data = data.dedupe()
    report["duplicates_dropped"] = before - len(data.users)
    if kcore:
        data = data.kcore(kcore)
    labels = assign_split(data.users, data.timestamps, method, seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_inter(out / f"{data.name}.inter", data.users, data.items, labels, data.timestamps)
    write_id_maps(out, data.user_info["token"], data.item_info["token"])
    write_table(out / "items.tsv", "itemID", data.item_info, data.n_items, skip=("token",))
    report.update({"kcore": kcore, "split": method, "seed": seed, "users": data.n_users, "items": data.n_items,
                   "interactions": len(data.users), "train": int((labels == 0).sum()),
                   "valid": int((labels == 1).sum()), "test": int((labels == 2).sum())})
    (out / "ingest_report.json").write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    return report


def write_inter(path: Path, users, items, labels, timestamps=None) -> None:
    """``<name>.inter``: userID, itemID[, timestamp], x_label (0 train, 1 valid, 2 test), sorted by user, item."""
    users, items, labels = (np.asarray(a, dtype=np.int64) for a in (users, items, labels))
    order = np.lexsort((items, users))
    cols = [users[order].tolist(), items[order].tolist()]
    head = ["userID", "itemID"]
    if timestamps is not None:
        cols.append(np.asarray(timestamps)[order].astype(np.int64).tolist())
        head.append("timestamp")
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow([*head, "x_label"])
        writer.writerows(zip(*cols, labels[order].tolist()))


def write_id_maps(out: Path, user_tokens, item_tokens) -> None:
    """``u_id_mapping.csv`` / ``i_id_mapping.csv``: the original id (token) of every dense id, tab-separated."""
    for file, tokens, column in (("u_id_mapping.csv", user_tokens, "userID"),
                                 ("i_id_mapping.csv", item_tokens, "itemID")):
        with open(Path(out) / file, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_NONE, quotechar=None)
            writer.writerow(["token", column])
            writer.writerows((tsv_field(t), k) for k, t in enumerate(tokens))


def write_table(path: Path, id_column: str, info: dict, n: int, skip=()) -> bool:
    """A metadata table (``items.tsv``: itemID then one column per field); nothing when there are no fields."""
    fields = [f for f in info if f not in skip]
    if not fields:
        return False
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_NONE, quotechar=None)
        writer.writerow([id_column, *fields])
        writer.writerows([k, *(tsv_field(info[f][k]) for f in fields)] for k in range(n))
    return True
