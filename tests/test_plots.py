"""Plots and the HTML report: every plot function writes a PNG of the promised pixel size; the report holds
the tables and the images inline."""
import base64
import re

import numpy as np
import pytest
from PIL import Image

from gnnrec.analysis import plots
from gnnrec.analysis.compare import compare
from gnnrec.cli import main
from gnnrec.eval.groups import group_table
from gnnrec.eval.per_user import load_per_user

from tests.analysis_fixtures import fake_run

SIZE = (int(plots.FIGSIZE[0] * plots.DPI), int(plots.FIGSIZE[1] * plots.DPI))
RECALL = np.array([0.1, 0.4, 0.0, 0.3, 0.2, 0.6, 0.25, 0.05])


def assert_png(path):
    assert path.is_file() and path.stat().st_size > 1000
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size == SIZE
        # not blank: a drawn figure has many distinct colours
        assert len(img.convert("RGB").getcolors(maxcolors=1 << 16) or range(1 << 16)) > 10


def test_every_plot_function_writes_a_png_of_the_right_size(tmp_path):
    run = fake_run(tmp_path / "run", recall=RECALL)
    other = fake_run(tmp_path / "mf", "mf", recall=RECALL * 0.5, rng_seed=1)
    pu = load_per_user(run / "test_per_user.npz")
    assert_png(plots.training_curves(run, tmp_path / "p" / "curves.png"))
    assert_png(plots.group_bars(group_table(pu, ks=[20]), ["recall@20", "ndcg@20"], tmp_path / "p" / "groups.png"))
    assert_png(plots.popularity_distribution(pu.item_train_count, {"lightgcn": pu.item_counts[20]}, 20,
                                             tmp_path / "p" / "pop.png"))
    result = compare([run, other])
    assert_png(plots.comparison_bars(result, tmp_path / "p" / "bars.png"))
    written = plots.comparison_plots(result, tmp_path / "cmp")
    assert [p.name for p in written] == ["metrics.png", "groups.png", "popularity@20.png"]
    for path in written:
        assert_png(path)


@pytest.mark.parametrize("zero_based", [False, True])
def test_training_log_drops_the_final_evaluation_and_counts_epochs_from_one(tmp_path, zero_based):
    run = fake_run(tmp_path / "run", recall=RECALL)
    if zero_based:  # older logs: Lightning's own 0-based epoch column
        csv = run / "logs" / "metrics.csv"
        lines = csv.read_text().splitlines()
        csv.write_text("\n".join([lines[0], *(f"{int(float(l.split(',', 1)[0])) - 1},{l.split(',', 1)[1]}"
                                              for l in lines[1:])]) + "\n")
    log = plots.read_training_log(run)
    epochs, recall = log["valid/recall@20"]
    assert epochs.tolist() == [1, 2, 3, 4, 5]  # the final evaluation's rows (best epoch, step 50) are not points
    assert recall.tolist() == pytest.approx([0.20, 0.23, 0.26, 0.29, 0.27])
    assert log["train/loss"][1].tolist() == pytest.approx([1.0, 1 / 2, 1 / 3, 1 / 4, 1 / 5])


def test_report_holds_the_tables_and_embedded_images(tmp_path):
    run = fake_run(tmp_path / "run", recall=RECALL)
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert sorted(p.name for p in (run / "plots").glob("*.png")) == ["groups.png", "popularity@20.png",
                                                                     "training_curves.png"]
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 3 and all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    assert "<h2>Accuracy</h2>" in page and "<h2>User groups (test, K=20)</h2>" in page and "coverage" in page
    recall20 = load_per_user(run / "test_per_user.npz").means()["recall@20"]
    assert f"<td>{recall20:.4f}</td>" in page
    assert "<td>cold</td>" in page and "src=\"http" not in page  # self-contained: nothing fetched
    out = tmp_path / "elsewhere" / "r.html"
    assert main(["report", str(run), "--out", str(out)]) == 0 and out.is_file()
