"""A child process that stops when the process that started it is gone.

A training process started by another (a torchrun rank by its agent, an ablation run by `ugatit ablate`)
must not train on unattended when its parent is killed: it would hold its run's lock and leave nobody to
report how it ended. `stop_with_parent` arranges that it stops as after a SIGTERM (the run saves a
checkpoint and releases the lock) and, if it has not ended `GRACE_S` later, ends itself.

A watchdog thread looks at the parent every `WATCH_INTERVAL_S` and asks for the stop through Python's
SIGTERM handler (`_thread.interrupt_main`), never with a real signal: a real one that landed after the
run had restored the default handler (its checkpoint saved, the process on its way out) would kill it
before it had flushed what it printed. For the same reason the kernel's parent-death signal is not used:
the kernel sends it again each time the child passes from one exiting thread of its parent to the next,
so one can arrive seconds after the first, when the run has ended (a run of `ugatit ablate` died of it).
"""

from __future__ import annotations

import _thread
import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable

#: How long a child whose parent is gone may take to finish its iteration, save and stop before it ends
#: itself (torchrun gives its ranks 30 s after a SIGTERM; saving a large model may take longer).
GRACE_S = 120.0
#: How often the watchdog looks for the parent.
WATCH_INTERVAL_S = 1.0


def stop_with_parent(parent: int, notice: str, notify: Callable[[str], None] | None = None) -> None:
    """Stop this process as after a SIGTERM when `parent` (a pid) is no longer its parent (at once if it is
    not its parent already), saying `notice` through `notify`; end it with SIGKILL `GRACE_S` later if it
    is still running."""
    watchdog = threading.Thread(target=_watch, args=(parent, notice, notify), name="ugatit-parent-watch", daemon=True)
    watchdog.start()


def _watch(parent: int, notice: str, notify: Callable[[str], None] | None) -> None:
    """The watchdog thread: the parent changes (to init or a subreaper) when the parent dies. It then runs
    the main thread's SIGTERM handler every second until the grace period ends: the run's stop request
    while it trains (a repeated SIGTERM changes nothing), nothing before the run installs it or after the
    run has restored the default (`interrupt_main` ignores a signal Python does not handle), so a process
    that is saving or exiting is never cut short."""
    while os.getppid() == parent:
        time.sleep(WATCH_INTERVAL_S)
    if notify is not None:
        with contextlib.suppress(Exception):  # its stderr may have gone with it
            notify(notice)
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline:
        _thread.interrupt_main(signal.SIGTERM)
        time.sleep(WATCH_INTERVAL_S)
    os.kill(os.getpid(), signal.SIGKILL)
