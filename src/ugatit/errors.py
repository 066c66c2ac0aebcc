"""The one exception type for mistakes a user can make.

Anything a user can cause (a missing folder, a bad value, a checkpoint of the wrong kind) raises
`UserError` with a message that names the file, config key or argument. The CLI prints it as one line,
in terms of its flags, and exits 2; every other exception is a bug and keeps its traceback.
"""

import re
from collections.abc import Mapping
from typing import Any


class UserError(Exception):
    """A problem with the user's input, reported as one line without a traceback.

    Messages speak the library's terms and put them in backticks: config keys (`optim.iterations`),
    arguments (`resume=True`, `device=cuda`). A front end that calls them something else rewords them:
    the CLI turns each into its flag (`--iters`, `--resume`, `--device cuda`).
    """


def require_int(name: str, value: Any, minimum: int) -> None:
    """Raise `UserError` unless `value` is an integer (not a bool) of at least `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"{name} must be an integer >= {minimum}, got {value!r}")


_TERM = re.compile(r"`([A-Za-z_][\w.]*)(?:=([^`]*))?`")


def reword(message: str, flags: Mapping[str, str]) -> str:
    """A library message in a front end's terms (`flags`: how each term reads there). On the command line
    `optim.iterations` -> --iters, `resume=True` -> --resume, `resume=False` -> no --resume, `device=cuda`
    -> --device cuda. Terms without a flag lose their backticks."""

    def replace(match: re.Match) -> str:
        name, value = match.group(1), match.group(2)
        flag = flags.get(name)
        if flag is None:
            return match.group(0)[1:-1]
        if value is None or value == "True":
            return flag
        if value == "False":
            return f"no {flag}"
        return f"{flag} {value}"

    return _TERM.sub(replace, message)
