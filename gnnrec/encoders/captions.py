"""MLLM captions ("describe what you see"): each item image becomes a rich text description, which the text
encoder then embeds as a new modality.

Two routes, both behind gnnrec's ``ChatLM`` (batching, JSONL answer cache keyed by the prompt and the image
bytes, so an interrupted run resumes and a changed image gets a new caption):

- ``backend: openai``: any OpenAI-compatible chat endpoint with image input (vLLM, Ollama, hosted APIs); the
  image travels as a base64 data URL in an ``image_url`` content part, with retries and a rate limit.
- ``backend: transformers``: any Hugging Face vision-language model through the transformers
  ``image-text-to-text`` pipeline (a hub name or a local folder with the model and its processor).

Missing or unreadable images get no caption: they are listed, and their rows are mean-filled after
embedding (the feature store's rule)."""
from __future__ import annotations

import base64
import io
import mimetypes
from pathlib import Path

from gnnrec.encoders.image import read_image
from gnnrec.errors import ConfigError
from gnnrec.llm.base import ChatLM, Messages

DEFAULT_PROMPT = ("Describe what you see in this image: the main objects or people, the setting, the style and "
                  "the mood, in two or three sentences.")


def data_url(path: Path) -> str:
    mime = mimetypes.guess_type(str(path))[0] or "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(Path(path).read_bytes()).decode('ascii')}"


def caption_messages(prompt: str, path: Path) -> Messages:
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(path)}},
                                         {"type": "text", "text": prompt}]}]


def decode_image(url: str):
    from PIL import Image

    header, _, payload = url.partition(",")
    if not header.startswith("data:"):
        raise ConfigError("the transformers captioner takes images as data URLs")
    return Image.open(io.BytesIO(base64.b64decode(payload))).convert("RGB")


class PipelineVLM(ChatLM):
    """A transformers ``image-text-to-text`` pipeline; greedy decoding unless a temperature is set."""

    def __init__(self, model: str, device: str | None = None, **kwargs):
        super().__init__(model=model, **kwargs)
        from transformers import pipeline

        self.pipe = pipeline("image-text-to-text", model=model, device=device or "cpu")

    def generate(self, batch: list[Messages]) -> list[str]:
        converted = [[{**m, "content": [{"type": "image", "image": decode_image(part["image_url"]["url"])}
                                        if part.get("type") == "image_url" else part for part in m["content"]]}
                      for m in messages] for messages in batch]
        sampling = {"do_sample": True, "temperature": self.temperature} if self.temperature > 0 else {"do_sample": False}
        out = self.pipe(text=converted, max_new_tokens=self.max_new_tokens, return_full_text=False,
                        generate_kwargs=sampling)
        return [str(o[0]["generated_text"] if isinstance(o, list) else o["generated_text"]).strip() for o in out]


def caption_images(lm: ChatLM, paths: list[Path | None], prompt: str = DEFAULT_PROMPT
                   ) -> tuple[list[str | None], dict[int, str]]:
    """One caption per image (``None`` where the image is missing or unreadable) and ``{row: problem}``."""
    problems, rows = {}, []
    for i, path in enumerate(paths):
        img, problem = read_image(path)
        if problem:
            problems[i] = problem
        else:
            rows.append(i)
    answers = lm.complete([caption_messages(prompt, paths[i]) for i in rows], desc="captions")
    captions: list[str | None] = [None] * len(paths)
    for i, text in zip(rows, answers):
        captions[i] = " ".join(text.split()) or None
        if captions[i] is None:
            problems[i] = "empty caption"
    return captions, problems
