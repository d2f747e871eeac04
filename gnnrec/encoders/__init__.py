"""Offline modality encoders (text today) writing to a feature store of ``.npy`` files with manifests."""
from gnnrec.encoders.text import encode_texts, render_texts, resolve_model

__all__ = ["encode_texts", "render_texts", "resolve_model"]
