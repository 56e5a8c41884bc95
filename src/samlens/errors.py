"""Errors that mean "the user asked for something invalid".

The CLI prints these as one line and exits with status 2; anything else is a bug
and keeps its traceback.
"""


class SamlensError(Exception):
    """Base class for user-facing errors (bad input, bad config, missing files)."""


class ConfigError(SamlensError, ValueError):
    """A configuration value is invalid or unknown."""


class DatasetFormatError(SamlensError, ValueError):
    """A dataset file or directory is missing or does not have the expected format."""
