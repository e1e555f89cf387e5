"""One exception type for bad input that the CLI turns into a single clear line and exit code 2."""


class BenchError(Exception):
    """A user-facing error: the message alone must tell what was wrong and what is valid."""
