"""`ugatit serve`: a web app (Gradio) that translates uploaded photos and shows U-GAT-IT's attention
and its auxiliary classifier's verdict.

`translator` answers a request without knowing about the web (limits, translation, words for the
page); `app` lays out the page and wires it to the translator; `serve` here runs it: a temporary
folder for everything the app writes, the web framework kept offline, and the folder removed at the end.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from pathlib import Path

from ..errors import UserError

INSTALL_HINT = 'the web app needs Gradio: pip install "ugatit[serve]"'


def app_environment(temp_dir: str | os.PathLike[str]) -> dict[str, str]:
    """The environment that keeps Gradio and the Hugging Face hub library it imports off the network
    (no analytics, no version check, no hub calls) and every cache inside `temp_dir` (uploads, cached
    outputs, the hub's, torch's compiler cache, which torch creates under /tmp even without compiling).
    It must be in place before Gradio is imported: some of its modules read it at import."""
    temp_dir = Path(temp_dir)
    return {
        "GRADIO_ANALYTICS_ENABLED": "False",
        "GRADIO_TEMP_DIR": str(temp_dir / "gradio"),
        "GRADIO_SHARE": "False",
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HOME": str(temp_dir / "huggingface"),
        "TORCHINDUCTOR_CACHE_DIR": str(temp_dir / "torchinductor"),
    }


def serve(checkpoint: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 7860, device: str = "auto") -> None:
    """Load `checkpoint` (any kind `load_model` reads) and serve the app on host:port until Ctrl-C or
    SIGTERM; everything it wrote goes with its temporary folder."""
    name = Path(checkpoint).name
    if isinstance(checkpoint, str) and checkpoint.startswith("hf://"):
        # Fetched (or found in the hub cache) now, under the user's own hub settings: the app's
        # environment below points the hub library at the app's temporary folder.
        from ..weights.loading import resolve_checkpoint_path

        name, checkpoint = checkpoint, resolve_checkpoint_path(checkpoint)
    if not Path(checkpoint).exists():
        raise UserError(f"checkpoint not found: {checkpoint}")
    temp_dir = Path(tempfile.mkdtemp(prefix="ugatit-serve-"))
    saved = {name: os.environ.get(name) for name in app_environment(temp_dir)}
    try:
        os.environ.update(app_environment(temp_dir))
        try:
            from . import app
        except ImportError as exc:
            if exc.name in ("gradio", "gradio_client"):
                raise UserError(INSTALL_HINT) from None
            raise
        from ..utils.device import resolve_device
        from ..weights import load_model
        from .translator import WebTranslator

        # With the discriminators where the file has them: the page shows their attention too.
        model, _ = load_model(checkpoint, device=resolve_device(device), discriminators=True)
        translator = WebTranslator(model, temp_dir, checkpoint_name=name)
        # SIGTERM (a service manager, a container stop) ends the server like Ctrl-C, so the folder goes too.
        signal.signal(signal.SIGTERM, _interrupt)
        app.launch(app.build_page(translator), host=host, port=port, temp_dir=temp_dir)
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)
        # A caller in the same process (a test, a notebook) must not inherit caches in a removed folder.
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
