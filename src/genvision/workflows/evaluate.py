"""``evaluate(request)``: offline quality numbers for any model, by the evaluator its kind's
application declares in the manifest.

Generators get FID / KID / precision-recall / density-coverage / Inception Score / class coverage
in a chosen feature space; classifiers accuracy and a confusion matrix; VAEs likelihoods and
reconstruction errors; image-to-image models PSNR/SSIM by the super-resolution protocol; denoisers
PSNR/SSIM on images with seeded Gaussian noise of ``--sigma``. The
outputs (the JSON and the files evaluators write beside it) are checked before anything runs:
existing ones are refused unless ``overwrite``, and the model's own files always are.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .. import apps
from ..checkpoints import is_weightless, load_with_card
from ..config import check_range
from ..errors import ConfigError
from ..evaluation import Evaluation, EvaluationRequest, write_evaluation
from ..models.protocols import Denoiser, ImageToImage
from ..outputs import OutputGuard
from ..registry import get_entry
from ..runtime import check_seed, select_device
from .extractors import resolve_extractor
from .train import train


def _guard(request: EvaluationRequest) -> OutputGuard | None:
    if not request.output:
        return None
    guard = OutputGuard(overwrite=request.overwrite).add_model(request.model)
    if request.data and request.data.startswith("folder:"):
        guard.add_input_folder(Path(request.data[len("folder:"):]).expanduser())
    guard.claim(Path(request.output))
    return guard


def _weightless_config(request: EvaluationRequest) -> dict | None:
    """Settings for a model named rather than loaded (``bicubic`` needs --scale; ``nlmeans`` none)."""
    if request.scale is not None:
        return {"scale": request.scale}
    if is_weightless(request.model) and get_entry(request.model).kind == "denoise":
        return {}
    return None


def evaluate(request: EvaluationRequest | str, **options) -> Evaluation:
    """Evaluate a model: ``evaluate(EvaluationRequest(model="runs/x", n=1000))`` or, the same,
    ``evaluate("runs/x", n=1000)``; see :class:`~genvision.evaluation.EvaluationRequest`."""
    if not isinstance(request, EvaluationRequest):
        request = EvaluationRequest(model=str(request), **options)
    elif options:
        request = dataclasses.replace(request, **options)
    check_seed(request.seed)
    if request.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {request.batch_size}")
    if request.sigma is not None:
        check_range("--sigma", request.sigma, 0.0, 255.0, low_open=True)
    device = select_device(request.device)
    guard = _guard(request)  # before loading anything: a refused output costs nothing
    model, card = load_with_card(request.model, device=device, config=_weightless_config(request))
    if (request.scale is not None or request.self_ensemble) and not isinstance(model, ImageToImage):
        raise ConfigError(f"--scale and --self-ensemble apply to super-resolution models; "
                          f"{request.model} holds a {card['kind']} model")
    if request.sigma is not None and not isinstance(model, Denoiser):
        raise ConfigError(f"--sigma applies to denoising models; {request.model} holds a {card['kind']} model")
    evaluator = apps.evaluator(card["kind"])
    request = dataclasses.replace(request, guard=guard, extractor_for=lambda name, root: resolve_extractor(
        request.features, dataset_name=name, data_root=root, fid_weights=request.fid_weights, device=str(device),
        progress=request.progress, train_classifier=train))
    evaluation = evaluator(model, card, request)
    if request.output_path is not None:
        write_evaluation(evaluation, request.output_path)
    return evaluation


__all__ = ["evaluate"]
