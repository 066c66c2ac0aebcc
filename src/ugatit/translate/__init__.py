"""Translation with a trained model: PIL images in memory (`images`), files and folders (`files`), and
the index page of a translated folder (`page`)."""

from .files import (
    ATTENTION_SUFFIX,
    THUMBNAIL_DIR,
    Result,
    TranslateOptions,
    check_output_dir,
    translate_folder,
    translate_paths,
)
from .images import TranslatedImage, resolve_size, translate_images
from .page import INDEX_NAME, write_index_html

__all__ = [
    "ATTENTION_SUFFIX",
    "INDEX_NAME",
    "THUMBNAIL_DIR",
    "Result",
    "TranslateOptions",
    "TranslatedImage",
    "check_output_dir",
    "resolve_size",
    "translate_folder",
    "translate_images",
    "translate_paths",
    "write_index_html",
]
