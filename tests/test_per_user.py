"""Per-user results files: written by every final evaluation, consistent with metrics.json, readable back."""
import json

import numpy as np
import pytest

from gnnrec.cli import main
from gnnrec.config import load_config
from gnnrec.errors import GnnrecError
from gnnrec.eval.per_user import load_per_user, save_per_user
from gnnrec.recommend import original_ids, to_internal
from gnnrec.runs import Run
from gnnrec.train import dataset_from_config, train

SMALL = ["data.synthetic.n_users=300", "data.synthetic.n_items=200", "data.synthetic.n_clusters=4",
         "data.synthetic.mean_interactions=15", "data.synthetic.seed=1", "train.batch_size=256",
         "train.progress_bar=false", "train.accelerator=cpu", "eval.ks=[10,20]", "eval.batch_size=64"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    cfg = load_config(None, SMALL + [f"output.dir={out}", "model.name=lightgcn", "train.max_epochs=2",
                                     "output.name=lgcn"])
    result = train(cfg)
    return cfg, result


@pytest.mark.parametrize("split", ["valid", "test"])
def test_training_writes_per_user_results_whose_means_are_metrics_json(trained, split):
    cfg, result = trained
    metrics = json.loads((result.run_dir / "metrics.json").read_text())[split]
    res = load_per_user(result.run_dir / f"{split}_per_user.npz")
    assert res.meta["split"] == split and res.meta["protocol"] == "strict" and res.meta["ks"] == [10, 20]
    assert res.meta["model"] == "lightgcn" and res.meta["seed"] == cfg["seed"]
    assert len(res.users) == metrics["users"]
    means = res.means()
    for name in ("recall", "ndcg", "precision", "map", "hit"):
        for k in (10, 20):
            assert means[f"{name}@{k}"] == pytest.approx(metrics[f"{name}@{k}"], rel=1e-6)  # logged as float32
    for name in ("coverage", "gini", "avg_popularity", "tail_share", "novelty"):
        for k in (10, 20):
            assert means[f"{name}@{k}"] == pytest.approx(metrics[f"{name}@{k}"], rel=1e-6)
    dataset = dataset_from_config(cfg)
    heldout = dataset.split(split)
    assert np.array_equal(res.users, np.sort(res.users))  # evaluation order
    assert np.array_equal(res.user_ids, original_ids(dataset, "user")[res.users].astype(str))
    assert np.array_equal(res.train_degree, np.diff(dataset.train.indptr)[res.users])
    assert np.array_equal(res.item_train_count, np.bincount(dataset.train.indices, minlength=dataset.n_items))
    # every user's recall@20 is below 1 only by what they hold out: hits <= |held-out|
    n_rel = np.diff(heldout.indptr)[res.users]
    assert (res.metrics["recall@20"] * n_rel <= np.minimum(n_rel, 20) + 1e-9).all()
    if split == "test":
        groups = json.loads((result.run_dir / "test_groups.json").read_text())
        assert groups["groups"][0]["group"] == "all"
        assert groups["groups"][0]["recall@20"] == pytest.approx(metrics["recall@20"])


def test_original_user_ids_follow_the_files_id_map(tmp_path):
    """String user ids from a CSV: each saved row's id has, in the file, the training degree saved beside it."""
    rng = np.random.default_rng(0)
    names = [f"user-{c}" for c in "qwertyuiopasdfgh"]  # file order differs from sorted order
    rows = []
    for u, name in enumerate(names):
        items = rng.choice(30, size=4 + u % 5, replace=False)
        rows += [(name, f"item{i}", split) for i, split in zip(items, ["test", "valid"] + ["train"] * 20)]
    (tmp_path / "log.csv").write_text("user,item,split\n" + "".join(f"{u},{i},{s}\n" for u, i, s in rows))
    assert main(["train", f"data.source={tmp_path / 'log.csv'}", "data.columns.split=split", "data.valid_ratio=0",
                 "model.name=gte", f"output.dir={tmp_path}", "output.name=gte", "eval.ks=[5,20]"]) == 0
    res = load_per_user(tmp_path / "gte" / "test_per_user.npz")  # learning-free: train's evaluate_only path
    metrics = json.loads((tmp_path / "gte" / "metrics.json").read_text())
    assert len(res.users) == metrics["test"]["users"] >= 10  # a few test rows hold items never trained on
    train_degree = {n: sum(1 for u, _, s in rows if u == n and s == "train") for n in names}
    assert set(res.user_ids) <= set(names)
    assert [train_degree[n] for n in res.user_ids] == res.train_degree.tolist()
    dataset = dataset_from_config(load_config(tmp_path / "gte" / "config.yaml"))
    assert to_internal(dataset, "user", res.user_ids).tolist() == res.users.tolist()
    assert res.means()["recall@5"] == pytest.approx(metrics["test"]["recall@5"], rel=1e-6)


def test_evaluate_writes_into_the_run_only_for_its_protocol(trained, tmp_path, capsys):
    _, result = trained
    run = result.run_dir
    before = load_per_user(run / "test_per_user.npz")
    (run / "test_per_user.npz").unlink()
    assert main(["evaluate", str(run)]) == 0
    out = capsys.readouterr().out
    assert "coverage" in out and "by user group" in out and "cold" in out
    again = load_per_user(run / "test_per_user.npz")
    assert np.array_equal(again.users, before.users)
    for name, values in before.metrics.items():
        np.testing.assert_allclose(again.metrics[name], values, rtol=1e-12, equal_nan=True)
    stamp = (run / "test_per_user.npz").stat().st_mtime_ns
    assert main(["evaluate", str(run), "--protocol", "mmrec", "--split", "test",
                 "--per-user", str(tmp_path / "mm.npz")]) == 0
    assert main(["evaluate", str(run), "--protocol", "mmrec", "--split", "test"]) == 0
    # another protocol than the run's: the run's own file is not overwritten
    assert (run / "test_per_user.npz").stat().st_mtime_ns == stamp
    assert load_per_user(run / "test_per_user.npz").meta["protocol"] == "strict"
    other = load_per_user(tmp_path / "mm.npz")
    assert other.meta["protocol"] == "mmrec" and other.meta["split_hash"] != before.meta["split_hash"]
    # a name without the extension gets it, also per split (FILE_valid.npz, FILE_test.npz)
    assert main(["evaluate", str(run), "--protocol", "mmrec", "--split", "both",
                 "--per-user", str(tmp_path / "both")]) == 0
    assert load_per_user(tmp_path / "both_valid.npz").meta["split"] == "valid"
    assert load_per_user(tmp_path / "both_test.npz").meta["split"] == "test"
    assert (tmp_path / "mm_groups.json").is_file()


def test_run_evaluate_from_python_matches_training_and_keeps_other_protocols_out_of_the_run(trained):
    _, result = trained
    saved = json.loads((result.run_dir / "metrics.json").read_text())
    run = Run.open(result.run_dir)
    stamp = (result.run_dir / "test_per_user.npz").stat().st_mtime_ns
    other = run.evaluate(["test"], protocol="mmrec")
    assert other.protocol == "mmrec" and other.per_user["test"].path is None
    assert (result.run_dir / "test_per_user.npz").stat().st_mtime_ns == stamp
    own = run.evaluate()
    assert own.protocol == saved["protocol"] and list(own.metrics) == ["valid", "test"]
    for split in ("valid", "test"):
        assert own.metrics[split]["recall@20"] == pytest.approx(saved[split]["recall@20"], rel=1e-6)
    assert own.per_user["test"].path == result.run_dir / "test_per_user.npz"
    assert own.per_user["test"].means()["recall@20"] == pytest.approx(saved["test"]["recall@20"], rel=1e-6)


def test_a_reopened_run_refuses_settings_that_change_its_split_and_type_checks_overrides(trained, capsys):
    _, result = trained
    run_dir = result.run_dir
    before = {p.name: p.stat().st_mtime_ns for p in run_dir.glob("*_per_user.npz")}
    for override in ("data.synthetic.seed=2", "data.synthetic.mean_interactions=14",  # the synthetic split's own
                     "data.feature_norm=l2"):  # same interactions, other features
        assert main(["evaluate", str(run_dir), override]) == 2
        err = capsys.readouterr().err
        assert "other interactions (train, validation or test) or item features" in err, err
        assert f"changed: {override.split('=')[0]})" in err, err
    assert main(["evaluate", str(run_dir), "eval.ks=10"]) == 2  # typed like a training config: no TypeError
    assert "eval.ks" in capsys.readouterr().err
    # settings that do not change the split are fine, but results under them stay out of the run folder
    run = Run.open(run_dir, ["eval.batch_size=7", "train.batch_size=64"])
    assert set(run.changed) == {"eval.batch_size", "train.batch_size"}
    assert run.evaluate(["test"]).per_user["test"].path is None
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.glob("*_per_user.npz")} == before


def test_a_run_from_before_a_config_key_existed_reopens_with_overrides_that_only_change_what_they_name(trained,
                                                                                                      tmp_path):
    import torch

    _, result = trained
    ckpt = torch.load(result.run_dir / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    del ckpt["gnnrec_config"]["data"]["feature_fill"]  # as a run written before the key existed
    (tmp_path / "old" / "checkpoints").mkdir(parents=True)
    torch.save(ckpt, tmp_path / "old" / "checkpoints" / "best.ckpt")
    run = Run.open(tmp_path / "old", ["eval.batch_size=7"])
    assert run.changed == ("eval.batch_size",)  # the missing key is not an override's change
    assert run.evaluate(["test"]).metrics["test"]["recall@20"] == pytest.approx(
        json.loads((result.run_dir / "metrics.json").read_text())["test"]["recall@20"], rel=1e-6)


def test_load_per_user_names_the_file_when_missing_damaged_or_foreign(trained, tmp_path):
    _, result = trained
    with pytest.raises(GnnrecError, match="not found: .*nothing.npz"):
        load_per_user(tmp_path / "nothing.npz")
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(GnnrecError, match="broken.npz: not a readable per-user results file"):
        load_per_user(tmp_path / "broken.npz")
    np.savez_compressed(tmp_path / "foreign.npz", x=np.arange(3))
    with pytest.raises(GnnrecError, match="foreign.npz: per-user results need a 'meta'"):
        load_per_user(tmp_path / "foreign.npz")
    res = load_per_user(result.run_dir / "test_per_user.npz")
    del res.metrics["ndcg@20"]
    save_per_user(tmp_path / "partial.npz", res)
    with pytest.raises(GnnrecError, match=r"partial.npz: per-user results lack ndcg@20"):
        load_per_user(tmp_path / "partial.npz")
