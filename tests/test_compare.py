"""gnnrec compare: seeds pooled per setting, paired tests on the same users, refusal of mixed runs."""
import json

import numpy as np
import pytest
from scipy import stats

from gnnrec.analysis.compare import compare, format_markdown, format_text, to_json
from gnnrec.cli import main
from gnnrec.errors import GnnrecError

from tests.analysis_fixtures import fake_run

BASE = np.array([0.10, 0.20, 0.00, 0.50, 0.30, 0.25, 0.40, 0.05, 0.12, 0.33])


def two_settings(tmp_path):
    """lightgcn over seeds 1 and 2 (per user: BASE + 0.1 and BASE + 0.3, users in different row orders),
    and mf with one seed (BASE)."""
    order = np.arange(len(BASE))[::-1]  # seed 2 lists its users in reverse: pairing must go by original id
    ids = np.array([f"u{i}" for i in range(len(BASE))])
    layers = {"num_layers": 3}  # a key MF does not have: no part of the labels
    runs = [fake_run(tmp_path / "lgn1", "lightgcn", seed=1, recall=BASE + 0.1, user_ids=ids, model_args=layers),
            fake_run(tmp_path / "lgn2", "lightgcn", seed=2, recall=(BASE + 0.3)[order], user_ids=ids[order],
                     model_args=layers),
            fake_run(tmp_path / "mf", "mf", seed=1, recall=BASE + np.linspace(-0.02, 0.05, len(BASE)), user_ids=ids)]
    return runs


def setting(result, model):
    return next(s for s in result["settings"] if s["model"] == model)


def test_seeds_are_pooled_and_tested_against_the_baseline_by_user_id(tmp_path):
    lgn1, lgn2, mf = two_settings(tmp_path)
    result = compare([lgn1, lgn2, mf], baseline="mf", metrics=["recall@20", "ndcg@20"])
    lgn, base = setting(result, "lightgcn"), setting(result, "mf")
    assert [s["label"] for s in result["settings"]] == ["lightgcn", "mf"]
    assert base["baseline"] and base["paired"] is None
    assert lgn["seeds"] == [1, 2]
    means = [json.loads((f / "metrics.json").read_text())["test"]["recall@20"] for f in (lgn1, lgn2)]
    ci = lgn["metrics"]["recall@20"]
    assert ci["mean"] == pytest.approx(np.mean(means))
    assert ci["half_width"] == pytest.approx(stats.t.ppf(0.975, 1) * np.std(means, ddof=1) / np.sqrt(2))
    assert base["metrics"]["recall@20"]["n"] == 1 and base["metrics"]["recall@20"]["half_width"] is None
    # per user: mean over seeds = BASE + 0.2, paired with mf's values of the same user
    pooled, mf_values = BASE + 0.2, BASE + np.linspace(-0.02, 0.05, len(BASE))
    t, w = stats.ttest_rel(pooled, mf_values), stats.wilcoxon(pooled, mf_values)
    paired = lgn["paired"]["recall@20"]
    assert paired["mean_diff"] == pytest.approx(np.mean(pooled - mf_values))
    assert paired["p_t"] == pytest.approx(t.pvalue) and paired["p_wilcoxon"] == pytest.approx(w.pvalue)
    assert paired["n"] == len(BASE)
    t_ndcg = stats.ttest_rel(pooled / 2, mf_values / 2).pvalue
    assert paired["p_t_holm"] == pytest.approx(min(1.0, 2 * min(t.pvalue, t_ndcg)))
    assert result["dataset"] == "toy" and result["protocol"] == "strict" and result["split_hash"] == "a" * 64
    text, md = format_text(result), format_markdown(result)
    assert "lightgcn" in text and "1 seed: no CI" in text and "protocol strict" in text
    assert "| setting | metric | mean diff" in md and "coverage" in md


@pytest.mark.parametrize("what, change", [("datasets", {"dataset": "other"}), ("protocols", {"protocol": "mmrec"}),
                                          ("test splits", {"split_hash": "b" * 64})])
def test_mixed_datasets_protocols_and_splits_are_refused(tmp_path, what, change):
    a = fake_run(tmp_path / "a", "lightgcn", recall=BASE)
    b = fake_run(tmp_path / "b", "mf", recall=BASE, **change)
    with pytest.raises(GnnrecError, match=f"different {what}") as err:
        compare([a, b])
    assert str(a) in str(err.value) and str(b) in str(err.value)


def test_runs_of_one_setting_that_share_a_seed_are_refused(tmp_path):
    a = fake_run(tmp_path / "a", "lightgcn", seed=999, recall=BASE)
    b = fake_run(tmp_path / "b", "lightgcn", seed=999, recall=BASE + 0.1)
    other = fake_run(tmp_path / "c", "mf", seed=999, recall=BASE)  # another setting may share the seed
    with pytest.raises(GnnrecError, match="share a seed") as err:
        compare([a, b, other])
    assert str(a) in str(err.value) and str(b) in str(err.value) and str(other) not in str(err.value)
    assert compare([a, other])["settings"]


def test_search_folder_contributes_its_runs_and_settings_are_labelled_by_what_differs(tmp_path):
    search = tmp_path / "search"
    fake_run(search / "run000", "lightgcn", seed=1, lr=0.001, recall=BASE)
    fake_run(search / "run001", "lightgcn", seed=2, lr=0.001, recall=BASE * 1.1)
    fake_run(search / "run002", "lightgcn", seed=1, lr=0.01, recall=BASE + 0.05)
    (search / "results.json").write_text(json.dumps({"rows": [{"run": f"run00{i}"} for i in range(3)]}))
    result = compare([search], baseline="lightgcn optim.lr=0.001")
    labels = [s["label"] for s in result["settings"]]
    assert labels == ["lightgcn optim.lr=0.001", "lightgcn optim.lr=0.01"]
    assert [len(s["runs"]) for s in result["settings"]] == [2, 1]
    assert result["baseline"] == "lightgcn optim.lr=0.001"


def test_cli_writes_markdown_json_and_plots_and_reports_errors(tmp_path, capsys):
    lgn1, lgn2, mf = two_settings(tmp_path)
    md, js, plots = tmp_path / "c.md", tmp_path / "c.json", tmp_path / "plots"
    assert main(["compare", str(lgn1), str(lgn2), str(mf), "--baseline", "mf", "--metrics", "recall@20",
                 "--markdown", str(md), "--json", str(js), "--plots", str(plots)]) == 0
    out = capsys.readouterr().out
    assert "Paired tests against mf" in out
    assert json.loads(js.read_text())["baseline"] == "mf" and "recall@20" in md.read_text()
    assert sorted(p.name for p in plots.glob("*.png"))
    assert main(["compare", str(tmp_path / "nowhere")]) == 2
    assert "neither a run folder" in capsys.readouterr().err
    assert main(["compare", str(mf), "--metrics", "recall"]) == 2


def test_json_output_is_strict_json_with_undefined_values_as_null():
    text = to_json({"d_z": float("nan"), "rows": [1.5, float("inf")], "nested": {"p": float("nan")}})
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in JSON")) == \
        {"d_z": None, "rows": [1.5, None], "nested": {"p": None}}


def test_end_to_end_on_real_short_synthetic_runs(tmp_path):
    """Three trained runs: LightGCN over two seeds (pooled) and MF; per-user files written by training."""
    from gnnrec.config import load_config
    from gnnrec.train import train

    small = ["data.synthetic.n_users=200", "data.synthetic.n_items=120", "data.synthetic.n_clusters=4",
             "data.synthetic.mean_interactions=12", "data.synthetic.seed=1", "train.batch_size=256",
             "train.max_epochs=3", "train.progress_bar=false", "train.accelerator=cpu", "optim.lr=0.01", f"output.dir={tmp_path}"]
    folders = [train(load_config(None, small + extra)).run_dir for extra in
               (["model.name=lightgcn", "seed=1"], ["model.name=lightgcn", "seed=2"], ["model.name=mf", "seed=1"])]
    assert all((f / "test_per_user.npz").is_file() for f in folders)
    result = compare(folders, baseline="mf", metrics=["recall@20", "ndcg@20"])
    lgn = setting(result, "lightgcn")
    assert lgn["seeds"] == [1, 2] and len(result["settings"]) == 2
    tests = [json.loads((f / "metrics.json").read_text())["test"]["recall@20"] for f in folders[:2]]
    assert lgn["metrics"]["recall@20"]["mean"] == pytest.approx(np.mean(tests))
    # the paired difference is the pooled per-user recall minus MF's, over every test user
    from gnnrec.eval.per_user import load_per_user
    lgn_users = [load_per_user(f / "test_per_user.npz") for f in folders[:2]]
    mf_users = load_per_user(folders[2] / "test_per_user.npz")
    assert all((u.user_ids == mf_users.user_ids).all() for u in lgn_users)  # same split, same order
    diff = np.mean([u.metrics["recall@20"] for u in lgn_users], axis=0) - mf_users.metrics["recall@20"]
    assert lgn["paired"]["recall@20"]["mean_diff"] == pytest.approx(diff.mean())
    assert lgn["paired"]["recall@20"]["n"] == len(diff) == len(mf_users.users)
    assert lgn["beyond"]["@20"]["coverage"] == pytest.approx(np.mean([u.means()["coverage@20"] for u in lgn_users]))
    assert result["split_hash"] == mf_users.meta["split_hash"] and [g["group"] for g in lgn["groups"]][0] == "all"
    # the plots read the real training log: the best validation epoch is the one metrics.json reports
    from gnnrec.analysis.plots import read_training_log
    epochs, recall = read_training_log(folders[0])["valid/recall@20"]
    assert epochs.tolist() == [1, 2, 3]
    assert epochs[np.argmax(recall)] == json.loads((folders[0] / "metrics.json").read_text())["best_epoch"]
    assert main(["report", str(folders[0])]) == 0 and len(list((folders[0] / "plots").glob("*.png"))) == 3
    # a run on another synthetic dataset (another split) is refused
    other = train(load_config(None, [*small, "data.synthetic.seed=2", "model.name=mf"])).run_dir
    with pytest.raises(GnnrecError, match="different test splits"):
        compare([*folders, other])


def test_a_default_stated_or_left_out_is_the_same_setting(tmp_path):
    """config.yaml keeps only the model arguments that were given: LightGCN with embedding_dim 64 and 3 layers
    written out is the same setting as LightGCN with its defaults, and is pooled with it."""
    implicit = fake_run(tmp_path / "a", seed=1, recall=BASE)
    explicit = fake_run(tmp_path / "b", seed=2, recall=BASE + 0.1, model_args={"embedding_dim": 64, "num_layers": 3})
    other = fake_run(tmp_path / "c", seed=1, recall=BASE, model_args={"num_layers": 2})
    result = compare([implicit, explicit, other], metrics=["recall@20"])
    labels = [s["label"] for s in result["settings"]]
    assert labels == ["lightgcn model.num_layers=3", "lightgcn model.num_layers=2"]
    assert result["settings"][0]["seeds"] == [1, 2]


def test_outputs_that_cannot_be_written_are_clear_errors(tmp_path, capsys):
    run = fake_run(tmp_path / "a", recall=BASE)
    (tmp_path / "afile").write_text("x")
    for option, target in (("--markdown", tmp_path / "missing" / "dir" / "x.md"), ("--plots", tmp_path / "afile")):
        assert main(["compare", str(run), option, str(target)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("gnnrec: error:") and str(target) in err and "Traceback" not in err
