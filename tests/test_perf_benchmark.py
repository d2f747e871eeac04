"""benchmarks/perf.py's smoke run: every section at tiny sizes, with its JSON and table written."""
import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_perf_quick_runs_every_section(tmp_path):
    spec = importlib.util.spec_from_file_location("perf", ROOT / "benchmarks" / "perf.py")
    perf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(perf)
    res = perf.main(["--quick", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "perf.json").read_text())
    assert set(saved["sections"]) == {"bandwidth", "product", "lightgcn_batch", "freedom_batch", "larger_graph", "knn",
                                      "evaluation", "lightgcn_epoch"} == set(res["sections"])
    product = saved["sections"]["product"]
    assert product["floor_s"] > 0 and perf.USED_KERNEL in product["kernels"]
    table = (tmp_path / "perf.md").read_text()
    for path in ("propagation product", "LightGCN batch, fused", "FREEDOM batch, reg_weight 1e-4",
                 "propagation product, quarter Amazon-Elec graph", "LightGCN batch, fused, quarter Amazon-Elec", "kNN",
                 "evaluation", "LightGCN training epoch"):
        assert path in table
    # resumable: a second run with --resume keeps the saved sections (their timings are not re-measured)
    again = perf.main(["--quick", "--resume", "--out", str(tmp_path)])
    assert again["sections"]["knn"] == saved["sections"]["knn"]
