"""Errors the CLI turns into one-line messages instead of tracebacks."""


class ZooError(Exception):
    """A failure with a message fit for the user; exit code 1."""

    exit_code = 1


class BadInput(ZooError):
    """Bad usage or bad input (a file, a value, a path); exit code 2.

    The message names the file or value and the problem, in one line.
    """

    exit_code = 2


class ZooWarning(UserWarning):
    """Something the user should know that does not stop the work (skipped files, dropped rows)."""


def warn(message: str) -> None:
    """The one way the zoo warns: a Python warning (filterable in code), one `zoo: warning:` line from the CLI."""
    import warnings

    warnings.warn(message, ZooWarning, stacklevel=3)
