import json

import pytest

from gnnrec.cli import main
from gnnrec.errors import ConfigError
from gnnrec.search import combinations
from tests.test_training import SMALL


def test_combinations_grid_and_random():
    grid = {"model.num_layers": [1, 2, 3], "optim.lr": [1e-3, 1e-2]}
    everything = [{"model.num_layers": n, "optim.lr": lr} for n in (1, 2, 3) for lr in (1e-3, 1e-2)]
    assert combinations(grid, None, 0) == everything
    picked = combinations(grid, 4, 0)
    assert len(picked) == 4 and picked == combinations(grid, 4, 0)
    assert all(p in everything for p in picked) and len({tuple(p.values()) for p in picked}) == 4  # no repeats
    assert combinations(grid, 10, 0) == everything  # asking for more than the grid holds runs it all
    with pytest.raises(ConfigError, match="non-empty list"):
        combinations({"optim.lr": 0.1}, None, 0)


def test_search_selects_on_validation_and_writes_one_table(tmp_path, capsys):
    args = ["search", str(tmp_path / "c.yaml"), *SMALL, f"output.dir={tmp_path}", "output.name=s",
            "train.max_epochs=3"]
    (tmp_path / "c.yaml").write_text("model:\n  name: mf\nsearch:\n  grid:\n    optim.lr: [1e-4, 5e-2]\n"
                                     "    model.reg_weight: [0.0, 1e-3]\n")
    assert main(args) == 0
    result = json.loads((tmp_path / "s" / "results.json").read_text())
    assert len(result["rows"]) == 4 and result["selected_on"] == "valid/recall@20"
    best = max(result["rows"], key=lambda r: r["valid_recall@20"])
    assert result["best"] == best
    assert (tmp_path / "s" / "results.md").read_text().count("| run0") == 4
    assert "selected on validation" in capsys.readouterr().out
    # here validation and test agree on the winner; make them disagree (finished runs are read back from their
    # metrics.json) to see the selection never looks at test
    for run, valid, test in [("run000", 0.9, 0.01), ("run003", 0.02, 0.95)]:
        path = tmp_path / "s" / run / "metrics.json"
        metrics = json.loads(path.read_text())
        metrics["valid"]["recall@20"], metrics["test"]["recall@20"] = valid, test
        path.write_text(json.dumps(metrics))
    assert main(args) == 0
    again = json.loads((tmp_path / "s" / "results.json").read_text())
    assert again["best"]["run"] == "run000" and again["best"]["test_recall@20"] == 0.01
    selected = [line for line in (tmp_path / "s" / "results.md").read_text().splitlines() if "<-" in line]
    assert len(selected) == 1 and selected[0].startswith("| run000")
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "s")]) == 2  # a search folder is not a run: say which to give
    assert "is a search folder, not a run: give one of its runs (run000, run001, run002, ...;" in capsys.readouterr().err
    (tmp_path / "bad.yaml").write_text("search:\n  grid:\n    model.depth: [1, 2]\n")
    assert main(["search", str(tmp_path / "bad.yaml"), *SMALL, f"output.dir={tmp_path}"]) == 2


def test_search_resumes_reading_finished_runs_back(tmp_path, monkeypatch):
    import gnnrec.search

    args = ["search", str(tmp_path / "c.yaml"), *SMALL, f"output.dir={tmp_path}", "output.name=s",
            "train.max_epochs=2"]
    (tmp_path / "c.yaml").write_text("model:\n  name: mf\nsearch:\n  grid:\n    optim.lr: [1e-4, 5e-2]\n")
    assert main(args) == 0
    first = json.loads((tmp_path / "s" / "results.json").read_text())
    (tmp_path / "s" / "run001" / "metrics.json").unlink()  # as if interrupted during run001
    trained = []
    real_train = gnnrec.search.train
    monkeypatch.setattr(gnnrec.search, "train", lambda cfg: trained.append(cfg["output"]["name"]) or real_train(cfg))
    assert main(args) == 0
    assert trained == ["run001"]  # run000 read back, run001 trained again in the same folder
    again = json.loads((tmp_path / "s" / "results.json").read_text())
    assert again["rows"][0] == first["rows"][0] and not (tmp_path / "s" / "run001-1").exists()
    assert main([*args, "search.grid.optim.lr=[1e-3]"]) == 2  # a changed config never reuses those runs


def test_search_over_seeds_selects_the_best_mean_setting():
    from gnnrec.search import over_seeds

    def row(i, lr, seed, valid, test):
        return {"run": f"run{i:03d}", "params": {"optim.lr": lr, "seed": seed}, "valid_recall@20": valid,
                "test_recall@20": test, "test_ndcg@20": test / 2, "best_epoch": 1}

    # lr 0.1 holds the single best seed (0.30) but the lower mean: selection must not chase one lucky seed
    rows = [row(0, 0.1, 1, 0.30, 0.20), row(1, 0.1, 2, 0.10, 0.10), row(2, 0.2, 1, 0.25, 0.22),
            row(3, 0.2, 2, 0.24, 0.18)]
    settings = over_seeds(rows)
    assert [s["params"] for s in settings] == [{"optim.lr": 0.1}, {"optim.lr": 0.2}]
    assert settings[1]["runs"] == ["run002", "run003"] and settings[1]["seeds"] == [1, 2]
    assert settings[1]["valid_recall@20"] == pytest.approx(0.245)
    assert settings[1]["test_recall@20"] == pytest.approx(0.20)
    assert settings[1]["test_recall@20_std"] == pytest.approx(0.04 / 2 ** 0.5)
    assert max(settings, key=lambda s: s["valid_recall@20"])["params"] == {"optim.lr": 0.2}


def test_search_with_seed_in_grid_writes_the_mean_table(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("model:\n  name: mf\nsearch:\n  grid:\n    optim.lr: [1e-4, 5e-2]\n"
                                     "    seed: [1, 2]\n")
    assert main(["search", str(tmp_path / "c.yaml"), *SMALL, f"output.dir={tmp_path}", "output.name=s",
                 "train.max_epochs=2"]) == 0
    result = json.loads((tmp_path / "s" / "results.json").read_text())
    assert len(result["rows"]) == 4 and len(result["settings"]) == 2
    assert result["best"] == max(result["settings"], key=lambda s: s["valid_recall@20"])
    assert "mean over seeds" in result["selected_on"]
    md = (tmp_path / "s" / "results.md").read_text()
    assert "Mean over seeds" in md and md.count("<-") == 3  # the selected setting's two runs and its mean row
    assert "mean of seeds [1, 2]" in capsys.readouterr().out


def test_overrides_may_follow_options(tmp_path, capsys):
    """`gnnrec search CONFIG --random 1 key=value` (overrides after an option) parses; unknown words still fail."""
    config = tmp_path / "s.yaml"
    config.write_text("model:\n  name: mf\nsearch:\n  grid:\n    optim.lr: [0.01, 0.02]\n")
    assert main(["search", str(config), "--random", "1", *SMALL, "train.max_epochs=1", f"output.dir={tmp_path}",
                 "output.name=s"]) == 0
    rows = json.loads((tmp_path / "s" / "results.json").read_text())["rows"]
    assert len(rows) == 1
    with pytest.raises(SystemExit):
        main(["search", str(config), "--random", "1", "not-an-override"])
