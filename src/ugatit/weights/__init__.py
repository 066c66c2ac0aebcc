"""Weights in and out: training checkpoints (`checkpoints`), the generator export (`export`), the official
PyTorch layout (`official`), and loading any of them for inference (`loading`)."""

from .loading import load_model

__all__ = ["load_model"]
