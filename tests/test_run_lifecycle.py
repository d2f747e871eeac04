"""A run's life outside the happy path: pre-emption by SIGTERM, resuming, failures, moving the run folder."""
import csv
import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gnnrec.cli import main
from tests.test_training import SMALL


def wait_for(predicate, seconds: float) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_sigterm_saves_a_resumable_state_exits_nonzero_and_the_run_resumes_in_place(tmp_path):
    run = tmp_path / "job"
    csv_path = run / "logs" / "metrics.csv"
    cmd = [sys.executable, "-m", "gnnrec", "train", *SMALL, "model.name=mf", f"output.dir={tmp_path}",
           "output.name=job", "train.max_epochs=500", "train.patience=500"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        assert wait_for(lambda: csv_path.is_file() and csv_path.read_text().count("\n") >= 3, 120), "no epoch finished"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, err[-2000:]
    last = run / "checkpoints" / "last.ckpt"
    assert last.is_file() and not (run / "metrics.json").exists()
    assert f"train.resume={last}" in err.replace("\n", "")
    stopped_at = torch.load(last, map_location="cpu", weights_only=False)["epoch"]
    assert main(["train", str(run / "config.yaml"), f"train.resume={last}",
                 f"train.max_epochs={stopped_at + 2}"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs_trained"] == stopped_at + 2
    rows = list(csv.DictReader(open(csv_path)))
    assert [float(r["epoch"]) for r in rows if r["train/loss"]] == list(range(1, stopped_at + 3))  # each once


def metrics_rows(run_dir: Path) -> list[dict]:
    return list(csv.DictReader(open(run_dir / "logs" / "metrics.csv")))


def tensorboard_points(run_dir: Path) -> dict:
    """{tag: [(step, value)]} as TensorBoard shows them (it hides events purged by a restart)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "logs" / "tensorboard"))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_a_run_stopped_mid_epoch_resumes_to_exactly_the_uninterrupted_run(tmp_path, monkeypatch, caplog):
    """A finished 2-epoch run trained on to 4 epochs, stopped by SIGTERM in the middle of epoch 3 and resumed:
    metrics, metrics.csv (every epoch once, the finished run's final evaluation dropped) and TensorBoard equal
    an uninterrupted 4-epoch run's. BM3 draws dropout from torch's global generator every batch, so this also
    needs the random states restored."""
    import gnnrec.train
    from gnnrec.config import load_config
    from gnnrec.errors import Interrupted
    from gnnrec.train import EpochTimer, train

    def config(*extra):
        return load_config(None, [*SMALL, "model.name=bm3", "train.patience=100", f"output.dir={tmp_path}", *extra])

    class SigtermInEpoch3(EpochTimer):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.current_epoch == 2 and batch_idx == 5:
                os.kill(os.getpid(), signal.SIGTERM)  # Lightning's handler turns it into SIGTERMException

    whole = train(config("train.max_epochs=4", "output.name=whole"))
    first = train(config("train.max_epochs=2", "output.name=cut"))
    last = first.run_dir / "checkpoints" / "last.ckpt"
    time.sleep(1.1)  # TensorBoard reads event files in name order, named by the second, pid and a per-process
    # counter (.9 sorts after .10): in one process, each continuation's files must start a later second
    with monkeypatch.context() as m:
        m.setattr(gnnrec.train, "EpochTimer", SigtermInEpoch3)
        with pytest.raises(Interrupted, match="at the end of epoch 2"):
            train(config("train.max_epochs=4", f"train.resume={last}"))
    assert torch.load(last, map_location="cpu", weights_only=False)["epoch"] + 1 == 2  # not the mid-epoch state
    time.sleep(1.1)  # see below
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="gnnrec"):
        resumed = train(config("train.max_epochs=4", f"train.resume={last}"))
    assert resumed.run_dir == first.run_dir
    for key in ("valid", "test", "best_epoch", "epochs_trained"):
        assert resumed.metrics[key] == whole.metrics[key], key  # exactly: the same steps on the same batches
    rows = metrics_rows(resumed.run_dir)
    assert [float(r["epoch"]) for r in rows if r["train/loss"]] == [1.0, 2.0, 3.0, 4.0]
    assert rows == metrics_rows(whole.run_dir)  # same rows, same values, same order
    console = caplog.text
    assert "epoch 3: valid/recall@20" in console and "epoch 4: valid/recall@20" in console
    assert "nan" not in console
    if importlib.util.find_spec("tensorboard"):
        assert tensorboard_points(resumed.run_dir) == tensorboard_points(whole.run_dir)


def test_a_run_that_fails_before_training_leaves_no_folder(tmp_path, capsys):
    assert main(["train", *SMALL, f"output.dir={tmp_path}", "data.source=" + str(tmp_path / "missing")]) == 2
    assert "gnnrec: error" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_run_folder_works_from_another_directory(tmp_path, monkeypatch, capsys):
    data = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "ml-100k"
    if not data.is_dir():
        pytest.skip(f"real dataset ml-100k not available at {data}")
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    for f in data.iterdir():
        (work / "data" / f.name).symlink_to(f)
    monkeypatch.chdir(work)
    assert main(["train", "data.source=data", "model.name=mf", "train.max_epochs=1", "output.dir=runs",
                 "output.name=r", "train.progress_bar=false", "eval.ks=[20]"]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert main(["evaluate", str(work / "runs" / "r"), "--split", "test"]) == 0
    assert "mf on ml-100k, protocol strict" in capsys.readouterr().out


@pytest.mark.parametrize("damage", ["truncate", "random", "foreign"])
def test_a_damaged_checkpoint_is_a_clear_error_naming_the_file(tmp_path, capsys, damage):
    assert main(["train", *SMALL, "model.name=mf", "train.max_epochs=1", f"output.dir={tmp_path}", "output.name=r"]) == 0
    ckpt = tmp_path / "r" / "checkpoints" / "best.ckpt"
    if damage == "truncate":
        ckpt.write_bytes(ckpt.read_bytes()[:1000])
    elif damage == "random":
        ckpt.write_bytes(os.urandom(5000))
    else:
        torch.save([1, 2, 3], ckpt)
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert str(ckpt) in err and "Traceback" not in err


def test_console_shows_each_validation_and_no_lightning_clutter(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "gnnrec", "train", *SMALL, "model.name=mf", "train.max_epochs=2",
                           f"output.dir={tmp_path}"], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-2000:]
    assert "epoch 1: valid/recall@20" in out and "epoch 2: valid/recall@20" in out
    assert "data synthetic: 300 users, 200 items; interactions train " in out  # what the run trains on
    for clutter in ("Loaded model weights", "Restoring states", "Tip:", "LeafSpec"):
        assert clutter not in out, clutter


def test_importing_gnnrec_changes_no_process_wide_setting():
    code = ("import os, warnings, torch, lightning, scipy.sparse, yaml, pydantic; "  # their own filters come first
            "before = list(warnings.filters); "
            "import gnnrec.train, gnnrec.cli, gnnrec.encoders.text, gnnrec.llm.transformers_lm, gnnrec.models; "
            "assert warnings.filters == before, 'warning filters changed'; "
            "assert 'HF_HUB_OFFLINE' not in os.environ")
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_metrics_csv_counts_epochs_as_the_console_does(tmp_path):
    from gnnrec.config import load_config
    from gnnrec.train import train

    m = train(load_config(None, [*SMALL, "model.name=mf", "train.max_epochs=3", f"output.dir={tmp_path}"])).metrics
    rows = list(csv.DictReader(open(next(tmp_path.glob("*/logs/metrics.csv")))))
    valid = [r for r in rows if r["valid/recall@20"] and not r["test/recall@20"]]
    test = [r for r in rows if r["test/recall@20"]]
    assert sorted({float(r["epoch"]) for r in rows if r["train/loss"]}) == [1.0, 2.0, 3.0]  # 1-based, as printed
    assert float(test[0]["epoch"]) == m["best_epoch"]  # the final test row is the best epoch's
    assert float(valid[-1]["valid/recall@20"]) == pytest.approx(m["valid"]["recall@20"])


def test_data_info_takes_the_same_key_value_settings_as_train(tmp_path, capsys):
    folder = tmp_path / "lgcn"
    folder.mkdir()
    (folder / "train.txt").write_text("0 0 1 2\n1 1 2\n2 0 3\n")
    (folder / "test.txt").write_text("0 3\n1 0\n2 1\n")
    assert main(["data", "info", str(folder), "data.format=lightgcn", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["users"], stats["items"], stats["train"], stats["test"], stats["valid"]) == (3, 4, 7, 3, 0)
    assert main(["data", "info", str(folder), "format=nonsense"]) == 2
    assert "data.format" in capsys.readouterr().err


def test_a_learning_free_run_prints_no_training_line_and_no_empty_validation(tmp_path, capsys):
    assert main(["train", *SMALL, "model.name=gte", f"output.dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "learning-free, evaluated without training" in out and "best epoch" not in out
    assert "valid  recall" in out  # the synthetic data has a validation split: shown
    folder = tmp_path / "lgcn"
    folder.mkdir()
    (folder / "train.txt").write_text("0 0 1 2\n1 1 2\n2 0 3\n")
    (folder / "test.txt").write_text("0 3\n1 0\n2 1\n")
    assert main(["train", "model.name=gte", f"data.source={folder}", "data.valid_ratio=0", "eval.ks=[1,2]",
                 "train.monitor=valid/recall@2", f"output.dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "test   recall" in out and "valid" not in out.split("learning-free")[1]
