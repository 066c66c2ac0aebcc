"""Sharing a trained model on the Hugging Face Hub: the folder `ugatit push` uploads, and the upload.

The folder (`prepare_folder`), every file of which is uploaded as it is:

- ``ugatit_generators.safetensors`` and ``ugatit_generators.json``: both generators and the config that
  rebuilds them (our export: the source's own bytes when it is an export already, else exported from
  it in fp16, as training exports);
- ``README.md``: the model card (`model_card`): what it translates, config and variant, iterations,
  the metrics the run measured, the sample grids, how to use it with `ugatit` (command line and Python)
  and without (ONNX, TorchScript), and the licence in the card's metadata;
- ``metrics.json``: every evaluation the run logged (its `eval` events), when it logged any;
- ``samples/a2b.png``, ``samples/b2a.png``: the run's newest sample grids (test images first), or grids
  made from `--samples` images when the source has no run around it;
- ``deploy/ugatit_a2b.onnx`` ... with `formats`: the generators for onnxruntime or libtorch (see
  `weights.deploy`); kept in `deploy/`, which `hf://` loading does not fetch.

Where the run is: the folder of a run checkpoint (``RUN/checkpoints/step_N.pt``, ``best.pt``), of its
export (``RUN/export/``), or the run folder itself, recognised by its ``log.jsonl``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .config import Config
from .errors import UserError
from .weights.hub import DEPLOY_DIR

EXPORT_NAME = "ugatit_generators.safetensors"
CARD_NAME = "README.md"
METRICS_NAME = "metrics.json"
SAMPLES_DIR = "samples"
LOG_FILE = "log.jsonl"  # a run's log (training.run_dir.LOG_FILE), read here without importing training
DEFAULT_LICENSE = "other"
SAMPLE_ROWS = 4
TAGS = ["u-gat-it", "gan", "image-to-image-translation", "unpaired-image-to-image-translation", "ugatit"]
_STEP_FILE = re.compile(r"^step_(\d+)\.pt$")
_SAMPLE_FILE = re.compile(r"^(train|test)_(a2b|b2a)_(\d+)\.png$")


@dataclass
class Share:
    """What the folder holds and the card says."""

    repo_id: str
    source: str
    kind: str  # the source's weights kind ("training checkpoint", "export", ...)
    config: Config
    parameters: int  # of the two generators
    steps: int | None  # iterations trained, where the run or checkpoint says
    processes: int | None = None  # that trained together (a training checkpoint says; an export does not)
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    samples: dict[str, str] = field(default_factory=dict)  # direction -> path in the folder
    sample_note: str = ""
    domain_a: str = "domain A"
    domain_b: str = "domain B"
    license: str = DEFAULT_LICENSE
    deploy: dict[str, dict[str, str]] = field(default_factory=dict)  # format -> direction -> path in the folder
    weights_name: str = ""  # the file the weights were read from
    export_bytes: int = 0
    export_dtype: str = "float16"


def prepare_folder(
    source: str | os.PathLike[str],
    repo_id: str,
    folder: str | os.PathLike[str],
    *,
    domain_a: str = "domain A",
    domain_b: str = "domain B",
    license: str = DEFAULT_LICENSE,
    formats: Sequence[str] = (),
    samples: str | os.PathLike[str] | None = None,
    on_message: Callable[[str], None] | None = None,
) -> Share:
    """Write into `folder` (new, or empty) everything `push` uploads for the model at `source` (any
    checkpoint `load_model` reads, hf:// included); see the module docstring. Returns what it wrote."""
    from .weights.checkpoints import saved_world_size
    from .weights.export import export_generators, load_export
    from .weights.loading import build_model, read_weights

    check_repo_id(repo_id)
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UserError(f"{folder} exists and is not an empty folder: choose a new folder for the upload")
    weights = read_weights(source)
    model = build_model(weights)
    folder.mkdir(parents=True, exist_ok=True)
    export = folder / EXPORT_NAME
    if weights.kind == "export":
        shutil.copyfile(weights.path, export)
        beside = weights.path.with_suffix(".json")
        if beside.is_file():
            shutil.copyfile(beside, export.with_suffix(".json"))
        else:
            export.with_suffix(".json").write_text(weights.config.to_json() + "\n")
        load_export(export)  # the copy reads back (a damaged source stops here)
        dtype = _stored_dtype(export)
    else:
        export_generators(model, weights.config, export)
        dtype = "float16"
    run = find_run(weights.path)
    state = _training_state(weights.path)
    share = Share(
        repo_id=repo_id,
        source=str(source),
        kind=weights.kind,
        config=weights.config.replace(model=model.config),
        parameters=sum(p.numel() for g in model.generators() for p in g.parameters()),
        steps=trained_steps(weights.path, run, state),
        processes=saved_world_size(state) if state is not None and weights.kind == "training checkpoint" else None,
        evaluations=read_evaluations(run) if run else [],
        domain_a=domain_a,
        domain_b=domain_b,
        license=license,
        weights_name=str(source) if str(source).startswith("hf://") else weights.path.name,
        export_bytes=export.stat().st_size,
        export_dtype=dtype,
    )
    if share.evaluations:
        (folder / METRICS_NAME).write_text(json.dumps(share.evaluations, indent=2) + "\n")
    share.samples, share.sample_note = _samples(model, run, samples, folder)
    for fmt in formats:
        from .weights.deploy import FORMATS, export_generator

        if fmt not in FORMATS:
            raise UserError(f"`formats` must be among {', '.join(FORMATS)}, got {fmt!r}")
        for direction in ("a2b", "b2a"):
            name = f"{DEPLOY_DIR}/ugatit_{direction}{FORMATS[fmt]}"
            (on_message or (lambda m: None))(f"exporting {name}")
            export_generator(model, direction, fmt, folder / name)
            share.deploy.setdefault(fmt, {})[direction] = name
    (folder / CARD_NAME).write_text(model_card(share), encoding="utf-8")
    return share


def check_repo_id(repo_id: str) -> None:
    """NAMESPACE/NAME as the Hub spells it (letters, digits, '-', '_', '.'; at most 96 characters)."""
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}", repo_id) or ".." in repo_id:
        raise UserError(f"{repo_id!r} is not a Hub model name: give NAMESPACE/NAME (your user or organisation/a name)")


def _stored_dtype(path: Path) -> str:
    """The dtype an export stores its weights in ("float16", "float32")."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        floats = (f.get_tensor(key) for key in f.keys())  # noqa: SIM118 (safe_open is not iterable)
        first = next((t for t in floats if t.is_floating_point()), None)
    return str(first.dtype).removeprefix("torch.") if first is not None else "unknown"


def find_run(weights_path: Path) -> Path | None:
    """The run folder around a checkpoint or export, or None (see the module docstring)."""
    path = Path(weights_path).resolve()
    for candidate in (path, path.parent, path.parent.parent):
        if candidate.is_dir() and (candidate / LOG_FILE).is_file():
            return candidate
    return None


def _training_state(weights_path: Path) -> dict[str, Any] | None:
    """The contents of a .pt weights file (a training or official checkpoint), read once; None otherwise."""
    if Path(weights_path).suffix == ".pt" and Path(weights_path).is_file():
        from .weights.checkpoints import torch_load

        state = torch_load(Path(weights_path))
        return state if isinstance(state, dict) else None
    return None


def trained_steps(weights_path: Path, run: Path | None, state: dict[str, Any] | None = None) -> int | None:
    """The iterations behind the weights: a run checkpoint's step (its name, or `state`, the file's contents),
    or the last step a run logged."""
    match = _STEP_FILE.match(Path(weights_path).name)
    if match:
        return int(match.group(1))
    if state is not None and isinstance(state.get("step"), int):
        return state["step"]
    if run is None:
        return None
    steps = [record["step"] for record in _log_records(run) if isinstance(record.get("step"), int)]
    return max(steps) if steps else None


def read_evaluations(run: Path) -> list[dict[str, Any]]:
    """The run's `eval` events (step and metrics), in order."""
    return [
        {key: value for key, value in record.items() if key != "event"}
        for record in _log_records(run)
        if record.get("event") == "eval"
    ]


def _log_records(run: Path) -> list[dict[str, Any]]:
    records = []
    try:
        lines = (run / LOG_FILE).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:  # a line cut by a crash
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def _samples(
    model: Any, run: Path | None, images: str | os.PathLike[str] | None, folder: Path
) -> tuple[dict[str, str], str]:
    out: dict[str, str] = {}
    if images is not None:
        return _grids_from_images(model, Path(images), folder)
    if run is None or not (run / SAMPLES_DIR).is_dir():
        return out, ""
    newest: dict[str, tuple[int, int, Path]] = {}
    for path in (run / SAMPLES_DIR).iterdir():
        match = _SAMPLE_FILE.match(path.name)
        if match:
            split, direction, step = match.group(1), match.group(2), int(match.group(3))
            rank = (1 if split == "test" else 0, step)
            if direction not in newest or rank > newest[direction][:2]:
                newest[direction] = (*rank, path)
    for direction, (_, _, path) in sorted(newest.items()):
        name = f"{SAMPLES_DIR}/{direction}.png"
        (folder / SAMPLES_DIR).mkdir(exist_ok=True)
        shutil.copyfile(path, folder / name)
        out[direction] = name
    if not newest:
        return out, ""
    steps = sorted({step for _, step, _ in newest.values()})
    splits = {"test" if is_test else "training" for is_test, _, _ in newest.values()}
    return out, (
        f"{' and '.join(sorted(splits)).capitalize()} images at step {', '.join(map(str, steps))} of the run: "
        "input, attention, translation, and the translation translated back (cycle)."
    )


def _grids_from_images(model: Any, images: Path, folder: Path) -> tuple[dict[str, str], str]:
    """Grids of the first `SAMPLE_ROWS` images of `images` (domain A, or testA/ and testB/ inside it)."""
    import torch
    from PIL import Image

    from .data.images import find_images
    from .data.loader import sized_batches
    from .data.sources import FileSource
    from .training.run_dir import sample_grid

    if not images.is_dir():
        raise UserError(f"sample images: {images} is not a folder")
    by_direction = (
        {"a2b": images / "testA", "b2a": images / "testB"} if (images / "testA").is_dir() else {"a2b": images}
    )
    out = {}
    (folder / SAMPLES_DIR).mkdir(exist_ok=True)
    for direction, where in by_direction.items():
        if not where.is_dir():
            continue
        files = find_images(where)[:SAMPLE_ROWS]
        if not files:
            continue
        batch = next(
            b for b in sized_batches(FileSource(files), model.config.img_size, batch_size=SAMPLE_ROWS, strict=True)
        )
        with torch.no_grad():
            grid = sample_grid(model, batch.stacked(), direction)
        name = f"{SAMPLES_DIR}/{direction}.png"
        Image.fromarray(grid).save(folder / name)
        out[direction] = name
    if not out:
        raise UserError(f"sample images: no images in {images}")
    note = "Images given to `ugatit push`: input, attention, translation, and the translation translated back (cycle)."
    return out, note


# --- The model card -------------------------------------------------------------------------------------


def model_card(share: Share) -> str:
    """The README.md of the upload: the hub's metadata block, then the card (see the module docstring)."""
    from huggingface_hub import ModelCard, ModelCardData

    data = ModelCardData(
        license=share.license,
        library_name="ugatit",
        pipeline_tag="image-to-image",
        tags=list(TAGS),
    )
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n{_card_body(share)}"))


def _card_body(s: Share) -> str:
    m, o = s.config.model, s.config.optim
    name = s.repo_id.split("/")[-1]
    hub = f"hf://{s.repo_id}"
    kind = "light" if m.light else "full"
    sizes = (
        f"{m.img_size} px (a light model also runs at other sizes: `--size N`)"
        if m.light
        else f"{m.img_size} px only (a full model's MLP reads the whole attention map)"
    )
    trained = (
        f"{s.steps:,} iterations"
        + (f" of the {o.iterations:,} planned" if o.iterations and o.iterations != s.steps else "")
        if s.steps is not None
        else f"not recorded by the source ({o.iterations:,} planned)"
    )
    # the global batch: the batch of each process times the processes, where the source says how many
    processes = "" if s.processes is None else f" x {s.processes} process{'es' if s.processes != 1 else ''}"
    lines = [
        f"# {name}",
        "",
        f"A [U-GAT-IT](https://arxiv.org/abs/1907.10830) model (Kim et al., ICLR 2020) that translates "
        f"**{s.domain_a}** (domain A) into **{s.domain_b}** (domain B) with its generator `genA2B`, and back with "
        f"`genB2A`. Unpaired image-to-image translation with attention (CAM) and AdaLIN; shared with "
        f"ugatit {__version__} (`ugatit push`).",
        "",
    ]
    for direction, path in s.samples.items():
        source, target = (s.domain_a, s.domain_b) if direction == "a2b" else (s.domain_b, s.domain_a)
        lines += [f"![{direction}: {source} to {target}]({path})", ""]
    if s.samples:
        lines += [f"*{s.sample_note}*", ""]
    lines += [
        "## Model",
        "",
        "| | |",
        "|---|---|",
        f"| model | {kind}, {m.variant} networks, {_count(s.parameters)} parameters in the two generators |",
        f"| image size | {sizes} |",
        f"| base channels, residual blocks | {m.ch}, {m.n_res} |",
        f"| trained | {trained}, batch {s.config.data.batch_size}{processes}, lr {o.lr:g} |",
        f"| losses | adversarial {s.config.loss.adv_weight:g}, cycle {s.config.loss.cycle_weight:g}, "
        f"identity {s.config.loss.identity_weight:g}, CAM {s.config.loss.cam_weight:g} |",
        f"| weights | `{EXPORT_NAME}` ({s.export_dtype}, {s.export_bytes / 1e6:.1f} MB); the whole config in "
        f"`{Path(EXPORT_NAME).with_suffix('.json')}` |",
        f"| from | {s.kind} `{s.weights_name}` |",
        "",
        "## Metrics",
        "",
    ]
    lines += _metrics_section(s.evaluations)
    lines += _usage_section(s, hub)
    lines += [
        "## Licence",
        "",
        f"`license: {s.license}` in this card's metadata."
        + (
            " The uploader did not name a licence (`ugatit push --license ID` sets one); the terms of the "
            "training images apply to what the model learned from them."
            if s.license == DEFAULT_LICENSE
            else " The terms of the training images may also apply to what the model learned from them."
        ),
        "",
    ]
    return "\n".join(lines)


def _metrics_section(evaluations: list[dict[str, Any]]) -> list[str]:
    if not evaluations:
        return ["No evaluation was recorded for this model (`ugatit eval --checkpoint` measures one).", ""]
    names = [k for k in evaluations[-1] if k != "step" and isinstance(evaluations[-1][k], (int, float))]
    rows = [("last", evaluations[-1])]
    if "kid" in names:
        best = min(evaluations, key=lambda e: e.get("kid", float("inf")))
        if best is not evaluations[-1]:
            rows.append(("lowest KID", best))
    lines = [
        f"Measured during training ({len(evaluations)} evaluation{'s' if len(evaluations) != 1 else ''}, all in "
        f"`{METRICS_NAME}`; KID x 100 where named `kid`, lower is better):",
        "",
        "| | step | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for label, record in rows:
        values = [_number(record.get(name)) for name in names]
        lines.append(f"| {label} | {record.get('step', '')} | " + " | ".join(values) + " |")
    return [*lines, ""]


def _count(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n:,}"


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "" if value is None else str(value)
    return f"{value:.4g}"


def _usage_section(s: Share, hub: str) -> list[str]:
    size = s.config.model.img_size
    lines = [
        "## Use it",
        "",
        "With ugatit (its `hub` extra fetches the model into the Hugging Face cache once; `HF_HUB_OFFLINE=1` "
        "then runs from the cache):",
        "",
        "```bash",
        'pip install "ugatit[hub,faces,video]"',
        f"ugatit translate --checkpoint {hub} --input photo.jpg --output out/",
        f"ugatit translate --checkpoint {hub} --input photo.jpg --output out/ --face-crop --paste-back",
        f"ugatit translate --checkpoint {hub} --input clip.mp4 --output out/ --face-crop --paste-back",
        f"ugatit serve --checkpoint {hub}",
        "```",
        "",
        "In Python:",
        "",
        "```python",
        "from PIL import Image",
        "",
        "from ugatit.translate import translate_images",
        "from ugatit.weights import load_model",
        "",
        f'model, config = load_model("{hub}")',
        'photo = Image.open("photo.jpg")',
        'result = translate_images(model, [photo], "a2b")[0]  # "b2a" translates the other way',
        'result.image.save("photo_a2b.png")  # at the photo\'s size',
        'result.attention_overlay().save("photo_attention.png")  # where the generator looked',
        "```",
        "",
        "### Without ugatit: ONNX or TorchScript",
        "",
    ]
    shapes = (
        "any batch; H and W any multiples of 4 from 32 up" if s.config.model.light else f"any batch; H = W = {size}"
    )
    lines += [
        f"Each file takes `image` (B, 3, H, W) float32 RGB in [-1, 1] ({shapes}) and returns `translation` (same "
        "shape, [-1, 1]), `cam_logit` (B, 2) and `heatmap` (B, 1, H/4, W/4).",
        "",
    ]
    onnx, script = s.deploy.get("onnx"), s.deploy.get("torchscript")
    if onnx:
        fetch = f'path = hf_hub_download("{s.repo_id}", "{onnx["a2b"]}")'
        lines += ["With onnxruntime, numpy and Pillow only:", ""]
    else:
        fetch = 'path = "ugatit_a2b.onnx"'
        lines += [
            'Make the ONNX files with `ugatit export` (`pip install "ugatit[hub,export]"`), then run them with '
            "onnxruntime, numpy and Pillow only:",
            "",
            "```bash",
            f"ugatit export {hub} --format onnx --output ugatit.onnx   # ugatit_a2b.onnx, ugatit_b2a.onnx",
            "```",
            "",
        ]
    lines += [
        "```python",
        "import numpy as np",
        "import onnxruntime as ort",
        *(["from huggingface_hub import hf_hub_download"] if onnx else []),
        "from PIL import Image",
        "",
        fetch,
        "session = ort.InferenceSession(path)",
        'photo = Image.open("photo.jpg").convert("RGB")',
        f"x = np.asarray(photo.resize(({size}, {size}), Image.BILINEAR), dtype=np.float32) / 127.5 - 1",
        'translation, cam_logit, heatmap = session.run(None, {"image": x.transpose(2, 0, 1)[None]})',
        "out = ((translation[0].transpose(1, 2, 0) + 1) * 127.5).round().clip(0, 255).astype(np.uint8)",
        'Image.fromarray(out).resize(photo.size, Image.BICUBIC).save("photo_a2b.png")',
        "```",
        "",
    ]
    if script:
        lines += [
            "With PyTorch alone (TorchScript):",
            "",
            "```python",
            "import numpy as np",
            "import torch",
            "from huggingface_hub import hf_hub_download",
            "from PIL import Image",
            "",
            f'generator = torch.jit.load(hf_hub_download("{s.repo_id}", "{script["a2b"]}"))',
            'photo = Image.open("photo.jpg").convert("RGB")',
            f"x = torch.from_numpy(np.asarray(photo.resize(({size}, {size}), Image.BILINEAR), dtype=np.float32))",
            "x = (x / 127.5 - 1).permute(2, 0, 1)[None]",
            "with torch.no_grad():",
            "    translation, cam_logit, heatmap = generator(x)",
            "out = ((translation[0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).byte().numpy()",
            'Image.fromarray(out).resize(photo.size, Image.BICUBIC).save("photo_a2b_torchscript.png")',
            "```",
            "",
        ]
    return lines


# --- Upload ---------------------------------------------------------------------------------------------


def push_folder(folder: Path, repo_id: str, *, private: bool = False, revision: str | None = None, message: str) -> str:
    """Create the model repository if needed and upload `folder` as one commit; returns its URL."""
    from .weights.hub import _hub

    hub = _hub()
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError, OfflineModeIsEnabled

    if constants.HF_HUB_OFFLINE:
        raise UserError("HF_HUB_OFFLINE is set: unset it to push (or write the folder only, with --dry-run DIR)")
    api = hub.HfApi(library_name="ugatit", library_version=__version__)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id, folder_path=str(folder), commit_message=message, revision=revision, repo_type="model"
        )
    except LocalTokenNotFoundError:
        raise UserError("not logged in to the Hugging Face Hub: run `hf auth login`, or set HF_TOKEN") from None
    except OfflineModeIsEnabled:
        raise UserError(
            "HF_HUB_OFFLINE is set: unset it to push (or write the folder only, with --dry-run DIR)"
        ) from None
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            raise UserError(
                f"the Hub refused the upload to {repo_id} ({status}): log in with a token that can write there "
                "(`hf auth login`, or HF_TOKEN)"
            ) from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot push to {repo_id}: {first}") from None
    except OSError as exc:
        raise UserError(f"cannot push to {repo_id}: {exc.strerror or exc}") from None
    return getattr(commit, "commit_url", None) or str(url)
