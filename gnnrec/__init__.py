"""gnnrec: graph-based multimodal recommendation on PyTorch Lightning."""
__version__ = "0.1.0"
