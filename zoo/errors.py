"""Errors the CLI turns into one-line messages instead of tracebacks."""


class ZooError(Exception):
    """A failure with a message fit for the user; exit code 1."""

    exit_code = 1


class BadInput(ZooError):
    """Bad usage or bad input (a file, a value, a path); exit code 2.

    The message names the file or value and the problem, in one line.
    """

    exit_code = 2
