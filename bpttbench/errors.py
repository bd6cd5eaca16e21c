"""Errors bpttbench raises on purpose; the CLI turns them into one-line messages.

A `UserError` is the user's to fix (exit code 2); anything else that reaches the
CLI is a failure that is not the user's fault (exit code 1), and so is a `DownloadError`.
"""


class BpttbenchError(Exception):
    """Base of every deliberate bpttbench error; str() is one line naming problem and fix."""

    exit_code = 1


class UserError(BpttbenchError):
    exit_code = 2


class ConfigError(UserError, ValueError):
    """An invalid training or run configuration."""


class CorpusError(UserError):
    """A corpus that cannot be found, read, verified or used."""


class ResultsError(UserError):
    """An output directory that cannot be written, or results that cannot be read."""


class DownloadError(CorpusError):
    """A registered corpus that could not be fetched, or came back wrong: the network's or the
    server's failure rather than the user's input, so exit code 1 (still a CorpusError)."""

    exit_code = 1
