"""genvision: train and use image generation, editing and recognition models.

The public API is loaded on first use (PEP 562), so ``import genvision`` stays cheap::

    import genvision
    model = genvision.load_model("runs/gan-mnist-...")      # or genvision.from_pretrained(...)
    images = genvision.generate(model, 16, seed=0)         # (16, C, H, W) in [-1, 1]
    genvision.train("gan", overrides=["data.name=mnist-mini", "steps=500"])
"""

__version__ = "0.1.0"

import importlib  # noqa: E402

from .errors import GenvisionError  # noqa: E402

_LAZY = {
    "load_model": ("checkpoints", "load_pretrained"),
    "from_pretrained": ("checkpoints", "load_pretrained"),
    "save_pretrained": ("checkpoints", "save_pretrained"),
    "create_model": ("registry", "create_model"),
    "list_models": ("registry", "list_models"),
    "list_datasets": ("data", "list_datasets"),
    "load_dataset": ("data", "load_dataset"),
    "generate": ("sampling", "generate"),
    "interpolate": ("sampling", "interpolate"),
    "evaluate": ("workflows.evaluate", "evaluate"),
    "train": ("workflows.train", "train"),
}

__all__ = ["__version__", "GenvisionError", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attribute)
    raise AttributeError(f"module 'genvision' has no attribute {name!r}")
