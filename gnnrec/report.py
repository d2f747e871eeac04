"""Plain-text and markdown tables of metrics for the CLI and the benchmarks."""
from __future__ import annotations

from gnnrec.eval.metrics import METRICS


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
