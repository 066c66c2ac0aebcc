"""Serve a web app that translates uploaded photos with a trained model (needs the serve extra:
pip install "ugatit[serve]").

Open http://HOST:PORT in a browser: upload one or several images (or take a webcam shot), choose the
direction, optionally crop each photo to the square around its face, and see the input, the
translation, the attention overlay and the auxiliary classifier's verdict; download the results. The
checkpoint may be any kind `ugatit translate` reads. Light models run at a size chosen in the page, full
models at their trained size. Everything the app writes (uploads, results) stays in a temporary folder
that is removed when the server stops (Ctrl-C or SIGTERM). Nothing is sent anywhere: Gradio's analytics
and share links are off. --host 0.0.0.0 serves other machines; put it behind a proxy with TLS and
authentication before it faces the internet (see docs/serve.md).
"""

from __future__ import annotations

import argparse

from ._types import checkpoint_argument, device_argument

#: How library errors' terms read on this command line (see `ugatit.errors.reword`).
FLAGS = {"device": "--device"}

HELP = "serve a web app that translates uploaded photos (needs the serve extra)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    checkpoint_argument(parser)
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface, for a server)"
    )
    parser.add_argument("--port", type=port_number, default=7860, help="port to listen on")
    device_argument(parser)


def port_number(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 1 to 65535, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    from ..serve import serve

    serve(args.checkpoint, host=args.host, port=args.port, device=args.device)
    return 0
