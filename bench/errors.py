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
