"""Model registry: ``model.name`` in a config picks a class; the other ``model.*`` keys are its arguments."""
from __future__ import annotations

import inspect

from gnnrec.errors import ConfigError
from gnnrec.models.base import Recommender
from gnnrec.models.bm3 import BM3
from gnnrec.models.freedom import FREEDOM
from gnnrec.models.gte import GTE
from gnnrec.models.lattice import LATTICE
from gnnrec.models.lightgcn import LightGCN
from gnnrec.models.llmrec import LLMRec
from gnnrec.models.mf import MF
from gnnrec.models.vbpr import VBPR

MODELS: dict[str, type[Recommender]] = {"mf": MF, "lightgcn": LightGCN, "gte": GTE, "vbpr": VBPR, "freedom": FREEDOM,
                                      "lattice": LATTICE, "bm3": BM3, "llmrec": LLMRec}


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
    if name not in MODELS:
        raise ConfigError(f"model.name must be one of {sorted(MODELS)}, got '{name}'")
    return MODELS[name]


def build_model(dataset, name: str, **params) -> Recommender:
    cls = model_class(name)
    allowed = model_params(cls)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown key(s) model.{', model.'.join(unknown)} for model '{name}'; "
                          f"valid keys: {', '.join(sorted(allowed))}")
    return cls(dataset, **params)


__all__ = ["MODELS", "Recommender", "MF", "LightGCN", "GTE", "VBPR", "FREEDOM", "LATTICE", "BM3", "LLMRec", "build_model", "model_class", "model_params"]
