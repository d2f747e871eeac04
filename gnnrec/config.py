"""YAML experiment configs: defaults, file, then ``a.b=value`` overrides. Unknown keys are errors, never ignored."""
from __future__ import annotations

import copy
import inspect
import re
from pathlib import Path

import yaml

from gnnrec.errors import ConfigError
from gnnrec.schema import RunConfig, validate_arguments, validate_sections

DEFAULTS: dict = RunConfig().model_dump()  # every key, its type and range: gnnrec/schema.py


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
            out[key] = value
    return out


def flatten(cfg: dict, prefix: str = "") -> dict:
    """A nested config as {dotted key: leaf value} (``{"data": {"source": x}}`` -> ``{"data.source": x}``)."""
    out = {}
    for key, value in cfg.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
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
    return validate(cfg)


def validate(cfg: dict) -> dict:
    """Types and ranges of every key (fixed sections, model and generator arguments) and the monitor metric."""
    cfg = validate_sections(cfg)
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
    validate_arguments(make_synthetic, cfg["data"]["synthetic"], "data.synthetic")
    params = dict(cfg["model"])
    cls = model_class(params.pop("name", None))
    allowed = {k: v for k, v in model_params(cls).items() if k not in DEFAULTS["optim"]}  # optim.* set those
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown key(s) model.{', model.'.join(unknown)} for model '{cfg['model']['name']}'; "
                          f"valid keys: name, {', '.join(sorted(allowed))}")
    validate_arguments(cls, params, "model", skip=set(DEFAULTS["optim"]))


def dump_config(cfg: dict, path: Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
