"""The one exception type a user sees: a one-line message, no traceback."""


class UserError(Exception):
    """A problem with what the user asked for (input, flags, files); the CLI prints it on one line."""
