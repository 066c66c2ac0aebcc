"""Faults injected into a `ugatit` subprocess by the tests, chosen by environment variables.

UGATIT_TEST_ENOSPC=FRAGMENT:BYTES  files whose path contains FRAGMENT, opened for writing with open()
                                   (io.open) or os.open(), take BYTES more bytes and then fail as a full
                                   disk does: a short write, then OSError(ENOSPC)
UGATIT_TEST_EROFS=FRAGMENT         files whose path contains FRAGMENT cannot be opened for writing or
                                   created (open(), os.open(), mkstemp): OSError(EROFS), a read-only disk
UGATIT_TEST_NAN_AT=STEP[:RANK]     iteration STEP reports a NaN loss, as a blown-up generator would (on
                                   distributed rank RANK only, when given)
UGATIT_TEST_CRASH_AT=STEP:RANK     distributed rank RANK dies (exit 3, no clean-up) in iteration STEP
UGATIT_TEST_DESYNC_AT=STEP:RANK    rank RANK's disGA weights are nudged after iteration STEP, as a
                                   silent corruption of one process would
UGATIT_TEST_STEP_SECONDS=S         every iteration takes S seconds more (a signal then lands inside one)
UGATIT_TEST_EXIT_SECONDS=S         the process takes S seconds more to exit once its work is done, as
                                   a slow interpreter shutdown would (a signal then lands after the run)
UGATIT_TEST_NO_TENSORBOARD=1       as if tensorboard were not installed (a faster start)
"""

import builtins
import errno
import io
import os
import sys

if os.environ.get("UGATIT_TEST_EXIT_SECONDS"):
    import atexit
    import time

    atexit.register(time.sleep, float(os.environ["UGATIT_TEST_EXIT_SECONDS"]))

if os.environ.get("UGATIT_TEST_NO_TENSORBOARD"):
    sys.modules["tensorboard"] = None

_ENOSPC = os.environ.get("UGATIT_TEST_ENOSPC")
if _ENOSPC:
    _fragment, _, _bytes = _ENOSPC.rpartition(":")
    _left = [int(_bytes)]

    def _take(size: int) -> int:
        taken = min(size, _left[0])
        _left[0] -= taken
        return taken

    def _full() -> OSError:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    class _FillingFile:
        def __init__(self, file):
            self._file = file

        def write(self, data):
            data = data if isinstance(data, str) else bytes(data)  # text files count characters
            taken = _take(len(data))
            if taken < len(data):
                self._file.write(data[:taken])
                raise _full()
            return self._file.write(data)

        def __getattr__(self, name):
            return getattr(self._file, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            self._file.close()

    _open = builtins.open

    def _patched_open(file, mode="r", *args, **kwargs):
        opened = _open(file, mode, *args, **kwargs)
        if _fragment in str(file) and any(c in mode for c in "wax+"):
            return _FillingFile(opened)
        return opened

    builtins.open = io.open = _patched_open  # io.open: TensorBoard's writer opens its files with it

    _os_open, _os_write, _filling = os.open, os.write, set()

    def _patched_os_open(path, flags, *args, **kwargs):
        fd = _os_open(path, flags, *args, **kwargs)
        if _fragment in str(path) and flags & (os.O_WRONLY | os.O_RDWR):
            _filling.add(fd)
        return fd

    def _patched_os_write(fd, data):
        if fd not in _filling:
            return _os_write(fd, data)
        taken = _take(len(data))
        if taken == 0:
            raise _full()
        return _os_write(fd, bytes(data)[:taken])

    _os_close = os.close

    def _patched_os_close(fd):
        _filling.discard(fd)  # the number will be reused
        return _os_close(fd)

    os.open, os.write, os.close = _patched_os_open, _patched_os_write, _patched_os_close


_EROFS = os.environ.get("UGATIT_TEST_EROFS")
if _EROFS:
    _ro_open, _ro_os_open = builtins.open, os.open

    def _read_only() -> OSError:
        return OSError(errno.EROFS, os.strerror(errno.EROFS))

    def _ro_patched_open(file, mode="r", *args, **kwargs):
        if _EROFS in str(file) and any(c in mode for c in "wax+"):
            raise _read_only()
        return _ro_open(file, mode, *args, **kwargs)

    def _ro_patched_os_open(path, flags, *args, **kwargs):
        if _EROFS in str(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise _read_only()
        return _ro_os_open(path, flags, *args, **kwargs)

    builtins.open = io.open = _ro_patched_open
    os.open = _ro_patched_os_open


def _at(variable):
    """(step, rank or None) of a fault variable STEP[:RANK], or None when unset."""
    text = os.environ.get(variable)
    if not text:
        return None
    step, _, rank = text.partition(":")
    return int(step), (int(rank) if rank else None)


def _here(step, rank):
    return rank is None or int(os.environ.get("RANK", "0")) == rank


_NAN_AT, _CRASH_AT, _DESYNC_AT = _at("UGATIT_TEST_NAN_AT"), _at("UGATIT_TEST_CRASH_AT"), _at("UGATIT_TEST_DESYNC_AT")
_STEP_SECONDS = float(os.environ.get("UGATIT_TEST_STEP_SECONDS") or 0)
if _NAN_AT or _CRASH_AT or _DESYNC_AT or _STEP_SECONDS:
    import time

    import torch

    from ugatit.training.step import TrainingStep

    _call = TrainingStep.__call__

    def _faulty(self, real_A, real_B, step):
        if _STEP_SECONDS:
            time.sleep(_STEP_SECONDS)
        if _CRASH_AT and step == _CRASH_AT[0] and _here(*_CRASH_AT):
            os._exit(3)
        losses = _call(self, real_A, real_B, step)
        if _NAN_AT and step == _NAN_AT[0] and _here(*_NAN_AT):
            losses["G_recon_loss_A"] = torch.tensor(float("nan"))
        if _DESYNC_AT and step == _DESYNC_AT[0] and _here(*_DESYNC_AT):
            with torch.no_grad():
                self.model.disGA.model[1].bias.add_(1e-3)
        return losses

    TrainingStep.__call__ = _faulty
