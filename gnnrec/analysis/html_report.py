"""``gnnrec report RUN``: one self-contained HTML page of a run (tables, and the plots embedded as base64), so
a result can be mailed or archived as a single file. The plots are also written to ``<run>/plots/``."""
from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

import yaml

from gnnrec.analysis import plots
from gnnrec.errors import GnnrecError
from gnnrec.eval.groups import group_table
from gnnrec.eval.metrics import METRICS
from gnnrec.eval.per_user import load_per_user
from gnnrec.report import headline_k

BEYOND_COLUMNS = ("coverage", "gini", "avg_popularity", "tail_share", "novelty", "recall_head", "recall_tail")
STYLE = ("body{font-family:sans-serif;max-width:70em;margin:2em auto;color:#222}table{border-collapse:collapse;"
         "margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}th{background:#f3f3f3}"
         "td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #eee}")


def cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else html.escape(str(value))


def html_table(header, rows) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def embedded_image(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></p>'


def run_report(run_dir, out=None) -> Path:
    """Write the plots into ``<run>/plots/`` and the page to ``out`` (default ``<run>/report.html``)."""
    run_dir = Path(run_dir)
    metrics_file = run_dir / "metrics.json"
    if not metrics_file.is_file():
        raise GnnrecError(f"{run_dir}: not a finished run folder (no metrics.json)")
    metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
    config_file = run_dir / "config.yaml"
    config = yaml.safe_load(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
    per_user = load_per_user(run_dir / "test_per_user.npz") if (run_dir / "test_per_user.npz").is_file() else None
    ks = per_user.ks if per_user else sorted({int(k.split("@")[1]) for k in metrics["test"] if "@" in k})
    k = headline_k(ks)
    plot_dir = run_dir / "plots"
    title = f"{metrics.get('model')} on {metrics.get('dataset')}"
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p>Run folder {html.escape(str(run_dir.resolve()))}; protocol {html.escape(str(metrics.get('protocol')))}; "
             f"seed {html.escape(str(config.get('seed')))}; best epoch {metrics.get('best_epoch')} of "
             f"{metrics.get('epochs_trained')} (selected on validation; test reported at that checkpoint)"
             + (f"; test split sha256 {html.escape(per_user.meta['split_hash'])}" if per_user else "") + ".</p>",
             "<h2>Accuracy</h2>",
             html_table(["split", "metric", *(f"@{k_}" for k_ in ks)],
                        [[split, m, *(metrics[split].get(f"{m}@{k_}") for k_ in ks)]
                         for split in ("valid", "test") for m in METRICS if metrics.get(split)])
             + "<p>Users evaluated: " + ", ".join(f"{split} {int(metrics[split]['users'])}" for split in ("valid", "test")
                                                  if "users" in metrics.get(split, {})) + ".</p>"]
    if per_user is not None:
        means = per_user.means()
        parts += ["<h2>Beyond accuracy (test)</h2>",
                  "<p>Coverage: share of items recommended to anyone; Gini: 0 when all items are recommended equally "
                  "often, towards 1 when a few take everything; tail: items outside the most popular ones that hold "
                  f"{1 - per_user.meta['tail_share']:.0%} of training interactions; novelty: mean -log2 of an item's "
                  "share of training users.</p>",
                  html_table(["K", *BEYOND_COLUMNS], [[k_, *(means.get(f"{n}@{k_}") for n in BEYOND_COLUMNS)]
                                                      for k_ in ks])]
        groups = group_table(per_user, ks=[k])
        shown = [f"{m}@{k}" for m in ("recall", "ndcg", "recall_head", "recall_tail")]
        parts += [f"<h2>User groups (test, K={k})</h2>",
                  f"<p>Quartiles of the users' training degree; cold: at most {per_user.meta['cold_degree']} "
                  "training interactions (overlaps the lowest quartiles).</p>",
                  html_table(["group", "users", "degree", *shown],
                             [[g["group"], g["users"], f"{g['min_degree']}-{g['max_degree']}" if g["users"] else "-",
                               *(g[m] for m in shown)]
                              for g in groups]),
                  embedded_image(plots.group_bars(groups, shown, plot_dir / "groups.png"), "metrics by user group"),
                  "<h2>Popularity of the recommendations</h2>",
                  embedded_image(plots.popularity_distribution(per_user.item_train_count,
                                                               {metrics.get("model", "run"): per_user.item_counts[k]},
                                                               k, plot_dir / f"popularity@{k}.png"),
                                 "popularity of recommended items vs the training data")]
    if (run_dir / "logs" / "metrics.csv").is_file():
        parts += ["<h2>Training</h2>",
                  embedded_image(plots.training_curves(run_dir, plot_dir / "training_curves.png",
                                                       metrics=(f"recall@{k}", f"ndcg@{k}")), "training curves")]
    out = Path(out) if out else run_dir / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                   f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>\n", encoding="utf-8")
    return out
