"""genvision: train and use image generation, editing and recognition models.

Heavy modules (torch models, data, the CLI) are imported on first use so that
``import genvision`` stays cheap.
"""

__version__ = "0.1.0"

from .errors import GenvisionError  # noqa: E402

__all__ = ["__version__", "GenvisionError"]
