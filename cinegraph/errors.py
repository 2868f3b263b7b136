"""The one exception type users see: a one-line message naming the file or argument and the problem."""


class CinegraphError(Exception):
    """A failure caused by input, configuration or environment, not a bug: the CLI prints its
    message on one line (no traceback) and exits with status 2."""
