"""Model registry: ``model.name`` in a config picks a class; the other ``model.*`` keys are its arguments.

Classes are imported on first use, so reading a config or listing models does not import every model.
"""
from __future__ import annotations

import importlib
import inspect

from gnnrec.errors import ConfigError
from gnnrec.models.base import Recommender

# name in configs -> "module:Class" under gnnrec.models
MODELS: dict[str, str] = {
    "mf": "mf:MF", "lightgcn": "lightgcn:LightGCN", "gte": "gte:GTE", "vbpr": "vbpr:VBPR",
    "freedom": "freedom:FREEDOM", "lattice": "lattice:LATTICE", "bm3": "bm3:BM3", "llmrec": "llmrec:LLMRec",
    "mgcn": "mgcn:MGCN", "lgmrec": "lgmrec:LGMRec", "dragon": "dragon:DRAGON", "smore": "smore:SMORE",
    "damrs": "damrs:DAMRS", "diffmm": "diffmm:DiffMM",
}
CLASS_NAMES = {target.split(":")[1]: name for name, target in MODELS.items()}


def model_params(cls) -> dict:
    """Constructor arguments (and defaults) of a model class and its bases, without ``dataset``."""
    params = {}
    for klass in reversed(cls.__mro__):
        if klass is object or not issubclass(klass, Recommender):
            continue
        for name, p in inspect.signature(klass.__init__).parameters.items():
            if name not in ("self", "dataset") and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                params[name] = p.default
    return params


def model_class(name: str) -> type[Recommender]:
    target = MODELS.get(name)
    if target is None:
        raise ConfigError(f"model.name must be one of {sorted(MODELS)}, got '{name}'")
    if isinstance(target, type):  # a class registered directly (plug-ins, tests)
        return target
    module, cls = target.split(":")
    return getattr(importlib.import_module(f"gnnrec.models.{module}"), cls)


def build_model(dataset, name: str, **params) -> Recommender:
    cls = model_class(name)
    allowed = model_params(cls)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown key(s) model.{', model.'.join(unknown)} for model '{name}'; "
                          f"valid keys: {', '.join(sorted(allowed))}")
    return cls(dataset, **params)


def __getattr__(attr: str):
    """``from gnnrec.models import FREEDOM`` imports that model's module on demand."""
    if attr in CLASS_NAMES:
        return model_class(CLASS_NAMES[attr])
    raise AttributeError(f"module 'gnnrec.models' has no attribute '{attr}'")


__all__ = ["MODELS", "Recommender", "build_model", "model_class", "model_params", *CLASS_NAMES]
