"""Inpainting: fill the holes a mask marks, from the pixels around them. ``genvision inpaint``.

Methods are looked up by name in :data:`METHODS`; the classical ones are OpenCV's:

* ``telea``: fast marching (Telea 2004): the hole is filled from its border inwards, each pixel
  a weighted average of known pixels within ``radius``, weighted by distance and direction;
* ``ns``: Navier-Stokes (Bertalmio et al. 2001): isophotes (lines of equal brightness) are
  continued into the hole by a fluid-dynamics transport.

Both are good for thin holes (scratches, wires, text, small objects) and blur large ones.
``net`` (:mod:`.learned`) fills with an inpainting network trained on photos (``genvision train
inpaint``: a LaMa-style network with Fourier convolutions), in one pass at the image's own size.
The generative ones (:mod:`.generative`) fill with a model genvision trained and draw several
seeded samples per hole (``--samples``):

* ``dit``: a DiT samples the hole by flow matching with the known pixels re-imposed along the
  path (RePaint; ``--resample`` adds its back-and-forth jumps);
* ``vae``: a VAE or CVAE searches latents whose decoding fits the known pixels, from seeded starts.

The image is converted to the model's channels and resized to its size (bilinear, antialiased),
filled, and the fill resized back; only the hole is taken from it. Further methods join
:data:`METHODS` as :class:`InpaintMethod` entries. Whatever the method,
:func:`inpaint_array` copies every known pixel back from the input afterwards, so only the hole
ever changes (on disk too, for PNG and TIFF; JPEG and WebP are lossy). Files are read and
written by :mod:`.imagefile`: 8 or 16 bits, alpha, ICC profile, EXIF and dpi kept.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import click
import cv2
import numpy as np
from PIL import Image

from ... import io as gio
from ...cli_params import (
    CLASS,
    SEED,
    Count,
    FiniteFloat,
    fail_fast_option,
    overwrite_option,
)
from ...errors import ConfigError, display_path
from ...ops.masks import box_mask, load_mask, mask_area, parse_box, random_mask
from ...outputs import JobReport, OutputGuard, plan_folder_job, run_job
from ...runtime import derive_seed
from .generative import (
    MAX_SAMPLES,
    check_dit_options,
    check_vae_options,
    fill_dit,
    fill_vae,
)
from .imagefile import output_format, read_editable, write_edited
from .learned import check_net_options, fill_net

__all__ = [
    "METHODS",
    "InpaintMethod",
    "MaskSpec",
    "get_method",
    "inpaint",
    "inpaint_array",
    "inpaint_classical",
    "inpaint_file",
    "inpaint_path",
    "inpaint_samples",
    "sample_paths",
]

_CV2_FLAGS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}
_DTYPES = (np.uint8, np.uint16, np.float32)


# ----------------------------------------------------------------------------- arrays


def _fill_channels(image: np.ndarray, hole: np.ndarray, flag: int, radius: float) -> np.ndarray:
    """cv2.inpaint on what it takes: 8-bit 1 or 3 channels, 16-bit and float32 1 channel.
    Anything else goes channel by channel; the fill order of both methods depends only on the
    mask, so separately filled channels still agree with each other."""
    if image.ndim == 2:
        return cv2.inpaint(image, hole, radius, flag)
    channels = image.shape[2]
    if image.dtype == np.uint8 and channels in (3, 4):
        colour = cv2.inpaint(np.ascontiguousarray(image[..., :3]), hole, radius, flag)  # (H, W, 3)
        if channels == 3:
            return colour
        # alpha is filled like any channel: a hole in an opaque area stays opaque
        alpha = cv2.inpaint(np.ascontiguousarray(image[..., 3]), hole, radius, flag)  # (H, W)
        return np.dstack([colour, alpha])
    planes = [cv2.inpaint(np.ascontiguousarray(image[..., c]), hole, radius, flag) for c in range(channels)]
    return np.stack(planes, axis=-1)  # (H, W, C)


def inpaint_classical(image: np.ndarray, mask: np.ndarray, method: str = "telea", radius: float = 3) -> np.ndarray:
    """Fill ``mask`` (bool ``(H, W)``, True = hole) in ``image`` (``(H, W)`` or ``(H, W, C)``, C = 1-4,
    uint8, uint16 or float32 in [0, 1]) with OpenCV's ``telea`` or ``ns`` inpainting, looking
    ``radius`` pixels around each hole pixel. Returns the same shape and dtype; known pixels are
    bit-identical. 16-bit and float images keep their precision (filled per channel); an alpha
    channel is filled like the colour."""
    if method not in _CV2_FLAGS:
        raise ConfigError(f"unknown classical inpainting method {method!r}; choose from {', '.join(_CV2_FLAGS)}")
    if not (np.isfinite(radius) and radius >= 1):
        raise ConfigError(f"the inpainting radius must be at least 1 pixel, got {radius}")
    image, hole = _checked(image, mask)
    if not hole.any():
        return image.copy()
    squeeze = image.ndim == 3 and image.shape[2] == 1
    work = image[..., 0] if squeeze else image  # (H, W) for one channel
    filled = _fill_channels(np.ascontiguousarray(work), hole.astype(np.uint8), _CV2_FLAGS[method], float(radius))
    filled = filled[..., None] if squeeze else filled  # back to (H, W, 1)
    filled[~hole] = image[~hole]  # cv2 keeps them today; the promise must not depend on that
    return filled


def _checked(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    image, mask = np.asarray(image), np.asarray(mask)
    if image.dtype not in _DTYPES:
        raise ConfigError(f"inpainting takes uint8, uint16 or float32 images, got {image.dtype}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and not 1 <= image.shape[2] <= 4):
        raise ConfigError(f"inpainting takes an (H, W) or (H, W, C) image with C = 1-4, got shape {image.shape}")
    if mask.ndim != 2:
        raise ConfigError(f"the mask must be (H, W), got shape {mask.shape}")
    if mask.shape != image.shape[:2]:
        raise ConfigError(f"the mask is {mask.shape[1]}x{mask.shape[0]} but the image is "
                          f"{image.shape[1]}x{image.shape[0]}")
    if image.dtype == np.float32 and not np.isfinite(image).all():
        raise ConfigError("the image contains NaN or infinite values")
    hole = mask if mask.dtype == bool else mask != 0
    if hole.all():
        raise ConfigError("the mask covers the whole image: there are no known pixels to fill from")
    return image, hole


@dataclass(frozen=True)
class InpaintMethod:
    """A way to fill holes. ``fill(image, mask, **options)`` takes what :func:`inpaint_classical`
    takes and returns the same shape and dtype; ``options`` names the keyword options it accepts
    (the command passes only those).

    ``samples``: the method draws fills at random (seeded): ``fill`` also takes ``samples=N`` and
    returns ``(N, *image.shape)``. ``check(**options)``, when given, refuses bad options (loads
    the model) before any file is read or written."""

    name: str
    fill: Callable[..., np.ndarray]
    doc: str
    options: frozenset[str] = field(default_factory=frozenset)
    samples: bool = False
    check: Callable[..., None] | None = None


METHODS: dict[str, InpaintMethod] = {
    "telea": InpaintMethod("telea", partial(inpaint_classical, method="telea"),
                           "fast marching (Telea 2004): quick, smooth fill from the border inwards",
                           frozenset({"radius"})),
    "ns": InpaintMethod("ns", partial(inpaint_classical, method="ns"),
                        "Navier-Stokes (Bertalmio 2001): continues edges and isophotes into the hole",
                        frozenset({"radius"})),
    "net": InpaintMethod("net", fill_net,
                         "a trained inpainting network (--model; genvision train inpaint) fills the hole in one pass",
                         frozenset({"model"}), check=check_net_options),
    "dit": InpaintMethod("dit", fill_dit,
                         "a trained DiT (--model) samples the hole by flow matching, known pixels re-imposed "
                         "along the path (RePaint)",
                         frozenset({"model", "seed", "steps", "sampler", "cfg", "label", "resample"}),
                         samples=True, check=check_dit_options),
    "vae": InpaintMethod("vae", fill_vae,
                         "a trained VAE or CVAE (--model) searches latents whose decoding fits the known pixels",
                         frozenset({"model", "seed", "steps", "label", "lr", "prior_weight"}),
                         samples=True, check=check_vae_options),
}


def get_method(name: str) -> InpaintMethod:
    if name not in METHODS:
        raise ConfigError(f"unknown inpainting method {name!r}; choose from {', '.join(METHODS)}")
    return METHODS[name]


def inpaint_samples(image: np.ndarray, mask: np.ndarray, *, method: str = "telea", samples: int = 1,
                    **options) -> np.ndarray:
    """``samples`` fills of the hole by the named method: ``(samples, *image.shape)``. Several
    samples need a method that draws them (``dit``, ``vae``; seeded by the ``seed`` option).
    Known pixels are copied back from ``image`` into every sample whatever the method did."""
    chosen = get_method(method)
    image, hole = _checked(image, mask)
    unknown = sorted(set(options) - chosen.options)
    if unknown:
        raise ConfigError(f"inpainting method {method!r} takes no option {unknown[0]!r}")
    if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= MAX_SAMPLES:
        raise ConfigError(f"samples must be an integer in 1..{MAX_SAMPLES}, got {samples!r}")
    if samples > 1 and not chosen.samples:
        drawing = ", ".join(m.name for m in METHODS.values() if m.samples)
        raise ConfigError(f"inpainting method {method!r} gives one fill; several samples need one of {drawing}")
    if not hole.any():
        return np.repeat(image[None], samples, axis=0)
    if chosen.samples:
        filled, expected = np.asarray(chosen.fill(image, hole, samples=samples, **options)), (samples, *image.shape)
    else:
        filled, expected = np.asarray(chosen.fill(image, hole, **options)), image.shape
    if filled.shape != expected or filled.dtype != image.dtype:
        raise ConfigError(f"inpainting method {method!r} returned {filled.dtype} {filled.shape} for "
                          f"{image.dtype} {expected}")
    filled = filled if chosen.samples else filled[None]
    if np.shares_memory(filled, image) or not filled.flags.writeable:  # (a view of) its input
        filled = filled.copy()
    filled[:, ~hole] = image[~hole]
    return filled


def inpaint_array(image: np.ndarray, mask: np.ndarray, *, method: str = "telea", **options) -> np.ndarray:
    """Fill the hole with the named method (see :data:`METHODS`); known pixels are copied back from
    ``image`` whatever the method did, so they are always bit-identical. A sampling method gives
    its first sample (the one ``seed`` names)."""
    return inpaint_samples(image, mask, method=method, **options)[0]


# ----------------------------------------------------------------------------- masks and files


@dataclass(frozen=True)
class MaskSpec:
    """Where a command's mask comes from: ``kind`` is "file" (``path``), "box" (``box``) or
    "random" (``area``, ``seed``; image ``i`` of a folder uses ``derive_seed(seed, i)``)."""

    kind: str
    path: Path | None = None
    box: tuple[int, int, int, int] | None = None
    area: tuple[float, float] | None = None
    seed: int = 0
    invert: bool = False

    def build(self, size: tuple[int, int], index: int = 0) -> tuple[np.ndarray, dict]:
        """-> (bool (H, W) mask for an image of ``size`` = (H, W), its description for a sidecar)."""
        if self.kind == "file":
            mask, about = load_mask(self.path, size), {"path": str(self.path)}
        elif self.kind == "box":
            mask, about = box_mask(size, self.box), {"box": list(self.box)}
        elif self.kind == "random":
            seed = derive_seed(self.seed, index)
            mask, about = random_mask(size, area=self.area, seed=seed), {"area": list(self.area), "seed": seed}
        else:
            raise ConfigError(f"unknown mask kind {self.kind!r}")
        if self.invert:
            mask = ~mask
        return mask, {"kind": self.kind, **about, "invert": self.invert}


def _check_mask_suffix(path: Path) -> None:
    if path.suffix.lower() != ".png":
        raise ConfigError(f"{display_path(path)}: write the mask as .png (lossless), not "
                          f"{path.suffix or 'a file without a suffix'!r}")


def sample_paths(output: str | os.PathLike, samples: int = 1) -> list[Path]:
    """Where the fills of one image go: ``output`` itself for one sample; for several,
    ``STEM_0.SUFFIX`` ... ``STEM_{N-1}.SUFFIX`` beside it (``filled.png`` -> ``filled_0.png`` ...)."""
    output = Path(output)
    if samples == 1:
        return [output]
    return [output.with_name(f"{output.stem}_{i}{output.suffix}") for i in range(samples)]


def _recorded(options: dict) -> dict:
    """Options as a sidecar records them: a model object by its directory."""
    plain = (str, int, float, bool, type(None))
    return {k: v if isinstance(v, plain) else str(getattr(v, "model_dir", None) or type(v).__name__)
            for k, v in options.items()}


def inpaint_file(source: str | os.PathLike, output: str | os.PathLike, mask_spec: MaskSpec, *,
                 method: str = "telea", options: dict | None = None, index: int = 0,
                 save_mask: str | os.PathLike | None = None, samples: int = 1) -> Path:
    """Inpaint one image file into ``output`` and write ``output``'s JSON sidecar (and the mask as
    a PNG to ``save_mask``). The caller has planned these outputs with an OutputGuard.

    Sampling methods draw ``samples`` fills written to :func:`sample_paths` (each with its
    sidecar; the first path is returned), seeded with ``derive_seed(options["seed"], index)``, so
    the images of a folder get different noise and image 0 the seed as given."""
    chosen = get_method(method)
    options = dict(options or {})
    picture = read_editable(source)  # 8/16-bit, alpha, ICC/EXIF/dpi kept for the output
    image = picture.pixels
    height, width = image.shape[:2]
    mask, about = mask_spec.build((height, width), index)
    if not mask.any():
        raise ConfigError(f"{display_path(source)}: the mask marks no pixels to fill (white = fill; "
                          f"see --invert-mask)")
    drawn = {}
    if chosen.samples:
        drawn = {"seed": derive_seed(int(options.get("seed", 0)), index), "samples": samples}
        options["seed"] = drawn["seed"]
    fills = inpaint_samples(image, mask, method=method, samples=samples, **options)
    outputs = [write_edited(picture.with_pixels(filled), path)
               for filled, path in zip(fills, sample_paths(output, samples))]
    if save_mask is not None:
        gio.save_image(Image.fromarray(mask.astype(np.uint8) * 255), save_mask)
    for i, path in enumerate(outputs):
        gio.write_sidecar(path, {"source": str(source), "method": method, "options": _recorded(options or {}),
                                 "mask": about, "hole_fraction": mask_area(mask),
                                 "hole_pixels": int(np.count_nonzero(mask)), "size": [width, height],
                                 **({**drawn, "sample": i} if drawn else {})})
    return outputs[0]


def inpaint_path(source: str | os.PathLike, output: str | os.PathLike, mask_spec: MaskSpec, *,
                 method: str = "telea", options: dict | None = None, save_mask: str | os.PathLike | None = None,
                 overwrite: bool = False, fail_fast: bool = False, progress: bool = True, samples: int = 1
                 ) -> JobReport:
    """One image -> ``output`` (a file, or a folder ending in / or existing); a folder -> a folder of
    PNGs with the same relative names (as ``genvision upscale``). Every output is planned first:
    an output that is an input (the image, the mask file, the model's files) or exists without
    ``overwrite`` is refused before anything is read or written. ``samples`` > 1 (sampling
    methods, one image) writes :func:`sample_paths`."""
    chosen = get_method(method)  # an unknown name fails before anything else
    options = dict(options or {})
    unknown = sorted(set(options) - chosen.options)
    if unknown:
        raise ConfigError(f"inpainting method {method!r} takes no option {unknown[0]!r}")
    if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= MAX_SAMPLES:
        raise ConfigError(f"--samples must be an integer in 1..{MAX_SAMPLES}, got {samples!r}")
    if samples > 1 and not chosen.samples:
        drawing = ", ".join(m.name for m in METHODS.values() if m.samples)
        raise ConfigError(f"inpainting method {method!r} gives one fill; --samples needs one of {drawing}")
    if chosen.check is not None:
        chosen.check(**options)  # loads the model: a bad one fails before any output is planned
    source, out = Path(source), Path(output)
    guard = OutputGuard(overwrite=overwrite)
    if mask_spec.path is not None:
        guard.add_inputs(mask_spec.path)
    if isinstance(options.get("model"), (str, os.PathLike)):
        guard.add_model(options["model"])
    if source.is_dir():
        if save_mask is not None:
            raise ConfigError("--save-mask takes a single image; the sidecars of a folder job describe each mask")
        if samples > 1:
            raise ConfigError("--samples > 1 takes a single image (its fills go to OUTPUT_0.png ...); for a folder, "
                              "run once per --seed")
        mask_file = None if mask_spec.path is None else mask_spec.path.resolve()
        files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in gio.IMAGE_SUFFIXES
                       and not any(part.startswith(".") for part in p.relative_to(source).parts)
                       and p.resolve() != mask_file)  # a mask kept beside the images is not one of them
        if not files:
            raise ConfigError(f"{display_path(source)}: no image files found")
        plan = plan_folder_job(files, source, out, guard=guard, sidecar=True)
        index = {p.source: i for i, p in enumerate(plan)}
        return run_job(plan, lambda p: inpaint_file(p.source, p.output, mask_spec, method=method, options=options,
                                                    index=index[p.source]),
                       total=len(plan), label=lambda p: display_path(p.source), fail_fast=fail_fast,
                       progress=progress, desc="inpaint")
    if not source.exists():
        raise ConfigError(f"{display_path(source)}: no such file or folder")
    if str(output).endswith(("/", os.sep)) or out.is_dir():
        out = out / (source.stem + ".png")
    output_format(out)  # a suffix we cannot write fails now, not after the work
    guard.add_inputs(source)
    paths = sample_paths(out, samples)
    for path in paths:
        guard.claim(path, sidecar=True)
    if save_mask is not None:
        _check_mask_suffix(Path(save_mask))
        guard.claim(save_mask)
    first = inpaint_file(source, out, mask_spec, method=method, options=options, save_mask=save_mask, samples=samples)
    return JobReport(1, [first, *paths[1:]])


# ----------------------------------------------------------------------------- the command


class _BoxType(click.ParamType):
    name = "x,y,w,h"

    def convert(self, value, param, ctx):
        try:
            return parse_box(value)
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)


class _AreaType(click.ParamType):
    name = "LO:HI"

    def convert(self, value, param, ctx):
        lo, sep, hi = str(value).partition(":")
        try:
            area = (float(lo), float(hi))
        except ValueError:
            area = None
        if not sep or area is None or not all(np.isfinite(area)) or not 0 < area[0] <= area[1] < 1:
            self.fail(f"{value!r}: expected LO:HI, hole fractions with 0 < LO <= HI < 1, e.g. 0.1:0.3", param, ctx)
        return area


@click.command()
@click.argument("source", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(),
              help="Output file (.png/.tif keep every known pixel exactly, at 8 or 16 bits; .jpg/.webp are "
                   "lossy) or folder (for a folder input: PNGs).")
@click.option("--mask", "mask_file", type=click.Path(),
              help="Mask image of the same size: white (> 127) = fill; with alpha, what is painted is filled.")
@click.option("--box", type=_BoxType(), help="Fill a rectangle: x,y,w,h in pixels (clipped to the image).")
@click.option("--random-mask", "area", type=_AreaType(),
              help="Fill random strokes and boxes covering LO:HI of the image (e.g. 0.1:0.3), for experiments.")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="Seed of --random-mask and of the generative methods' samples (image i of a folder: derived).")
@click.option("--invert-mask", is_flag=True, help="Fill what the mask leaves (for 'transparent = fill' masks).")
@click.option("--method", default="telea", show_default=True,
              help="Inpainting method: " + "; ".join(f"{m.name}: {m.doc}" for m in METHODS.values()) + ".")
@click.option("--radius", type=Count(1, 100), default=3, show_default=True,
              help="Pixels around each hole pixel the classical methods look at.")
@click.option("--model", "model_dir", type=click.Path(),
              help="net / dit / vae: the model or run directory (an inpainting network; a DiT; a VAE or CVAE).")
@click.option("--samples", type=Count(1, MAX_SAMPLES), default=1, show_default=True,
              help="dit / vae: fills to draw; N > 1 writes them beside -o as STEM_0 ... STEM_{N-1} (-o filled.png: "
                   "filled_0.png ...), for one image (not a folder).")
@click.option("--steps", type=Count(0, 100_000),
              help="dit: sampling steps (default: the model's); vae: latent optimisation steps (default 200).")
@click.option("--class", "--label", "class_label", type=CLASS,
              help="dit / vae: class of the image (conditional models). Without it a DiT samples unconditionally "
                   "and a CVAE tries every class, keeping the best fit. (also --label)")
@click.option("--cfg", type=FiniteFloat(0.0, 100.0), help="dit: classifier-free guidance scale (with --class).")
@click.option("--sampler", help="dit: ODE sampler: euler, heun or midpoint (default: the model's).")
@click.option("--resample", type=Count(1, 100),
              help="dit: RePaint resampling: each step is run N times, noised back in between (N times slower).")
@click.option("--save-mask", type=click.Path(), help="Also write the mask used as a PNG (white = filled).")
@overwrite_option
@fail_fast_option
def inpaint(source, output, mask_file, box, area, seed, invert_mask, method, radius, model_dir, samples, steps,
            class_label, cfg, sampler, resample, save_mask, overwrite, fail_fast):
    """Fill the holes a mask marks in an image (or in each image of a folder) from their surroundings.

    Give the hole as exactly one of --mask, --box or --random-mask. Only the hole changes; a JSON
    sidecar (OUTPUT.json) records the method, the mask and the hole fraction.

    The generative methods (dit, vae) fill with a trained model: the image is converted to its
    channels and resized to its size, filled, and resized back (only the hole is taken from the
    fill). --samples N writes N seeded fills as OUTPUT_0.png ... (sample i is the same for any N),
    each with its sidecar.
    """
    given = [flag for flag, value in (("--mask", mask_file), ("--box", box), ("--random-mask", area)) if value]
    if len(given) != 1:
        raise click.UsageError("give exactly one of --mask, --box or --random-mask"
                               + (f" (got {' and '.join(given)})" if given else ""))
    if mask_file:
        spec = MaskSpec("file", path=Path(mask_file), invert=invert_mask)
    elif box:
        spec = MaskSpec("box", box=box, invert=invert_mask)
    else:
        spec = MaskSpec("random", area=area, seed=seed, invert=invert_mask)
    chosen = get_method(method)
    options = {"radius": radius} if "radius" in chosen.options else {}
    given = {"--model": ("model", model_dir), "--steps": ("steps", steps), "--class": ("label", class_label),
             "--cfg": ("cfg", cfg), "--sampler": ("sampler", sampler), "--resample": ("resample", resample)}
    for flag, (name, value) in given.items():
        if value is None:
            continue
        if name not in chosen.options:
            users = ", ".join(m.name for m in METHODS.values() if name in m.options)
            raise ConfigError(f"{flag} is for the inpainting methods {users}, not {method!r}")
        options[name] = value
    if "seed" in chosen.options:
        options["seed"] = seed
    report = inpaint_path(source, output, spec, method=method, options=options, save_mask=save_mask,
                          overwrite=overwrite, fail_fast=fail_fast, samples=samples)
    report.raise_if_failed(output)
    if samples > 1:
        click.echo(f"wrote {samples} samples: " + ", ".join(display_path(p) for p in report.written))
    else:
        click.echo(f"wrote {display_path(report.written[0])}" if report.total == 1 else report.summary(output))
