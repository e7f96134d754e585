"""The few error types a user can cause; each carries the exit code the CLI turns it into.

Anything else escaping to the CLI is a bug in ptor and is reported as such.
"""

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_CLUSTER = 3
EXIT_UNKNOWN = 4
EXIT_INTERRUPTED = 128  # + the signal's number, as shells report it


class PtorError(Exception):
    """An error with one clear sentence for the user and an exit code."""

    exit_code = EXIT_FAIL


class ConfigError(PtorError):
    """Bad scenario: options, values, files. Exit 2."""

    exit_code = EXIT_USAGE


class ClusterError(PtorError):
    """The cluster or the repo cannot be reached or prepared. Exit 3."""

    exit_code = EXIT_CLUSTER


class RecorderError(PtorError):
    """The ledger could not be written, so no figure of this run can be trusted. Exit 3."""

    exit_code = EXIT_CLUSTER
