"""One family of exceptions whose message is fit to show a user as a single line.

The CLI prints ``error: <message>`` for any :class:`GenvisionError` and exits non-zero;
anything else is a bug and gets a traceback only with ``--debug``.
"""

import os


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


class InputShapeError(GenvisionError, ValueError):
    """A tensor handed to a network has the wrong shape (a ValueError too, for library callers)."""


class TrainingError(GenvisionError):
    """Training cannot continue (for example repeated non-finite losses)."""


def display_path(path) -> str:
    """A path as text on one line: file names may legally contain newlines and control characters."""
    text = os.fsdecode(os.fspath(path))
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def reason(exc: BaseException, limit: int = 200) -> str:
    """An exception's message as one line of at most ``limit`` characters, cut between words."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if len(text) <= limit:
        return text
    cut = text[:limit - 3]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut) + "..."
