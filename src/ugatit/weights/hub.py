"""Models on the Hugging Face Hub: `hf://NAMESPACE/NAME[@REVISION][/PATH]` wherever a checkpoint is read.

The path is parsed by the hub client's own parser (`huggingface_hub.utils.parse_hf_uri`, the grammar
`hf download` and the Hub's docs use), and its files are fetched into, or found in, the hub client's
cache (`snapshot_download`: `HF_HUB_CACHE`, by default ~/.cache/huggingface/hub, laid out as
``models--NAMESPACE--NAME/{blobs,refs,snapshots}``), so that a model downloaded once by any tool is not
downloaded again. The local path that comes back is then read like any other checkpoint (a folder:
`loading.read_weights` finds the export, the run's checkpoints or a TF checkpoint in it).

- Without PATH, only weight files are fetched (`WEIGHT_PATTERNS`: the export, checkpoints, PaddleGAN
  and TF files), not the card, sample images or ONNX files.
- With PATH (a file, a folder, or a TF checkpoint's prefix), that and what shares its prefix.
- Offline (`HF_HUB_OFFLINE=1`), or when the Hub cannot be reached, the cache alone answers; a model
  missing there is one line saying what to download and where.

Private and gated models use the hub client's login (`hf auth login`, or `HF_TOKEN`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

SCHEME = "hf://"
INSTALL_HINT = 'hf:// paths need huggingface_hub: pip install "ugatit[hub]"'
#: What a whole-repository fetch downloads: the files `read_weights` can read.
WEIGHT_PATTERNS = [
    "*.safetensors",
    "*.json",
    "*.pt",
    "*.pdparams",
    "*.index",
    "*.data-*",
    "checkpoint",
    "checkpoints/*.pt",
]
#: Where `ugatit push` puts ONNX and TorchScript files: never fetched by a whole-repository read (its
#: `*.pt` files would match the patterns above, and the weights are in the export already).
DEPLOY_DIR = "deploy"


def is_hub_path(path: object) -> bool:
    """Whether `path` is an `hf://` reference (a `Path` never is: it would have lost the double slash)."""
    return isinstance(path, str) and path.startswith(SCHEME)


@dataclass(frozen=True)
class HubPath:
    """A parsed `hf://` reference to a model repository."""

    repo_id: str
    revision: str | None
    path: str  # inside the repository; "" for the whole of it

    def __str__(self) -> str:
        return (
            f"{SCHEME}{self.repo_id}"
            + (f"@{self.revision}" if self.revision else "")
            + (f"/{self.path}" if self.path else "")
        )


def _hub():
    try:
        import huggingface_hub
        from huggingface_hub.utils import parse_hf_uri  # noqa: F401 (huggingface_hub >= 2.4)
    except ImportError:
        raise UserError(INSTALL_HINT) from None
    return huggingface_hub


def parse_hub_path(text: str) -> HubPath:
    """`hf://NAMESPACE/NAME[@REVISION][/PATH]` as a `HubPath`; anything else is a `UserError`."""
    _hub()
    from huggingface_hub.errors import HfUriError
    from huggingface_hub.utils import parse_hf_uri

    try:
        uri = parse_hf_uri(text)
    except (HfUriError, ValueError) as exc:
        raise UserError(
            f"{text} is not a Hugging Face model path ({exc}); the form is hf://NAMESPACE/NAME[@REVISION][/PATH]"
        ) from None
    if uri.type != "model":
        raise UserError(f"{text} names a {uri.type} repository: a model is needed (hf://NAMESPACE/NAME)")
    return HubPath(uri.id, uri.revision, uri.path_in_repo.strip("/"))


def cache_dir() -> Path:
    """The hub client's cache, as it resolves it (HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def resolve_hub_path(text: str) -> Path:
    """The local path of `hf://...` after fetching its files, or finding them in the cache (see the
    module docstring). Every failure is a `UserError` of one line."""
    where = parse_hub_path(text)
    hub = _hub()
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    patterns = [where.path, f"{where.path}/*", f"{where.path}.*"] if where.path else WEIGHT_PATTERNS
    try:
        folder = hub.snapshot_download(
            where.repo_id,
            revision=where.revision,
            allow_patterns=patterns,
            ignore_patterns=None if where.path else [f"{DEPLOY_DIR}/*"],
            library_name="ugatit",
        )
    except LocalEntryNotFoundError:
        raise UserError(_not_cached(where, offline=constants.HF_HUB_OFFLINE)) from None
    except GatedRepoError:
        raise UserError(
            f"{where} is gated: accept its conditions on https://huggingface.co/{where.repo_id} and log in "
            "(hf auth login, or set HF_TOKEN)"
        ) from None
    except RevisionNotFoundError:
        raise UserError(f"{where}: the model has no revision {where.revision!r}") from None
    except RepositoryNotFoundError:
        raise UserError(
            f"{where}: no such model on the Hub, or a private one (log in with hf auth login, or set HF_TOKEN)"
        ) from None
    except (HfHubHTTPError, EntryNotFoundError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot fetch {where}: {first_line}") from None
    local = Path(folder) / where.path if where.path else Path(folder)
    if where.path and not (local.exists() or any(local.parent.glob(local.name + ".*"))):
        raise UserError(f"{where}: the model has no file or folder {where.path!r}")
    return local


def _not_cached(where: HubPath, offline: bool) -> str:
    download = f"hf download {where.repo_id}" + (f" --revision {where.revision}" if where.revision else "")
    why = "HF_HUB_OFFLINE is set" if offline else "the Hub cannot be reached"
    return (
        f"{where} is not in the Hugging Face cache ({cache_dir()}) and {why}: run `{download}` where there is a "
        "network and copy that cache here (or point HF_HUB_CACHE at a cache that has it)"
        + ("" if offline else ", or try again online")
    )
