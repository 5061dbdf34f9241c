"""The tiny config of every registered model (``register_model(..., tiny=...)``), for the checkpoint
tests and the fuzz: a new model gets covered by registering, with no edit here."""

import genvision.models  # noqa: F401  (registers every network)
from genvision.registry import list_models

TINY = {entry.name: entry.tiny for entry in list_models()}
