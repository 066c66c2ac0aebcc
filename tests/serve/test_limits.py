"""The web app holds uploads to the decode budget of every command (issue 19): an image under the app's
50-megapixel cap that decodes huge (7000 x 7000 at 16 bits a sample, 95 KB on disk) is refused in words,
without the 5 GB and 20 s of the app's only queue slot its decode used to take.
"""

from __future__ import annotations

from pathlib import Path

from app_helpers import call_app

from huge_png import huge_png

#: Gradio, torch and the tiny model; the decode alone took 5 GB before uploads were held to the budget.
PEAK_LIMIT = 2 << 30


def peak_memory(pid: int) -> int:
    """A process's peak resident memory so far (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_an_upload_that_decodes_huge_is_refused_in_words(server, tmp_path, need):
    upload = huge_png(tmp_path / "seven.png", 7000, 7000)
    *galleries, verdict, downloads, message = call_app(server, need, tmp_path / "api", upload)
    assert message.startswith("**Not translated:** seven.png: too large to decode: 7000x7000 pixels of 16 bits")
    assert galleries == [[], [], []] and not verdict and not downloads
    assert peak_memory(server.process.pid) < PEAK_LIMIT
