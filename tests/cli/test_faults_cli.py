"""The faults real runs meet (issue 13), met through `ugatit` in a subprocess as a user or a scheduler
meets them: group signals, a full disk, two trainers on one folder, a damaged config.yaml, files left by
kill -9, damaged and crafted checkpoints, unreadable images, a run that diverged.

Each test asserts the message, the exit code, and that the last good checkpoint still resumes exactly:
continued for one iteration (in-process, which is quicker), it holds the state that an uninterrupted
run (`reference`, saved at every step) has at that step. The config turns off the lr decay, so the
length of a run does not change its maths and one reference serves runs of any length.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from cli_helpers import command, environment, log_lines, one_line_error, run, run_together, steps_saved, wait_for

from helpers import noise, write_plain
from ugatit.config import Config
from ugatit.training import train
from ugatit.weights import checkpoints

FAULT_CONFIG = """\
model: {img_size: 32, ch: 2, n_res: 1, light: true}
optim: {decay: false}
data: {num_workers: 0}
train: {device: cpu, log_every: 1, sample_every: 0, save_every: 2, keep_last: 2}
"""
REFERENCE_STEPS = 12


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Three images a domain, with FAULT_CONFIG beside them (`config_file`)."""
    root = tmp_path_factory.mktemp("faults") / "tinyset"
    for domain, seed in (("trainA", 0), ("trainB", 100)):
        write_plain(root / domain, 3, seed=seed)
    (root.parent / "faults.yaml").write_text(FAULT_CONFIG)
    return root


@pytest.fixture(scope="module")
def config_file(data) -> Path:
    return data.parent / "faults.yaml"


def quiet_train(config: Config, data: Path, run_dir: Path, **options) -> object:
    return train(
        config,
        data / "trainA",
        data / "trainB",
        run_dir,
        progress=False,
        tensorboard=False,
        on_message=lambda text: None,
        **options,
    )


@pytest.fixture(scope="module")
def reference(data, config_file) -> Path:
    """The uninterrupted run, with a checkpoint at every step."""
    config = Config.load(config_file)
    config = config.replace(
        optim=replace(config.optim, iterations=REFERENCE_STEPS), train=replace(config.train, save_every=1, keep_last=0)
    )
    run_dir = data.parent / "reference"
    quiet_train(config, data, run_dir)
    return run_dir


def assert_resumes_exactly(run_dir: Path, data: Path, reference: Path) -> int:
    """Continue a copy of `run_dir` from its last good checkpoint (step k) to k + 1; its state must be
    the reference's at k + 1, bit for bit. Returns k."""
    copy = run_dir.parent / f"{run_dir.name}-continued"
    shutil.copytree(run_dir, copy)
    _path, state, _ = checkpoints.newest_readable_checkpoint(copy)
    step = int(state["step"])
    assert step + 1 <= REFERENCE_STEPS, f"the reference run is too short for step {step + 1}"
    config = Config.from_dict(state["config"])
    result = quiet_train(config.replace(optim=replace(config.optim, iterations=step + 1)), data, copy, resume=True)
    assert result.step == step + 1
    continued = checkpoints.load_training_checkpoint(result.checkpoint)
    expected = checkpoints.load_training_checkpoint(checkpoints.checkpoint_path(reference, step + 1))
    assert checkpoints.state_differences(continued, expected) == []
    return step


# --- 1. Signals to the whole process group ---------------------------------------------------------------


def test_sigterm_to_the_process_group_with_data_workers_saves(data, config_file, reference, tmp_path):
    """What `timeout`, systemd and Slurm do: SIGTERM to every process of the group, workers included."""
    out = tmp_path / "run"
    train_command = command(
        "train",
        data,
        "--config",
        config_file,
        "--iters",
        100000,
        "--workers",
        2,
        "--save-every",
        100000,
        "--out",
        out,
        "--no-progress",
    )
    process = subprocess.Popen(
        train_command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(),
        start_new_session=True,
    )
    try:
        wait_for(lambda: log_lines(out) >= 2, process)
        os.killpg(process.pid, signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143, stderr
    assert "SIGTERM: finishing this iteration, then saving" in stderr
    assert "Traceback" not in stderr and "killed by signal" not in stderr
    assert "continue with:" in stdout and "--resume" in stdout
    assert len(steps_saved(out)) == 1
    assert_resumes_exactly(out, data, reference)


def test_a_second_sigterm_still_saves_and_a_second_sigint_aborts(data, config_file, reference, tmp_path):
    """Schedulers and torchrun send SIGTERM more than once: only Ctrl-C twice means "now"."""
    runs = {}
    for name in ("SIGTERM", "SIGINT"):
        out = tmp_path / name
        train_command = command(
            "train", data, "--config", config_file, "--iters", 100000, "--save-every", 100000, "--out", out
        )
        process = subprocess.Popen(
            [*train_command, "--no-progress"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment(step_seconds="1.5"),  # the second signal lands in the iteration the first ended
        )
        runs[name] = (out, process)
    try:
        for name, (out, process) in runs.items():
            wait_for(lambda out=out: log_lines(out) >= 2, process)
            process.send_signal(signal.Signals[name])
            time.sleep(0.3)
            process.send_signal(signal.Signals[name])
        results = {name: process.communicate(timeout=120) for name, (_, process) in runs.items()}
    finally:
        for _, process in runs.values():
            if process.poll() is None:
                process.kill()
    (term_out, term), (int_out, interrupted) = runs["SIGTERM"], runs["SIGINT"]
    assert term.returncode == 143, results["SIGTERM"][1]
    assert len(steps_saved(term_out)) == 1
    assert_resumes_exactly(term_out, data, reference)
    assert interrupted.returncode == 130, results["SIGINT"][1]
    assert "ugatit train: interrupted" in results["SIGINT"][1] and "Traceback" not in results["SIGINT"][1]
    assert steps_saved(int_out) == [] and not list(int_out.rglob("*.tmp"))


# --- 2. A full disk ---------------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """(folder, faults): a real 1.1 MB disk where a tmpfs can be mounted (two checkpoints of the tiny
    model fit, 430 KB each, a third does not), else a folder whose third checkpoint fills the disk."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1100k", "tmpfs", str(mount)], capture_output=True)
    if mounted.returncode != 0:
        yield mount, {"enospc": "step_00000006:100000"}
        return
    yield mount, {}
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_during_a_checkpoint_stops_with_the_last_good_one(
    small_disk, data, config_file, reference, tmp_path
):
    """On a real full disk torch.save raises RuntimeError("unexpected pos"), not OSError."""
    folder, faults = small_disk
    out = folder / "run"
    result = run("train", data, "--config", config_file, "--iters", 12, "--out", out, "--no-progress", **faults)
    line = one_line_error(
        result,
        "train",
        f"cannot write {out}/checkpoints/step_00000006.pt",
        f"no space left on the device holding {out}",
        "a checkpoint takes ",
        f"the last good checkpoint is {out}/checkpoints/step_00000004.pt (step 4)",
        "free some space, then continue with --resume",
    )
    if not faults:
        assert "KB free" in line, line  # less than the 420 KB a checkpoint takes
    assert f"--out {out} --resume" in result.stdout
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_00000002.pt", "step_00000004.pt"]
    saved = tmp_path / "freed"  # the user frees space: here, the run moves to a disk with room
    shutil.copytree(out, saved)
    assert assert_resumes_exactly(saved, data, reference) == 4


def test_a_full_disk_while_logging_saves_the_state_and_cuts_the_half_line(data, config_file, reference, tmp_path):
    out = tmp_path / "run"
    result = run(
        "train", data, "--config", config_file, "--iters", 12, "--out", out, "--no-progress", enospc="log.jsonl:4000"
    )  # about four records
    line = one_line_error(result, "train", f"cannot write {out}/log.jsonl", "no space left on the device")
    step = max(steps_saved(out))
    assert f"the state of step {step} was saved to {out}/checkpoints/step_{step:08d}.pt after it" in line
    text = (out / "log.jsonl").read_text()  # the record of `step` failed half-way and was cut off
    assert text.endswith("\n") and [json.loads(line)["step"] for line in text.splitlines()] == list(range(1, step))
    assert assert_resumes_exactly(out, data, reference) == step


# --- 3. Two trainers on one run folder --------------------------------------------------------------------


def test_a_second_trainer_on_a_run_folder_is_refused_and_kill_9_leaves_no_lock(data, config_file, reference, tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen(
        command("train", data, "--config", config_file, "--iters", 100000, "--out", out, "--no-progress"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment(),
    )
    second = None
    try:
        wait_for(lambda: (out / ".lock").is_file() and f"pid {first.pid} " in (out / ".lock").read_text(), first)
        second = subprocess.Popen(
            command("train", data, "--out", out, "--resume", "--lr", "1", "--no-progress"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment(),
        )
        wait_for(lambda: (out / "checkpoints" / "step_00000002.pt").is_file(), first)
        first.send_signal(signal.SIGSTOP)  # still holds the folder; stopped early, for the reference's sake
        stdout, stderr = second.communicate(timeout=300)
        refused = subprocess.CompletedProcess(second.args, second.returncode, stdout, stderr)
        one_line_error(
            refused,
            "train",
            f"{out} is in use by another training process (pid {first.pid} on ",
            "wait for it to finish or stop it, or choose another output folder (--out)",
        )
        first.kill()  # kill -9, as an OOM killer or a scheduler does
        first.wait(timeout=60)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
    assert assert_resumes_exactly(out, data, reference) >= 2  # takes the lock: the kernel released it


# --- 4. config.yaml --------------------------------------------------------------------------------------


def test_an_empty_config_yaml_resumes_with_the_runs_own_settings(data, reference, tmp_path):
    """Emptied by a crash mid-write, config.yaml used to resume silently with the paper's defaults
    (1,000,000 iterations). The run's settings are in its checkpoints, the one place a resume reads them
    from: config.yaml is a copy for people, written again whole."""
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    for path in checkpoints.list_checkpoints(out)[4:]:
        path.unlink()
    (out / "config.yaml").write_text("")
    result = run("train", data, "--out", out, "--resume", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "config file" not in result.stderr  # nothing to say about it: it was not read
    assert f"for {REFERENCE_STEPS} iterations" in result.stderr and "resuming at step 4" in result.stderr
    assert Config.load(out / "config.yaml", complete=True).optim.iterations == REFERENCE_STEPS
    final = checkpoints.load_training_checkpoint(checkpoints.checkpoint_path(out, REFERENCE_STEPS))
    expected = checkpoints.load_training_checkpoint(checkpoints.checkpoint_path(reference, REFERENCE_STEPS))
    assert checkpoints.state_differences(final, expected) == []


# --- 5 and 6. Files left by kill -9, damaged and crafted checkpoints --------------------------------------


class RunsCode:
    """Unpickled, it would run a shell command that leaves `marker` behind."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def crafted_files(folder: Path) -> dict[str, Path]:
    """A .pt that would run code when unpickled (folder/ran_code would appear), and two exports whose
    config metadata is unusable."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "pickle": folder / "runs_code.pt",
        "not json": folder / "not_json.safetensors",
        "no config": folder / "no_config.safetensors",
    }
    torch.save({"networks": RunsCode(folder / "ran_code")}, files["pickle"])
    tensors = {"genA2B.gap_fc.weight": torch.zeros(2, 2)}
    save_file(tensors, str(files["not json"]), metadata={"format": "ugatit-export-1", "config": "{model: ch=4"})
    save_file(tensors, str(files["no config"]), metadata={"format": "ugatit-export-1"})
    return files


def test_stale_temporaries_are_removed_and_unreadable_checkpoints_passed_over(data, reference, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    for path in checkpoints.list_checkpoints(out)[4:]:
        path.unlink()
    stale = out / "checkpoints" / ".step_00000006.pt.k2j4h5g6.tmp"  # what kill -9 during a save leaves
    stale.write_bytes(b"\0" * 300_000)
    newest = checkpoints.checkpoint_path(out, 4)
    newest.write_bytes(newest.read_bytes()[:5000])
    shutil.copy(crafted_files(tmp_path / "crafted")["pickle"], checkpoints.checkpoint_path(out, 6))
    translate_out, for_translate = tmp_path / "translated", tmp_path / "run-to-translate"
    shutil.copytree(out, for_translate)  # the resumed run renames files of its own folder

    translated, resumed = run_together(
        command(
            "translate",
            "--checkpoint",
            for_translate,
            "--input",
            data / "trainA",
            "--output",
            translate_out,
            "--no-progress",
        ),
        command("train", data, "--out", out, "--resume", "--iters", 5, "--no-progress"),
    )
    assert translated.returncode == 0, translated.stderr
    skipped = f"skipped checkpoint {for_translate}/checkpoints/step_0000000"
    assert f"{skipped}6.pt: it holds objects other than tensors" in translated.stderr
    assert f"{skipped}4.pt: corrupted, truncated" in translated.stderr
    assert "using step_00000003.pt" in translated.stderr and len(list(translate_out.glob("*.png"))) == 3

    assert resumed.returncode == 0, resumed.stderr
    assert (
        f"removed 1 unfinished file that an interrupted write left in {out}: checkpoints/{stale.name}" in resumed.stderr
    )
    assert (
        "skipped checkpoint step_00000006.pt: it holds objects other than tensors and plain data (posix.system)"
        in resumed.stderr
    )
    assert "skipped checkpoint step_00000004.pt: corrupted, truncated" in resumed.stderr
    assert "kept it as step_00000004.pt.unreadable, resuming from step_00000003.pt" in resumed.stderr
    assert "resuming at step 3" in resumed.stderr
    assert not stale.exists() and (out / "checkpoints" / "step_00000006.pt.unreadable").is_file()
    final = checkpoints.load_training_checkpoint(checkpoints.checkpoint_path(out, 5))
    expected = checkpoints.load_training_checkpoint(checkpoints.checkpoint_path(reference, 5))
    assert checkpoints.state_differences(final, expected) == []


def test_crafted_checkpoints_are_one_line_errors(data, tmp_path):
    files = crafted_files(tmp_path / "crafted")
    results = run_together(
        *(
            command(
                "translate",
                "--checkpoint",
                path,
                "--input",
                data / "trainA",
                "--output",
                tmp_path / name.replace(" ", "_"),
            )
            for name, path in files.items()
        )
    )
    pickle, not_json, no_config = results
    one_line_error(
        pickle,
        "translate",
        str(files["pickle"]),
        "holds objects other than tensors and plain data (posix.system), which are never unpickled here",
    )
    one_line_error(not_json, "translate", str(files["not json"]), "the 'config' in its metadata is not JSON")
    one_line_error(no_config, "translate", str(files["no config"]), "its metadata has no 'config'")
    assert not (tmp_path / "crafted" / "ran_code").exists()


# --- 7. Unreadable images ---------------------------------------------------------------------------------


def write_damaged(root: Path) -> list[str]:
    """A dataset with five unreadable files among readable ones; returns the unreadable names."""
    write_plain(root / "trainA", 3, seed=10)
    write_plain(root / "trainB", 3, seed=20)
    whole = root / "trainB" / "plain_0.png"
    (root / "trainA" / "cut.png").write_bytes(whole.read_bytes()[:300])
    (root / "trainA" / "empty.png").write_bytes(b"")
    (root / "trainB" / "text.jpg").write_text("not an image\n")
    jpeg = root / "trainB" / "whole.jpg"
    noise(1, (64, 64)).save(jpeg, quality=90)
    (root / "trainB" / "cut.jpg").write_bytes(jpeg.read_bytes()[:600])
    (root / "trainA" / "header.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 20)
    # Readable: data after a whole JPEG (some cameras append a preview or a video)
    (root / "trainA" / "trailing.jpg").write_bytes(jpeg.read_bytes() + b"APPENDED" * 100)
    return ["cut.png", "empty.png", "header.png", "text.jpg", "cut.jpg"]


def test_unreadable_images_are_reported_before_training_and_by_check_data(config_file, reference, tmp_path):
    root = tmp_path / "damaged"
    unreadable = write_damaged(root)
    out = tmp_path / "run"
    checked, trained = run_together(
        command("check-data", root),
        command("train", root, "--config", config_file, "--iters", 2, "--save-every", 1, "--out", out, "--no-progress"),
    )
    assert checked.returncode == 1, checked.stderr
    listed = [line.split(": ", 1)[0] for line in checked.stdout.splitlines()[:-1]]
    assert sorted(Path(p).name for p in listed) == sorted(unreadable)
    assert "checked 13 images" in checked.stdout and "(trainA/ 7, trainB/ 6)" in checked.stdout
    assert "5 cannot be read" in checked.stdout

    assert trained.returncode == 0, trained.stderr
    assert (
        "checked 13 images in" in trained.stderr
        and "5 cannot be read: they are skipped whenever drawn" in trained.stderr
    )
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    reported = [r for r in records if r.get("event") == "bad_image"]
    assert sorted(Path(r["name"]).name for r in reported) == sorted(unreadable)
    assert all(r["step"] == 0 for r in reported) and records.index(reported[-1]) < len(reported)
    assert "trailing.jpg" not in trained.stderr and "trailing.jpg" not in checked.stdout
    # The scan changes nothing in what is drawn: a run stopped at step 1 continues as this one went on.
    stopped = tmp_path / "stopped"
    shutil.copytree(out, stopped)
    checkpoints.checkpoint_path(stopped, 2).unlink()
    assert assert_resumes_exactly(stopped, root, out) == 1


# --- 8. Continuing a run that diverged --------------------------------------------------------------------


def test_a_diverged_run_continues_with_an_explicit_override(data, config_file, reference, tmp_path):
    out = tmp_path / "run"
    result = run("train", data, "--config", config_file, "--iters", 6, "--out", out, "--no-progress", nan_at="5")
    one_line_error(
        result,
        "train",
        "training diverged at step 5: non-finite loss (G_recon_loss_A=nan)",
        f"the last good checkpoint is {out}/checkpoints/step_00000004.pt: continue from it with a "
        "smaller learning rate through --override",
    )
    suggested = result.stdout.strip().splitlines()[-1]
    assert suggested.endswith(f"--out {out} --resume --override lr=5e-05"), suggested
    assert assert_resumes_exactly(out, data, reference) == 4

    args = suggested.split("ugatit ", 1)[1].split()
    continued = run(*args, "--no-progress")
    assert continued.returncode == 0, continued.stderr
    assert "resuming with --lr changed from 0.0001 to 5e-05 (recorded in log.jsonl and config.yaml)" in continued.stderr
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert {"step": 4, "event": "override", "key": "optim.lr", "from": 0.0001, "to": 5e-05} in records
    assert [r["lr"] for r in records if "event" not in r and r["step"] > 4] == [5e-05, 5e-05]
    assert Config.load(out / "config.yaml").optim.lr == 5e-05
    assert checkpoints.load_training_checkpoint(checkpoints.checkpoint_path(out, 6))["config"]["optim"]["lr"] == 5e-05
