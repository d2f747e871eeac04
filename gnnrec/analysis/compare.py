"""``gnnrec compare``: runs and searches side by side, seeds pooled per setting, each setting tested against a
baseline on the same test users.

A setting is a config up to its seed and output place: its runs are pooled (mean and t interval over seeds;
per user, the mean over seeds before pairing). Runs of different datasets, protocols or test splits measure
different things, so they are refused, never mixed."""
from __future__ import annotations

import copy
import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from gnnrec.analysis.stats import format_p, holm, mean_ci, paired_tests
from gnnrec.config import flatten
from gnnrec.errors import GnnrecError
from gnnrec.eval.groups import group_table
from gnnrec.eval.per_user import PerUserResults, load_per_user
from gnnrec.report import markdown_table

DEFAULT_METRICS = ("recall@20", "ndcg@20")
PER_USER_FILE = "test_per_user.npz"
BEYOND = ("coverage", "gini", "avg_popularity", "tail_share", "novelty", "recall_head", "recall_tail")


@dataclass
class RunRecord:
    """One finished run: its folder, resolved config, metrics.json and (when written) its test per-user file."""

    path: Path
    config: dict
    metrics: dict
    per_user: PerUserResults | None = None

    @property
    def meta(self) -> dict:
        return self.per_user.meta if self.per_user else {}

    @property
    def split_hash(self) -> str | None:
        return self.meta.get("split_hash")


@dataclass
class Setting:
    """Runs whose configs differ only in seed and output place."""

    label: str
    runs: list[RunRecord]
    params: dict = field(default_factory=dict)

    @property
    def seeds(self) -> list:
        return [r.config.get("seed") for r in self.runs]


def load_run_record(folder: Path) -> RunRecord:
    metrics_file, config_file = folder / "metrics.json", folder / "config.yaml"
    if not metrics_file.is_file() or not config_file.is_file():
        missing = [f.name for f in (metrics_file, config_file) if not f.is_file()]
        raise GnnrecError(f"{folder}: not a finished run folder (no {' or '.join(missing)})")
    try:
        metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
        config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise GnnrecError(f"{folder}: unreadable metrics.json or config.yaml ({str(exc)[:200]})") from None
    per_user_file = folder / PER_USER_FILE
    return RunRecord(folder, config, metrics, load_per_user(per_user_file) if per_user_file.is_file() else None)


def collect_runs(paths) -> list[RunRecord]:
    """Run folders (metrics.json + config.yaml) and search folders (results.json: their runs), each run once."""
    runs, seen = [], set()
    for given in paths:
        folder = Path(given)
        if (folder / "metrics.json").is_file():
            folders = [folder]
        elif (folder / "results.json").is_file():
            rows = json.loads((folder / "results.json").read_text(encoding="utf-8")).get("rows", [])
            folders = [folder / row["run"] for row in rows]
            if not folders:
                raise GnnrecError(f"{folder}: search folder without runs in results.json")
        else:
            raise GnnrecError(f"{folder}: neither a run folder (metrics.json) nor a search folder (results.json)")
        for run_folder in folders:
            if run_folder.resolve() not in seen:
                seen.add(run_folder.resolve())
                runs.append(load_run_record(run_folder))
    if not runs:
        raise GnnrecError("no runs to compare")
    return runs


def setting_config(cfg: dict) -> dict:
    """The part of a config that defines a setting: everything but the seed, the output place, the resume
    checkpoint and the search section (which only says how the run was launched)."""
    cfg = copy.deepcopy(cfg)
    for key in ("seed", "output", "search"):
        cfg.pop(key, None)
    cfg.get("train", {}).pop("resume", None)
    cfg.get("train", {}).pop("progress_bar", None)
    cfg["model"] = with_model_defaults(cfg.get("model", {}), cfg.get("optim", {}))
    return cfg


def with_model_defaults(model: dict, optim: dict) -> dict:
    """``model.*`` with the model's own defaults filled in (config.yaml keeps only what was given), so a run that
    states a default and one that leaves it out are the same setting."""
    from gnnrec.errors import ConfigError
    from gnnrec.models import model_class, model_params

    try:
        params = model_params(model_class(model.get("name")))
    except ConfigError:  # a model this installation does not know (a plug-in): compare what was given
        return model
    defaults = {k: v for k, v in params.items() if v is not inspect.Parameter.empty and k not in optim}
    return {**defaults, **model}


def group_settings(runs: list[RunRecord]) -> list[Setting]:
    """Runs pooled by setting, in the order first seen; labelled by model name and the config keys that tell
    it from the other settings of the same model (different models have different model keys anyway)."""
    groups: dict[str, list[RunRecord]] = {}
    for run in runs:
        groups.setdefault(json.dumps(setting_config(run.config), sort_keys=True, default=str), []).append(run)
    flats = [flatten(setting_config(members[0].config)) for members in groups.values()]
    settings = []
    for members, flat in zip(groups.values(), flats):
        same_model = [f for f in flats if f.get("model.name") == flat.get("model.name")]
        keys = sorted({k for f in same_model for k in f})
        params = {k: flat.get(k) for k in keys if k != "model.name" and len({repr(f.get(k)) for f in same_model}) > 1}
        name = str(flat.get("model.name"))
        label = name + (" " + ", ".join(f"{k}={v}" for k, v in params.items()) if params else "")
        settings.append(Setting(label, members, params))
    return settings


def check_comparable(runs: list[RunRecord]) -> None:
    """Refuse runs of different datasets, protocols or test splits, naming which runs have which."""
    checks = {"dataset": ("datasets", lambda r: r.metrics.get("dataset"), ""),
              "protocol": ("protocols", lambda r: r.metrics.get("protocol"), ""),
              "split_hash": ("test splits", lambda r: r.split_hash,
                             " (a split or validation carving that depends on the seed gives each seed its own "
                             "test users and masks; compare runs of one split, e.g. trained with data.split_seed=N)")}
    for key, (plural, value_of, hint) in checks.items():
        by_value: dict = {}
        for run in runs:
            value = value_of(run)
            if value is not None:
                by_value.setdefault(value, []).append(str(run.path))
        if len(by_value) > 1:
            detail = "; ".join(f"{key} {v}: {', '.join(paths)}" for v, paths in by_value.items())
            raise GnnrecError(f"refusing to compare runs of different {plural}, their numbers are not comparable"
                              f"{hint}: {detail}")


def check_distinct_seeds(settings: list[Setting]) -> None:
    """Two runs of one setting with the same seed repeat one measurement: pooled as two seeds they would give
    a spread and an interval that mean nothing, so they are refused, naming the runs."""
    for setting in settings:
        by_seed: dict = {}
        for run in setting.runs:
            by_seed.setdefault(run.config.get("seed"), []).append(str(run.path))
        repeated = {seed: paths for seed, paths in by_seed.items() if len(paths) > 1}
        if repeated:
            detail = "; ".join(f"seed {seed}: {', '.join(paths)}" for seed, paths in repeated.items())
            raise GnnrecError(f"refusing to pool runs of one setting ({setting.label}) that share a seed, they repeat "
                              f"one measurement: {detail} (give one run per seed, or train others with seed=N)")


def pooled_users(setting: Setting, metric: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(original user ids, sorted; each user's ``metric`` averaged over the setting's seeds), over the users
    every seed evaluated; None when a run has no per-user file or no such array."""
    if any(r.per_user is None or metric not in r.per_user.metrics for r in setting.runs):
        return None
    ids = [np.asarray(r.per_user.user_ids).astype(str) for r in setting.runs]
    common = ids[0]
    for other in ids[1:]:
        common = np.intersect1d(common, other)
    common = np.unique(common)
    stacked = []
    for run, run_ids in zip(setting.runs, ids):
        order = np.argsort(run_ids, kind="stable")
        pos = order[np.searchsorted(run_ids, common, sorter=order)]
        stacked.append(run.per_user.metrics[metric][pos])
    return common, np.mean(stacked, axis=0)


def paired_against(setting: Setting, baseline: Setting, metrics) -> dict | None:
    """Per metric: paired t-test and Wilcoxon on the users both settings evaluated, Holm-adjusted across
    ``metrics`` (separately for each test); None without per-user files."""
    out = {}
    for metric in metrics:
        mine, base = pooled_users(setting, metric), pooled_users(baseline, metric)
        if mine is None or base is None:
            return None
        common, mine_pos, base_pos = np.intersect1d(mine[0], base[0], assume_unique=True, return_indices=True)
        a, b = mine[1][mine_pos], base[1][base_pos]
        keep = ~(np.isnan(a) | np.isnan(b))
        out[metric] = paired_tests(a[keep], b[keep])
    for test in ("p_t", "p_wilcoxon"):
        for metric, adjusted in zip(metrics, holm([out[m][test] for m in metrics])):
            out[metric][f"{test}_holm"] = adjusted
    return out


def beyond_accuracy(run: RunRecord, k: int) -> dict:
    """Item coverage and Gini of the top-``k`` lists over all users, and per-user popularity, tail share,
    novelty and head/tail recall averaged over users: the per-user file's means, else what metrics.json holds."""
    means = run.per_user.means() if run.per_user is not None else run.metrics.get("test", {})
    return {name: float(means[f"{name}@{k}"]) for name in BEYOND if f"{name}@{k}" in means}


def pooled_groups(setting: Setting, ks) -> list[dict] | None:
    """The user-group table (``gnnrec.eval.groups``) of a setting: each group's metrics averaged over seeds
    (the same test split gives every seed the same groups); None without per-user files."""
    if any(r.per_user is None for r in setting.runs):
        return None
    tables = [group_table(r.per_user, ks=[k for k in ks if k in r.per_user.ks]) for r in setting.runs]
    pooled = []
    for rows in zip(*tables):
        row = dict(rows[0])
        for key, value in row.items():
            if isinstance(value, float):
                values = np.array([r[key] for r in rows], dtype=np.float64)
                row[key] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
        pooled.append(row)
    return pooled


def find_baseline(settings: list[Setting], baseline: str | None) -> Setting:
    """The setting named by label, by model name (when one setting has it), or holding the given run folder;
    the first setting when not given."""
    if baseline is None:
        return settings[0]
    by_label = [s for s in settings if s.label == baseline]
    by_model = [s for s in settings if s.runs[0].config["model"]["name"] == baseline]
    path = Path(baseline).resolve()
    by_path = [s for s in settings if any(r.path.resolve() == path for r in s.runs)]
    for found in (by_label, by_path, by_model):
        if len(found) == 1:
            return found[0]
    if len(by_model) > 1:
        raise GnnrecError(f"--baseline {baseline}: several settings of that model; give one of: "
                          + "; ".join(s.label for s in by_model))
    raise GnnrecError(f"--baseline {baseline}: no such setting or run; settings: " + "; ".join(s.label for s in settings))


def parse_metrics(text: str | None) -> list[str]:
    metrics = [m.strip() for m in (text or ",".join(DEFAULT_METRICS)).split(",") if m.strip()]
    for m in metrics:
        name, _, k = m.partition("@")
        if not name or not k.isdigit():
            raise GnnrecError(f"--metrics: '{m}' is not of the form name@K (e.g. recall@20,ndcg@20)")
    return metrics


def compare(paths, baseline: str | None = None, metrics=None) -> dict:
    """The comparison as a JSON-ready dict: one entry per setting with its seeds, runs, provenance, mean and
    interval per metric, beyond-accuracy values and (not for the baseline) the paired tests."""
    metrics = list(metrics or DEFAULT_METRICS)
    runs = collect_runs(paths)
    check_comparable(runs)
    for run in runs:
        missing = [m for m in metrics if m not in run.metrics.get("test", {})]
        if missing:
            raise GnnrecError(f"{run.path}: metrics.json has no test {', '.join(missing)} "
                              f"(it has {', '.join(k for k in run.metrics.get('test', {}) if '@' in k)})")
    settings = group_settings(runs)
    check_distinct_seeds(settings)
    base = find_baseline(settings, baseline)
    ks = sorted({int(m.split("@")[1]) for m in metrics})
    notes = []
    without = [str(r.path) for r in runs if r.per_user is None]
    if without:
        notes.append(f"no {PER_USER_FILE} in {', '.join(without)}: no paired tests or beyond-accuracy values "
                     "for their settings, and their test split is not verified")
    out_settings = []
    for s in settings:
        entry = {
            "label": s.label, "model": s.runs[0].config["model"]["name"], "params": s.params, "seeds": s.seeds,
            "runs": [str(r.path) for r in s.runs], "baseline": s is base,
            "dataset": s.runs[0].metrics.get("dataset"), "protocol": s.runs[0].metrics.get("protocol"),
            "split_hash": s.runs[0].split_hash,
            "users": int(s.runs[0].metrics["test"]["users"]) if "users" in s.runs[0].metrics["test"] else None,
            "metrics": {m: mean_ci([r.metrics["test"][m] for r in s.runs]) for m in metrics},
            "beyond": {f"@{k}": {name: float(np.mean(vals)) for name in BEYOND
                                 if (vals := [b[name] for b in (beyond_accuracy(r, k) for r in s.runs) if name in b])}
                       for k in ks},
            "paired": None if s is base else paired_against(s, base, metrics),
            "groups": pooled_groups(s, ks),
        }
        out_settings.append(entry)
    first = runs[0]
    return {"dataset": first.metrics.get("dataset"), "protocol": first.metrics.get("protocol"),
            "split_hash": next((r.split_hash for r in runs if r.split_hash), None), "metrics": metrics,
            "cold_degree": next((r.meta["cold_degree"] for r in runs if r.per_user), None),
            "baseline": base.label, "settings": out_settings, "notes": notes}


def to_json(result: dict) -> str:
    """The result as strict JSON: NaN (undefined, e.g. d_z of constant differences) written as null."""
    def clean(value):
        if isinstance(value, float) and not np.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(result), indent=2, allow_nan=False)


# --- tables ---------------------------------------------------------------------------------------------------

def interval_cell(ci: dict) -> str:
    if ci["n"] == 1:
        return f"{ci['mean']:.4f} (1 seed: no CI)"
    return f"{ci['mean']:.4f} ± {ci['half_width']:.4f}"


def comparison_tables(result: dict) -> list[tuple[str, list[str], list[list]]]:
    """(title, header, rows) of the accuracy, significance and beyond-accuracy tables."""
    metrics = result["metrics"]
    tables = [("Test metrics: mean ± half-width of the 95% t interval over seeds",
               ["setting", "seeds", "users", *metrics],
               [[s["label"] + (" (baseline)" if s["baseline"] else ""), len(s["seeds"]), s["users"],
                 *(interval_cell(s["metrics"][m]) for m in metrics)] for s in result["settings"]])]
    rows = []
    for s in result["settings"]:
        if s["baseline"]:
            continue
        if s["paired"] is None:
            rows.append([s["label"], "-", "no per-user file", "-", "-", "-", "-"])
            continue
        for m in metrics:
            p = s["paired"][m]
            rows.append([s["label"], m, f"{p['mean_diff']:+.4f}", format_p(p["p_t_holm"]),
                         format_p(p["p_wilcoxon_holm"]), "-" if np.isnan(p["d_z"]) else f"{p['d_z']:+.3f}", p["n"]])
    tables.append((f"Paired tests against {result['baseline']} over the same test users (per-user metric "
                   "averaged over seeds; p-values Holm-adjusted across the metrics of each setting, not across settings)",
                   ["setting", "metric", "mean diff", "p (t-test)", "p (Wilcoxon)", "d_z", "users"], rows))
    for key in result["settings"][0]["beyond"]:
        present = [n for n in BEYOND if any(n in s["beyond"][key] for s in result["settings"])]
        if present:
            tables.append((f"Beyond accuracy {key} (mean over seeds)", ["setting", *present],
                           [[s["label"], *(s["beyond"][key].get(n, float("nan")) for n in present)]
                            for s in result["settings"]]))
    grouped = [s for s in result["settings"] if s["groups"]]
    if grouped:
        groups = grouped[0]["groups"]
        for m in (*metrics, *(f"{name}@{k}" for k in sorted({int(m.split('@')[1]) for m in metrics})
                              for name in ("recall_head", "recall_tail"))):
            if all(m in s["groups"][0] for s in grouped):
                tables.append((f"{m} by user group (training degree quartiles; cold: at most "
                               f"{result['cold_degree']} training interactions)",
                               ["group", "users", "degree", *(s["label"] for s in grouped)],
                               [[g["group"], g["users"], f"{g['min_degree']}-{g['max_degree']}" if g["users"] else "-",
                                 *(s["groups"][i][m] for s in grouped)] for i, g in enumerate(groups)]))
    return tables


def provenance_line(result: dict) -> str:
    split = result["split_hash"][:16] + " (first 16 hex digits)" if result["split_hash"] else "not recorded (no per-user files)"
    return f"dataset {result['dataset']}, protocol {result['protocol']}, test split sha256 {split}"


def undefined_as_dash(rows: list[list]) -> list[list]:
    """Table rows with NaN (a group without users, an undefined effect size) shown as '-'."""
    return [["-" if isinstance(v, float) and not np.isfinite(v) else v for v in row] for row in rows]


def text_table(header: list[str], rows: list[list]) -> str:
    """Columns aligned with spaces, for the terminal."""
    def cell(v):
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    rows = undefined_as_dash(rows)

    cells = [[cell(v) for v in row] for row in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_text(result: dict) -> str:
    parts = [provenance_line(result)]
    for title, header, rows in comparison_tables(result):
        parts += ["", title, text_table(header, rows)]
    parts += [f"note: {n}" for n in result["notes"]]
    return "\n".join(parts)


def format_markdown(result: dict) -> str:
    parts = ["# Comparison", "", provenance_line(result) + "."]
    for title, header, rows in comparison_tables(result):
        parts += ["", f"**{title}**", "", markdown_table(header, undefined_as_dash(rows))]
    parts += [""] + [f"Note: {n}" for n in result["notes"]]
    return "\n".join(parts).rstrip() + "\n"
