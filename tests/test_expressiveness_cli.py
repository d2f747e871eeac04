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
    assert 0.0 <= rep["closeness"]["accuracy"] <= 1.0 and rep["closeness"]["pairs"] > 100
    assert rep["isomorphism"]["isomorphic_separated"] == 0.0
    assert rep["accuracy"]["recall@20"] > 0
    gte_out = tmp_path / "gte.json"
    assert main(["expressiveness", "gte", "data.synthetic.n_users=200", "data.synthetic.n_items=150",
                 "--users", "50", "--output", str(gte_out)]) == 0
    assert json.loads(gte_out.read_text())["closeness"]["accuracy_untied"] == 1.0
    assert main(["expressiveness", "lightgcn"]) == 2  # trainable: needs a run
