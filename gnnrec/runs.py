"""Re-open a finished run: checkpoint (or run folder) -> config, dataset and model with the trained weights."""
from __future__ import annotations

from pathlib import Path

import torch

from gnnrec.errors import GnnrecError
from gnnrec.train import dataset_from_config, model_from_config


def resolve_checkpoint(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoints" / "best.ckpt"
    if not path.is_file():
        raise GnnrecError(f"checkpoint not found: {path} (give a .ckpt file or a run folder)")
    return path


def read_checkpoint(path: Path) -> dict:
    """A checkpoint's contents; a truncated or foreign file is a clear error naming it, not a torch traceback."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types (RuntimeError, UnpicklingError, EOFError, ...)
        raise GnnrecError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {str(exc)[:200]}); "
                          "it may be truncated (an interrupted copy or a full disk) or not written by gnnrec") from None
    if not isinstance(ckpt, dict):
        raise GnnrecError(f"{path}: not a gnnrec checkpoint (holds a {type(ckpt).__name__}, not a dict)")
    return ckpt


def load_run(path: str | Path, overrides: dict | None = None):
    """Returns (config, dataset, model in eval mode). ``overrides`` replace config sections (e.g. data.source)."""
    ckpt_path = resolve_checkpoint(path)
    ckpt = read_checkpoint(ckpt_path)
    cfg = ckpt.get("gnnrec_config")
    if cfg is None:
        raise GnnrecError(f"{ckpt_path} was not written by gnnrec train (no gnnrec_config inside)")
    for section, values in (overrides or {}).items():
        cfg[section] = {**cfg[section], **values}
    dataset = dataset_from_config(cfg)
    model = model_from_config(cfg, dataset)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except (KeyError, RuntimeError) as exc:
        raise GnnrecError(f"{ckpt_path}: its weights do not fit the model its config describes ({str(exc)[:300]})") from None
    model.eval()
    return cfg, dataset, model
