"""A generator for deployment without this package: ONNX (onnxruntime, TensorRT, ...) or TorchScript.

The exported graph takes `image` (B, 3, H, W) float32 in [-1, 1] and returns `translation` (B, 3, H, W)
in [-1, 1], `cam_logit` (B, 2) and `heatmap` (B, 1, H/4, W/4), float32 (a generator without CAM, one of
the paper's ablations, returns `translation` alone). The batch is dynamic; so are H and
W (multiples of 4, at least 32) for a light model. A full model's MLP reads the whole H/4 x W/4
attention map, so its graph is tied to the trained size.

fp16: convolution and linear weights are stored and multiplied in fp16 while the normalisations stay in
fp32, the same precision policy as training (see nn/layers.py); inputs and outputs stay float32. About
half the file; outputs differ from fp32 by ~1e-3.

The ONNX graph comes from torch's `torch.export`-based exporter (needs the `export` extra: onnx,
onnxscript; onnxruntime to run it).
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import logging
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import UserError
from ..nn.model import UGATIT
from ..nn.sizes import MIN_SIZE, SIZE_MULTIPLE
from ..utils.files import atomic_write, reported_write

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
INPUT_NAMES = ["image"]
OUTPUT_NAMES = ["translation", "cam_logit", "heatmap"]  # ONNX names must differ from the input's
#: Protobuf caps an ONNX file at 2 GiB; past this the weights go to a `.data` file beside it.
SINGLE_FILE_BYTES = 1_800_000_000


class DeployedGenerator(nn.Module):
    """One generator with float32 inputs and outputs, optionally with fp16 weights."""

    def __init__(self, generator: nn.Module, fp16: bool = False):
        super().__init__()
        self.generator = copy.deepcopy(generator).float()
        self.generator.requires_grad_(False)
        if fp16:
            for module in self.generator.modules():
                if isinstance(module, (nn.Conv2d, nn.Linear)):
                    module.half()
                    module.register_forward_pre_hook(_to_weight_dtype)
        self.eval()

    def forward(self, image: Tensor) -> tuple[Tensor, ...]:
        # None (a generator without CAM) is left out: a graph's outputs are tensors.
        return tuple(t.float() for t in self.generator(image) if t is not None)


def output_names(generator: nn.Module) -> list[str]:
    """The names of the exported graph's outputs (`OUTPUT_NAMES`, or `translation` alone without CAM)."""
    return OUTPUT_NAMES if getattr(generator, "cam", True) else OUTPUT_NAMES[:1]


def _to_weight_dtype(module: nn.Module, args: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    return (args[0].to(module.weight.dtype),)


def export_generator(model: UGATIT, direction: str, fmt: str, path: Path, fp16: bool = False) -> Path:
    """Write `model`'s generator for `direction` ("a2b" / "b2a") as ONNX or TorchScript at `path`."""
    if fmt not in FORMATS:
        raise UserError(f"`format` must be one of {', '.join(FORMATS)}, got {fmt!r}")
    deployed = DeployedGenerator(model.generator(direction), fp16=fp16)
    size = model.config.img_size
    example = torch.rand(2, 3, size, size) * 2 - 1  # batch 2: a batch of 1 would be fixed into the graph
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output folder {path.parent}: {exc.strerror or exc}") from None
    with torch.no_grad():
        if fmt == "torchscript":
            with warnings.catch_warnings():
                # torch 2.13 marks TorchScript deprecated; the tracer also notes a shape check inside
                # F.instance_norm that holds for every input size, so the trace does generalise.
                warnings.simplefilter("ignore", DeprecationWarning)
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                traced = torch.jit.trace(deployed, (example,), check_trace=False)
                # Serialised in memory (as torch.jit.save does for any file object), then written by
                # Python: libtorch's own file writer aborts the process (SIGABRT) when the disk fills up.
                buffer = io.BytesIO()
                torch.jit.save(traced, buffer)
            with reported_write(path):
                atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getbuffer()))
        else:
            _export_onnx(deployed, example, path, light=model.config.light, outputs=output_names(deployed.generator))
    return path


def _export_onnx(deployed: DeployedGenerator, example: Tensor, path: Path, light: bool, outputs: list[str]) -> None:
    if importlib.util.find_spec("onnxscript") is None:  # torch's exporter imports it lazily
        raise UserError('ONNX export needs onnx and onnxscript: pip install "ugatit[export]"') from None
    dim = torch.export.Dim
    shapes: dict[int, object] = {0: dim("batch")}
    if light:
        low = MIN_SIZE // SIZE_MULTIPLE
        shapes |= {2: SIZE_MULTIPLE * dim("height_4", min=low), 3: SIZE_MULTIPLE * dim("width_4", min=low)}
    large = sum(p.numel() * p.element_size() for p in deployed.parameters()) > SINGLE_FILE_BYTES
    # The exporter reports its progress on stdout, and warns about its own internals (FutureWarnings,
    # "torchvision is not installed") on stderr: none of it concerns the user's model.
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            program = torch.onnx.export(
                deployed,
                (example,),
                dynamo=True,
                input_names=INPUT_NAMES,
                output_names=outputs,
                dynamic_shapes=(shapes,),
                verbose=False,
            )
    finally:
        quiet.setLevel(level)
    for node in program.model.graph.all_nodes():
        node.metadata_props.clear()  # the exporter's debug notes: source paths and stack traces, 80% of a small file
    with reported_write(path):
        if large:  # the .data file is named after the .onnx file, so no write-then-rename
            try:
                program.save(str(path), external_data=True)
            except BaseException:
                for partial in (path, path.with_name(path.name + ".data")):
                    partial.unlink(missing_ok=True)
                raise
        else:
            atomic_write(path, lambda tmp: program.save(str(tmp), external_data=False))


def deployment_paths(output: Path, directions: list[str], fmt: str) -> dict[str, Path]:
    """Where each direction goes: `output` itself for one direction, NAME_a2b / NAME_b2a for both."""
    output = Path(output)
    if output.suffix != FORMATS[fmt]:
        output = output.with_name(output.name + FORMATS[fmt])
    if len(directions) == 1:
        return {directions[0]: output}
    return {d: output.with_name(f"{output.stem}_{d}{output.suffix}") for d in directions}
