"""The page: uploads, a webcam shot, the direction, the face-crop toggle, and per image the input, the
translation, the attention overlay and the classifier's verdict, with the files to download; and, in a
second tab (`live_tab`), the browser's camera translated frame by frame.

Imports Gradio: import it only after `app_environment` is in place (`ugatit.serve.serve` does).
The element ids (`upload`, `translate`, `status`, ...) are what the browser tests look for.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import gradio as gr
from PIL import Image

from ..domains import source_and_target
from .translator import KEEP_SECONDS, MAX_FILE_MB, MAX_IMAGES, WebTranslator

API_NAME = "translate"
CSS = "#status p, #verdict p { margin: 0.2em 0; }"


def _direction_radio(translator: WebTranslator, elem_id: str) -> gr.Radio:
    """The choice of direction ("A to B"), the translator's first one selected; one in each tab."""
    labels = [(" to ".join(source_and_target(d)), d) for d in translator.directions]
    return gr.Radio(labels, value=translator.directions[0], label="Direction", elem_id=elem_id)


def build_app(translator: WebTranslator) -> gr.Blocks:
    """The Blocks app around `translator`. Requests queue and run one at a time: a forward pass
    already uses every core, and one model serves them all."""
    # delete_cache: Gradio's copies of uploads and results go after an hour, like the request folders.
    with gr.Blocks(
        title="ugatit: U-GAT-IT translation", analytics_enabled=False, delete_cache=(600, KEEP_SECONDS)
    ) as demo:
        gr.Markdown(
            "## U-GAT-IT image-to-image translation\n"
            f"{translator.describe()} Upload up to {MAX_IMAGES} images ({MAX_FILE_MB} MB each), choose the "
            f"direction and press **Translate**. {translator.describe_attention()}"
        )
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                files = gr.File(label="Images", file_count="multiple", file_types=["image"], elem_id="upload")
                webcam = gr.Image(
                    label="Or a webcam shot",
                    sources=["webcam"],
                    type="filepath",
                    format="png",
                    height=220,
                    elem_id="webcam",
                )
                direction = _direction_radio(translator, "direction")
                face_crop = gr.Checkbox(
                    label="Face-centred crop (find the largest face and translate a square around it, as "
                    "selfie2anime data is framed)",
                    value=False,
                    elem_id="face-crop",
                )
                size = gr.Slider(
                    32,
                    translator.max_size,
                    value=translator.trained_size,
                    step=4,
                    label="Model size (px): the square a light model runs at",
                    visible=translator.light,
                    elem_id="size",
                )
                button = gr.Button("Translate", variant="primary", elem_id="translate")
                status = gr.Markdown(elem_id="status")
            with gr.Column(scale=3):
                with gr.Row():
                    galleries = [
                        gr.Gallery(
                            label=label,
                            format="png",
                            columns=1,
                            object_fit="contain",
                            height=300,
                            interactive=False,
                            elem_id=elem_id,
                        )
                        for label, elem_id in (
                            ("Input", "inputs"),
                            ("Translation", "translations"),
                            ("Attention", "attention"),
                        )
                    ]
                verdict = gr.Markdown(elem_id="verdict")
                downloads = gr.File(
                    label="Download", file_count="multiple", interactive=False, height=150, elem_id="downloads"
                )

        refuse_in_one_line(files, "Images")
        refuse_in_one_line(webcam, "Webcam shot")

        # The parameter names are the API's (gradio_client's keyword arguments).
        def translate(images, webcam_shot, direction, face_crop, size):
            paths = [*(images or []), *([webcam_shot] if webcam_shot else [])]
            answer = translator(paths, direction, face_crop, size)
            return (
                answer.inputs,
                answer.outputs,
                answer.attention,
                answer.verdicts,
                answer.downloads or None,
                answer.message,
            )

        button.click(
            translate,
            inputs=[files, webcam, direction, face_crop, size],
            outputs=[*galleries, verdict, downloads, status],
            api_name=API_NAME,
            concurrency_limit=1,
        )
    return demo


def refuse_in_one_line(component: gr.components.Component, label: str) -> None:
    """What Gradio refuses before `translate` runs (through the API: a file whose name is not an image's
    for the upload box, a file that does not decode as an image for the webcam box) reaches the caller as
    a message and the server log as one line, instead of Gradio's traceback of its own preprocessing."""
    preprocess = component.preprocess

    def checked(payload):
        try:
            return preprocess(payload)
        except gr.Error as exc:
            reason = str(exc.message)
        except (OSError, ValueError, Image.DecompressionBombError):
            reason = "not an image, or a format Pillow cannot read"
        print(f"ugatit serve: refused a request: {label}: {reason}", file=sys.stderr, flush=True)
        raise gr.Error(f"{label}: {reason}", print_exception=False)

    component.preprocess = checked  # Gradio calls the instance's preprocess


def build_page(translator: WebTranslator) -> gr.Blocks:
    """The whole page: the photo app of `build_app` in one tab, the live camera (`live_tab`) in another."""
    photos = build_app(translator)
    with (
        gr.Blocks(
            title="ugatit: U-GAT-IT translation", analytics_enabled=False, delete_cache=(600, KEEP_SECONDS)
        ) as page,
        gr.Tabs(elem_id="tabs"),
    ):
        with gr.Tab("Photos", id="photos", elem_id="photos-tab"):
            photos.render()
        with gr.Tab("Live camera", id="live", elem_id="live-tab"):
            live_tab(translator)
    return page


#: Seconds between the camera frames the page offers; the server always takes the newest (frames that
#: come while one is being translated are dropped), so the rate is what the machine allows, up to
#: 1 / LIVE_EVERY. (Gradio's trigger_mode="always_last" would stop a stream after its first frame.)
LIVE_EVERY = 0.04
LIVE_QUALITY = 85  # JPEG quality of the frames sent back
LIVE_STREAMS = 4  # camera streams translated at once, sharing the machine; Gradio queues the others


def live_html(image) -> str:
    """A translated frame as an <img> holding it inline (JPEG), or nothing."""
    if image is None:
        return ""
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=LIVE_QUALITY)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (
        f'<img id="live-frame" alt="the translated camera frame" src="data:image/jpeg;base64,{data}" '
        'style="max-width:100%;max-height:360px;display:block;margin:auto">'
    )


def live_tab(translator: WebTranslator) -> None:
    """The live tab's elements and its stream, inside the current Blocks: the browser's camera, each
    frame translated around the tracked face (see `live`), and the measured frames/s."""
    from .live import LiveTranslator

    live = LiveTranslator(translator.model)
    gr.Markdown(
        "Your camera, translated frame by frame as fast as this machine can: the largest face is tracked, "
        "the square around it translated and pasted back into the picture. Nothing is recorded or kept."
    )
    with gr.Row():
        camera = gr.Image(
            label="Camera",
            sources=["webcam"],
            streaming=True,
            type="numpy",
            height=360,
            elem_id="live-camera",
        )
        # The frames go back inline (a data URL in the page), not as files: nothing of the camera is
        # written anywhere, and an hour of frames does not pile up in the app's folder.
        shown = gr.HTML(label="Translation", elem_id="live-output", min_height=360)
    with gr.Row():
        direction = _direction_radio(translator, "live-direction")
        face_crop = gr.Checkbox(
            label="Face crop (translate the square around the face)", value=True, elem_id="live-face"
        )
        paste = gr.Checkbox(label="Paste the face back into the picture", value=True, elem_id="live-paste")
    rate = gr.Markdown("Start the camera to see it translated.", elem_id="live-rate")
    session = gr.State(None)  # a LiveSession per browser tab, made on its first frame

    def frame(image, direction, face_crop, paste, state):
        translated, words, state = live(image, direction, face_crop, paste, state)
        return live_html(translated), words, state

    camera.stream(
        frame,
        inputs=[camera, direction, face_crop, paste, session],
        outputs=[shown, rate, session],
        api_name="live",
        stream_every=LIVE_EVERY,
        concurrency_limit=LIVE_STREAMS,
        show_progress="hidden",
        time_limit=None,
    )


def launch(demo: gr.Blocks, host: str, port: int, temp_dir: str | os.PathLike[str]) -> None:
    """Serve until Ctrl-C (or SIGTERM, which `serve` turns into one): no share link, no server-side
    rendering (it needs Node), no MCP server, files only from `temp_dir`, uploads bounded by size."""
    demo.queue(max_size=32)
    try:
        demo.launch(
            server_name=host,
            server_port=port,
            share=False,
            ssr_mode=False,
            mcp_server=False,
            pwa=False,
            enable_monitoring=False,
            show_error=False,
            inbrowser=False,
            max_file_size=f"{MAX_FILE_MB}mb",
            allowed_paths=[str(Path(temp_dir))],
            css=CSS,
            quiet=True,
            prevent_thread_lock=True,
        )
    except OSError as exc:
        from ..errors import UserError

        raise UserError(f"cannot serve on {host}:{port}: {exc}") from None
    shown = f"[{host}]" if ":" in host else host
    where = f"every interface, port {port}" if host in ("0.0.0.0", "::") else f"http://{shown}:{port}"
    print(f"ugatit serve: listening on {where} (Ctrl-C stops it)", flush=True)
    try:
        while demo.is_running:
            time.sleep(0.2)
    except KeyboardInterrupt:
        print("ugatit serve: stopping", flush=True)
    finally:
        demo.close(verbose=False)
