"""The one exception type for bad user input.

`UserError` is what the CLI turns into one line on stderr and exit code 2; any other exception is a bug and
keeps its traceback.
"""


class UserError(Exception):
    """Bad input from the user: the message says what was wrong and how to fix it."""
