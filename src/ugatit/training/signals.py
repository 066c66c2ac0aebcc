"""Stopping a run cleanly: the first SIGINT/SIGTERM asks for a stop after the current iteration; a second
SIGINT aborts at once, a second SIGTERM changes nothing."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from typing import Any

MessageHook = Callable[[str], None]


class StopRequest:
    """Turns the first SIGINT/SIGTERM into a request to stop after the current iteration; a second
    SIGINT (Ctrl-C twice) aborts at once (KeyboardInterrupt). A repeated SIGTERM does not: schedulers and
    torchrun send more than one (torchrun forwards the one its whole process group got), and a stop
    already under way is what they ask for. Handlers are installed only in the main thread, where Python
    delivers signals, and the previous ones are restored on exit."""

    def __init__(self, notify: MessageHook):
        self.notify = notify
        self.reason: str | None = None
        self._previous: dict[int, Any] = {}

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason

    def _handle(self, signum: int, frame: Any) -> None:
        if os.getpid() != self._pid:
            # A forked child inherits this handler (data workers replace it with SIG_IGN once they
            # start, see data/unpaired.py); a group signal that reaches it before must not stop it:
            # the main process stops its children when it stops.
            return
        if self.reason is not None:
            if signum != signal.SIGINT:
                return
            self._restore()
            raise KeyboardInterrupt
        self.request(signal.Signals(signum).name)
        again = "press Ctrl-C again to abort at once" if signum == signal.SIGINT else "SIGINT aborts at once"
        try:
            self.notify(f"{self.reason}: finishing this iteration, then saving a checkpoint and stopping ({again})")
        except OSError:
            pass  # stderr went with the terminal or the pipe the signal came from: the checkpoint matters more

    def __enter__(self) -> StopRequest:
        self._pid = os.getpid()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._restore()

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
