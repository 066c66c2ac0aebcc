"""Running `ugatit` in a subprocess as the fault tests do (tests/cli/faults: injected faults) and reading
what a run left. Imported as `cli_helpers` by the CLI tests, so that no test module imports another."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

from ugatit.weights import checkpoints

FAULTS_SITE = Path(__file__).parent / "faults"
#: prctl's option that makes a process adopt its orphaned descendants (linux/prctl.h).
PR_SET_CHILD_SUBREAPER = 36


def environment(**faults: str) -> dict[str, str]:
    """The subprocess environment: one thread, no tensorboard (a faster start), the given faults
    (see faults/sitecustomize.py)."""
    path = os.pathsep.join(filter(None, [str(FAULTS_SITE), os.environ.get("PYTHONPATH", "")]))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=path, UGATIT_TEST_NO_TENSORBOARD="1")
    env.update({f"UGATIT_TEST_{name.upper()}": value for name, value in faults.items()})
    return env


def command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "ugatit", *map(str, args)]


def run(*args: str | Path, **faults: str) -> subprocess.CompletedProcess:
    return subprocess.run(command(*args), capture_output=True, text=True, env=environment(**faults), timeout=300)


def run_together(*commands: list[str]) -> list[subprocess.CompletedProcess]:
    """Several independent commands at once: most of each is starting Python and importing torch."""
    processes = [
        subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment())
        for c in commands
    ]
    results = []
    for process, args in zip(processes, commands):
        stdout, stderr = process.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(args, process.returncode, stdout, stderr))
    return results


def one_line_error(result: subprocess.CompletedProcess, subcommand: str, *fragments: str) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith(f"ugatit {subcommand}: error: ")]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def wait_for(condition, process: subprocess.Popen | None = None, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert process is None or process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def log_lines(run_dir: Path) -> int:
    log = run_dir / "log.jsonl"
    return log.read_text().count("\n") if log.is_file() else 0


def steps_saved(run_dir: Path) -> list[int]:
    return [int(p.stem.split("_")[1]) for p in checkpoints.list_checkpoints(run_dir)]


@contextlib.contextmanager
def adopting_orphans():
    """Make this process the subreaper of what it starts (Linux): a process whose parent dies becomes its
    child, so its exit status can be read with waitpid."""
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0, ctypes.get_errno()
    try:
        yield
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def lock_is_free(run_dir: Path) -> bool:
    """Whether no process holds the run folder's lock."""
    with open(run_dir / ".lock", "rb") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        fcntl.flock(lock, fcntl.LOCK_UN)
        return True
