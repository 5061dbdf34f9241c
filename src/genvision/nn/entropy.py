"""CompressAI's entropy models and rANS coder, loaded without its package ``__init__``.

The learned codec (:mod:`genvision.models.codec`) uses CompressAI (Bégaint et al. 2020) for what no
other well-kept library does: the factorized density of Ballé et al. 2017 (``EntropyBottleneck``),
the conditional Gaussian of Ballé et al. 2018 (``GaussianConditional``), GDN, and the range
asymmetric numeral system coder that writes the bitstream. CompressAI's own ``__init__`` imports its
point-cloud datasets, and with them torch-geometric and pandas (4 s of CPU, 20 s from a cold disk)
that the image codec never uses; so the package object is made here bare, and only the modules the
codec needs are imported from it. A ``compressai`` already imported normally is used as it is.

CompressAI 1.2.8's metadata pins numpy < 2, while the modules used here run on numpy 2 (the codec
tests check the bitstream round trip), so ``make install`` installs it with ``--no-deps``.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
import types
from functools import lru_cache

from ..errors import ConfigError

COMPRESSAI_VERSION = "1.2.8"
INSTALL_HINT = f"pip install --no-deps compressai=={COMPRESSAI_VERSION}"

__all__ = ["COMPRESSAI_VERSION", "INSTALL_HINT", "compressai_parts"]


@lru_cache(maxsize=1)
def compressai_parts() -> types.SimpleNamespace:
    """``EntropyBottleneck``, ``GaussianConditional``, ``GDN``, ``RansEncoder``, ``RansDecoder`` and
    ``scale_table()`` from CompressAI, or a one-line ConfigError saying how to install it."""
    if "compressai" not in sys.modules:
        spec = importlib.util.find_spec("compressai")
        if spec is None or spec.submodule_search_locations is None:
            raise ConfigError(f"the learned image codec needs CompressAI's entropy coder: {INSTALL_HINT}")
        package = types.ModuleType("compressai")
        package.__path__ = list(spec.submodule_search_locations)
        package.__spec__ = spec
        # The three functions the entropy models call on the package (its __init__ defines them; the
        # rANS coder, the only one built into the wheel, is the one the codec uses).
        package.available_entropy_coders = lambda: ["ans"]
        package.get_entropy_coder = lambda: "ans"
        package.set_entropy_coder = _only_ans
        sys.modules["compressai"] = package
    entropy_models = importlib.import_module("compressai.entropy_models")
    layers = importlib.import_module("compressai.layers.gdn")
    ans = importlib.import_module("compressai.ans")
    return types.SimpleNamespace(
        EntropyBottleneck=entropy_models.EntropyBottleneck,
        GaussianConditional=entropy_models.GaussianConditional,
        GDN=layers.GDN,
        RansEncoder=ans.RansEncoder,
        RansDecoder=ans.RansDecoder,
        scale_table=_scale_table,
    )


def _only_ans(name: str) -> None:
    if name != "ans":
        raise ConfigError(f"genvision's codec uses CompressAI's rANS coder, not {name!r}")


def _scale_table(low: float = 0.11, high: float = 256.0, levels: int = 64) -> list[float]:
    """The Gaussian scales the hyperprior quantises to, log-spaced (CompressAI's ``get_scale_table``,
    which lives in ``compressai.models``, a module that imports its point-cloud registry)."""
    step = (math.log(high) - math.log(low)) / (levels - 1)
    return [math.exp(math.log(low) + i * step) for i in range(levels)]
