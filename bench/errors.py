"""Exception types shared by every part of SceneBench.

Each carries a one-line, actionable message; the CLI maps them to exit codes.
"""


class BenchError(Exception):
    """Base class for errors SceneBench reports to the user."""

    exit_code = 1


class BadInput(BenchError):
    """Input the user can fix: a bad file, field, value or option (exit code 2)."""

    exit_code = 2


class Unavailable(BenchError):
    """A retriever or backend that cannot run here (weights, package or endpoint missing)."""

    exit_code = 2


class BackendError(BenchError):
    """A model backend call (an LLM endpoint or local model) failed after its retries: the
    service is down, timed out or answered with errors (exit code 3). Not bad input: the
    same command may work once the backend is back.

    ``unreachable`` is set when the last attempt could not connect at all (connection
    refused, unknown host): nothing is serving at that address."""

    exit_code = 3

    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable
