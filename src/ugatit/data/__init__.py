"""Images in, tensors out: finding and decoding files (`images`), where a domain's images come from
(`sources`), the official transforms (`transforms`), the resumable training sampler (`unpaired`) and the
ordered loader that inference, evaluation and sample grids share (`loader`)."""

from .images import IMAGE_EXTENSIONS, BadImageError, BadImageWarning, find_images, load_rgb, resolve_domains, to_rgb
from .loader import Batch, image_batches, sized_batches
from .sources import FileSource, MemorySource, Source, SourceLike, as_source
from .transforms import eval_transform, tensor_to_uint8, to_pil, to_tensor, train_transform
from .unpaired import UnpairedLoader

__all__ = [
    "IMAGE_EXTENSIONS",
    "BadImageError",
    "BadImageWarning",
    "Batch",
    "FileSource",
    "MemorySource",
    "Source",
    "SourceLike",
    "UnpairedLoader",
    "as_source",
    "eval_transform",
    "find_images",
    "image_batches",
    "load_rgb",
    "resolve_domains",
    "sized_batches",
    "tensor_to_uint8",
    "to_pil",
    "to_rgb",
    "to_tensor",
    "train_transform",
]
