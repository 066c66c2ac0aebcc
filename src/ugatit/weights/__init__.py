"""Weights in and out: training checkpoints (`checkpoints`), the generator export (`export`), the official
PyTorch layout (`official`), PaddleGAN's .pdparams (`paddle`), the authors' TensorFlow checkpoints
(`tf_checkpoint` reads the format, `tf` maps the names), ONNX / TorchScript (`deploy`), and loading any of
them (`loading`: the kind is told by the files). See docs/weights.md."""

from .loading import load_model

__all__ = ["load_model"]
