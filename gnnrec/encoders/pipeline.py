"""Offline encoding as one call: the texts (or ids) to encode, and a resumable, skip-if-current write to the
feature store. The CLI's `gnnrec encode ...` commands are thin over these."""
from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from gnnrec.errors import GnnrecError

log = logging.getLogger(__name__)


def encode_inputs(data: str | None = None, items: str | None = None, template: str | None = None,
                  format: str = "auto", id_field: str = "item_id") -> tuple[list[str], list[str], str, str | None]:
    """``(texts, item ids, source, template)`` from an ``items`` id,text table or a dataset's item metadata
    (``template`` None: the ids only, e.g. to name images)."""
    if items:
        from gnnrec.data.readers.items import read_item_texts

        ids, texts = read_item_texts(items)
        return texts, [str(i) for i in ids], str(items), "{text}"
    if not data:
        raise GnnrecError("give a dataset folder or an items table (--items TABLE)")
    from gnnrec.data import load_dataset
    from gnnrec.encoders.text import render_texts

    dataset = load_dataset(data, format=format, valid_ratio=0.0, drop_cold=False)
    column = dataset.item_info.get(id_field)
    ids = [str(i) for i in column] if column is not None else [str(i) for i in range(dataset.n_items)]
    return (render_texts(dataset, template) if template else ids), ids, str(data), template


def encode_to_store(out: str | Path, name: str, manifest: dict, run, force: bool = False) -> dict:
    """Skip when the store already holds this exact encoding (``{"skipped": True}``); else time
    ``run(resume) -> (features, notes)`` and save. ``resume(encode_range)`` computes the rows in chunks saved as
    they finish, so a rerun of an interrupted encode continues where it stopped. Returns what was done:
    ``path``, ``encoded`` rows, ``resumed`` rows, ``seconds``, ``dim``."""
    from gnnrec.encoders.store import chunk_folder, encode_resumably, is_current, save

    if is_current(out, name, manifest) and not force:
        return {"skipped": True}
    work, n, resumed = chunk_folder(out, name, manifest), manifest["items"], [0]
    if force and work.exists():
        shutil.rmtree(work)

    def resume(encode_range):
        rows, resumed[0] = encode_resumably(work, n, encode_range)
        if resumed[0]:
            log.info("resumed: %d of %d rows were encoded by an interrupted run", resumed[0], n)
        return rows

    start = time.perf_counter()
    features, notes = run(resume)
    seconds = time.perf_counter() - start
    done = n - resumed[0]
    manifest.update(seconds=round(seconds, 2), items_per_second=round(done / seconds, 1), **notes)
    path = save(out, name, features, manifest)
    shutil.rmtree(work, ignore_errors=True)
    return {"skipped": False, "path": path, "encoded": done, "resumed": resumed[0], "seconds": seconds,
            "dim": features.shape[1]}
