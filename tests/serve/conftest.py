"""A tiny checkpoint and a real `ugatit serve` process for the web app's tests.

The server runs as the command line runs it, in a subprocess whose working folder, HOME and TMPDIR
are fresh empty folders, so that a test can see everything it wrote. Without Gradio and OpenCV the
tests that need the server are skipped, except in CI (see the `need` fixture).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import tiny
from ugatit.config import Config, ModelConfig
from ugatit.nn.model import UGATIT
from ugatit.weights.export import export_generators

SIZE = 32
START_SECONDS = 90


def tiny_light_model(seed: int = 0) -> UGATIT:
    return tiny(seed=seed, discriminators=False, img_size=SIZE).eval()


def write_noise(path: Path, width: int, height: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="session")
def noise_image():
    """noise_image(path, width, height, seed=0): a random RGB PNG (faceless, so face crops keep it whole)."""
    return write_noise


@pytest.fixture(scope="session")
def light_model() -> UGATIT:
    return tiny_light_model()


@pytest.fixture(scope="session")
def checkpoint(light_model, tmp_path_factory) -> Path:
    """`light_model` exported: the app's checkpoint."""
    return export_generators(
        light_model, Config(model=light_model.config), tmp_path_factory.mktemp("serve_ckpt") / "tiny.safetensors"
    )


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    cwd: Path
    home: Path
    tmp: Path
    log: Path

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(checkpoint: Path | str, root: Path, extra_env: dict[str, str] | None = None) -> Server:
    dirs = {name: root / name for name in ("cwd", "home", "tmp")}
    for d in dirs.values():
        d.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "HOME": str(dirs["home"]),
        "TMPDIR": str(dirs["tmp"]),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(Path(__file__).parents[2] / "src"), os.environ.get("PYTHONPATH")])
        ),
        **(extra_env or {}),
    }
    log = root / "server.log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ugatit",
            "serve",
            "--checkpoint",
            str(checkpoint),
            "--port",
            str(port),
            "--device",
            "cpu",
        ],
        cwd=dirs["cwd"],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    server = Server(f"http://127.0.0.1:{port}", process, dirs["cwd"], dirs["home"], dirs["tmp"], log)
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"ugatit serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(server.url + "/", timeout=2) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.3)
    server.stop()
    raise AssertionError(f"ugatit serve did not answer within {START_SECONDS} s:\n{log.read_text()}")


@pytest.fixture(scope="session")
def launch_server():
    """launch_server(checkpoint, root, extra_env=None): a `ugatit serve` of a test's own; stop() it."""
    return start_server


@pytest.fixture(scope="session")
def training_run(tmp_path_factory) -> Path:
    """A run folder of two tiny training iterations: a checkpoint that holds the discriminators too."""
    from ugatit.config import DataConfig, OptimConfig, TrainConfig
    from ugatit.training import train

    root = tmp_path_factory.mktemp("serve_run")
    folders = {}
    for domain, seed in (("A", 1), ("B", 2)):
        folders[domain] = root / f"train{domain}"
        folders[domain].mkdir()
        for i in range(2):
            write_noise(folders[domain] / f"{i}.png", SIZE, SIZE, seed=seed * 10 + i)
    config = Config(
        model=ModelConfig(img_size=SIZE, ch=4, n_res=1, light=True),
        optim=OptimConfig(iterations=2),
        data=DataConfig(num_workers=0),
        train=TrainConfig(device="cpu", sample_every=0, save_every=0),
    )
    return train(config, folders["A"], folders["B"], root / "run", progress=False, tensorboard=False).run_dir


@pytest.fixture(scope="session")
def _running_servers():
    servers: list[Server] = []
    yield servers
    for running in servers:
        running.stop()


@pytest.fixture
def server(_running_servers, checkpoint, tmp_path_factory, need) -> Server:
    """A running `ugatit serve` on `checkpoint`, shared by the tests until one of them stops it."""
    need("gradio")
    need("cv2")
    if not _running_servers or _running_servers[-1].process.poll() is not None:
        _running_servers.append(start_server(checkpoint, tmp_path_factory.mktemp("server")))
    return _running_servers[-1]


@pytest.fixture(scope="session")
def judging_server(training_run, tmp_path_factory, need):
    """A running `ugatit serve` on `training_run`, whose page also shows the discriminators' attention."""
    need("gradio")
    need("cv2")
    server = start_server(training_run, tmp_path_factory.mktemp("judging_server"))
    yield server
    server.stop()
