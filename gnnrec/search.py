"""Hyper-parameter search over a config's ``search.grid``: every combination (or ``search.random`` sampled
ones) is trained as its own run; the best is chosen on validation Recall@20 only, never on test.

With a top-level ``seed`` in the grid, runs that differ only in their seed form one setting: the setting
with the best *mean* validation Recall@20 is selected (picking a lucky seed would be selection on noise),
and its test metrics are reported as mean and spread over its seeds.

A search resumes: run again with the same ``output.name``, finished runs are read back from their
``metrics.json`` (their saved config must match) and an interrupted one is trained again."""
from __future__ import annotations

import itertools
import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np
import yaml

from gnnrec.config import merge, validate
from gnnrec.errors import ConfigError
from gnnrec.report import markdown_table
from gnnrec.train import portable, train

log = logging.getLogger(__name__)


def combinations(grid: dict[str, list], random: int | None, seed: int) -> list[dict]:
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"search.grid.{key} must be a non-empty list of values, got {values!r}")
    keys = list(grid)
    combos = [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]
    if random is not None and random < len(combos):
        picks = np.random.default_rng(seed).choice(len(combos), size=random, replace=False)
        combos = [combos[i] for i in sorted(picks)]
    return combos


def apply(cfg: dict, combo: dict) -> dict:
    """The config with each dotted ``key: value`` of a combination set (unknown keys are errors)."""
    out = cfg
    for key, value in combo.items():
        nested = value
        for part in reversed(key.split(".")):
            nested = {part: nested}
        out = merge(out, nested)
    return out


def finished_metrics(run_dir: Path, run_cfg: dict) -> dict | None:
    """Metrics of a finished run of exactly this config in ``run_dir``; None if it has not finished."""
    metrics, saved = run_dir / "metrics.json", run_dir / "config.yaml"
    if not metrics.exists():
        return None
    if not saved.exists() or yaml.safe_load(saved.read_text(encoding="utf-8")) != portable(run_cfg):
        raise ConfigError(f"{run_dir} holds a finished run of a different config: this search's grid or base "
                          "config changed since; give it another output.name")
    return json.loads(metrics.read_text(encoding="utf-8"))


def search(cfg: dict) -> dict:
    """Runs every combination; returns {"rows": [...], "best": row (or setting, with seeds), "folder": path}.
    Writes results.md/json."""
    scfg = cfg["search"]
    combos = combinations(scfg["grid"], scfg["random"], scfg["seed"])
    if not combos or not scfg["grid"]:
        raise ConfigError("search.grid is empty: nothing to search")
    name = cfg["output"]["name"] or f"search-{cfg['model']['name']}-{time.strftime('%Y%m%d-%H%M%S')}"
    folder = Path(cfg["output"]["dir"]) / name
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, combo in enumerate(combos):
        run_cfg = validate(apply(cfg, combo))
        run_cfg["output"] = {"dir": str(folder), "name": f"run{i:03d}"}
        run_dir = folder / f"run{i:03d}"
        m = finished_metrics(run_dir, run_cfg)
        if m is not None:
            log.info("search run %d/%d %s: finished earlier, read back", i + 1, len(combos), combo)
        else:
            if run_dir.exists():
                log.info("search run %d/%d: %s was interrupted; training it again", i + 1, len(combos), run_dir)
                shutil.rmtree(run_dir)
            log.info("search run %d/%d %s", i + 1, len(combos), combo)
            m = train(run_cfg).metrics
        rows.append({"params": combo, "valid_recall@20": m["valid"]["recall@20"],
                     "test_recall@20": m["test"]["recall@20"], "test_ndcg@20": m["test"]["ndcg@20"],
                     "best_epoch": m["best_epoch"], "run": f"run{i:03d}"})
    seeded = "seed" in scfg["grid"]
    settings = over_seeds(rows) if seeded else None
    best = max(settings or rows, key=lambda r: r["valid_recall@20"])  # first of equals: strict improvement
    chosen = set(best["runs"]) if seeded else {best["run"]}
    result = {"model": cfg["model"]["name"], "selected_on": "valid/recall@20" + (" (mean over seeds)" * seeded),
              "best": best, "rows": rows, **({"settings": settings} if seeded else {})}
    (folder / "results.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    table = markdown_table(
        ["run", *scfg["grid"], "valid R@20", "test R@20", "test N@20", "best epoch", "selected"],
        [[r["run"], *(repr(v) for v in r["params"].values()), r["valid_recall@20"], r["test_recall@20"], r["test_ndcg@20"],
          r["best_epoch"], "<-" if r["run"] in chosen else ""] for r in rows])
    if seeded:
        table += "\n\nMean over seeds (spread: sample standard deviation):\n\n" + markdown_table(
            [*(k for k in scfg["grid"] if k != "seed"), "seeds", "valid R@20", "test R@20", "test R@20 spread",
             "test N@20", "selected"],
            [[*(repr(v) for v in s["params"].values()), len(s["runs"]), s["valid_recall@20"], s["test_recall@20"],
              s["test_recall@20_std"], s["test_ndcg@20"], "<-" if s is best else ""] for s in settings])
    (folder / "results.md").write_text(f"# Search: {cfg['model']['name']}\n\nSelected on validation Recall@20 "
                                       f"only; test is reported, never used.\n\n{table}\n", encoding="utf-8")
    return {**result, "folder": str(folder), "table": table}


def over_seeds(rows: list[dict]) -> list[dict]:
    """Runs grouped by every grid value but ``seed``, in grid order, with their metrics' means over seeds."""
    groups: dict[str, tuple[dict, list[dict]]] = {}
    for r in rows:
        params = {k: v for k, v in r["params"].items() if k != "seed"}
        groups.setdefault(repr(params), (params, []))[1].append(r)
    settings = []
    for params, members in groups.values():
        mean = {m: float(np.mean([r[m] for r in members])) for m in ("valid_recall@20", "test_recall@20", "test_ndcg@20")}
        std = float(np.std([r["test_recall@20"] for r in members], ddof=1)) if len(members) > 1 else 0.0
        settings.append({"params": params, "seeds": [r["params"]["seed"] for r in members], **mean,
                         "test_recall@20_std": std, "runs": [r["run"] for r in members]})
    return settings
