"""Recognition commands: ``genvision classify`` (top-k classes) and ``genvision explain``
(attention rollout for ViTs, Grad-CAM for CNNs).

``--model`` is a genvision classifier (model or run directory) or a pretrained ImageNet backbone
named from ``genvision weights list`` (``efficientnet-lite0``; see :mod:`.photos` for the rule), so
``genvision classify photo.jpg --model efficientnet-lite0`` gives ImageNet labels for real photos.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import click
import torch

from ... import io as gio
from ...checkpoints import load_pretrained
from ...cli_params import Count, backend_option, overwrite_option
from ...errors import ConfigError, GenvisionError, display_path, reason
from ...export.onnx_model import load_onnx_model, wants_onnx
from ...io import load_image_tensor
from ...outputs import JobFailedError, OutputGuard
from ...pretrained.efficientnet import imagenet_labels
from ...tiling import image_files
from .explain import explain as run_explain
from .explain import render
from .photos import (
    BATCH,
    explain_photo,
    load_photo,
    load_photo_classifier,
    names_backbone,
    photo_probabilities,
)
from .pipeline import CLASSIFIER_KINDS, predict, prepare

MODEL_HELP = ("Classifier model or run directory, or a pretrained ImageNet backbone: efficientnet-lite0 "
              "(`genvision weights get efficientnet-lite0` fetches it once).")


class ClassLabel(Count):
    """--class: an index 0..100000, or an ImageNet label name (for a pretrained backbone). Only
    ImageNet names pass, so a typo is still a usage error while the command line is parsed."""

    name = "class"

    def convert(self, value, param, ctx):
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:
            if not isinstance(value, str) or any(c.isdigit() for c in value):
                raise  # a number out of range or malformed: Count's message says which
            if value.strip().lower() in {n.lower() for n in imagenet_labels()}:
                return value.strip()
            self.fail(f"{value!r} is neither a class index nor an ImageNet label name.", param, ctx)


def _load_classifier(model_dir: str, backend: str = "torch"):
    if wants_onnx(model_dir, backend):
        return load_onnx_model(model_dir, kind=CLASSIFIER_KINDS)
    return load_pretrained(model_dir, kind=CLASSIFIER_KINDS)


def _load_image(path: str, channels: int):
    """An image file as (C, H, W) in [-1, 1] with the model's channel count."""
    return load_image_tensor(path, channels=channels).mul(2.0).sub(1.0)


def _inputs(images: tuple[str, ...]) -> list[tuple[Path, bool]]:
    """(file, from a folder) per image: a folder argument gives its image files (recursively, sorted)."""
    entries: list[tuple[Path, bool]] = []
    for arg in images:
        path = Path(arg)
        if path.is_dir():
            files = image_files(path)
            if not files:
                raise ConfigError(f"{display_path(path)}: no image files found")
            entries += [(f, True) for f in files]
        else:
            entries.append((path, False))
    return entries


def _top_k(entries, load: Callable[[Path], torch.Tensor], probabilities: Callable[[torch.Tensor], torch.Tensor],
           names: list[str], k: int) -> tuple[list[dict], int]:
    """Top-k entries per image, in batches (bounded memory). A named file that fails to load stops the
    command; one inside a folder is reported on stderr and the rest go on. Returns (results, failures)."""
    results, failed = [], 0
    for start in range(0, len(entries), BATCH):
        chunk, loaded = [], []  # chunk: this batch's results in input order; loaded: (result, tensor)
        for path, in_folder in entries[start:start + BATCH]:
            chunk.append({"image": str(path)})
            try:
                loaded.append((chunk[-1], load(path)))
            except (GenvisionError, MemoryError) as exc:
                if not in_folder:
                    raise
                failed += 1
                message = reason(exc) if isinstance(exc, GenvisionError) else "out of memory"
                message = message if display_path(path) in message else f"{display_path(path)}: {message}"
                click.echo(f"error: {message}", err=True)
                chunk[-1]["error"] = message
        if loaded:
            probs = probabilities(torch.stack([x for _, x in loaded]))  # (b, K)
            for (result, _), p in zip(loaded, probs):
                values, indices = p.topk(min(k, p.numel()))
                result["top"] = [{"class": int(i), "name": names[int(i)] if names else str(int(i)),
                                  "probability": float(v)} for v, i in zip(values, indices)]
        results += chunk
    return results, failed


@click.command()
@click.option("--model", "model_dir", required=True, help=MODEL_HELP)
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--top-k", default=5, show_default=True, type=Count(1, 100_000),
              help="Classes to show per image (at most the model's number of classes are shown).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@backend_option
def classify(model_dir, images, top_k, as_json, backend):
    """Print the top-k classes (with probabilities) of each image (files, or folders of images)."""
    entries = _inputs(images)
    if names_backbone(model_dir) and backend != "onnxruntime":
        net = load_photo_classifier(model_dir)
        results, failed = _top_k(entries, lambda p: load_photo(net, p), lambda x: photo_probabilities(net, x),
                                 list(net.labels), top_k)
    else:
        model = _load_classifier(model_dir, backend)
        cfg = model.config
        # Each file is converted to the model's input on its own (sizes may differ), then batched.
        results, failed = _top_k(entries, lambda p: prepare(model, _load_image(p, cfg.channels)[None])[0],
                                 lambda x: predict(model, x), list(getattr(cfg, "class_names", ()) or []), top_k)
    if as_json:
        click.echo(json.dumps({"model": str(model_dir), "results": results}, indent=2))
    else:
        width = max([14] + [len(e["name"]) for r in results for e in r.get("top", ())])
        for result in results:
            if "top" in result:
                click.echo(result["image"])
                for rank, entry in enumerate(result["top"], 1):
                    click.echo(f"  {rank}. {entry['name']:<{width}} {entry['probability']:.4f}")
    if failed:
        raise JobFailedError(f"classified {len(entries) - failed} of {len(entries)} images; {failed} failed")


def _explain_model(model_dir: str, image: str, class_label: int | str | None):
    model = _load_classifier(model_dir)
    if isinstance(class_label, str):  # ClassLabel lets only ImageNet names through as text
        raise ConfigError(f"--class {class_label!r} is an ImageNet label; {model_dir} takes a class index "
                          f"0..{model.config.num_classes - 1}")
    return run_explain(model, _load_image(image, model.config.channels), target=class_label), {}


def _explain_photo(name: str, image: str, class_label: int | str | None):
    net = load_photo_classifier(name)
    result = explain_photo(net, load_image_tensor(image, channels=3), target=class_label)
    return result, {"weights_sha256": net.card.get("safetensors_sha256")}  # which weights made the map


@click.command()
@click.option("--model", "model_dir", required=True, help=MODEL_HELP)
@click.argument("image", type=click.Path())
@click.option("-o", "--output", default="explanation.png", show_default=True, type=click.Path(),
              help="PNG with the input and heat-map overlays side by side.")
@click.option("--class", "class_label", type=ClassLabel(0, 100_000),
              help="Class to explain: an index, or an ImageNet label such as 'bald eagle' for a pretrained "
                   "backbone (default: the predicted one).")
@overwrite_option
def explain(model_dir, image, output, class_label, overwrite):
    """Show what a classifier looked at: attention rollout + per-head maps (ViT) or Grad-CAM (CNN and
    pretrained backbones: the last conv stage of EfficientNet-Lite0)."""
    photo = names_backbone(model_dir)
    guard = OutputGuard(overwrite=overwrite)
    if not photo:
        guard.add_model(model_dir)
    guard.add_inputs(image).claim(output, sidecar=True)
    result, extra = (_explain_photo if photo else _explain_model)(model_dir, image, class_label)
    meta = {"model": str(model_dir), "image": str(image), "method": result.method, "maps": list(result.maps),
            "predicted": result.predicted, "predicted_name": result.label(result.predicted),
            "probability": float(result.probabilities[result.predicted]), "target": result.target,
            "target_name": result.label(result.target), **extra}
    path = gio.save_image(render(result), output, metadata=meta)
    click.echo(f"{result.method}: predicted {result.label(result.predicted)} "
               f"({meta['probability']:.1%}); wrote {path}")
