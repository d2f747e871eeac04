"""LLM backends behind one interface (``ChatLM.complete``): local transformers models (GGUF included) and
OpenAI-compatible endpoints, with a JSONL answer cache, batching, retries and a rate limit."""
from __future__ import annotations

from gnnrec.errors import ConfigError
from gnnrec.llm.base import ChatLM, as_messages
from gnnrec.llm.cache import AnswerCache, prompt_key

BACKENDS = ("transformers", "openai")


def build_llm(backend: str = "transformers", cache: str | None = None, **options) -> ChatLM:
    """A backend from the ``llm`` config section; the options that belong to the other backend are dropped."""
    if backend == "transformers":
        from gnnrec.llm.transformers_lm import TransformersLM as cls

        unused = ("base_url", "api_key_env", "api_key", "retries", "requests_per_minute", "timeout")
    elif backend == "openai":
        from gnnrec.llm.openai_chat import OpenAIChatLM as cls

        unused = ("gguf_file", "device")
    else:
        raise ConfigError(f"llm.backend must be one of {BACKENDS}, got '{backend}'")
    for key in unused:
        options.pop(key, None)
    return cls(cache=cache, **options)


__all__ = ["ChatLM", "AnswerCache", "build_llm", "as_messages", "prompt_key", "BACKENDS"]
