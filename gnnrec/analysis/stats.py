"""Statistics for comparing runs: confidence intervals over seeds, paired tests over users, Holm's correction.

Seeds vary the training, users vary the data: the interval over seeds says how stable a setting's mean is,
the paired tests over the same test users say whether two settings differ on this dataset."""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

from gnnrec.errors import GnnrecError


def mean_ci(values, confidence: float = 0.95) -> dict:
    """Mean and two-sided ``confidence`` interval of the mean (t distribution with n - 1 degrees of freedom).

    With one value there is no interval: ``low``/``high``/``half_width`` are None and ``n`` says why."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or len(values) == 0:
        raise GnnrecError(f"mean_ci needs a non-empty 1-d array of values, got shape {values.shape}")
    mean = float(values.mean())
    if len(values) == 1:
        return {"mean": mean, "low": None, "high": None, "half_width": None, "n": 1, "confidence": confidence}
    sem = float(stats.sem(values))
    half = float(stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * sem) if sem > 0 else 0.0
    return {"mean": mean, "low": mean - half, "high": mean + half, "half_width": half, "n": len(values),
            "confidence": confidence}


def cohens_dz(differences) -> float:
    """Effect size of paired data: mean difference / standard deviation of the differences (ddof 1).
    NaN when the differences do not vary (no scale to measure the effect on)."""
    diff = np.asarray(differences, dtype=np.float64)
    if len(diff) < 2:
        return float("nan")
    sd = float(diff.std(ddof=1))
    return float(diff.mean() / sd) if sd > 0 else float("nan")


def paired_tests(candidate, baseline) -> dict:
    """Paired t-test and Wilcoxon signed-rank test of ``candidate - baseline`` (two-sided), one pair per user.

    All-equal pairs (no difference at all) give p = 1 instead of scipy's NaN/error: there is nothing to detect."""
    a, b = np.asarray(candidate, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise GnnrecError(f"paired tests need two 1-d arrays of the same length, got {a.shape} and {b.shape}")
    diff = a - b
    out = {"n": int(len(diff)), "mean_diff": float(diff.mean()) if len(diff) else float("nan"),
           "d_z": cohens_dz(diff)}
    if len(diff) < 2:
        return {**out, "t": float("nan"), "p_t": float("nan"), "w": float("nan"), "p_wilcoxon": float("nan")}
    if not np.any(diff):
        return {**out, "t": 0.0, "p_t": 1.0, "w": 0.0, "p_wilcoxon": 1.0}
    t = stats.ttest_rel(a, b)
    w = stats.wilcoxon(a, b)
    return {**out, "t": float(t.statistic), "p_t": float(t.pvalue), "w": float(w.statistic),
            "p_wilcoxon": float(w.pvalue)}


def holm(pvalues) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (NaNs are left out of the family and stay NaN):
    the i-th smallest of m gets max over j <= i of min(1, (m - j + 1) p_(j))."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = len(valid)
    if m == 0:
        return out.tolist()
    order = valid[np.argsort(p[valid], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out.tolist()


def format_p(p: float) -> str:
    """A p-value for a table: 3 significant digits, '<1e-16' below double precision, '-' when undefined."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "-"
    return "<1e-16" if p < 1e-16 else f"{p:.3g}"
