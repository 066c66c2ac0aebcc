"""PaddleGAN's U-GAT-IT weights (`.pdparams`) without Paddle, and without running pickled code.

PaddleGAN (`ppgan.utils.filesystem.save`, called by `Trainer.save`) writes a plain pickle of
`{'genA2B': state_dict, ..., 'disLB': state_dict}` whose tensors are numpy arrays: the training
checkpoint adds `epoch`, `optimG`, `optimD`, and Paddle >= 3 a `StructuredToParameterName@@` name
table. The file is read by an unpickler that allows only what such files reference (numpy's array and
scalar reconstruction under their numpy 1 and 2 names, `numpy.dtype`, plain containers) and refuses
everything else before anything runs.

PaddleGAN's networks are the official ones, so the state dicts map onto the official layout with two
changes: Paddle stores Linear weights [in, out], so every 2-D weight is transposed (the square ones too:
a shape check would not notice), and the encoder's `InstanceNorm2D` layers carry frozen `scale` (1) and
`bias` (0) that PyTorch's InstanceNorm2d has not, which are checked and dropped. Everything else must be
an official key: `load_official_state_dict` rejects any other, so no tensor is silently left out.
"""

from __future__ import annotations

import collections
import pickle
import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from ..errors import UserError
from ..nn.model import DISCRIMINATORS, GENERATORS, NETWORK_NAMES

#: Top-level entries of PaddleGAN files that hold no network weights.
IGNORED_KEYS = ("StructuredToParameterName@@", "epoch", "optimG", "optimD")
#: The generator encoder's frozen InstanceNorm2D affine: DownBlock.{2,6,10} and the residual blocks' norms.
FROZEN_NORM = re.compile(r"^DownBlock\.(2|6|10|\d+\.conv_block\.[26])\.(?P<param>scale|bias)$")

try:  # numpy >= 1.26 (numpy 2 pickles under this name)
    from numpy._core.multiarray import _reconstruct, scalar
except ImportError:  # pragma: no cover - numpy < 1.26
    from numpy.core.multiarray import _reconstruct, scalar


class RefusedClass(pickle.UnpicklingError):
    pass


def _checked_dtype(*args: Any) -> np.dtype:
    dtype = np.dtype(*args)
    if dtype.hasobject:  # an object array would carry arbitrary pickled objects
        raise RefusedClass("an object dtype")
    return dtype


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Resolves only the names a .pdparams holds; any other global (os.system, builtins.eval, ...) is
    refused when the pickle asks for it, before it could be called."""

    ALLOWED: ClassVar[dict[tuple[str, str], Any]] = {
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "scalar"): scalar,
        ("numpy.core.multiarray", "scalar"): scalar,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): _checked_dtype,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("builtins", "tuple"): tuple,
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise RefusedClass(f"{module}.{name}") from None


def load_pdparams(path: Path) -> Any:
    """The pickled object of a .pdparams, with numpy arrays for tensors (see `_NumpyOnlyUnpickler`)."""
    try:
        with open(path, "rb") as f:
            return _NumpyOnlyUnpickler(f, encoding="latin1").load()
    except FileNotFoundError:
        raise UserError(f"checkpoint not found: {path}") from None
    except RefusedClass as exc:
        raise UserError(
            f"refused to load {path}: it references {exc}, which PaddleGAN weights never hold "
            "(only numpy arrays); nothing in it was run"
        ) from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    except Exception as exc:  # every kind of damaged pickle
        raise UserError(
            f"cannot read {path}: corrupted, truncated or not a .pdparams file ({type(exc).__name__})"
        ) from None


def read_pdparams(path: Path) -> dict[str, dict[str, Tensor]]:
    """The networks of a PaddleGAN U-GAT-IT weight or checkpoint file in the official PyTorch layout:
    all six, or the two generators of a generator-only file."""
    content = load_pdparams(path)
    if not isinstance(content, dict):
        raise UserError(f"{path} is not PaddleGAN U-GAT-IT weights: it holds a {type(content).__name__}, not a dict")
    networks = [k for k in content if k in NETWORK_NAMES]
    others = [str(k) for k in content if k not in NETWORK_NAMES and k not in IGNORED_KEYS]
    if not all(name in content for name in GENERATORS) or others:
        keys = ", ".join(map(str, list(content)[:6])) + (", ..." if len(content) > 6 else "")
        raise UserError(
            f"{path} is not PaddleGAN U-GAT-IT weights: its entries are {keys or 'none'} (expected "
            f"{', '.join(NETWORK_NAMES)}; a generator-only file needs genA2B and genB2A)"
        )
    if any(name in content for name in DISCRIMINATORS) and not all(name in content for name in DISCRIMINATORS):
        networks = list(GENERATORS)  # an incomplete set of discriminators is of no use
    return {name: _official_network(path, name, content[name]) for name in networks}


def _official_network(path: Path, name: str, state: Any) -> dict[str, Tensor]:
    if not isinstance(state, dict):
        raise UserError(f"{path}: '{name}' is a {type(state).__name__}, not a state dict")
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if isinstance(value, tuple) and len(value) == 2:  # paddle.save of raw tensors: (name, array)
            value = value[1]
        if not isinstance(value, np.ndarray) or value.dtype.hasobject:
            raise UserError(f"{path}: {name}.{key} is a {type(value).__name__}, not a numeric array")
        frozen = FROZEN_NORM.match(key) if name in GENERATORS else None
        if frozen:
            expected = 1.0 if frozen.group("param") == "scale" else 0.0
            if not np.all(value == expected):
                raise UserError(
                    f"{path}: {name}.{key} is not {expected:g}: the official networks have no place for "
                    "a learned affine in the encoder's instance norms"
                )
            continue
        tensor = torch.from_numpy(np.array(value, dtype=np.float32))
        if key.endswith(("weight", "weight_orig")) and tensor.ndim == 2:
            tensor = tensor.t().contiguous()  # Paddle Linear weights are [in, out]
        out[key] = tensor
    return out
