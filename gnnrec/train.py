"""One training run: config -> dataset -> model -> Lightning Trainer -> run folder with config, metrics, checkpoint."""
from __future__ import annotations

import copy
import csv
import json
import logging
import os
import random
import shutil
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities.exceptions import SIGTERMException

from gnnrec.allocator import keep_freed_memory
from gnnrec.config import dump_config
from gnnrec.data import load_dataset
from gnnrec.datamodule import RecDataModule
from gnnrec.errors import GnnrecError, Interrupted
from gnnrec.eval import FullRankingEvaluator
from gnnrec.eval.per_user import write_run_results
from gnnrec.models import build_model

log = logging.getLogger(__name__)


RUN_DIR_ENV = "GNNREC_RUN_DIR"  # shared by DDP worker processes so that all ranks write to one folder


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict
    is_global_zero: bool = True  # False in DDP worker processes, which should not report


def dataset_from_config(cfg: dict):
    return load_dataset(seed=cfg["seed"], **cfg["data"])


def model_from_config(cfg: dict, dataset):
    return build_model(dataset, **cfg["model"], **cfg["optim"])


def datamodule_from_config(cfg: dict, dataset) -> RecDataModule:
    return RecDataModule(dataset, batch_size=cfg["train"]["batch_size"], eval_batch_size=cfg["eval"]["batch_size"],
                         protocol=cfg["eval"]["protocol"], ks=cfg["eval"]["ks"], seed=cfg["seed"],
                         augment_rate=cfg["data"]["augment"]["batch_rate"], negatives=cfg["train"]["negatives"])


def resumed_run_dir(cfg: dict) -> Path | None:
    """The run folder a ``train.resume`` checkpoint belongs to (``<run>/checkpoints/x.ckpt``), if it is one."""
    resume = cfg["train"]["resume"]
    if not resume:
        return None
    run_dir = Path(resume).resolve().parent.parent
    return run_dir if (run_dir / "config.yaml").is_file() and Path(resume).parent.name == "checkpoints" else None


def make_run_dir(cfg: dict) -> tuple[Path, bool]:
    """A new run folder, the folder of the run being resumed, or the one the launching process made (DDP
    workers); True if made (or taken over) here."""
    if os.environ.get(RUN_DIR_ENV):
        return Path(os.environ[RUN_DIR_ENV]), False
    resumed = resumed_run_dir(cfg)
    if resumed is not None:  # one run, one folder: the curve continues in the same metrics.csv and TensorBoard run
        return resumed, True
    source = Path(str(cfg["data"]["source"])).name
    name = cfg["output"]["name"] or f"{cfg['model']['name']}-{source}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = Path(cfg["output"]["dir"]) / name
    suffix = 1
    while run_dir.exists():
        run_dir = Path(cfg["output"]["dir"]) / f"{name}-{suffix}"
        suffix += 1
    run_dir.mkdir(parents=True)
    return run_dir, True


def portable(cfg: dict) -> dict:
    """The config with its relative file paths made absolute, so the run folder works from any directory.
    Moved data: give the new place as an override when re-opening the run (``data.source=...``)."""
    cfg = copy.deepcopy(cfg)
    data = cfg["data"]

    def absolute(path):
        return str(Path(path).resolve()) if path and str(path) != "synthetic" else path

    data["source"] = absolute(data["source"])
    data["feature_dirs"] = [absolute(p) for p in data["feature_dirs"]]
    data["augment"]["edges"] = absolute(data["augment"]["edges"])
    cfg["train"]["resume"] = absolute(cfg["train"]["resume"])
    if cfg["model"].get("graph_cache_dir"):
        cfg["model"]["graph_cache_dir"] = absolute(cfg["model"]["graph_cache_dir"])
    return cfg


def describe_data(dataset) -> str:
    """The statistics a run trains on, after filtering and validation carving (printed at the start)."""
    st = dataset.stats()
    carved = dataset.report.get("valid_carved_from_train")
    return (f"data {st['name']}: {st['users']} users, {st['items']} items; interactions train {st['train']}, "
            f"valid {st['valid']}{' (carved from train)' if carved else ''}, test {st['test']}; "
            f"features {st['features'] or 'none'}")


def resume_log_step(resume: str | None) -> int | None:
    """The logging step a resumed run continues from: rows logged at this step or later (the epochs the run
    redoes, or the final evaluation of a finished run that trains on) are dropped from its logs."""
    if not resume:
        return None
    if not Path(resume).is_file():
        raise GnnrecError(f"train.resume: checkpoint not found: {resume}")
    try:  # mmap: only the loop counters are read, not the weights
        ckpt = torch.load(resume, map_location="cpu", weights_only=False, mmap=True)
        return int(ckpt["loops"]["fit_loop"]["epoch_loop.state_dict"]["_batches_that_stepped"])
    except Exception as exc:  # torch raises many types; a foreign dict lacks the keys
        raise GnnrecError(f"{resume}: not a readable gnnrec training checkpoint ({type(exc).__name__}: "
                          f"{str(exc)[:200]}); it may be truncated or not written by gnnrec train") from None


class ContinuedCSVWriter(ExperimentWriter):
    """Lightning's CSV writer deletes an existing metrics.csv; this one keeps its rows logged before
    ``keep_before_step`` (the resumed checkpoint's), so one run keeps one curve with every epoch once."""

    def __init__(self, log_dir: str, keep_before_step: int | None = None):
        self.keep_before_step = keep_before_step  # read by _check_log_dir_exists, which the base init calls
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        if self.keep_before_step is None or not os.path.isfile(self.metrics_file_path):
            return super()._check_log_dir_exists()
        with open(self.metrics_file_path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = [r for r in reader if r.get("step") and float(r["step"]) < self.keep_before_step]
            keys = sorted(reader.fieldnames or [])
        with open(self.metrics_file_path, "w", newline="", encoding="utf-8") as f:  # same key order as save()
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
        self.metrics_keys = keys  # save() appends under this header, rewriting it only for new keys


class ContinuedCSVLogger(CSVLogger):
    def __init__(self, *args, keep_before_step: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.keep_before_step = keep_before_step

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = ContinuedCSVWriter(self.log_dir, self.keep_before_step)
        return self._experiment


def loggers(run_dir: Path, resume_step: int | None = None) -> list:
    """metrics.csv and (if installed) TensorBoard under ``logs/``; a resumed run continues both without
    repeating the steps from ``resume_step`` on (TensorBoard's purge_step hides the earlier events there)."""
    out = [ContinuedCSVLogger(run_dir, name="logs", version="", flush_logs_every_n_steps=1,  # written every epoch
                              keep_before_step=resume_step)]
    try:
        from lightning.pytorch.loggers import TensorBoardLogger

        import tensorboard  # noqa: F401

        out.append(TensorBoardLogger(run_dir / "logs", name="tensorboard", version="",  # logs/tensorboard/
                                     default_hp_metric=False, purge_step=resume_step))  # no -1 placeholders
    except ImportError:
        pass
    return out


LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric")


@contextmanager
def quiet_lightning():
    """While training: hide Lightning's tips and per-call restore lines (INFO) and the LeafSpec deprecation
    that its pytree helper trips on every batch, and a resume's "checkpoint directory is not empty" (noise users
    cannot act on); warnings and errors still show. Scoped, so importing gnnrec changes no process-wide setting."""
    loggers = [logging.getLogger(name) for name in LIGHTNING_LOGGERS]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                                category=FutureWarning)
        warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")  # resumes
        for lg in loggers:
            lg.setLevel(max(lg.getEffectiveLevel(), logging.WARNING))
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


class EpochReport(L.Callback):
    """One console line per validation: the epoch, the monitored validation metric and its best so far, and the
    epoch's training and validation seconds."""

    def __init__(self, monitor: str, timer: "EpochTimer"):
        self.monitor, self.timer, self.best, self.best_epoch, self._validated = monitor, timer, None, None, False

    def on_validation_epoch_end(self, trainer, pl_module):
        # callbacks run before the module logs its metrics: report once the epoch ends
        self._validated = trainer.state.fn == "fit" and not trainer.sanity_checking

    def on_train_epoch_end(self, trainer, pl_module):
        value = trainer.callback_metrics.get(self.monitor)
        if not self._validated or value is None or not trainer.is_global_zero:
            return
        self._validated = False
        epoch = trainer.current_epoch + 1
        if self.best is None or float(value) > self.best:
            self.best, self.best_epoch = float(value), epoch
        times = [f"{seconds[-1]:.2f} s {part}" for seconds, part in
                 ((self.timer.seconds, "training"), (self.timer.eval_seconds, "validation")) if seconds]
        log.info("epoch %d: %s %.4f (best %.4f at epoch %d)%s", epoch, self.monitor, float(value), self.best,
                 self.best_epoch, "; " + ", ".join(times) if times else "")

    def state_dict(self) -> dict:  # a resumed run reports the best so far over all its epochs
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state_dict: dict) -> None:
        self.best, self.best_epoch = state_dict["best"], state_dict["best_epoch"]


class RandomStateCheckpoint(L.Callback):
    """Saves the global random states (torch, CUDA, numpy, Python) with every checkpoint and restores them
    when training resumes, so the epochs after an end-of-epoch checkpoint draw exactly what they drew in an
    uninterrupted run (dropout, edge dropout, ...; the BPR triples depend on (seed, epoch) alone)."""

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        name, keys, pos, has_gauss, gauss = np.random.get_state()
        checkpoint["gnnrec_rng_states"] = {  # tensors and plain types only: loads with torch's weights_only
            "torch": torch.get_rng_state(),
            # this process's own device only: another machine may have fewer GPUs, and DDP ranks own one each
            "cuda": torch.cuda.get_rng_state(pl_module.device) if pl_module.device.type == "cuda" else None,
            "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
            "python": random.getstate(),
        }

    def on_load_checkpoint(self, trainer, pl_module, checkpoint):
        states = checkpoint.get("gnnrec_rng_states")
        if trainer.state.fn != "fit" or states is None:
            return
        torch.set_rng_state(states["torch"])
        if isinstance(states.get("cuda"), torch.Tensor) and pl_module.device.type == "cuda":
            torch.cuda.set_rng_state(states["cuda"], pl_module.device)
        name, keys, pos, has_gauss, gauss = states["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
        version, internal, python_gauss = states["python"]
        random.setstate((version, tuple(internal), python_gauss))


class EpochTimer(L.Callback):
    """Wall-clock seconds of the training part of each epoch and of each validation pass, kept apart.

    Lightning runs an epoch's validation before ``on_train_epoch_end``, so the training clock stops when
    validation starts (or at the epoch's end when the epoch has no validation)."""

    def __init__(self):
        self.seconds: list[float] = []  # training only, one entry per epoch
        self.eval_seconds: list[float] = []  # one entry per validation pass
        self._start = self._eval_start = None

    def on_train_epoch_start(self, trainer, pl_module):
        self._start = time.perf_counter()

    def _stop_training_clock(self):
        if self._start is not None:
            self.seconds.append(time.perf_counter() - self._start)
            self._start = None

    def on_validation_epoch_start(self, trainer, pl_module):
        self._stop_training_clock()
        self._eval_start = time.perf_counter()

    def on_validation_epoch_end(self, trainer, pl_module):
        self.eval_seconds.append(time.perf_counter() - self._eval_start)

    def on_train_epoch_end(self, trainer, pl_module):
        self._stop_training_clock()


def train(cfg: dict) -> RunResult:
    """Train with early stopping on validation, then evaluate the best checkpoint on valid and test.

    A SIGTERM (a scheduler pre-empting the job) during training raises ``Interrupted`` (exit status 143 from the
    CLI) with the command that resumes the run in its folder from ``last.ckpt``, the end of its last whole epoch.
    A run that fails before its first checkpoint leaves no folder behind."""
    cfg = portable(cfg)
    run_dir, made_here = make_run_dir(cfg)
    if not made_here:
        with quiet_lightning():
            return fit_and_test(cfg, run_dir)
    os.environ[RUN_DIR_ENV] = str(run_dir.resolve())  # inherited by the DDP workers Lightning launches
    try:
        with quiet_lightning():
            return fit_and_test(cfg, run_dir)
    except BaseException:
        if not any((run_dir / "checkpoints").glob("*.ckpt")):
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    finally:
        os.environ.pop(RUN_DIR_ENV, None)


def fit_and_test(cfg: dict, run_dir: Path) -> RunResult:
    L.seed_everything(cfg["seed"], workers=True, verbose=False)
    keep_freed_memory(cfg["train"]["keep_freed_memory"])  # set either way: runs in one process don't inherit it
    dataset = dataset_from_config(cfg)
    log.info("%s", describe_data(dataset))
    model = model_from_config(cfg, dataset)
    if not model.trainable:
        return evaluate_only(cfg, run_dir, dataset, model)
    datamodule = datamodule_from_config(cfg, dataset)
    tcfg = cfg["train"]
    monitor = tcfg["monitor"]
    checkpoint = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="best", monitor=monitor, mode="max",
                                 save_top_k=1)
    # last.ckpt: the state at the end of every epoch (a SIGTERM mid-epoch keeps it and resumes from there)
    last_checkpoint = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="last", monitor=None, save_top_k=1,
                                      save_on_train_epoch_end=True, enable_version_counter=False)
    stopper = EarlyStopping(monitor=monitor, mode="max", patience=tcfg["patience"], min_delta=0.0)
    timer = EpochTimer()
    trainer = L.Trainer(
        max_epochs=tcfg["max_epochs"], max_time=tcfg["max_time"], accelerator=tcfg["accelerator"], devices=tcfg["devices"],
        strategy=tcfg["strategy"], num_nodes=tcfg["num_nodes"], precision=tcfg["precision"],
        check_val_every_n_epoch=tcfg["eval_every"],
        callbacks=[checkpoint, last_checkpoint, stopper, timer, EpochReport(monitor, timer), RandomStateCheckpoint()],
        logger=loggers(run_dir, resume_log_step(tcfg["resume"])), enable_progress_bar=tcfg["progress_bar"], num_sanity_val_steps=0,
        reload_dataloaders_every_n_epochs=1, use_distributed_sampler=False, enable_model_summary=False,
        log_every_n_steps=1,
    )
    if trainer.is_global_zero:
        dump_config(cfg, run_dir / "config.yaml")
    model.gnnrec_config, model.data_fingerprint = cfg, dataset.fingerprint()
    last = run_dir / "checkpoints" / "last.ckpt"
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=tcfg["resume"])
    except SIGTERMException:
        # not the mid-epoch state: its epoch could not be finished as an uninterrupted run would (the epoch's
        # batches restart), so last.ckpt stays the end of the last finished epoch and the resumed run redoes the rest
        if not last.is_file():
            raise Interrupted(f"training stopped by SIGTERM in epoch {trainer.current_epoch + 1}, before any epoch "
                              "finished: nothing to resume, start the run again") from None
        done = torch.load(last, map_location="cpu", weights_only=False, mmap=True)["epoch"] + 1
        raise Interrupted(f"training stopped by SIGTERM in epoch {trainer.current_epoch + 1}; {last} holds the state "
                          f"at the end of epoch {done}. Resume in the same run folder (it redoes the epochs after "
                          f"{done} and ends as an uninterrupted run) with: gnnrec train {run_dir / 'config.yaml'} "
                          f"train.resume={last}") from None
    best = checkpoint.best_model_path or None
    best_epoch = torch.load(best, map_location="cpu", weights_only=False)["epoch"] + 1 if best else None
    model.evaluated_epoch = best_epoch
    model.collect_per_user = True  # the final evaluation keeps per-user rows and adds beyond-accuracy metrics
    try:
        valid = trainer.validate(model, datamodule=datamodule, ckpt_path=best, verbose=False)[0]
        test = trainer.test(model, datamodule=datamodule, ckpt_path=best, verbose=False)[0]
    except SIGTERMException:
        raise Interrupted(f"stopped by SIGTERM while evaluating the best checkpoint (training had finished); "
                          f"no metrics.json was written. Evaluate it with: gnnrec evaluate {run_dir}") from None
    metrics = run_metrics(cfg, dataset, strip_prefix(valid, "valid/"), strip_prefix(test, "test/"), best_epoch,
                          trainer.current_epoch, mean(timer.seconds), best, mean(timer.eval_seconds))
    if trainer.is_global_zero:
        for split, collected in getattr(model, "per_user_rows", {}).items():  # none for a split without users
            write_run_results(run_dir, dataset, datamodule.evaluators[split], collected, model=cfg["model"]["name"],
                              seed=cfg["seed"])
        write_metrics(run_dir, metrics)
    return RunResult(run_dir, metrics, trainer.is_global_zero)


def evaluate_only(cfg: dict, run_dir: Path, dataset, model) -> RunResult:
    """Learning-free models: evaluate directly and save a checkpoint that `gnnrec evaluate` can reopen."""
    results = {}
    with torch.no_grad():
        score = model.eval_scorer()
        for split in ("valid", "test"):
            ev = FullRankingEvaluator(dataset, split, cfg["eval"]["protocol"], cfg["eval"]["ks"])
            results[split], collected = ev.evaluate_per_user(score, cfg["eval"]["batch_size"])
            write_run_results(run_dir, dataset, ev, collected, model=cfg["model"]["name"], seed=cfg["seed"])
    ckpt = run_dir / "checkpoints" / "best.ckpt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(), "gnnrec_config": cfg, "gnnrec_data": dataset.fingerprint(),
                "epoch": 0}, ckpt)
    dump_config(cfg, run_dir / "config.yaml")
    metrics = run_metrics(cfg, dataset, results["valid"], results["test"], 0, 0, 0.0, str(ckpt))
    write_metrics(run_dir, metrics)
    return RunResult(run_dir, metrics)


def mean(values: list[float]) -> float:
    return sum(values) / max(1, len(values))


def run_metrics(cfg, dataset, valid, test, best_epoch, epochs, seconds_per_epoch, checkpoint,
                seconds_per_evaluation: float = 0.0) -> dict:
    return {
        "dataset": dataset.name,
        "model": cfg["model"]["name"],
        "protocol": cfg["eval"]["protocol"],
        "best_epoch": best_epoch,
        "epochs_trained": epochs,
        "seconds_per_epoch": seconds_per_epoch,  # training only, validation excluded
        "seconds_per_evaluation": seconds_per_evaluation,  # one validation pass over all its users
        "checkpoint": str(Path(checkpoint).resolve()) if checkpoint else None,
        "valid": valid,
        "test": test,
    }


def write_metrics(run_dir: Path, metrics: dict) -> None:
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")


def strip_prefix(values: dict, prefix: str) -> dict:
    return {k[len(prefix):]: float(v) for k, v in values.items() if k.startswith(prefix)}
