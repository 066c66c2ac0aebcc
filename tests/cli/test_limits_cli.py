"""What a file or a disk can do to the commands (issue 19), met through `ugatit` in a subprocess: writes
on a full or read-only disk (export, convert, translate, TensorBoard), links in a run folder, weights
whose config asks for more than their tensors hold, damaged TF checkpoints and FIFOs, images that decode
huge, and out-of-range settings. Each ends in one line naming the file or the flag, exit code 2, and
nothing partial on disk.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import command, environment, one_line_error, run, run_together
from PIL import Image

from helpers import noise, write_plain
from huge_png import huge_png
from tf_bundle import write_checkpoint
from ugatit.config import Config, ModelConfig
from ugatit.nn.model import UGATIT
from ugatit.weights import checkpoints
from ugatit.weights.export import export_generators

TINY = ModelConfig(img_size=32, ch=4, n_res=1, light=True)
TINY_FLAGS = ("--img-size", 32, "--ch", 4, "--n-res", 1, "--light", "--device", "cpu", "--workers", 0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """A tiny model's export and training checkpoint, and a folder of two small images."""
    root = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    model = UGATIT(TINY)
    config = Config(model=TINY)
    export = export_generators(model, config, root / "tiny.safetensors")
    checkpoint = checkpoints.save_training_checkpoint(
        root / "step_00000001.pt", model=model, optimizers={}, config=config, step=1
    )
    write_plain(root / "images", 2, seed=3)
    return {"export": export, "checkpoint": checkpoint, "images": root / "images", "root": root}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(a dataset, a run folder of it trained for 2 iterations with a checkpoint at each), made in-process:
    the tests copy the folder and attack it through the command."""
    from dataclasses import replace

    from ugatit.training import train

    root = tmp_path_factory.mktemp("trained")
    data = root / "data"
    write_plain(data / "trainA", 2, seed=0)
    write_plain(data / "trainB", 2, seed=5)
    config = Config(model=TINY)
    config = config.replace(
        optim=replace(config.optim, iterations=2),
        data=replace(config.data, num_workers=0),
        train=replace(config.train, device="cpu", save_every=1, keep_last=0, sample_every=0),
    )
    run_dir = root / "run"
    train(config, data / "trainA", data / "trainB", run_dir, progress=False, tensorboard=False, on_message=print)
    return data, run_dir


# --- A full or read-only disk -----------------------------------------------------------------------------


@dataclass
class Disk:
    """A folder on a small disk: a real tmpfs where this process may mount one (root), else a folder whose
    writes fail by injection (tests/cli/faults), and for `convert`, whose safetensors writer is in Rust
    where the injection cannot reach, a file-size limit (`ulimit -f`) below the export's size."""

    folder: Path
    real: bool
    faults: dict[str, str] = field(default_factory=dict)
    limit: int | None = None  # RLIMIT_FSIZE for `convert`, in the injected case

    def start(self, *commands: tuple) -> list[subprocess.Popen]:
        """Start `ugatit ARGS` for each ARGS in `commands`, all at once, on this disk (see `finish`)."""

        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (self.limit, self.limit))

        return [
            subprocess.Popen(
                command(*args),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=environment(**self.faults),
                preexec_fn=limit if self.limit is not None and args[0] == "convert" else None,
            )
            for args in commands
        ]

    def leftovers(self) -> list[str]:
        """Files in the folder other than the filler: what a failed write left behind."""
        return sorted(str(p.relative_to(self.folder)) for p in self.folder.rglob("*") if p.name != "filler")


def finish(processes: list[subprocess.Popen]) -> list[subprocess.CompletedProcess]:
    results = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr))
    return results


@pytest.fixture
def disk(tmp_path):
    """disk(read_only=False): an empty folder on a disk with no space left (or a read-only one)."""
    mounts = []

    def make(read_only: bool = False) -> Disk:
        folder = tmp_path / ("read-only" if read_only else "full")
        folder.mkdir()
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True)
        if mounted.returncode != 0:
            fault = {"erofs": str(folder)} if read_only else {"enospc": f"{folder}:0"}
            return Disk(folder, real=False, faults=fault, limit=None if read_only else 4096)
        mounts.append(folder)
        filler = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
        try:  # fill it up
            while os.write(filler, b"\0" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(filler)
        if read_only:
            (folder / "filler").unlink()
            subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        return Disk(folder, real=True)

    yield make
    for folder in mounts:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def writers(folder: Path, tiny: dict[str, Path]) -> list[tuple]:
    """export (TorchScript, ONNX), convert and translate, each writing into `folder`."""
    return [
        ("export", tiny["export"], "--format", "torchscript", "--direction", "a2b", "--output", folder / "g"),
        ("export", tiny["export"], "--format", "onnx", "--direction", "b2a", "--output", folder / "g"),
        ("convert", tiny["checkpoint"], folder / "c.safetensors"),
        ("translate", "--checkpoint", tiny["export"], "--input", tiny["images"], "--output", folder / "t"),
    ]


def test_every_writer_on_a_full_or_read_only_disk_is_one_line_and_leaves_nothing(disk, tiny, need):
    """torchscript used to abort (SIGABRT, a C++ stack) leaving a .tmp; onnx (full or read-only) and
    convert printed tracebacks; translate left a 0-byte PNG."""
    need("onnxscript")
    full, read_only = disk(), disk(read_only=True)
    started = full.start(*writers(full.folder, tiny)) + read_only.start(*writers(read_only.folder, tiny))
    results = finish(started)  # all at once: the ONNX exports take most of the time
    names = ["g.pt", "g.onnx", "c.safetensors", "t/plain_0.png"]
    for result, name in zip(results[:4], names):
        line = one_line_error(result, result.args[3], f"cannot write {full.folder / name}: ")
        if full.real:
            assert f"no space left on the device holding {(full.folder / name).parent} (" in line, line
    assert full.leftovers() in ([], ["t"]), full.leftovers()  # translate's folder, empty
    for result, name in zip(results[4:7], names):
        line = one_line_error(result, result.args[3], f"cannot write {read_only.folder / name}: ")
        assert "read-only" in line, line
    one_line_error(results[7], "translate", f"{read_only.folder / 't'}")
    assert read_only.leftovers() in ([], ["t"])  # an injected read-only disk lets the folder be made


def test_a_failed_tensorboard_write_is_one_line_without_the_threads_traceback(tmp_path, need):
    need("tensorboard")
    data = tmp_path / "data"
    write_plain(data / "trainA", 2, seed=0)
    write_plain(data / "trainB", 2, seed=5)
    out = tmp_path / "run"
    env = environment(enospc="events.out.tfevents:300")
    del env["UGATIT_TEST_NO_TENSORBOARD"]  # this test is about TensorBoard
    result = subprocess.run(
        command("train", data, *TINY_FLAGS, "--iters", 6, "--log-every", 1, "--out", out, "--no-progress"),
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    one_line_error(result, "train", f"cannot write {out}/tensorboard", "no space left on the device")
    assert "Exception in thread" not in result.stderr and "Traceback" not in result.stderr, result.stderr


# --- Links and special files ------------------------------------------------------------------------------


def test_links_in_a_run_folder_are_never_written_through(tmp_path):
    data = tmp_path / "data"
    write_plain(data / "trainA", 2, seed=0)
    write_plain(data / "trainB", 2, seed=5)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")

    linked_lock = tmp_path / "linked-lock"
    linked_lock.mkdir()
    (linked_lock / ".lock").symlink_to(victim)
    refused = run("train", data, *TINY_FLAGS, "--iters", 1, "--out", linked_lock, "--no-progress")
    one_line_error(refused, "train", f"{linked_lock}/.lock is a symbolic link (to {victim})", "remove it")

    probe_link = tmp_path / "probe-link"  # the write test a new run makes in its folder
    probe_link.mkdir()
    (probe_link / ".write-test").symlink_to(victim)
    trained = run("train", data, *TINY_FLAGS, "--iters", 2, "--out", probe_link, "--no-progress")
    assert trained.returncode == 0, trained.stderr

    # A resumed run rewrites log.jsonl and config.yaml: it replaces links, never writes through them.
    for name in ("log.jsonl", "config.yaml"):
        (probe_link / name).unlink()
        (probe_link / name).symlink_to(victim)
    resumed = run("train", data, "--out", probe_link, "--resume", "--iters", 3, "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert victim.read_text() == "precious\n"
    assert all(not (probe_link / name).is_symlink() for name in ("log.jsonl", "config.yaml"))
    assert [json.loads(line)["step"] for line in (probe_link / "log.jsonl").read_text().splitlines()] == [3]


def test_a_fifo_where_a_file_should_be_is_never_opened(tmp_path, tiny):
    """Opening a FIFO to read blocks until something writes to it: a hang, not an error."""
    folder = tmp_path / "tf"
    folder.mkdir()
    os.mkfifo(folder / "x.index")
    images = tmp_path / "data" / "trainA"
    shutil.copytree(tiny["images"], images)
    shutil.copytree(tiny["images"], images.parent / "trainB")
    os.mkfifo(images / "pipe.png")
    fifo_index, fifo_folder, fifo_image, checked = run_together(
        command("translate", "--checkpoint", folder / "x.index", "--input", images, "--output", tmp_path / "o1"),
        command("translate", "--checkpoint", folder, "--input", images, "--output", tmp_path / "o2"),
        command("translate", "--checkpoint", tiny["export"], "--input", images, "--output", tmp_path / "o3"),
        command("check-data", images.parent),
    )  # each would hang (until run_together's timeout) if it opened a FIFO
    one_line_error(fifo_index, "translate", f"{folder / 'x.index'}: a named pipe (FIFO), not a regular file")
    one_line_error(fifo_folder, "translate", f"{folder} holds no checkpoint")
    assert fifo_image.returncode == 0, fifo_image.stderr
    assert f"skipped {images / 'pipe.png'}: a named pipe (FIFO), not a regular file" in fifo_image.stderr
    assert f"{images / 'pipe.png'}: a named pipe (FIFO), not a regular file" in checked.stdout


# --- Weights whose config asks for more than they hold ----------------------------------------------------


def crafted_export(path: Path, source: Path, **model: int) -> Path:
    """`source`'s tensors under a config changed by `model` (n_res=100000, ...)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(source), framework="pt") as f:
        metadata = f.metadata()
        tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
    config = json.loads(metadata["config"])
    config["model"].update(model)
    save_file(tensors, str(path), metadata={**metadata, "config": json.dumps(config)})
    return path


def test_weights_whose_config_does_not_describe_their_tensors_are_refused_before_building(tmp_path, tiny):
    """n_res=100000 used to build for minutes (3.4 GB) and ch=20000 to allocate 51 GB before failing."""
    huge_blocks = crafted_export(tmp_path / "n_res.safetensors", tiny["export"], n_res=100000)
    wide = crafted_export(tmp_path / "ch.safetensors", tiny["export"], ch=20000)
    three_blocks = crafted_export(tmp_path / "three.safetensors", tiny["export"], n_res=3)  # within the limits
    state = checkpoints.load_training_checkpoint(tiny["checkpoint"])
    state["config"]["model"]["n_res"] = 100000
    crafted_checkpoint = tmp_path / "crafted.pt"
    torch.save(state, crafted_checkpoint)

    def translate(weights: Path) -> list[str]:
        return command("translate", "--checkpoint", weights, "--input", tiny["images"], "--output", tmp_path / "o")

    results = run_together(*(translate(w) for w in (huge_blocks, wide, three_blocks, crafted_checkpoint)))
    one_line_error(results[0], "translate", str(huge_blocks), "model.n_res is 100000, more than the 64")
    one_line_error(results[1], "translate", str(wide), "model.ch is 20000, more than the 1024")
    one_line_error(
        results[2], "translate", str(three_blocks), "its config (light, ch=4, n_res=3) needs genA2B.", "the file lacks"
    )
    one_line_error(results[3], "translate", str(crafted_checkpoint), "model.n_res is 100000")


def test_a_crafted_checkpoint_in_a_run_folder_is_passed_over(tmp_path, trained):
    data, run_dir = trained
    out = tmp_path / "run"
    shutil.copytree(run_dir, out)
    newest = checkpoints.checkpoint_path(out, 2)
    state = checkpoints.load_training_checkpoint(newest)
    state["config"]["model"]["ch"] = 20000
    torch.save(state, newest)
    resumed = run("train", data, "--out", out, "--resume", "--iters", 3, "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert "skipped checkpoint step_00000002.pt: its config is unusable" in resumed.stderr
    assert "resuming at step 1" in resumed.stderr


def tf_tensors(model: ModelConfig) -> dict[str, np.ndarray]:
    """A light TF checkpoint's generator tensors with the right names and shapes (values do not matter)."""
    from dataclasses import replace

    from ugatit.weights.tf import GENERATORS, _generator_plan

    config = replace(model, variant="tf")
    state = UGATIT(config, discriminators=False).official_state_dict()
    tensors = {}
    for net, scope in GENERATORS.items():
        for name, (_, key, how) in _generator_plan(scope, net, config).items():
            ours = state[net][key]
            if how == "conv":
                shape = tuple(ours.permute(2, 3, 1, 0).shape)
            elif how in ("dense", "dense_hwc"):
                shape = tuple(ours.t().shape)
            else:
                shape = (ours.numel(),)
            tensors[name] = np.full(shape, 0.01, np.float32)
    return tensors


def test_damaged_tf_checkpoint_shapes_are_one_line(tmp_path, tiny):
    tensors = tf_tensors(TINY)
    kernel = "generator_B/conv/conv2d/kernel"
    overflow = write_checkpoint(tmp_path / "overflow.model-1", tensors, shapes={kernel: (2**32, 2**32, 1, 1)})
    empty = "generator_B/conv_1/conv2d/kernel"
    zero = write_checkpoint(tmp_path / "zero.model-1", tensors | {empty: np.zeros((3, 3, 8, 0), np.float32)})
    rank = "generator_B/conv_0/conv2d/kernel"
    wrong_rank = write_checkpoint(tmp_path / "rank.model-1", tensors | {rank: tensors[rank].reshape(-1)})
    whole = write_checkpoint(tmp_path / "whole.model-1", tensors)
    results = run_together(
        *(
            command("translate", "--checkpoint", prefix, "--input", tiny["images"], "--output", tmp_path / prefix.name)
            for prefix in (overflow, zero, wrong_rank, whole)
        )
    )
    one_line_error(results[0], "translate", "overflow.model-1.index is corrupted: tensor", "[4294967296, 4294967296")
    one_line_error(results[1], "translate", f"zero.model-1.index: tensor {empty} is empty (shape [3, 3, 8, 0])")
    one_line_error(results[2], "translate", f"rank.model-1.index: tensor {rank} has shape [", "rank 4 belongs")
    assert results[3].returncode == 0, results[3].stderr  # the same tensors, whole, translate


# --- Images that decode huge ------------------------------------------------------------------------------


def peak_memory_run(*args) -> tuple[subprocess.CompletedProcess, int]:
    """Run `ugatit ARGS` and return it with its peak resident memory in bytes (the child's ru_maxrss)."""
    probe = (
        "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(r.returncode)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, *command(*args)], capture_output=True, text=True, env=environment(), timeout=300
    )
    *lines, peak = result.stderr.rstrip("\n").split("\n")
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout, "\n".join(lines)), int(
        peak
    ) * 1024


#: Importing torch and running the tiny model takes about 0.35 GB; a decode of the huge images below took
#: 5 to 6.6 GB before their cost was bounded. 1 GB leaves room for other versions of torch and Pillow.
PEAK_LIMIT = 1 << 30


def test_huge_images_are_refused_before_decoding_in_training_and_translation(tmp_path, tiny):
    data = tmp_path / "data"
    write_plain(data / "trainA", 2, seed=0)
    write_plain(data / "trainB", 2, seed=5)
    huge_png(data / "trainA" / "huge.png", 13000, 13000)  # 328 KB, 338 million 16-bit samples
    under_the_app_cap = huge_png(tmp_path / "seven.png", 7000, 7000)  # 49 megapixels, 16-bit
    trained, train_peak = peak_memory_run("train", data, *TINY_FLAGS, "--iters", 4, "--out", tmp_path / "run")
    assert trained.returncode == 0, trained.stderr
    assert (
        f"skipping unreadable image {data / 'trainA' / 'huge.png'}: too large to decode: 13000x13000 pixels of "
        "16 bits a sample (counted twice) are 338 million, over the limit of 50 million" in trained.stderr
    )
    assert train_peak < PEAK_LIMIT, train_peak

    translated, translate_peak = peak_memory_run(
        "translate", "--checkpoint", tiny["export"], "--input", under_the_app_cap, "--output", tmp_path / "o"
    )
    one_line_error(translated, "translate", f"cannot read image {under_the_app_cap}: too large to decode: 7000x7000")
    assert translate_peak < PEAK_LIMIT, translate_peak


def test_a_huge_jpeg_is_reduced_while_it_decodes(tmp_path, tiny):
    """60 megapixels, over the budget of 50: decoded at half its size, which libjpeg does at a quarter of
    the cost."""
    photo = tmp_path / "wide.jpg"
    Image.new("L", (10000, 6000), 128).save(photo, quality=50)
    translated, peak = peak_memory_run(
        "translate", "--checkpoint", tiny["export"], "--input", photo, "--output", tmp_path / "o"
    )
    assert translated.returncode == 0, translated.stderr
    with Image.open(tmp_path / "o" / "wide.png") as output:
        assert output.size == (5000, 3000)
    assert peak < PEAK_LIMIT, peak


# --- Messages for cut and empty files (issue 22) ----------------------------------------------------------


def test_cut_and_empty_images_say_truncated_and_empty(tmp_path, tiny):
    data = tmp_path / "data"
    write_plain(data / "trainA", 2, seed=0)
    write_plain(data / "trainB", 2, seed=5)
    whole = tmp_path / "whole.jpg"
    noise(1, (64, 64)).save(whole, quality=90)
    cut = data / "trainA" / "cut.jpg"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    empty = data / "trainB" / "empty.png"
    empty.write_bytes(b"")
    checked, cut_translated, empty_translated = run_together(
        command("check-data", data),
        command("translate", "--checkpoint", tiny["export"], "--input", cut, "--output", tmp_path / "o1"),
        command("translate", "--checkpoint", tiny["export"], "--input", empty, "--output", tmp_path / "o2"),
    )
    truncated = "truncated: the file ends before its image data does"
    assert f"{cut}: {truncated}" in checked.stdout and f"{empty}: the file is empty (0 bytes)" in checked.stdout
    assert "bytes not processed" not in checked.stdout
    one_line_error(cut_translated, "translate", f"cannot read image {cut}: {truncated}")
    one_line_error(empty_translated, "translate", f"cannot read image {empty}: the file is empty (0 bytes)")


# --- Settings out of range ----------------------------------------------------------------------------------


def test_settings_out_of_range_are_one_line_errors(tmp_path, trained):
    data, run_dir = trained

    def train(*args) -> list[str]:
        return command("train", data, *TINY_FLAGS, "--iters", 1, "--no-progress", *args)

    seed, size, batch = run_together(
        train("--seed", "99999999999999999999", "--out", tmp_path / "a"),
        train("--img-size", 1000000, "--out", tmp_path / "b"),
        train("--batch-size", 100000000, "--out", tmp_path / "c"),
    )
    one_line_error(seed, "train", "--seed must be between -2^63 and 2^64 - 1, got 99999999999999999999")
    one_line_error(size, "train", "--img-size is 1000000, more than the 4096")
    one_line_error(
        batch, "train", "one iteration of batch 100000000 at 32 px needs about ", "the largest batch that fits is"
    )
    assert not any((tmp_path / name).exists() for name in "abc")  # refused before the run folder is made

    out = tmp_path / "run"
    shutil.copytree(run_dir, out)
    (out / "checkpoints" / "step_00000016.pt").mkdir()  # a folder of a checkpoint's name: passed over
    nan = run("train", data, "--out", out, "--resume", "--override", "lr=nan", "--no-progress")
    one_line_error(nan, "train", "--lr must be a finite number, got nan")
    resumed = run("train", data, "--out", out, "--resume", "--iters", 3, "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming at step 2" in resumed.stderr


def test_exports_keep_the_mode_every_new_file_gets(tmp_path, tiny):
    """safetensors' writer made them 0600 where every other file was 0644 (under umask 022)."""
    umask = os.umask(0o022)
    os.umask(umask)
    expected = 0o666 & ~umask
    converted = run("convert", tiny["checkpoint"], tmp_path / "c.safetensors")
    assert converted.returncode == 0, converted.stderr
    for path in (tmp_path / "c.safetensors", tmp_path / "c.json"):
        assert path.stat().st_mode & 0o777 == expected, (path, oct(path.stat().st_mode))
