"""What each tab of ``genvision web`` does, as plain functions: an uploaded file's path and the tab's
settings in, a :class:`Result` (the image to show, the files to download, one line of text) out.

They call the functions the CLI commands call (the pipelines of ``genvision.apps``), so the browser
and the command line give the same pixels and the same JSON sidecars. Nothing here imports gradio:
the functions are tested without a browser (tests/test_web.py). Every upload is decoded by
genvision's own loader with the app's byte and pixel caps before any model sees it.
"""

from __future__ import annotations

import io
import itertools
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .. import io as gio
from .. import sampling, zoo
from ..apps.classify.explain import explain as explain_model
from ..apps.classify.explain import render
from ..apps.classify.photos import explain_photo, load_photo_classifier
from ..apps.codec.bitstream import SUFFIX as CODEC_SUFFIX
from ..apps.codec.bitstream import encode_file, weights_fingerprint
from ..apps.codec.jpeg import jpeg_within
from ..apps.denoise.pipeline import denoise_image, resolve_denoiser
from ..apps.edit.commands import build_chain, edit_file
from ..apps.edit.inpaint import inpaint_array
from ..apps.retrieval.commands import contact_sheet
from ..apps.retrieval.store import Index
from ..apps.sr.pipeline import resolve_sr_model, upscale_image
from ..apps.style.fast import load_style_model, model_style_names
from ..apps.style.fast import run as run_style_model
from ..apps.style.pipeline import transfer
from ..apps.style.settings import settings_from
from ..apps.translate.pipeline import load_translator, translate_tensor
from ..atomic import write_bytes
from ..checkpoints import load_with_card
from ..errors import ConfigError
from ..metrics.image import psnr

Progress = Callable[[float, str], None]

# Which zoo kinds each tab offers (genvision.zoo entries carry the registry kind).
TAB_KINDS: dict[str, tuple[str, ...]] = {
    "generate": ("gan", "vae", "diffusion", "token-prior"),
    "inpaint": ("inpaint", "diffusion", "vae"),
    "denoise": ("denoise",),
    "upscale": ("sr",),
    "stylize": ("style",),
    "translate": ("translate",),
    "search": ("embed",),
    "classify": ("classifier",),
    "compress": ("codec",),
}
# How edit/inpaint.py names the method that runs a model of each kind.
INPAINT_METHOD_OF_KIND = {"inpaint": "net", "diffusion": "dit", "vae": "vae"}
CLASSICAL_INPAINT = "telea"  # OpenCV, no model: always available
OPTIMIZE = "optimize (Gatys, VGG-19)"
EXPLAIN_BACKBONE = "efficientnet-lite0"
DEFAULT_EDIT_OPS = "rotate=8\ncrop=center:0.85\nflip=h\nauto"
MAX_GENERATE = 64  # images per grid in the UI: a few seconds on a CPU
MAX_STYLE_STEPS = 50  # optimisation steps per click: keeps one click under a minute on a CPU
STYLE_SIZE = 256  # longest side of an optimised or AdaIN result in the UI
MAX_INDEX_IMAGES = 200
SEARCH_HITS = 5


@dataclass(frozen=True)
class Limits:
    """What an upload may be: bytes of the file and decoded pixels (genvision.io's loader enforces both)."""

    max_bytes: int = 20 * 2**20
    max_pixels: int = 16_000_000


@dataclass
class Result:
    image: Path | None  # what the tab shows
    files: list[Path] = field(default_factory=list)  # the downloads: images and their JSON sidecars
    message: str = ""  # one line
    extra: dict = field(default_factory=dict)  # tab-specific values (labels, scores)


class Workspace:
    """The app's output folder: each result gets a fresh name in it, so concurrent users never collide."""

    def __init__(self, folder: Path, limits: Limits = Limits()):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.limits = limits
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def path(self, tab: str, suffix: str) -> Path:
        with self._lock:
            number = next(self._counter)
        return self.folder / f"{tab}-{number:04d}-{uuid.uuid4().hex[:6]}{suffix}"

    def load(self, upload: str | Path | None, mode: str = "RGB", what: str = "image") -> Image.Image:
        """An upload decoded by genvision's loader under the app's caps; one-line errors name no server path."""
        if upload is None:
            raise ConfigError(f"upload an {what} first")
        try:
            return gio.load_image(upload, mode, max_bytes=self.limits.max_bytes, max_pixels=self.limits.max_pixels)
        except gio.ImageLoadError as exc:
            # the message starts with the server-side temp path: show only the file's name
            text = str(exc).replace(str(upload), Path(upload).name)
            raise gio.ImageLoadError(text) from None


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def zoo_choices(tab: str) -> list[str]:
    """The zoo models a tab offers, as ``zoo:NAME``."""
    kinds = TAB_KINDS[tab]
    return [item.spec for item in sorted(zoo.entries().values(), key=lambda e: e.name) if item.kind in kinds]


def _no_progress(fraction: float, text: str) -> None:
    pass


# ----------------------------------------------------------------------------- models, loaded once

_MODELS: dict[tuple[str, str], object] = {}
_MODELS_LOCK = threading.Lock()


def check_choice(tab: str, model: str) -> str:
    """``model`` if the tab offers it: a request naming anything else (a path) is refused."""
    if model not in zoo_choices(tab):
        raise ConfigError(f"{model!r} is not one of this tab's models: {', '.join(zoo_choices(tab))}")
    return model


def _cached(loader: Callable[[str], object], spec: str) -> object:
    """A model loaded once per process (a zoo model's sha256s are checked on its first load)."""
    key = (loader.__qualname__, spec)
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = loader(spec)
        return _MODELS[key]


def _generator(spec: str):
    return sampling.check_generator(load_with_card(spec)[0])


def _codec(spec: str):
    model, card = load_with_card(spec, kind="codec")
    return model.eval(), card


# ----------------------------------------------------------------------------- tabs


def generate(model: str, count: int, seed: int, class_label: int | None, workspace: Workspace,
             progress: Progress = _no_progress) -> Result:
    """A grid of ``count`` samples (class-conditional models take ``class_label``), as ``genvision generate``."""
    count = int(count)
    if not 1 <= count <= MAX_GENERATE:
        raise ConfigError(f"the number of images must be 1..{MAX_GENERATE}, got {count}")
    progress(0.1, "loading the model")
    net = _cached(_generator, check_choice("generate", model))
    progress(0.3, "sampling")
    label = None if class_label is None or class_label == "" else int(class_label)
    images = sampling.generate(net, count, seed=int(seed), class_label=label)
    path = workspace.path("generate", ".png")
    meta = {"model": model, "seed": int(seed), "n": count, "class": label}
    gio.save_grid(images, path, metadata=meta)
    return Result(path, [path, sidecar(path)], f"{count} samples from {model}, seed {int(seed)}")


def edit(upload: str, ops: str, workspace: Workspace, progress: Progress = _no_progress) -> Result:
    """The ops chain (one op per line, as ``genvision edit --op``) applied to the upload."""
    workspace.load(upload, "keep")  # the caps and the decoder check, before the editor reads it again
    lines = [line.strip() for line in (ops or "").splitlines() if line.strip()]
    chain = build_chain(lines)
    path = workspace.path("edit", ".png")
    progress(0.3, "editing")
    edit_file(chain, upload, path)
    with Image.open(path) as out:
        size = out.size
    return Result(path, [path, sidecar(path)], f"applied {len(lines)} ops: {size[0]}x{size[1]}")


def mask_from_layers(layers: Sequence[np.ndarray] | None, size: tuple[int, int]) -> np.ndarray:
    """The image editor's drawn layers, RGBA (H, W, 4), -> the bool (H, W) hole at the image's ``size``
    (width, height): every pixel a stroke covered (a layer is transparent where nothing was drawn)."""
    hole = np.zeros((size[1], size[0]), dtype=bool)
    for layer in layers or []:
        drawn = np.asarray(layer)[..., 3] > 0
        if drawn.shape != hole.shape:
            drawn = np.array(Image.fromarray(drawn).resize(size, Image.NEAREST))
        hole |= drawn
    return hole


def inpaint(upload: str, mask: np.ndarray, model: str, seed: int, workspace: Workspace,
            progress: Progress = _no_progress) -> Result:
    """Fill the drawn hole with a zoo model (LaMa for photos, the digit DiT/CVAE) or OpenCV's Telea."""
    image = np.array(workspace.load(upload))
    if mask is None or not np.asarray(mask).any():
        raise ConfigError("draw over the part of the image to fill first")
    if model == CLASSICAL_INPAINT:
        method, options = "telea", {}
    else:
        method = INPAINT_METHOD_OF_KIND[zoo.entry(check_choice("inpaint", model)).kind]
        options = {"model": model}  # edit/generative.py loads it once per process
        if method != "net":
            options["seed"] = int(seed)
    progress(0.2, f"filling with {model}")
    filled = inpaint_array(image, np.asarray(mask, dtype=bool), method=method, **options)
    path = workspace.path("inpaint", ".png")
    hole = float(np.asarray(mask, dtype=bool).mean())
    gio.save_image(Image.fromarray(filled), path,
                   metadata={"model": model, "method": method, "hole_fraction": round(hole, 4), "seed": int(seed)})
    return Result(path, [path, sidecar(path)], f"filled {hole:.1%} of the image with {model}")


def denoise(upload: str, model: str, workspace: Workspace, progress: Progress = _no_progress) -> Result:
    image = workspace.load(upload)
    progress(0.1, "loading the model")
    net = _cached(resolve_denoiser, check_choice("denoise", model))
    out = denoise_image(net, image, progress=True)
    path = workspace.path("denoise", ".png")
    gio.save_image(out, path, metadata={"model": model, "size": list(out.size)})
    return Result(path, [path, sidecar(path)], f"denoised {image.width}x{image.height} with {model}")


def upscale(upload: str, model: str, workspace: Workspace, progress: Progress = _no_progress) -> Result:
    image = workspace.load(upload)
    progress(0.1, "loading the model")
    net = _cached(resolve_sr_model, check_choice("upscale", model))
    if image.width * image.height * net.scale ** 2 > workspace.limits.max_pixels:
        raise ConfigError(f"a {image.width * net.scale}x{image.height * net.scale} result is over the app's "
                          f"{workspace.limits.max_pixels} pixels; upload a smaller image")
    out = upscale_image(net, image, progress=True)
    path = workspace.path("upscale", ".png")
    gio.save_image(out, path, metadata={"model": model, "scale": net.scale, "size": list(out.size)})
    return Result(path, [path, sidecar(path)], f"x{net.scale}: {image.width}x{image.height} -> {out.width}x{out.height}")


def _unit_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1).float().div_(255.0)


def painting_choices() -> list[str]:
    """``zoo:NAME / STYLE`` for every style of the zoo's multi-style fast nets (what the Painting menu offers)."""
    return [f"{spec} / {name}" for spec in zoo_choices("stylize") for name in model_style_names(spec)]


def stylize(upload: str, method: str, style_upload: str | None, steps: int, workspace: Workspace,
            progress: Progress = _no_progress, painting: str | None = None) -> Result:
    """A zoo style model (Johnson's fast net; one of a multi-style net's ``painting``s, ``zoo:NAME / STYLE``;
    AdaIN with a style upload) or a short Gatys optimisation."""
    content = _unit_tensor(workspace.load(upload, what="content image"))
    style = None if style_upload is None else _unit_tensor(workspace.load(style_upload, what="style image"))
    if method == OPTIMIZE:
        if style is None:
            raise ConfigError("the optimisation needs a style image: upload one")
        steps = int(steps)
        if not 1 <= steps <= MAX_STYLE_STEPS:
            raise ConfigError(f"steps must be 1..{MAX_STYLE_STEPS} here, got {steps}")
        settings = settings_from(size=STYLE_SIZE, steps=steps, scales=1, device="cpu")
        result = transfer(content, [style], settings=settings, progress=True)
        record = {"method": "optimize", **result.to_json()}
    else:
        progress(0.1, "loading the model")
        net = _cached(load_style_model, check_choice("stylize", method))
        if net.arbitrary and style is None:
            raise ConfigError(f"{method} takes any style: upload a style image")
        styles = [style] if net.arbitrary else []
        names = () if net.arbitrary else net.style_names
        if names:  # a multi-style net: the Painting menu's choice, which must be one of this model's
            model_of, _, name = (painting or "").rpartition(" / ")
            if model_of != method or name not in names:
                raise ConfigError(f"{method} holds several paintings: choose one of {', '.join(names)}")
            styles = [name]
        result = run_style_model(net, content, styles, size=STYLE_SIZE if net.arbitrary else None)
        record = {**result.to_json(), "zoo_model": method, **({"painting": styles[0]} if names else {})}
    path = workspace.path("stylize", ".png")
    gio.save_image(result.image, path, metadata=record, value_range=(0.0, 1.0))
    h, w = result.image.shape[-2:]
    painted = f" ({record['painting']})" if "painting" in record else ""
    return Result(path, [path, sidecar(path)],
                  f"{record.get('zoo_model', 'optimize')}{painted}: {w}x{h} in {result.seconds:.1f} s")


def translate(upload: str, model: str, direction: str, workspace: Workspace,
              progress: Progress = _no_progress) -> Result:
    progress(0.1, "loading the model")
    net = _cached(load_translator, check_choice("translate", model))
    image = workspace.load(upload, "L" if net.config.channels == 1 else "RGB")
    x = torch.from_numpy(np.array(image)).float().div_(255.0)
    x = x[None] if x.ndim == 2 else x.permute(2, 0, 1)  # (C, H, W)
    out = translate_tensor(net, x[None], direction)[0]
    path = workspace.path("translate", ".png")
    gio.save_image(out, path, value_range=(0.0, 1.0),
                   metadata={"model": model, "direction": direction, "size": [image.width, image.height]})
    return Result(path, [path, sidecar(path)], f"{direction} with {model}")


def _classifier(spec: str):
    return load_with_card(spec, kind="classifier")[0]


def explain(upload: str, workspace: Workspace, progress: Progress = _no_progress,
            model: str = EXPLAIN_BACKBONE) -> Result:
    """The top 5 classes and an explanation of the prediction: EfficientNet-Lite0's ImageNet classes with
    Grad-CAM, or a zoo digit classifier's with Grad-CAM (ResNet) or attention rollout (ViT)."""
    progress(0.1, f"loading {model}")
    if model == EXPLAIN_BACKBONE:
        net = _cached(load_photo_classifier, EXPLAIN_BACKBONE)  # one line naming `genvision weights get` if absent
        result = explain_photo(net, _unit_tensor(workspace.load(upload)))
        weights = net.card.get("safetensors_sha256")
    else:
        net = _cached(_classifier, check_choice("classify", model))
        mode = "L" if net.config.channels == 1 else "RGB"
        result = explain_model(net, _unit_tensor(workspace.load(upload, mode)) * 2 - 1)  # the model's [-1, 1]
        weights = zoo.entry(model.removeprefix(zoo.PREFIX)).files["model.safetensors"]
    probabilities = result.probabilities
    top = torch.topk(probabilities, min(5, len(probabilities)))
    labels = {result.label(int(k)): float(p) for p, k in zip(top.values, top.indices)}
    path = workspace.path("explain", ".png")
    meta = {"model": model, "method": result.method, "predicted": result.predicted,
            "predicted_name": result.label(result.predicted),
            "probability": float(probabilities[result.predicted]), "top5": labels, "weights_sha256": weights}
    gio.save_image(render(result), path, metadata=meta)
    return Result(path, [path, sidecar(path)],
                  f"predicted {meta['predicted_name']} ({meta['probability']:.1%})", {"labels": labels})


def build_index(uploads: Sequence[str], model: str, workspace: Workspace,
                progress: Progress = _no_progress) -> Result:
    """A new retrieval index of the uploaded images, embedded by the zoo model (``genvision index build``)."""
    uploads = list(uploads or [])
    if not uploads:
        raise ConfigError("upload the images to index first")
    if len(uploads) > MAX_INDEX_IMAGES:
        raise ConfigError(f"index at most {MAX_INDEX_IMAGES} images here, got {len(uploads)}")
    images = [workspace.load(upload) for upload in uploads]
    folder = workspace.path("index", ".gvindex")
    progress(0.2, f"embedding {len(images)} images")
    spec = f"simclr:{check_choice('search', model)}"
    with Index.building(folder, embed=spec) as index:
        index.add_images(images, [str(Path(u)) for u in uploads])
    return Result(None, [], f"indexed {len(images)} images with {model}", {"index": str(folder)})


def search(index_path: str | None, query: str, workspace: Workspace, progress: Progress = _no_progress) -> Result:
    """The uploaded query's nearest images in the index, as a contact sheet with a JSON of the hits."""
    if not index_path:
        raise ConfigError("build the index first: upload images and press Build index")
    image = workspace.load(query, what="query image")
    with Index.open(index_path) as index:
        hits = index.search(image, k=min(SEARCH_HITS, len(index)))
    path = workspace.path("search", ".png")
    contact_sheet(image, hits, path)
    gio.write_sidecar(path, {"hits": [{"rank": h.rank, "name": Path(h.path).name, "score": round(h.score, 4)}
                                      for h in hits]})
    best = hits[0]
    return Result(path, [path, sidecar(path)], f"best match {Path(best.path).name} (score {best.score:.3f})",
                  {"hits": [(h.path, f"#{h.rank} {h.score:.3f}") for h in hits]})


def compress(upload: str, model: str, workspace: Workspace, progress: Progress = _no_progress) -> Result:
    """The learned codec's bitstream and decoded image beside JPEG at the same bits per pixel."""
    image = workspace.load(upload)
    progress(0.1, "loading the codec")
    net, card = _cached(_codec, check_choice("compress", model))
    pixels = _unit_tensor(image)
    progress(0.3, "compressing")
    with torch.no_grad():
        coded = net.compress(pixels[None])
        data = encode_file(card["model"], weights_fingerprint(net), coded)
        decoded = net.decompress(coded)[0].float().clamp(0, 1)
    h, w = pixels.shape[-2:]
    bpp = 8 * len(data) / (h * w)
    progress(0.8, "JPEG at the same rate")
    jpeg, quality = jpeg_within(image, len(data))
    jpeg_pixels = _unit_tensor(Image.open(io.BytesIO(jpeg)))
    jpeg_bpp = 8 * len(jpeg) / (h * w)
    codec_psnr, jpeg_psnr = psnr(decoded[None], pixels[None]), psnr(jpeg_pixels[None], pixels[None])
    bitstream = workspace.path("compress", CODEC_SUFFIX)
    write_bytes(bitstream, data)
    decoded_path = gio.save_image(decoded, bitstream.with_suffix(".png"), value_range=(0.0, 1.0),
                                  metadata={"model": model, "bytes": len(data), "bpp": round(bpp, 4),
                                            "psnr": round(codec_psnr, 2), "size": [w, h]})
    jpeg_path = bitstream.with_name(bitstream.stem + "-jpeg.jpg")
    write_bytes(jpeg_path, jpeg)
    gio.write_sidecar(jpeg_path, {"codec": "JPEG (Pillow)", "quality": quality, "bytes": len(jpeg),
                                  "bpp": round(jpeg_bpp, 4), "psnr": round(jpeg_psnr, 2), "size": [w, h]})
    files = [bitstream, decoded_path, sidecar(decoded_path), jpeg_path, sidecar(jpeg_path)]
    gap = codec_psnr - jpeg_psnr
    return Result(decoded_path, files,
                  f"{model}: {bpp:.3f} bpp, {codec_psnr:.2f} dB; JPEG q{quality}: {jpeg_bpp:.3f} bpp, "
                  f"{jpeg_psnr:.2f} dB ({gap:+.2f} dB)",
                  {"jpeg": jpeg_path, "bpp": bpp, "jpeg_bpp": jpeg_bpp, "psnr": codec_psnr, "jpeg_psnr": jpeg_psnr})


__all__ = ["Limits", "Result", "Workspace", "build_index", "check_choice", "compress", "denoise", "edit", "explain",
           "generate", "inpaint", "mask_from_layers", "search", "stylize", "translate", "upscale", "zoo_choices"]
