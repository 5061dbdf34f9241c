"""One family of exceptions whose message is fit to show a user as a single line.

The CLI prints ``error: <message>`` for any :class:`GenvisionError` and exits non-zero;
anything else is a bug and gets a traceback only with ``--debug``.
"""


class GenvisionError(Exception):
    """Base class: the message must make sense on its own, on one line."""


class ConfigError(GenvisionError):
    """A recipe, override or argument is wrong."""


class DataError(GenvisionError):
    """A dataset is missing, incomplete or malformed."""


class ImageLoadError(GenvisionError):
    """An image file cannot be read safely; the message names the file."""


class CheckpointError(GenvisionError):
    """A model directory or checkpoint is missing, incomplete or unsafe."""


class TrainingError(GenvisionError):
    """Training cannot continue (for example repeated non-finite losses)."""
