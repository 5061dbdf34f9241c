"""Edit chains: ``["rotate=12", "crop=center:0.8", "contrast=1.2"]`` parsed, saved and applied.

An op is geometric (a :class:`~genvision.ops.geometry.Warp` built from the size of its input),
the data-dependent auto-crop (``crop=auto``: its box is measured on the image at that point), or a
tone op from :data:`genvision.ops.tone.TONE_OPS`. :meth:`Chain.apply_array` composes consecutive
geometric ops into one warp and resamples once (a crop=auto's box is measured on a preview and
joins the warp too); tone ops see the colour channels only, while an alpha channel (C = 2 or 4)
follows the geometry, resampled premultiplied so that transparent pixels' colours do not bleed
into the edges.
"""

from __future__ import annotations

import difflib
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from genvision.errors import ConfigError, display_path, reason
from genvision.ops import geometry
from genvision.ops.geometry import Warp, warp_array, warp_tensor
from genvision.ops.tone import TONE_OPS

__all__ = ["OPS", "AutoCropOp", "Chain", "EditChain", "GeometricOp", "Op", "ToneStep", "describe_ops", "parse_op"]

_MAX_CHAIN_FILE = 1 << 20  # bytes; an edit chain is a few lines
_MAX_SIDE = 65535


# ---------------------------------------------------------------------------------------------
# Parsing the arguments of geometric ops


def _failure(name: str, args: str, expected: str, example: str) -> ConfigError:
    return ConfigError(f"{name}={display_path(args)[:80]}: expected {expected}, e.g. {example}")


def _numbers(name, args, counts, expected, example, *, integer=False, check=lambda v: True) -> list:
    """Comma-separated finite numbers (how many: one of ``counts``), each passing ``check``."""
    parts = args.split(",")
    try:
        values = [int(p) if integer else float(p) for p in parts]
    except ValueError:
        raise _failure(name, args, expected, example) from None
    if len(values) not in counts or not all(math.isfinite(v) and check(v) for v in values):
        raise _failure(name, args, expected, example)
    return values


def _parse_rotate(args: str) -> dict:
    angle, _, mode = args.partition(":")
    expected, example = "DEGREES[:expand] with |DEGREES| <= 360", "rotate=12 or rotate=-5:expand"
    if mode not in ("", "expand", "keep"):
        raise _failure("rotate", args, expected, example)
    (value,) = _numbers("rotate", angle, (1,), expected, example, check=lambda v: abs(v) <= 360)
    return {"angle": value, "expand": mode == "expand"}


def _parse_crop(args: str) -> dict:
    kind, _, rest = args.partition(":")
    if kind == "center":
        (fraction,) = _numbers("crop", rest, (1,), "center:FRACTION with 0 < FRACTION <= 1", "crop=center:0.8",
                               check=lambda v: 0 < v <= 1)
        return {"center": fraction}
    if kind == "aspect":
        ratio = _numbers("crop", rest.replace(":", ","), (2,), "aspect:W:H with W, H > 0", "crop=aspect:16:9",
                         check=lambda v: 0 < v <= 1e4)
        return {"aspect": ratio}
    if kind == "auto":
        (tolerance,) = _numbers("crop", rest or "0.03", (1,), "auto[:TOLERANCE] with 0 <= TOLERANCE < 1",
                                "crop=auto:0.05", check=lambda v: 0 <= v < 1)
        return {"auto": tolerance}
    box = _numbers("crop", args, (4,), "X,Y,WIDTH,HEIGHT (whole pixels), center:FRACTION, aspect:W:H or auto",
                   "crop=10,20,100,80", integer=True, check=lambda v: 0 <= v <= _MAX_SIDE)
    if min(box[2:]) < 1:
        raise _failure("crop", args, "a box of at least 1x1 pixels", "crop=10,20,100,80")
    return {"box": box}


def _parse_resize(args: str) -> dict:
    expected, example = "WIDTHxHEIGHT, WIDTHx, xHEIGHT (keeping the aspect) or a FACTOR in (0, 64]", "resize=512x384"
    if "x" not in args:
        (factor,) = _numbers("resize", args, (1,), expected, example, check=lambda v: 0 < v <= 64)
        return {"factor": factor}
    width, _, height = args.partition("x")
    sides = [_numbers("resize", side, (1,), expected, example, integer=True,
                      check=lambda v: 1 <= v <= _MAX_SIDE)[0] if side else None for side in (width, height)]
    if sides == [None, None]:
        raise _failure("resize", args, expected, example)
    return {"width": sides[0], "height": sides[1]}


def _parse_flip(args: str) -> dict:
    direction = {"h": "h", "horizontal": "h", "v": "v", "vertical": "v"}.get(args)
    if direction is None:
        raise _failure("flip", args, "h (left-right) or v (top-bottom)", "flip=h")
    return {"direction": direction}


def _parse_transpose(args: str) -> dict:
    if args:
        raise _failure("transpose", args, "no value", "transpose")
    return {}


def _parse_pad(args: str) -> dict:
    values = _numbers("pad", args, (1, 2, 4), "PIXELS, VERTICAL,HORIZONTAL or TOP,RIGHT,BOTTOM,LEFT (0..10000)",
                      "pad=8 or pad=8,16,8,16", integer=True, check=lambda v: 0 <= v <= 10000)
    top, right, bottom, left = (values * 4)[:4] if len(values) == 1 else (values * 2)[:4]
    return {"top": top, "right": right, "bottom": bottom, "left": left}


def _parse_affine(args: str) -> dict:
    a, b, c, d, e, f = _numbers("affine", args, (6,), "6 numbers A,B,C,D,E,F: x' = A x + B y + C, y' = D x + E y + F",
                                "affine=1,0.2,0,0,1,0")
    return {"matrix": [[a, b, c], [d, e, f]]}


def _parse_perspective(args: str) -> dict:
    values = _numbers("perspective", args, (16,), "16 numbers: 4 source points x,y then the 4 points they go to",
                      "perspective=0,0,99,0,99,99,0,99,10,0,89,0,99,99,0,99")
    points = np.asarray(values).reshape(2, 4, 2).tolist()  # (source/target, point, xy)
    return {"source": points[0], "target": points[1]}


def _build_crop(size, *, box=None, center=None, aspect=None) -> Warp:
    if box is not None:
        return geometry.crop(size, *box)
    if center is not None:
        return geometry.crop_center(size, center)
    return geometry.crop_aspect(size, *aspect)


def _build_resize(size, *, factor=None, width=None, height=None) -> Warp:
    if factor is not None:
        return geometry.resize_factor(size, factor)
    in_height, in_width = size
    width = width or max(1, round(in_width * height / in_height))
    height = height or max(1, round(in_height * width / in_width))
    return geometry.resize(size, height, width)


@dataclass(frozen=True)
class _GeometrySpec:
    parse: Callable[[str], dict]
    build: Callable[..., Warp]  # (size, **params) -> Warp
    doc: str


_GEOMETRY: dict[str, _GeometrySpec] = {
    "crop": _GeometrySpec(_parse_crop, _build_crop,
                          "crop=X,Y,W,H | center:FRACTION | aspect:W:H | auto[:TOLERANCE]  crop a box, the centre, "
                          "the largest centred box of an aspect ratio, or to the content (what differs from the "
                          "border colour by more than TOLERANCE, default 0.03)"),
    "resize": _GeometrySpec(_parse_resize, _build_resize,
                            "resize=WxH | Wx | xH | FACTOR  scale to a size (one side given keeps the aspect) or by "
                            "a factor; antialiased when shrinking"),
    "rotate": _GeometrySpec(_parse_rotate, lambda size, angle, expand: geometry.rotate(size, angle, expand=expand),
                            "rotate=DEGREES[:expand]  counter-clockwise about the centre; :expand grows the canvas "
                            "to hold the whole image (multiples of 90 are exact)"),
    "flip": _GeometrySpec(_parse_flip, geometry.flip, "flip=h | v  mirror left-right (h) or top-bottom (v)"),
    "transpose": _GeometrySpec(_parse_transpose, geometry.transpose, "transpose  swap rows and columns"),
    "pad": _GeometrySpec(_parse_pad, geometry.pad,
                         "pad=N | V,H | T,R,B,L  add borders of the fill colour (CSS order)"),
    "affine": _GeometrySpec(_parse_affine, geometry.affine,
                            "affine=A,B,C,D,E,F  x' = A x + B y + C, y' = D x + E y + F in pixels (size kept)"),
    "perspective": _GeometrySpec(_parse_perspective, geometry.perspective,
                                 "perspective=16 numbers  the homography taking 4 points (x,y) to 4 others "
                                 "(cv2.getPerspectiveTransform; size kept)"),
}

OPS: tuple[str, ...] = tuple(_GEOMETRY) + tuple(TONE_OPS)


def describe_ops() -> list[str]:
    """One line per op, its syntax first (``genvision edit --list-ops``)."""
    return [spec.doc for spec in _GEOMETRY.values()] + [op.doc for op in TONE_OPS.values()]


# ---------------------------------------------------------------------------------------------
# Ops


@dataclass(frozen=True, eq=False)
class Op:
    """One parsed op: ``name``, the text after ``=`` (``args``) and the parameters it means."""

    name: str
    args: str
    params: dict

    @property
    def text(self) -> str:
        return f"{self.name}={self.args}" if self.args else self.name


class GeometricOp(Op):
    def warp(self, size: tuple[int, int]) -> Warp:
        return _GEOMETRY[self.name].build(size, **self.params)


class AutoCropOp(Op):
    def warp(self, values: np.ndarray) -> Warp:
        """The crop to the content of (N, H, W, C) float images in [0, 1] (their union): the bounding
        box of pixels differing from the median border colour by more than the tolerance in any
        channel (alpha included). A uniform image is kept whole."""
        size = values.shape[1:3]
        ring = np.concatenate([values[:, 0], values[:, -1], values[:, :, 0], values[:, :, -1]], axis=1)  # (N, P, C)
        border = np.median(ring, axis=1)  # (N, C)
        content = (np.abs(values - border[:, None, None]) > self.params["auto"]).any(axis=(0, 3))  # (H, W)
        rows, cols = np.flatnonzero(content.any(axis=1)), np.flatnonzero(content.any(axis=0))
        if len(rows) == 0:
            return geometry.identity(size)
        return geometry.crop(size, int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1),
                             int(rows[-1] - rows[0] + 1))


class ToneStep(Op):
    def array(self, image: np.ndarray) -> np.ndarray:
        return TONE_OPS[self.name].array(image, **self.params)

    def tensor(self, image: torch.Tensor) -> torch.Tensor:
        return TONE_OPS[self.name].tensor(image, **self.params)


def parse_op(text: str) -> Op:
    """``"rotate=12"``, ``"crop=center:0.8"``, ``"flip=h"``, ``"contrast=1.2"``, ``"auto"`` -> an Op."""
    if not isinstance(text, str):
        raise ConfigError(f"an edit op is text such as rotate=12, got {type(text).__name__}")
    name, _, args = text.strip().partition("=")
    name, args = name.strip().lower(), args.strip()
    if name in _GEOMETRY:
        params = _GEOMETRY[name].parse(args)
        return (AutoCropOp if "auto" in params else GeometricOp)(name, args, params)
    if name in TONE_OPS:
        return ToneStep(name, args, TONE_OPS[name].parse(args))
    if not name:
        raise ConfigError(f"empty edit op {display_path(text)[:40]!r} (genvision edit --list-ops)")
    close = difflib.get_close_matches(name, OPS, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else ""
    raise ConfigError(f"unknown edit op {display_path(name)[:40]!r}{hint} (genvision edit --list-ops)")


def _args_text(name: str, value) -> str:
    """A value from a YAML/JSON mapping entry ``{op: value}`` as the text after ``=``."""
    if value is None or value is True or value in ("", "~", "null", "true"):
        return ""
    if isinstance(value, list):
        # geometric ops list their numbers with commas, tone ops with colons (levels=0.05:0.95)
        return ("," if name in _GEOMETRY else ":").join(_args_text(name, v) for v in value)
    return value if isinstance(value, str) else repr(value)


def _jsonable(value):
    return json.loads(json.dumps(value))


# ---------------------------------------------------------------------------------------------
# The chain


class Chain:
    """A sequence of ops, applied to numpy images, tensors or an (image, mask) pair."""

    def __init__(self, ops: Sequence[Op] = ()):
        self.ops = list(ops)

    def __repr__(self) -> str:
        return f"Chain({[op.text for op in self.ops]!r})"

    @classmethod
    def parse(cls, texts: Sequence[str]) -> Chain:
        return cls([parse_op(text) for text in texts])

    @classmethod
    def from_file(cls, path) -> Chain:
        """A YAML or JSON list of ``"op=args"`` strings, ``{op: args}`` mappings or :meth:`to_json`
        entries (also under a top-level ``ops:`` key)."""
        shown = display_path(path)
        try:
            if os.path.getsize(path) > _MAX_CHAIN_FILE:
                raise ConfigError(f"{shown}: an edit chain file is at most {_MAX_CHAIN_FILE} bytes")
            text = Path(path).read_text(encoding="utf-8")
            # YAML's BaseLoader keeps every scalar a string (and builds no objects): safe_load would
            # read "clahe: 2:8" as the base-60 integer 128.
            data = json.loads(text) if str(path).lower().endswith(".json") else yaml.load(text, Loader=yaml.BaseLoader)
        except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
            raise ConfigError(f"{shown}: cannot read the edit chain: {reason(exc)}") from None
        if isinstance(data, dict) and set(data) == {"ops"}:
            data = data["ops"]
        if not isinstance(data, list):
            raise ConfigError(f"{shown}: expected a list of edit ops such as [rotate=12, crop=center:0.8]")
        ops = []
        for index, entry in enumerate(data, start=1):
            try:
                ops.append(cls._entry(entry))
            except ConfigError as exc:
                raise ConfigError(f"{shown}: op {index}: {exc}") from None
        return cls(ops)

    @classmethod
    def _entry(cls, entry) -> Op:
        if isinstance(entry, str):
            return parse_op(entry)
        if isinstance(entry, dict) and "op" in entry:
            return cls.from_json([entry]).ops[0]
        if isinstance(entry, dict) and len(entry) == 1:
            ((name, value),) = entry.items()
            args = _args_text(str(name), value)
            return parse_op(f"{name}={args}" if args else str(name))
        raise ConfigError(f"expected 'op=args' or {{op: args}}, got {display_path(repr(entry))[:80]}")

    def to_json(self) -> list[dict]:
        """``[{"op": "rotate", "args": "12:expand", "params": {"angle": 12.0, "expand": true}}, ...]``;
        :meth:`from_json` replays it by parsing ``args`` again (one parser, one set of checks)."""
        return [{"op": op.name, "args": op.args, "params": _jsonable(op.params)} for op in self.ops]

    @classmethod
    def from_json(cls, data) -> Chain:
        if not isinstance(data, list):
            raise ConfigError("an edit chain's JSON is a list of {op, args, params} entries")
        ops = []
        for entry in data:
            if not (isinstance(entry, dict) and isinstance(entry.get("op"), str)
                    and isinstance(entry.get("args", ""), str)):
                raise ConfigError(f"an edit chain entry needs 'op' and 'args' texts, got {display_path(repr(entry))[:80]}")
            op = parse_op(f"{entry['op']}={entry['args']}" if entry.get("args") else entry["op"])
            if "params" in entry and _jsonable(entry["params"]) != _jsonable(op.params):
                raise ConfigError(f"edit chain entry {op.text}: its params {entry['params']} are not what its "
                                  f"args mean ({_jsonable(op.params)})")
            ops.append(op)
        return cls(ops)

    def output_size(self, size: tuple[int, int]) -> tuple[int, int] | None:
        """The final (height, width) for an input of ``size``, or None when a crop=auto decides it."""
        for op in self.ops:
            if isinstance(op, AutoCropOp):
                return None
            if isinstance(op, GeometricOp):
                size = op.warp(size).size
        return size

    # --- applying -------------------------------------------------------------------------------

    def apply_array(self, image: np.ndarray, *, interpolation: str = "bilinear", fill=0.0,
                    antialias: bool = True) -> np.ndarray:
        """(H, W) or (H, W, C) with C = 1, 2 (grey + alpha), 3 or 4 (RGBA); uint8, uint16 or float32 in
        [0, 1]. Same dtype and channels out. ``fill`` (0..1 of full scale, or one value per channel) is
        the colour of uncovered areas; with alpha, a single value leaves them transparent."""
        engine = _ArrayEngine(interpolation, fill, antialias)
        return _run(self.ops, engine, np.asarray(image), None, fused=True)[0]

    def apply_array_sequential(self, image: np.ndarray, *, interpolation: str = "bilinear", fill=0.0,
                               antialias: bool = True) -> np.ndarray:
        """As :meth:`apply_array` but resampling after every geometric op (the baseline it beats)."""
        engine = _ArrayEngine(interpolation, fill, antialias)
        return _run(self.ops, engine, np.asarray(image), None, fused=False)[0]

    def apply_pair(self, image: np.ndarray, mask: np.ndarray, *, interpolation: str = "bilinear", fill=0.0,
                   antialias: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """The same geometry for ``image`` and its (H, W) ``mask`` (nearest, uncovered = 0/False); tone
        ops change the image only."""
        image, mask = np.asarray(image), np.asarray(mask)
        if mask.shape != image.shape[:2]:
            raise ConfigError(f"the mask is {mask.shape[1::-1]} pixels but the image {image.shape[1::-1]}")
        return _run(self.ops, _ArrayEngine(interpolation, fill, antialias), image, mask, fused=True)

    def apply_tensor(self, image: torch.Tensor, *, interpolation: str = "bilinear", fill=0.0,
                     antialias: bool = True) -> torch.Tensor:
        """(B, C, H, W) or (C, H, W) floats in [0, 1], differentiable; C = 2 or 4 carry alpha. A
        crop=auto cuts the whole batch to the union of its images' content."""
        if image.ndim == 3:
            return self.apply_tensor(image[None], interpolation=interpolation, fill=fill, antialias=antialias)[0]
        return _run(self.ops, _TensorEngine(interpolation, fill, antialias), image, None, fused=True)[0]


class EditChain(torch.nn.Module):
    """A chain as a module (e.g. a fixed training augmentation): ``forward`` is :meth:`Chain.apply_tensor`."""

    def __init__(self, chain: Chain | Sequence[str], *, interpolation: str = "bilinear", fill=0.0,
                 antialias: bool = True):
        super().__init__()
        self.chain = chain if isinstance(chain, Chain) else Chain.parse(chain)
        self.options = {"interpolation": interpolation, "fill": fill, "antialias": antialias}

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.chain.apply_tensor(image, **self.options)

    def extra_repr(self) -> str:
        return " ".join(op.text for op in self.chain.ops)


# ---------------------------------------------------------------------------------------------
# Execution: one loop over the ops, the numpy and torch specifics in two small engines


def _run(ops: Sequence[Op], engine, image, mask, *, fused: bool):
    """Apply ``ops``: geometric ones accumulate into ``pending`` (a warp from ``image``'s size)
    until a tone op (or, unfused, every op) needs the pixels."""
    pending: Warp | None = None

    def materialise():
        nonlocal image, mask, pending
        if pending is not None:
            image = engine.warp(image, pending)
            mask = None if mask is None else warp_array(mask.view(np.uint8) if mask.dtype == bool else mask,
                                                        pending, interpolation="nearest",
                                                        antialias=False).astype(mask.dtype)
            pending = None

    for op in ops:
        if isinstance(op, (GeometricOp, AutoCropOp)):
            if isinstance(op, AutoCropOp):
                preview = image if pending is None else engine.warp(image, pending)
                warp = op.warp(engine.values(preview))
            else:
                warp = op.warp(pending.size if pending is not None else engine.size(image))
            pending = warp if pending is None else pending.then(warp)
            if not fused:
                materialise()
        else:
            materialise()
            image = engine.tone(image, op)
    materialise()
    return image, mask


def _has_alpha(channels: int) -> bool:
    return channels in (2, 4)


def _fill_per_channel(fill, channels: int) -> np.ndarray:
    """One fill value per channel; a single value leaves an alpha channel's uncovered area transparent."""
    values = np.atleast_1d(np.asarray(fill, dtype=np.float64))
    if len(values) == 1 and channels > 1:
        values = np.repeat(values, channels)
        if _has_alpha(channels):
            values[-1] = 0.0
    return values


class _ArrayEngine:
    def __init__(self, interpolation, fill, antialias):
        self.options = {"interpolation": interpolation, "antialias": antialias}
        self.fill = fill

    @staticmethod
    def size(image):
        return image.shape[:2]

    @staticmethod
    def _channels(image) -> int:
        return image.shape[2] if image.ndim == 3 else 1

    def values(self, image) -> np.ndarray:
        scale = 1.0 if image.dtype.kind == "f" else float(np.iinfo(image.dtype).max)
        values = image.astype(np.float32) / np.float32(scale)
        return values.reshape(1, *image.shape[:2], -1)  # (1, H, W, C)

    def warp(self, image, warp: Warp):
        channels = self._channels(image)
        fill = _fill_per_channel(self.fill, channels)
        if not _has_alpha(channels) or warp.moves_whole_pixels:
            return warp_array(image, warp, fill=fill, **self.options)
        # Premultiplied alpha, so that the colours of transparent pixels do not bleed into the edges.
        values = self.values(image)[0]  # (H, W, C) float32
        values[..., :-1] *= values[..., -1:]
        out = warp_array(values, warp, fill=np.append(fill[:-1] * fill[-1], fill[-1]), **self.options)
        alpha = out[..., -1:]
        with np.errstate(divide="ignore", invalid="ignore"):
            colour = np.where(alpha > 1e-6, out[..., :-1] / alpha, fill[:-1].astype(np.float32))
        out[..., :-1] = np.clip(colour, 0.0, 1.0)
        if image.dtype.kind == "f":
            return out.astype(image.dtype)
        return np.round(out * np.iinfo(image.dtype).max).astype(image.dtype)

    def tone(self, image, op: ToneStep):
        if not _has_alpha(self._channels(image)):
            return op.array(image)
        return np.concatenate([op.array(image[..., :-1]), image[..., -1:]], axis=-1)


class _TensorEngine(_ArrayEngine):
    @staticmethod
    def size(image):
        return tuple(image.shape[-2:])

    @staticmethod
    def _channels(image) -> int:
        return image.shape[1]

    def values(self, image) -> np.ndarray:
        return image.detach().float().permute(0, 2, 3, 1).cpu().numpy()  # (B, H, W, C)

    def warp(self, image, warp: Warp):
        channels = self._channels(image)
        fill = _fill_per_channel(self.fill, channels)
        if not _has_alpha(channels) or warp.moves_whole_pixels:
            return warp_tensor(image, warp, fill=fill, **self.options)
        colour, alpha = image[:, :-1], image[:, -1:]
        out = warp_tensor(torch.cat([colour * alpha, alpha], dim=1), warp,
                          fill=np.append(fill[:-1] * fill[-1], fill[-1]), **self.options)
        alpha = out[:, -1:]
        uncovered = torch.as_tensor(fill[:-1], dtype=out.dtype, device=out.device).view(1, -1, 1, 1)
        colour = torch.where(alpha > 1e-6, out[:, :-1] / alpha.clamp(min=1e-6), uncovered).clamp(0.0, 1.0)
        return torch.cat([colour, alpha], dim=1)

    def tone(self, image, op: ToneStep):
        if not _has_alpha(self._channels(image)):
            return op.tensor(image)
        return torch.cat([op.tensor(image[:, :-1]), image[:, -1:]], dim=1)
