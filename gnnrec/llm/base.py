"""The one interface every LLM backend implements: chat prompts in, answer texts out.

``ChatLM.complete`` looks every prompt up in the answer cache, sends only the missing ones to the backend in
batches (with a progress bar), and caches each batch as soon as it returns. Backends implement ``generate``.
Decoding is deterministic (greedy, temperature 0) unless a temperature is set.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from tqdm.auto import tqdm

from gnnrec.llm.cache import AnswerCache, prompt_key

Messages = list[dict]  # OpenAI chat format: [{"role": "system"|"user"|"assistant", "content": ...}]


def as_messages(prompt: str | Messages, system: str | None = None) -> Messages:
    if isinstance(prompt, str):
        prompt = [{"role": "user", "content": prompt}]
    return ([{"role": "system", "content": system}] if system else []) + list(prompt)


@dataclass
class UsageStats:
    prompts: int = 0
    cached: int = 0
    generated: int = 0
    seconds: float = 0.0

    @property
    def prompts_per_second(self) -> float:
        return self.generated / self.seconds if self.seconds else float("nan")

    def as_dict(self) -> dict:
        return {"prompts": self.prompts, "cached": self.cached, "generated": self.generated,
                "seconds": round(self.seconds, 2), "prompts_per_second": round(self.prompts_per_second, 4)}


class ChatLM:
    """Base class: caching, batching and accounting around a backend's ``generate``."""

    def __init__(self, model: str, cache: str | None = None, batch_size: int = 8, max_new_tokens: int = 128,
                 temperature: float = 0.0, progress: bool = True):
        self.model = model
        self.cache = AnswerCache(cache)
        self.batch_size, self.max_new_tokens, self.temperature = batch_size, max_new_tokens, temperature
        self.progress = progress
        self.stats = UsageStats()

    def settings(self) -> dict:
        return {"max_new_tokens": self.max_new_tokens, "temperature": self.temperature}

    def generate(self, batch: list[Messages]) -> list[str]:
        raise NotImplementedError

    def complete(self, prompts: list[str | Messages], desc: str = "LLM") -> list[str]:
        messages = [as_messages(p) for p in prompts]
        keys = [prompt_key(self.model, m, self.settings()) for m in messages]
        answers = [self.cache.get(k) for k in keys]
        todo = [i for i, a in enumerate(answers) if a is None]
        self.stats.prompts += len(prompts)
        self.stats.cached += len(prompts) - len(todo)
        with tqdm(total=len(todo), desc=desc, disable=not self.progress or not todo, unit="prompt") as bar:
            for start in range(0, len(todo), self.batch_size):
                idx = todo[start : start + self.batch_size]
                began = time.perf_counter()
                out = self.generate([messages[i] for i in idx])
                self.stats.seconds += time.perf_counter() - began
                self.stats.generated += len(idx)
                for i, text in zip(idx, out):
                    answers[i] = text
                self.cache.put([(keys[i], answers[i]) for i in idx])
                bar.update(len(idx))
        return answers
