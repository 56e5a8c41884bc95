"""Errors that mean "the user asked for something invalid".

The CLI prints these as one line and exits with status 2; anything else is a bug
and keeps its traceback.
"""


class SamlensError(Exception):
    """Base class for user-facing errors (bad input, bad config, missing files)."""


class ConfigError(SamlensError, ValueError):
    """A configuration value is invalid or unknown.

    ``key`` is the dotted option whose value is not of the option's type, when that is the error
    (the command line then says which argument it could not read).
    """

    key: str | None = None


class DatasetFormatError(SamlensError, ValueError):
    """A dataset file or directory is missing or does not have the expected format."""


class StorageError(SamlensError, OSError):
    """A file could not be written (a full or read-only disk, no permission); what was written
    before is intact. Also an ``OSError``, so ``except OSError`` still catches it."""


class EngineError(SamlensError, RuntimeError):
    """A launcher's engine (a Ray cluster, SLURM's sbatch) could not be reached or refused the work."""


class Preempted(SamlensError):
    """A run stopped on a signal after writing its checkpoint; running it again resumes it.

    The CLI exits with 128 + ``signum`` (143 for SIGTERM, 130 for SIGINT), as the shell would.
    """

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum

    def __reduce__(self) -> tuple[type, tuple[str, int]]:  # crosses process pools intact
        return (type(self), (str(self), self.signum))
