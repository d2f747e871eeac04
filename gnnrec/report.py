"""Plain-text and markdown tables of metrics for the CLI and the benchmarks."""
from __future__ import annotations

from gnnrec.eval.metrics import METRICS


def headline_k(ks) -> int:
    """The K single tables and plots show: 20 when it was evaluated, else the largest K."""
    return 20 if 20 in ks else max(ks)


def metric_table(results: dict[str, dict], ks=None) -> str:
    """One row per (split, metric), one column per K; ``results`` maps a split name to its metric dict."""
    ks = ks or sorted({int(k.split("@")[1]) for r in results.values() for k in r if "@" in k})
    header = f"{'split':<6} {'metric':<10}" + "".join(f"{'@' + str(k):>9}" for k in ks)
    lines = [header, "-" * len(header)]
    for split, values in results.items():
        for m in METRICS:
            cells = "".join(f"{values.get(f'{m}@{k}', float('nan')):>9.4f}" for k in ks)
            lines.append(f"{split:<6} {m:<10}{cells}")
        if "users" in values:
            lines.append(f"{split:<6} {'users':<10}{int(values['users']):>9d}")
    return "\n".join(lines)


def markdown_table(header: list[str], rows: list[list]) -> str:
    def cell(v):
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


BEYOND_ACCURACY = ("coverage", "gini", "avg_popularity", "tail_share", "novelty")


def beyond_table(results: dict[str, dict], ks=None) -> str:
    """Beyond-accuracy metrics (``gnnrec.eval.beyond``) as ``metric_table`` lays out accuracy; splits without
    them (per-epoch validation results) are left out; empty text when no split has them."""
    results = {s: v for s, v in results.items() if any(k.startswith("coverage@") for k in v)}
    if not results:
        return ""
    ks = ks or sorted({int(k.split("@")[1]) for r in results.values() for k in r if k.startswith("coverage@")})
    header = f"{'split':<6} {'metric':<14}" + "".join(f"{'@' + str(k):>9}" for k in ks)
    lines = [header, "-" * len(header)]
    for split, values in results.items():
        for m in BEYOND_ACCURACY:
            lines.append(f"{split:<6} {m:<14}" + "".join(f"{values.get(f'{m}@{k}', float('nan')):>9.4f}" for k in ks))
    return "\n".join(lines)


def group_text_table(rows: list[dict], k: int = 20) -> str:
    """The "by user group" table (``gnnrec.eval.groups.group_table`` rows) at one K."""
    metrics = ("recall", "ndcg", "precision", "hit", "map", "recall_head", "recall_tail")
    names = [f"{m}@{k}" for m in metrics]
    header = f"{'group':<6} {'users':>7} {'degree':>9}" + "".join(f"{n:>{len(n) + 2}}" for n in names)
    lines = [header, "-" * len(header)]
    for row in rows:
        degree = f"{row['min_degree']}-{row['max_degree']}" if row["users"] else "-"
        values = [row.get(n) for n in names]  # undefined (no users, no tail items): "-" as compare shows it
        cells = "".join(f"{v:>{len(n) + 2}.4f}" if v is not None and v == v else f"{'-':>{len(n) + 2}}"
                        for n, v in zip(names, values))
        lines.append(f"{row['group']:<6} {row['users']:>7d} {degree:>11}" + cells)
    return "\n".join(lines)
