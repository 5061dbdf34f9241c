"""The conditional VAE family (``genvision train cvae``): the VAE objective with the class label
into encoder and decoder. Everything but the recipe's default data lives in ``vae.py``."""

from __future__ import annotations

from .objective import VAERecipe
from .objective import build as _build_vae

RECIPE = VAERecipe
DESCRIPTION = "conditional VAE: the beta-VAE bound with class labels into encoder and decoder"


def build(recipe: VAERecipe, data):
    return _build_vae(recipe, data, conditional=True)


__all__ = ["RECIPE", "DESCRIPTION", "build"]
