import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gnnrec.cli import main
from gnnrec.config import load_config
from gnnrec.eval import FullRankingEvaluator
from gnnrec.errors import ConfigError
from gnnrec.models import MODELS, build_model
from gnnrec.train import dataset_from_config, model_from_config, train

SMALL = ["data.synthetic.n_users=300", "data.synthetic.n_items=200", "data.synthetic.n_clusters=4",
         "data.synthetic.mean_interactions=15", "data.synthetic.seed=1", "train.batch_size=256",
         "train.progress_bar=false", "train.accelerator=cpu", "eval.ks=[10,20]"]


def small_config(tmp_path, *extra):
    return load_config(None, SMALL + [f"output.dir={tmp_path}", *extra])


@pytest.mark.parametrize("model", ["lightgcn", "mf"])
def test_training_improves_recall_and_writes_a_run_folder(tmp_path, model):
    cfg = small_config(tmp_path, f"model.name={model}", "train.max_epochs=15", "optim.lr=0.01")
    dataset = dataset_from_config(cfg)
    torch.manual_seed(cfg["seed"])
    untrained = model_from_config(cfg, dataset)
    before = FullRankingEvaluator(dataset, "test", "strict", [20]).evaluate(untrained.score_fn())
    result = train(cfg)
    after = result.metrics["test"]
    assert after["recall@20"] > before["recall@20"] + 0.1
    run = result.run_dir
    for name in ("config.yaml", "metrics.json", "checkpoints/best.ckpt", "logs/metrics.csv"):
        assert (run / name).is_file(), name
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["test"]["recall@20"] == pytest.approx(after["recall@20"])
    assert 1 <= saved["best_epoch"] <= saved["epochs_trained"] == 15
    log = (run / "logs" / "metrics.csv").read_text().splitlines()
    assert "train/loss" in log[0] and "valid/recall@20" in log[0]


def test_early_stopping_uses_validation_patience(tmp_path):
    cfg = small_config(tmp_path, "model.name=mf", "train.max_epochs=200", "train.patience=2",
                       "optim.lr=0.05")
    m = train(cfg).metrics
    assert m["epochs_trained"] < 200
    assert m["epochs_trained"] - m["best_epoch"] == 2  # stopped after 2 evaluations without improvement


def test_cli_train_evaluate_recommend(tmp_path, capsys):
    assert main(["train", *SMALL, f"output.dir={tmp_path}", "train.max_epochs=3", "output.name=cli"]) == 0
    out = capsys.readouterr().out
    assert "recall" in out and "run folder" in out
    run = tmp_path / "cli"
    saved = json.loads((run / "metrics.json").read_text())
    assert main(["evaluate", str(run), "--output", str(tmp_path / "ev.json")]) == 0
    evaluated = json.loads((tmp_path / "ev.json").read_text())
    assert evaluated["test"]["recall@20"] == pytest.approx(saved["test"]["recall@20"])
    assert evaluated["valid"]["ndcg@10"] == pytest.approx(saved["valid"]["ndcg@10"])
    capsys.readouterr()
    assert main(["recommend", str(run / "checkpoints" / "best.ckpt"), "--k", "5", "--user", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 6 and "video #" in lines[1]  # synthetic items have titles


def test_cli_errors_are_clear(tmp_path, capsys):
    assert main(["train", *SMALL, "train.nonsense=1"]) == 2
    assert "unknown config key 'train.nonsense'" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "missing")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert main(["data", "info", str(tmp_path / "nowhere")]) == 2
    assert "nowhere: data.source does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--help"])


def test_config_file_and_errors(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  name: lightgcn\n  num_layers: 2\n  reg_weight: 1e-3\noptim:\n  lr: 5e-3\n")
    cfg = load_config(path, ["model.num_layers=4"])
    assert cfg["model"] == {"name": "lightgcn", "num_layers": 4, "reg_weight": 1e-3}
    assert cfg["optim"]["lr"] == 5e-3 and cfg["train"]["batch_size"] == 2048
    path.write_text("trainer:\n  epochs: 3\n")
    with pytest.raises(ConfigError, match=r"c.yaml: unknown config key 'trainer'"):
        load_config(path)
    with pytest.raises(ConfigError, match="unknown key.*model.depth"):
        load_config(None, ["model.depth=3"])
    with pytest.raises(ConfigError, match="'optim.lr': input should be a valid number, got 'fast'"):
        load_config(None, ["optim.lr=fast"])
    with pytest.raises(ConfigError, match="data.synthetic.users"):
        load_config(None, ["data.synthetic.users=5"])
    with pytest.raises(ConfigError, match="model.name must be one of"):
        load_config(None, ["model.name=transformer"])
    with pytest.raises(ConfigError, match="needs 20 in eval.ks"):
        load_config(None, ["eval.ks=[5,10]"])
    with pytest.raises(ConfigError, match="train.monitor must look like"):
        load_config(None, ["train.monitor=test/recall@20"])


@pytest.mark.parametrize("name", sorted(set(MODELS) - {"gte"}))  # GTE trains nothing
def test_every_parameter_gets_a_gradient_from_the_loss_or_is_ddp_ignored(small_synthetic, name):
    """DDP (find_unused_parameters off, Lightning's default) fails at the second step when a parameter gets no
    gradient: every parameter must be used by the loss, or be declared in ``_ddp_params_and_buffers_to_ignore``
    (DiffMM's denoisers, trained in their own pass). FREEDOM runs its feature term (reg_weight > 0)."""
    torch.manual_seed(0)
    model = build_model(small_synthetic, name, embedding_dim=8, **({"reg_weight": 1e-4} if name == "freedom" else {}))
    users, pos, neg = torch.tensor([0, 1, 2, 1]), torch.tensor([3, 4, 3, 5]), torch.tensor([6, 7, 8, 6])
    model.loss(users, pos, neg)[0].backward()
    ignored = set(getattr(model, "_ddp_params_and_buffers_to_ignore", []))
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None and n not in ignored]
    assert not unused, f"{name}: parameters without a gradient: {unused}"


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_matches_single_process(tmp_path):
    """DDP (gloo, 2 processes) splits every global batch across ranks, so it follows the same optimisation
    path as one process; metrics agree up to float summation order. Tolerance: 0.01 absolute."""
    common = [sys.executable, "-m", "gnnrec", "train", *SMALL, "train.max_epochs=4", "optim.lr=0.01",
              f"output.dir={tmp_path}"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("GNNREC_RUN_DIR", None)
    for name, extra in (("single", []), ("ddp", ["train.strategy=ddp", "train.devices=2"])):
        proc = subprocess.run(common + [f"output.name={name}", *extra], capture_output=True, text=True,
                              env=env, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
    single = json.loads((tmp_path / "single" / "metrics.json").read_text())
    ddp = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert ddp["test"]["users"] == single["test"]["users"] > 0  # every test user evaluated once across ranks
    for split in ("valid", "test"):
        for key in ("recall@20", "ndcg@20", "recall@10"):
            assert ddp[split][key] == pytest.approx(single[split][key], abs=0.01), (split, key)
    assert ddp["best_epoch"] == single["best_epoch"]


def test_resume_continues_the_same_run_folder_and_ends_as_an_uninterrupted_run(tmp_path):
    whole = train(small_config(tmp_path, "model.name=mf", "train.max_epochs=4", "output.name=whole"))
    first = train(small_config(tmp_path, "model.name=mf", "train.max_epochs=2", "output.name=a"))
    last = first.run_dir / "checkpoints" / "last.ckpt"
    assert last.is_file()
    resumed = train(small_config(tmp_path, "model.name=mf", "train.max_epochs=4", f"train.resume={last}"))
    assert resumed.run_dir == first.run_dir and sorted(p.name for p in tmp_path.iterdir()) == ["a", "whole"]
    assert resumed.metrics["epochs_trained"] == 4
    assert resumed.metrics["test"] == pytest.approx(whole.metrics["test"])
    rows = (resumed.run_dir / "logs" / "metrics.csv").read_text().splitlines()
    epochs = {int(float(r.split(",")[rows[0].split(",").index("epoch")])) for r in rows[1:]}
    assert len(epochs) == 4 and max(epochs) - min(epochs) == 3  # one whole curve in one file
    assert (resumed.run_dir / "logs" / "tensorboard").is_dir()


def test_epoch_timer_keeps_training_and_validation_time_apart(tmp_path, monkeypatch):
    """Validation runs before on_train_epoch_end: its time must not show in the training seconds. A fake clock
    that only validation advances (by 100 s) makes this exact and independent of the machine's load."""
    import lightning as L

    import gnnrec.train
    from gnnrec.train import EpochTimer, datamodule_from_config, dataset_from_config, model_from_config

    clock = [0.0]
    monkeypatch.setattr(gnnrec.train.time, "perf_counter", lambda: clock[0])

    class SlowValidation(L.Callback):
        def on_validation_epoch_end(self, trainer, pl_module):
            clock[0] += 100.0

    cfg = small_config(tmp_path, "model.name=mf", "train.max_epochs=2")
    timer = EpochTimer()
    data = dataset_from_config(cfg)
    trainer = L.Trainer(max_epochs=2, callbacks=[SlowValidation(), timer], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, num_sanity_val_steps=0, accelerator="cpu",
                        reload_dataloaders_every_n_epochs=1, enable_model_summary=False)
    trainer.fit(model_from_config(cfg, data), datamodule=datamodule_from_config(cfg, data))
    assert timer.seconds == [0.0, 0.0] and timer.eval_seconds == [100.0, 100.0]
