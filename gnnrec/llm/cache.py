"""A JSONL cache of LLM answers keyed by a hash of (model, messages, decoding settings).

One JSON object per line, appended and flushed as answers arrive, so an interrupted run resumes where it
stopped and a rerun costs nothing. A truncated last line (a run killed mid-write) is reported and ignored.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from gnnrec.hashing import sha256_hex

log = logging.getLogger(__name__)


def prompt_key(model: str, messages: list[dict], settings: dict) -> str:
    payload = json.dumps({"model": model, "messages": messages, "settings": settings}, sort_keys=True,
                         ensure_ascii=False)
    return sha256_hex([payload])


class AnswerCache:
    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self.answers: dict[str, str] = {}
        if self.path and self.path.is_file():
            self._load()

    def _load(self) -> None:
        bad = 0
        with open(self.path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    row = json.loads(line)
                    self.answers[row["key"]] = row["answer"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    bad += 1
        if bad:
            log.warning("%s: ignored %d unreadable line(s) (an interrupted write); those prompts are asked again",
                        self.path, bad)

    def get(self, key: str) -> str | None:
        return self.answers.get(key)

    def put(self, rows: list[tuple[str, str]]) -> None:
        """Store ``(key, answer)`` pairs and append them to the file at once."""
        self.answers.update(rows)
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            for key, answer in rows:
                fh.write(json.dumps({"key": key, "answer": answer}, ensure_ascii=False) + "\n")
            fh.flush()

    def __len__(self) -> int:
        return len(self.answers)
