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


def load_run(path: str | Path, overrides: dict | None = None):
    """Returns (config, dataset, model in eval mode). ``overrides`` replace config sections (e.g. data.source)."""
    ckpt_path = resolve_checkpoint(path)
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    cfg = ckpt.get("gnnrec_config")
    if cfg is None:
        raise GnnrecError(f"{ckpt_path} was not written by gnnrec train (no gnnrec_config inside)")
    for section, values in (overrides or {}).items():
        cfg[section] = {**cfg[section], **values}
    dataset = dataset_from_config(cfg)
    model = model_from_config(cfg, dataset)
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return cfg, dataset, model
