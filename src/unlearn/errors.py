"""User-facing errors: each one names what to change."""


class UnlearnError(Exception):
    """An error caused by input the user can fix; the message says how.

    The CLI prints it on one line and exits with status 2.
    """


class ConfigError(UnlearnError):
    """A configuration or request file is malformed or names something unknown."""


class TrainingDiverged(UnlearnError):
    """The loss or the gradients became NaN/inf; the last good weights were restored."""
