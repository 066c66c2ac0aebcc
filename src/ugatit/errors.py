"""The one exception type for mistakes a user can make.

Anything a user can cause (a missing folder, a bad flag value, a checkpoint of the wrong kind) raises
`UserError` with a message that names the file or flag. The CLI prints it as one line and exits 2;
every other exception is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input, reported as one line without a traceback."""
