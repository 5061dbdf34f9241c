"""What one optimisation-based style transfer does: a typed dataclass, each default explained, checked
once (``check``) so that a wrong value is one ConfigError line before any image or weight is read.

The loss is, for the pastiche ``x`` (RGB in [0, 1], or its luminance with ``preserve_color``)::

    content_weight * sum_l mean((F_l(x) - F_l(c))^2)                       over content_layers
  + style_weight   * sum_l w_l * mean((G_l(x) - sum_s a_s G_l(s))^2)       over style_layers
  + tv_weight      * (mean|x[:, :, :, 1:] - x[:, :, :, :-1]| + mean|x[:, :, 1:] - x[:, :, :-1]|)

with ``G_l = F F^T / (C H W)`` (see :mod:`.losses`) and the style images' weights ``a_s`` summing to 1.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

from ...errors import ConfigError
from ...nn.features import VGG_LAYERS
from ...runtime import check_seed

BACKBONES = ("vgg19", "vgg16")
OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "noise")
# Gatys et al. 2016: relu{1..5}_1 for style (textures at five receptive-field sizes), relu4_2 for content.
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYERS = ("relu4_2",)
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02}  # L-BFGS scales its own steps; Adam's is ~5/255 per pixel and step
MAX_SCALES = 6
MAX_STEPS = 100_000
MAX_SIDE = 8192


@dataclass(frozen=True)
class StyleSettings:
    backbone: str = "vgg19"  # VGG-19 as in Gatys et al.; vgg16 is a little faster and a little blander
    backbone_weights: str | None = None  # a weights file to use instead of genvision's cache (genvision weights)
    style_layers: tuple[str, ...] = STYLE_LAYERS
    style_layer_weights: tuple[float, ...] | None = None  # None: 1 each (the Gram is already /(C H W))
    content_layers: tuple[str, ...] = CONTENT_LAYERS
    # Gatys et al.'s alpha/beta = 1e-3 (style_weight 1e3 here, pastiche's defaults times 100 with the Gram
    # normalised by C H W) repaints the photo until its content is gone when the optimisation starts from
    # the content and runs coarse to fine; a sweep at 256 and 512 px (docs/BENCHMARKS.md, "style weight")
    # kept the content clearly recognisable and the style strong at 30 (10: fainter style, 100: content lost)
    content_weight: float = 1.0
    style_weight: float = 30.0
    tv_weight: float = 0.0  # total variation on [0, 1] pixels; Gatys used none, 1-10 removes fine speckle
    optimizer: str = "lbfgs"  # torch.optim.LBFGS (history 100, no line search) or Adam
    lr: float | None = None  # None: 1.0 for L-BFGS, 0.02 for Adam (pixels in [0, 1])
    steps: int | tuple[int, ...] = 200  # per scale; a tuple gives coarse -> fine counts
    scales: int = 3  # coarse-to-fine levels, each half the previous side (3: 1/4, 1/2, 1)
    min_side: int = 64  # a coarser level whose short side would be below this is skipped
    size: int | None = 512  # the longest side of the result (the content is only ever shrunk); None: as is
    style_scale: float = 1.0  # style image area relative to the pastiche's (pastiche's default: equal areas)
    init: str = "content"  # start from the content image, or from uniform noise (seeded)
    seed: int = 0  # seeds the noise initialisation (everything else is deterministic)
    preserve_color: bool = False  # luminance-only transfer; the content's chroma (YCbCr) is kept exactly
    feather: int | None = None  # mask edge ramp in result pixels; None: longest side / 64 (at least 1)
    channels_last: bool = True  # NHWC activations: oneDNN's preferred convolution layout on CPU
    device: str = "auto"

    # -- checks ------------------------------------------------------------------------------------

    def check(self) -> StyleSettings:
        """The settings if every value is usable, else one ConfigError naming the setting."""
        _choice("backbone", self.backbone, BACKBONES)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("init", self.init, INITS)
        layers = VGG_LAYERS[self.backbone]
        for name, chosen in (("style_layers", self.style_layers), ("content_layers", self.content_layers)):
            unknown = [layer for layer in chosen if layer not in layers]
            if unknown or not chosen:
                raise ConfigError(f"{name}: unknown layer(s) {', '.join(unknown) or '(none given)'} for "
                                  f"{self.backbone}; choose from {', '.join(layers)}")
        if self.style_layer_weights is not None:
            if len(self.style_layer_weights) != len(self.style_layers):
                raise ConfigError(f"style_layer_weights: {len(self.style_layer_weights)} weights for "
                                  f"{len(self.style_layers)} style layers")
            for weight in self.style_layer_weights:
                _number("style_layer_weights", weight, low=0.0)
        for name in ("content_weight", "style_weight", "tv_weight"):
            _number(name, getattr(self, name), low=0.0)
        if self.content_weight == 0 and self.style_weight == 0:
            raise ConfigError("content_weight and style_weight are both 0: there is nothing to optimise")
        if self.lr is not None:
            _number("lr", self.lr, low=0.0, strict=True, high=100.0)
        _integer("scales", self.scales, 1, MAX_SCALES)
        _integer("min_side", self.min_side, 16, MAX_SIDE)
        if self.size is not None:
            _integer("size", self.size, 16, MAX_SIDE)
        _number("style_scale", self.style_scale, low=0.05, high=20.0)
        steps = (self.steps,) if isinstance(self.steps, int) else tuple(self.steps)
        if not steps or len(steps) > self.scales:
            raise ConfigError(f"steps: give one count or up to {self.scales} (one per scale, coarse to fine), "
                              f"got {len(steps)}")
        for count in steps:
            _integer("steps", count, 0, MAX_STEPS)
        if self.feather is not None:
            _integer("feather", self.feather, 0, MAX_SIDE)
        check_seed(self.seed, "seed")
        return self

    @property
    def learning_rate(self) -> float:
        return DEFAULT_LR[self.optimizer] if self.lr is None else float(self.lr)

    def steps_per_scale(self, count: int) -> list[int]:
        """Iterations for each of ``count`` scales, coarse to fine: one number for all, or the last
        ``count`` entries of a list (the coarsest levels are the ones a small image drops)."""
        if isinstance(self.steps, int):
            return [self.steps] * count
        steps = list(self.steps)
        return steps[-count:] if len(steps) >= count else [steps[0]] * (count - len(steps)) + steps

    def layer_weights(self) -> tuple[float, ...]:
        return self.style_layer_weights or (1.0,) * len(self.style_layers)

    def to_json(self) -> dict:
        record = dataclasses.asdict(self)
        record["lr"] = self.learning_rate
        return record


def settings_from(settings: StyleSettings | None = None, **overrides) -> StyleSettings:
    """``settings`` (or the defaults) with ``overrides`` (field names) applied, checked."""
    base = settings or StyleSettings()
    fields = {f.name for f in dataclasses.fields(StyleSettings)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(f"unknown style setting(s) {', '.join(unknown)}; choose from {', '.join(sorted(fields))}")
    for name in ("style_layers", "content_layers", "style_layer_weights", "steps"):
        value = overrides.get(name)
        if isinstance(value, list):
            overrides[name] = tuple(value)  # frozen and hashable, as the field types say
    return dataclasses.replace(base, **overrides).check()


def parse_style_weights(text: str | Sequence[float] | None, count: int) -> tuple[float, ...]:
    """``--style-weights 0.7,0.3`` -> weights summing to 1, one per style image; None: equal weights.
    Every weight must be a finite number >= 0 and at least one must be positive."""
    if text is None:
        return (1.0 / count,) * count
    parts = [p.strip() for p in text.split(",")] if isinstance(text, str) else list(text)
    try:
        values = [float(p) for p in parts]
    except (TypeError, ValueError):
        raise ConfigError(f"--style-weights {text}: expected numbers separated by commas, e.g. 0.7,0.3") from None
    if len(values) != count:
        raise ConfigError(f"--style-weights {text}: {len(values)} weight(s) for {count} style image(s); "
                          f"give one per --style")
    if any(not math.isfinite(v) or v < 0 for v in values) or sum(values) <= 0:
        raise ConfigError(f"--style-weights {text}: weights must be finite, >= 0 and not all 0")
    total = sum(values)
    return tuple(v / total for v in values)


def parse_steps(text: str) -> int | tuple[int, ...]:
    """``--steps 200`` (every scale) or ``--steps 300,200,100`` (coarse to fine)."""
    try:
        values = [int(p.strip()) for p in str(text).split(",")]
    except ValueError:
        raise ConfigError(f"--steps {text}: expected a whole number or numbers separated by commas") from None
    return values[0] if len(values) == 1 else tuple(values)


def _choice(name: str, value, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def _number(name: str, value, *, low: float, high: float = math.inf, strict: bool = False) -> None:
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
          and (value > low if strict else value >= low) and value <= high)
    if not ok:
        bound = f"> {low:g}" if strict else f">= {low:g}"
        limit = f" and <= {high:g}" if math.isfinite(high) else ""
        raise ConfigError(f"{name} must be a finite number {bound}{limit}, got {value!r}")


def _integer(name: str, value, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name} must be a whole number in {low}..{high}, got {value!r}")


__all__ = ["BACKBONES", "CONTENT_LAYERS", "INITS", "OPTIMIZERS", "STYLE_LAYERS", "StyleSettings",
           "parse_steps", "parse_style_weights", "settings_from"]
