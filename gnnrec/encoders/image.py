"""CLIP embeddings with open_clip: item images (and CLIP text, so both share one space).

``model`` is any open_clip architecture (``ViT-B-32``...) and ``pretrained`` a tag (``laion2b_s34b_b79k``)
or a local checkpoint file; ``model_config`` registers a JSON architecture file first (a custom or small
model; with no ``pretrained`` it is randomly initialised, which is how the tests run the real code path).

Missing or unreadable images are never skipped silently: they are listed (returned, logged, and written to
the manifest) and their rows are the mean of the readable images' embeddings (the documented fill rule).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from gnnrec.data.scaling import fill_missing
from gnnrec.errors import ConfigError, DataError, GnnrecError

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")


DEFAULT_ARCH = "ViT-B-32"


def architecture(model: str | None, model_config: str | None) -> str:
    """The architecture name: as given, else the stem of the registered JSON file, else ViT-B-32."""
    return model or (Path(model_config).stem if model_config else DEFAULT_ARCH)


def load_clip(model: str | None, pretrained: str | None = None, model_config: str | None = None, device: str = "cpu"):
    """``(model, preprocess, tokenizer)`` in eval mode."""
    import open_clip

    if model_config:
        path = Path(model_config)
        if not path.is_file():
            raise ConfigError(f"open_clip model config not found: {path}")
        open_clip.add_model_config(path)
    model = architecture(model, model_config)
    if model not in open_clip.list_models():
        raise ConfigError(f"unknown open_clip architecture '{model}' (see open_clip.list_models(), or pass a "
                          "JSON architecture with --model-config)")
    try:
        net, _, preprocess = open_clip.create_model_and_transforms(model, pretrained=pretrained or None, device=device)
    except Exception as exc:  # open_clip and huggingface_hub raise many types (RuntimeError, OSError, HTTP errors)
        if not pretrained:
            raise
        raise GnnrecError(f"could not load the open_clip weights '{pretrained}' for {model} ({type(exc).__name__}: "
                          f"{str(exc)[:200]}); without access to the model hub, download them on a connected machine "
                          "and give the file's path as pretrained") from None
    return net.eval(), preprocess, open_clip.get_tokenizer(model)


def image_paths(folder: str | Path, ids) -> list[Path | None]:
    """The image of each item id in ``folder`` (``<id>.jpg``, ``.png``...), or None when there is none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("image folder not found", path=folder)
    by_stem: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in IMAGE_SUFFIXES:
            by_stem.setdefault(p.stem, p)
    return [by_stem.get(str(i)) for i in ids]


def read_image(path: Path | None):
    from PIL import Image, UnidentifiedImageError

    if path is None:
        return None, "missing"
    try:
        with Image.open(path) as img:
            return img.convert("RGB"), None
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        return None, f"unreadable ({type(exc).__name__})"


def image_rows(paths: list[Path | None], model, preprocess, batch_size: int = 64, device: str = "cpu",
               progress: bool = True) -> np.ndarray:
    """L2-normalised image embeddings, one row per path; NaN rows where the image is missing or unreadable."""
    import torch

    out = np.full((len(paths), model.visual.output_dim), np.nan, dtype=np.float32)
    for start in tqdm(range(0, len(paths), batch_size), desc="images", disable=not progress, unit="batch"):
        idx, tensors = [], []
        for i in range(start, min(start + batch_size, len(paths))):
            img, problem = read_image(paths[i])
            if not problem:
                idx.append(i)
                tensors.append(preprocess(img))
        if tensors:
            with torch.no_grad():
                out[idx] = model.encode_image(torch.stack(tensors).to(device), normalize=True).float().cpu().numpy()
    return out


def fill_problem_rows(rows: np.ndarray, paths: list[Path | None]) -> tuple[np.ndarray, dict[int, str]]:
    """NaN rows (missing or unreadable images) -> the mean of the others, with ``{row: problem}``, logged."""
    bad = np.flatnonzero(np.isnan(rows).any(axis=1))
    problems = {int(i): read_image(paths[i])[1] or "unreadable" for i in bad}
    if problems:
        first = ", ".join(f"row {i}: {p}" for i, p in list(problems.items())[:5])
        log.warning("%d of %d images missing or unreadable, filled with the mean embedding (%s%s)", len(problems),
                    len(paths), first, "..." if len(problems) > 5 else "")
    return fill_missing([None if i in problems else r for i, r in enumerate(rows)]), problems


def encode_images(paths: list[Path | None], model, preprocess, batch_size: int = 64, device: str = "cpu",
                  progress: bool = True) -> tuple[np.ndarray, dict[int, str]]:
    """L2-normalised image embeddings, one row per path, and ``{row: problem}`` for the mean-filled rows."""
    return fill_problem_rows(image_rows(paths, model, preprocess, batch_size, device, progress), paths)


def encode_clip_texts(texts: list[str], model, tokenizer, batch_size: int = 256, device: str = "cpu",
                      progress: bool = True) -> np.ndarray:
    """L2-normalised CLIP text embeddings (same space as ``encode_images``)."""
    import torch

    out = []
    for start in tqdm(range(0, len(texts), batch_size), desc="clip text", disable=not progress, unit="batch"):
        with torch.no_grad():
            tokens = tokenizer(texts[start : start + batch_size]).to(device)
            out.append(model.encode_text(tokens, normalize=True).float().cpu().numpy())
    return np.concatenate(out).astype(np.float32)
