"""`hf://NAMESPACE/NAME[@REVISION][/PATH]` checkpoints, read from a hub cache laid out the way the hub client
lays it out (tests/hub_cache.py), with the hub client's offline switch on: no network is touched.

Every read goes through a subprocess: the hub client reads HF_HUB_OFFLINE and HF_HUB_CACHE when it is
first imported, which in this process may already have happened.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import tiny
from hub_cache import add_to_hub_cache, offline_env
from ugatit.config import Config
from ugatit.errors import UserError
from ugatit.weights.export import export_generators

HERE = Path(__file__).parent
SRC = HERE.parents[1] / "src"
REPO = "someone/tiny-shapes"


@pytest.fixture(scope="module")
def hub(need, tmp_path_factory):
    """A tiny export, and a hub cache holding it as REPO (branch main and tag v1)."""
    need("huggingface_hub")
    root = tmp_path_factory.mktemp("hub")
    model = tiny(seed=3, discriminators=False).eval()
    export = export_generators(model, Config(model=model.config), root / "local" / "ugatit_generators.safetensors")
    cache = root / "cache"
    commit = add_to_hub_cache(
        cache,
        REPO,
        {
            "ugatit_generators.safetensors": export,
            "ugatit_generators.json": export.with_suffix(".json"),
            "README.md": b"---\nlicense: mit\n---\n# tiny\n",
        },
        revisions=("main", "v1"),
    )
    rng = np.random.default_rng(0)
    photo = root / "photo.png"
    Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(photo)
    return {"root": root, "cache": cache, "export": export, "commit": commit, "photo": photo}


def ugatit(hub, *args, **env) -> subprocess.CompletedProcess:
    environment = offline_env(
        hub["cache"],
        hub["root"] / "hf-home",
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join([str(SRC), str(HERE.parent / "cli"), os.environ.get("PYTHONPATH", "")]),
        **env,
    )
    return subprocess.run(
        [sys.executable, "-m", "ugatit", *map(str, args)], capture_output=True, text=True, env=environment, timeout=300
    )


def test_the_cache_is_laid_out_as_the_hub_client_lays_it_out(hub):
    from huggingface_hub import scan_cache_dir

    info = scan_cache_dir(hub["cache"])
    assert not info.warnings, info.warnings
    (repo,) = info.repos
    assert repo.repo_id == REPO and repo.repo_type == "model"
    (revision,) = repo.revisions
    assert revision.commit_hash == hub["commit"] and revision.refs == frozenset({"main", "v1"})
    assert {f.file_name for f in revision.files} == {
        "ugatit_generators.safetensors",
        "ugatit_generators.json",
        "README.md",
    }
    assert repo.nb_files == 3


def test_translate_reads_a_hub_model_offline(hub):
    local, remote = hub["root"] / "local-out", hub["root"] / "hub-out"
    done = ugatit(
        hub, "translate", "--checkpoint", hub["export"], "--input", hub["photo"], "--output", local, "--no-progress"
    )
    assert done.returncode == 0, done.stderr
    done = ugatit(
        hub, "translate", "--checkpoint", f"hf://{REPO}", "--input", hub["photo"], "--output", remote, "--no-progress"
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert (remote / "photo.png").read_bytes() == (local / "photo.png").read_bytes()
    assert f"Checkpoint: hf://{REPO}." in (remote / "index.html").read_text()


@pytest.mark.parametrize(
    "revision", ["@v1", "@COMMIT", "@main/ugatit_generators.safetensors", "/ugatit_generators.safetensors"]
)
def test_revisions_and_paths_in_the_repository(hub, revision, tmp_path):
    path = f"hf://{REPO}{revision.replace('COMMIT', hub['commit'])}"
    out = tmp_path / "converted"
    done = ugatit(hub, "convert", path, out)
    assert done.returncode == 0, done.stderr
    from safetensors.torch import load_file

    got, want = load_file(str(out) + ".safetensors"), load_file(str(hub["export"]))
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k].float()) for k in want)


@pytest.mark.parametrize(
    "path, message",
    [
        (
            "hf://someone/not-downloaded",
            "hf://someone/not-downloaded is not in the Hugging Face cache ({cache}) and HF_HUB_OFFLINE is set: run "
            "`hf download someone/not-downloaded` where there is a network and copy that cache here (or point "
            "HF_HUB_CACHE at a cache that has it)",
        ),
        (f"hf://{REPO}@v2", f"hf://{REPO}@v2 is not in the Hugging Face cache"),
        (f"hf://{REPO}/missing.safetensors", f"hf://{REPO}/missing.safetensors: the model has no file or folder"),
        ("hf://datasets/someone/pictures", "names a dataset repository: a model is needed"),
    ],
)
def test_what_cannot_be_read_offline_is_one_line(hub, path, message, tmp_path):
    done = ugatit(hub, "translate", "--checkpoint", path, "--input", hub["photo"], "--output", tmp_path / "out")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert message.format(cache=hub["cache"]) in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()


def test_eval_reads_a_hub_model(hub):
    from ugatit.demo.shapes import write_shapes

    data = hub["root"] / "shapes"
    write_shapes(data, size=32, n_train=2, n_test=6, seed=0)
    reports = {}
    for name, checkpoint in (("local", hub["export"]), ("hub", f"hf://{REPO}")):
        out = hub["root"] / f"eval-{name}.json"
        done = ugatit(
            hub,
            "eval",
            "--checkpoint",
            checkpoint,
            "--data",
            data,
            "--feature-extractor",
            "standin_extractor:make",
            "--json",
            out,
            UGATIT_OFFLINE="1",
        )
        assert done.returncode == 0, done.stderr
        reports[name] = json.loads(out.read_text())
    for key in ("directions", "ground_truth"):
        assert reports["hub"][key] == reports["local"][key]


def test_parsing_refuses_what_is_not_a_model_path(need):
    need("huggingface_hub")
    from ugatit.weights.hub import HubPath, parse_hub_path

    assert parse_hub_path("hf://a/b") == HubPath("a/b", None, "")
    assert parse_hub_path("hf://a/b@dev/sub/x.safetensors") == HubPath("a/b", "dev", "sub/x.safetensors")
    assert str(parse_hub_path("hf://a/b@dev/sub/x.safetensors")) == "hf://a/b@dev/sub/x.safetensors"
    for bad in ("hf://", "hf://spaces/a/b"):
        with pytest.raises(UserError) as info:
            parse_hub_path(bad)
        assert bad in str(info.value) and "\n" not in str(info.value)
