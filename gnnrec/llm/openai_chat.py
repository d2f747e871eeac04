"""Any OpenAI-compatible chat-completions endpoint (vLLM, Ollama, llama.cpp server, hosted APIs).

Plain HTTP with the standard library: ``POST {base_url}/chat/completions``. Transient failures (connection
errors, HTTP 429 and 5xx) are retried with exponential back-off; ``requests_per_minute`` spaces requests.
The key is ``api_key`` when given, else the environment variable named by ``api_key_env``.
Message contents may be lists of parts, e.g. ``{"type": "image_url", ...}`` for vision models.
"""
from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request

from gnnrec.errors import GnnrecError
from gnnrec.llm.base import ChatLM, Messages

log = logging.getLogger(__name__)
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class EndpointError(GnnrecError):
    """The endpoint refused a request for good (bad key, unknown model) or kept failing after retries."""


class RateLimiter:
    """At most ``per_minute`` calls per minute, spaced evenly (``None``: no limit)."""

    def __init__(self, per_minute: float | None, clock=time.monotonic, sleep=time.sleep):
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self.clock, self.sleep = clock, sleep
        self.next_time = 0.0

    def wait(self) -> None:
        now = self.clock()
        if now < self.next_time:
            self.sleep(self.next_time - now)
            now = self.next_time
        self.next_time = now + self.interval


class OpenAIChatLM(ChatLM):
    def __init__(self, model: str, base_url: str = "http://localhost:8000/v1", api_key_env: str = "OPENAI_API_KEY",
                 api_key: str | None = None, retries: int = 5, backoff: float = 1.0, timeout: float = 120.0,
                 requests_per_minute: float | None = None, seed: int | None = 0, **kwargs):
        super().__init__(model=model, **kwargs)
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key = api_key or (os.environ.get(api_key_env) if api_key_env else None)
        self.retries, self.backoff, self.timeout, self.seed = retries, backoff, timeout, seed
        self.limiter = RateLimiter(requests_per_minute)

    def request(self, messages: Messages) -> str:
        body = {"model": self.model, "messages": messages, "max_tokens": self.max_new_tokens,
                "temperature": self.temperature}
        if self.seed is not None:
            body["seed"] = self.seed
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(body).encode("utf-8")
        for attempt in range(self.retries + 1):
            self.limiter.wait()
            try:
                req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    reply = json.loads(resp.read().decode("utf-8"))
                return reply["choices"][0]["message"]["content"] or ""
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode("utf-8", "replace")[:300]
                if exc.code not in RETRY_STATUS:
                    raise EndpointError(f"{self.url}: HTTP {exc.code}: {detail}") from None
                problem = f"HTTP {exc.code}"
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                problem = str(getattr(exc, "reason", exc))
            except (json.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
                raise EndpointError(f"{self.url}: not an OpenAI chat-completions reply ({exc!r})") from None
            if attempt < self.retries:
                delay = self.backoff * 2**attempt
                log.warning("%s: %s; retry %d/%d in %.1f s", self.url, problem, attempt + 1, self.retries, delay)
                time.sleep(delay)
        raise EndpointError(f"{self.url}: {problem} after {self.retries} retries")

    def generate(self, batch: list[Messages]) -> list[str]:
        return [self.request(m) for m in batch]
