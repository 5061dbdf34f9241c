"""Recognition commands: ``genvision classify`` (top-k classes) and ``genvision explain``
(attention rollout for ViTs, Grad-CAM for CNNs)."""

from __future__ import annotations

import json

import click
import torch

from ... import io as gio
from ...checkpoints import load_pretrained
from ...cli_params import CLASS, Count, overwrite_option
from ...io import load_image_tensor
from ...outputs import OutputGuard
from .explain import explain as run_explain
from .explain import render
from .pipeline import CLASSIFIER_KINDS, predict, prepare


def _load_classifier(model_dir: str):
    return load_pretrained(model_dir, kind=CLASSIFIER_KINDS)


def _load_image(path: str, channels: int):
    """An image file as (C, H, W) in [-1, 1] with the model's channel count."""
    return load_image_tensor(path, channels=channels).mul(2.0).sub(1.0)


@click.command()
@click.option("--model", "model_dir", required=True, help="Classifier model or run directory.")
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--top-k", default=5, show_default=True, type=Count(1, 100_000),
              help="Classes to show per image (at most the model's number of classes are shown).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def classify(model_dir, images, top_k, as_json):
    """Print the top-k classes (with probabilities) of each image."""
    model = _load_classifier(model_dir)
    cfg = model.config
    names = list(getattr(cfg, "class_names", ()) or [])
    # Each file is converted to the model's input on its own (sizes may differ), then one batch.
    batch = torch.cat([prepare(model, _load_image(path, cfg.channels)[None]) for path in images])
    probs = predict(model, batch)  # (n, K)
    k = min(top_k, cfg.num_classes)
    results = []
    for path, p in zip(images, probs):
        values, indices = p.topk(k)
        top = [{"class": int(i), "name": names[int(i)] if names else str(int(i)), "probability": float(v)}
               for v, i in zip(values, indices)]
        results.append({"image": str(path), "top": top})
    if as_json:
        click.echo(json.dumps({"model": str(model_dir), "results": results}, indent=2))
        return
    for result in results:
        click.echo(result["image"])
        for rank, entry in enumerate(result["top"], 1):
            click.echo(f"  {rank}. {entry['name']:<14} {entry['probability']:.4f}")


@click.command()
@click.option("--model", "model_dir", required=True, help="Classifier model or run directory.")
@click.argument("image", type=click.Path())
@click.option("-o", "--output", default="explanation.png", show_default=True, type=click.Path(),
              help="PNG with the input and heat-map overlays side by side.")
@click.option("--class", "class_label", type=CLASS, help="Class to explain (default: the predicted one).")
@overwrite_option
def explain(model_dir, image, output, class_label, overwrite):
    """Show what a classifier looked at: attention rollout + per-head maps (ViT) or Grad-CAM (CNN)."""
    OutputGuard(overwrite=overwrite).add_model(model_dir).add_inputs(image).claim(output, sidecar=True)
    model = _load_classifier(model_dir)
    result = run_explain(model, _load_image(image, model.config.channels), target=class_label)
    meta = {"model": str(model_dir), "image": str(image), "method": result.method, "maps": list(result.maps),
            "predicted": result.predicted, "predicted_name": result.label(result.predicted),
            "probability": float(result.probabilities[result.predicted]), "target": result.target}
    path = gio.save_image(render(result), output, metadata=meta)
    click.echo(f"{result.method}: predicted {result.label(result.predicted)} "
               f"({meta['probability']:.1%}); wrote {path}")

