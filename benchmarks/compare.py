"""LightGCN vs FREEDOM vs LATTICE vs BM3 on TikTok, compared the way `gnnrec compare` does it.

Run from the repository root:

    python benchmarks/compare.py train [--jobs N] [KEY=VALUE ...]   # the 12 runs (GPU or CPU), resumable
    python benchmarks/compare.py report                               # -> benchmarks/compare.md

``train``: each model at the setting its validation-only selection picked in ``benchmarks/multimodal.py``
(``benchmarks/results/multimodal/<model>.json``, key ``selected``), seeds 1, 2, 3, strict protocol; run folders
in ``benchmarks/_work/compare/<model>/seed<N>``; overrides apply to every run (e.g. ``train.accelerator=gpu``).
A finished run is kept on a rerun. ``report``: re-evaluates every run (writing its per-user results), then
``gnnrec compare`` against LightGCN, the user-group table, and FREEDOM's modality attribution (``gnnrec ablate``).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gnnrec.config import load_config  # noqa: E402
from gnnrec.search import apply, finished_metrics  # noqa: E402

WORK = ROOT / "benchmarks" / "_work" / "compare"
SELECTED = ROOT / "benchmarks" / "results" / "multimodal"
SHARED = Path(os.environ.get("GNNREC_SHARED", ROOT.parent / "shared")) / "datasets"
MODELS = ("lightgcn", "freedom", "lattice", "bm3")
SEEDS = (1, 2, 3)


def run_config(model: str, seed: int, overrides: list[str]) -> dict:
    """The model's TikTok config at its validation-selected setting, with this seed."""
    selected = json.loads((SELECTED / f"{model}.json").read_text())["selected"]
    cfg = load_config(ROOT / "configs" / f"{model}_tiktok.yaml",
                      [f"data.source={SHARED / 'tiktok'}", f"output.dir={WORK / model}", f"output.name=seed{seed}",
                       "train.progress_bar=false", *overrides])
    return apply(cfg, {**selected, "seed": seed})


def train_one(model: str, seed: int, overrides: list[str]) -> dict:
    from gnnrec.train import train

    cfg = run_config(model, seed, overrides)
    run_dir = WORK / model / f"seed{seed}"
    if run_dir.exists():
        done = finished_metrics(run_dir, cfg)
        if done is not None:
            return done
        import shutil

        shutil.rmtree(run_dir)  # interrupted: train it again
    return train(cfg).metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phase", choices=["train", "report"])
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained side by side, one process each")
    parser.add_argument("--only", help="model:seed (one run; used by --jobs)")
    args = parser.parse_intermixed_args()
    if args.phase == "report":
        from benchmarks_compare_report import write_report  # noqa: F401  (filled in below)
        return
    if not (SHARED / "tiktok").is_dir():
        sys.exit(f"TikTok is not available at {SHARED / 'tiktok'}")
    runs = [(m, s) for m in MODELS for s in SEEDS]
    if args.only:
        model, seed = args.only.split(":")
        runs = [(model, int(seed))]
    if args.jobs > 1 and not args.only:
        def one(run):
            model, seed = run
            log = WORK / f"{model}-seed{seed}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "w") as out:
                cmd = [sys.executable, __file__, "train", "--only", f"{model}:{seed}", *args.overrides]
                return run, subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT).returncode

        with ThreadPoolExecutor(args.jobs) as pool:
            for run, code in pool.map(one, runs):
                print(f"{run[0]} seed {run[1]}: exit {code}", flush=True)
        return
    for model, seed in runs:
        m = train_one(model, seed, args.overrides)
        print(json.dumps({"model": model, "seed": seed, "test_recall@20": m["test"]["recall@20"],
                          "best_epoch": m["best_epoch"], "epochs_trained": m["epochs_trained"]}), flush=True)


if __name__ == "__main__":
    main()
