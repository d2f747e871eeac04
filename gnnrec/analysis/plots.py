"""PNG plots of runs and comparisons (matplotlib, Agg backend: no display needed).

Every figure has a fixed size (``FIGSIZE`` inches at ``DPI``) and is laid out with constrained layout rather
than cropped, so a picture's pixel size is known in advance and labels are never cut off."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402

from gnnrec.errors import GnnrecError  # noqa: E402

FIGSIZE = (8.0, 4.8)
DPI = 100  # 800 x 480 pixels


def _figure(ncols: int = 1):
    return plt.subplots(1, ncols, figsize=FIGSIZE, dpi=DPI, layout="constrained", squeeze=False)


def _save(fig, out) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI, format="png")
    plt.close(fig)
    return out


def read_training_log(run_dir) -> dict:
    """Per-epoch training loss and validation metrics of a run's ``logs/metrics.csv`` (1-based epochs, as
    metrics.json's best_epoch counts; logs with Lightning's 0-based epoch column are shifted), without the final
    evaluation of the best checkpoint (the rows at the step where test metrics were logged)."""
    path = Path(run_dir) / "logs" / "metrics.csv"
    if not path.is_file():
        raise GnnrecError(f"{path}: no training log (written by gnnrec train; learning-free runs have none)")
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    final_steps = {r["step"] for r in rows if any(k.startswith("test/") and r[k] for k in r)}
    rows = [r for r in rows if r["step"] not in final_steps]
    columns = [c for c in (rows[0] if rows else {}) if c == "train/loss" or c.startswith("valid/")]
    shift = 1 if any(float(r["epoch"]) == 0 for r in rows) else 0  # the first epoch is 0 only in 0-based logs
    out = {}
    for column in columns:
        points = [(int(float(r["epoch"])) + shift, float(r[column])) for r in rows if r.get(column)]
        if points and column != "valid/users":
            out[column] = (np.array([p[0] for p in points]), np.array([p[1] for p in points]))
    return out


def training_curves(run_dir, out, metrics=("recall@20", "ndcg@20")) -> Path:
    """Training loss (left) and validation metrics (right) per epoch, the best epoch (metrics.json) marked."""
    log = read_training_log(run_dir)
    metrics_file = Path(run_dir) / "metrics.json"
    best = json.loads(metrics_file.read_text(encoding="utf-8")).get("best_epoch") if metrics_file.is_file() else None
    fig, axes = _figure(2)
    loss_ax, valid_ax = axes[0]
    if "train/loss" in log:
        loss_ax.plot(*log["train/loss"], color="tab:blue", marker=".", label="training loss")
    loss_ax.set(xlabel="epoch", ylabel="training loss", title="Training loss")
    for metric in metrics:
        if f"valid/{metric}" in log:
            valid_ax.plot(*log[f"valid/{metric}"], marker=".", label=f"validation {metric}")
    valid_ax.set(xlabel="epoch", ylabel="validation metric", title="Validation metrics")
    for ax in (loss_ax, valid_ax):
        if best:
            ax.axvline(best, color="tab:red", linestyle="--", linewidth=1, label=f"best epoch ({best})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return _save(fig, out)


def grouped_bars(categories, series: dict, out, ylabel: str, title: str, errors: dict | None = None,
                 xlabel: str = "") -> Path:
    """Bars of each series (a name -> one value per category), side by side per category; ``errors``
    (same keys; None entries draw no bar) are half-widths drawn as error bars."""
    fig, axes = _figure()
    ax = axes[0][0]
    x = np.arange(len(categories))
    width = 0.8 / max(len(series), 1)
    for i, (name, values) in enumerate(series.items()):
        err = None
        if errors and errors.get(name) is not None:
            err = np.array([np.nan if e is None else e for e in errors[name]], dtype=np.float64)
        ax.bar(x + (i - (len(series) - 1) / 2) * width, np.asarray(values, dtype=np.float64), width, yerr=err,
               capsize=3, label=name)
    ax.set_xticks(x, [str(c) for c in categories], rotation=20 if len(categories) > 6 else 0)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(axis="y", alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize="small")
    return _save(fig, out)


def group_bars(groups: list[dict], metrics, out, title: str = "Test metrics by user group") -> Path:
    """A run's metrics per user group (rows of ``gnnrec.eval.groups.group_table``), one bar per metric."""
    groups = [g for g in groups if g["users"]]  # an empty group (no cold users) has nothing to draw
    labels = [f"{g['group']}\n({g['users']} users)" for g in groups]
    series = {m: [np.nan if g.get(m) is None else g[m] for g in groups] for m in metrics}
    return grouped_bars(labels, series, out, ylabel="metric value (mean over users)", title=title,
                        xlabel="user group (training degree quartile; cold: few training interactions)")


def comparison_bars(result: dict, out) -> Path:
    """Each setting's test metrics of a ``compare`` result, with the 95% interval over seeds as error bars
    (none for single-seed settings)."""
    metrics = result["metrics"]
    series = {s["label"]: [s["metrics"][m]["mean"] for m in metrics] for s in result["settings"]}
    errors = {s["label"]: [s["metrics"][m]["half_width"] for m in metrics] for s in result["settings"]}
    return grouped_bars(metrics, series, out, ylabel="test metric (mean over seeds, 95% CI)",
                        title=f"{result['dataset']}, protocol {result['protocol']}", errors=errors)


def popularity_distribution(item_train_count, item_counts: dict, k: int, out, n_bins: int = 20) -> Path:
    """Share of training interactions and of top-``k`` recommendations (one line per entry of ``item_counts``:
    label -> recommendation count per item) falling on items of each popularity (log-spaced bins of the items'
    training interactions). A popularity-biased recommender's line sits right of the data's."""
    popularity = np.maximum(np.asarray(item_train_count, dtype=np.float64), 1.0)  # never-seen items: first bin
    low, high = popularity.min(), popularity.max()
    edges = np.geomspace(low, max(high * 1.0001, low * 2), n_bins + 1)  # the top item inside the last bin
    fig, axes = _figure()
    ax = axes[0][0]
    data, _ = np.histogram(popularity, bins=edges, weights=np.asarray(item_train_count, dtype=np.float64))
    ax.stairs(data / max(data.sum(), 1), edges, color="black", linewidth=2, label="training interactions")
    for label, counts in item_counts.items():
        recs, _ = np.histogram(popularity, bins=edges, weights=np.asarray(counts, dtype=np.float64))
        ax.stairs(recs / max(recs.sum(), 1), edges, linewidth=1.5, label=f"top-{k} recommendations: {label}")
    ax.set_xscale("log")
    ax.set(xlabel="item popularity (training interactions of the item, log scale)",
           ylabel="share of interactions / recommendations", title=f"Popularity of recommended items (K={k}) vs the data")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, out)


def comparison_plots(result: dict, folder) -> list[Path]:
    """The plots of ``gnnrec compare --plots``: metric bars with CIs, the first metric by user group per setting,
    and the popularity of each setting's recommendations (item counts summed over its seeds)."""
    from gnnrec.eval.per_user import load_per_user

    folder = Path(folder)
    written = [comparison_bars(result, folder / "metrics.png")]
    metric = result["metrics"][0]
    grouped = [s for s in result["settings"] if s["groups"]]
    if grouped:
        shown = [i for i, g in enumerate(grouped[0]["groups"]) if g["users"]]  # empty groups: nothing to draw
        names = [f"{g['group']}\n({g['users']} users)" for g in (grouped[0]["groups"][i] for i in shown)]
        series = {s["label"]: [s["groups"][i][metric] for i in shown] for s in grouped}
        written.append(grouped_bars(names, series, folder / "groups.png", ylabel=f"test {metric} (mean over seeds)",
                                    title=f"{metric} by user group", xlabel="user group (training degree quartile)"))
    k = int(metric.split("@")[1])
    counts, train_count = {}, None
    for s in result["settings"]:
        files = [Path(r) / "test_per_user.npz" for r in s["runs"]]
        if all(f.is_file() for f in files):
            loaded = [load_per_user(f) for f in files]
            if all(k in pu.item_counts for pu in loaded):
                counts[s["label"]] = np.sum([pu.item_counts[k] for pu in loaded], axis=0)
                train_count = loaded[0].item_train_count
    if counts:
        written.append(popularity_distribution(train_count, counts, k, folder / f"popularity@{k}.png"))
    return written
