import json

from gnnrec.cli import main
from tests.test_training import SMALL


def test_expressiveness_of_a_trained_run_and_of_gte(tmp_path, capsys):
    assert main(["train", *SMALL, f"output.dir={tmp_path}", "output.name=lg", "train.max_epochs=2",
                 "model.num_layers=2"]) == 0
    capsys.readouterr()
    out = tmp_path / "report.json"
    assert main(["expressiveness", str(tmp_path / "lg"), "--users", "50", "--pairs", "40", "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert "closeness" in text and "automorphism" in text and "isomorphism" in text and "Recall@20" in text
    rep = json.loads(out.read_text())
    assert rep["rule"] == "lightgcn" and rep["layers"] == 2
    # the trained embeddings are scored: an untrained LightGCN orders about half the pairs (0.53 here), the run 0.75
    assert rep["closeness"]["accuracy"] > 0.65 and rep["closeness"]["users"] == 50
    assert 100 < rep["closeness"]["pairs"] <= 50 * 40
    assert rep["accuracy"] == json.loads((tmp_path / "lg" / "metrics.json").read_text())["test"]
    auto = rep["automorphism"]  # LightGCN propagation of a symmetric start respects every automorphism
    assert auto["nodes"] == 500 and auto["coincide_within_class"] == 1.0
    assert auto["separate_across_classes"] <= auto["wl_separate_across_classes"]
    iso = rep["isomorphism"]
    assert iso["isomorphic_separated"] == 0.0 and iso["distinguished"] == iso["wl_bound"] == 0.5
    gte_out = tmp_path / "gte.json"
    assert main(["expressiveness", "gte", "data.synthetic.n_users=200", "data.synthetic.n_items=150",
                 "--users", "50", "--output", str(gte_out)]) == 0
    gte = json.loads(gte_out.read_text())
    assert gte["rule"] == "gte" and gte["closeness"]["accuracy_untied"] == 1.0 and gte["closeness"]["users"] == 50
    assert gte["accuracy"]["users"] == 200 and gte["accuracy"]["recall@20"] > 0.5  # evaluated, not read from a run
    assert main(["expressiveness", "lightgcn"]) == 2  # trainable: needs a run
