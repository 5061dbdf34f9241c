"""``genvision quantize``: a smaller model and the report that says what it cost.

int8 (``static``, ``qat``, ``dynamic``) writes an ``.onnx`` file that ``upscale`` / ``classify`` run with
``--backend onnxruntime``; ``fp16`` / ``bf16`` / ``int8-weights`` write a model directory with
narrower weights that every command loads (widened to float32 there). Either way OUTPUT.json holds the report: sizes, latencies measured in this run on
the same real input (PyTorch eager fp32, ONNX Runtime fp32, the quantized model), and the quality of the
original and the quantized model in the kind's own metric (Y-PSNR for super-resolution, accuracy for
classifiers, domain FID for GANs), measured by the kind's evaluator. ``qat`` also scores the float model the quantization-aware
fine-tuning started from (its recipe's ``init``), the number int8 is to be compared with.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ...apps import calibrator, evaluator
from ...checkpoints import WEIGHTS_FILE, load_pretrained, load_with_card, resolve_model_dir, save_pretrained
from ...errors import ConfigError
from ...evaluation import EvaluationRequest
from ...export import export_onnx
from ...export.onnx_model import load_onnx_model
from ...export.quantize import (
    CALIBRATED_METHODS,
    INT8_METHODS,
    half_width_state,
    int8_weight_state,
    interleaved_latency,
    median_ratio,
    onnx_runner,
    quantize_onnx,
)

# the number each kind's evaluator reports first: Y-PSNR, accuracy, domain FID (lower is better)
# the new model's own fields, and those that describe the source's files (its zoo entry, its storage dtype)
CARD_FIELDS_NOT_COPIED = ("format", "format_version", "genvision_version", "model", "kind", "config", "zoo", "storage")
QUALITY_METRIC = {"sr": "psnr", "classifier": "accuracy", "gan": "fid"}
IMAGE_OUTPUT_KINDS = ("sr", "gan")
LATENCY_ROUNDS = 20  # interleaved: eager, ORT fp32, quantized in turn, the speed-ups the median of the rounds
LATENCY_SAMPLES = 32  # calibration images asked for the latency input: a classifier's batch of 32


@dataclass
class QuantizeJob:
    model_dir: str
    method: str
    output: Path
    calibrate: str | None = None  # calibration data (static); default: the model's training data
    calibration_images: int = 64
    evaluate: str | None = None  # quality data; default: the kind evaluator's
    data_root: str | None = None
    samples: int = 10_000  # generators: samples the FID before and after is computed on
    reduce_range: bool = True  # 7-bit weights (see genvision.export.quantize.quantize_onnx)
    keep_ends: bool | None = None  # static: first and last convolution in float; None: for image outputs (sr)
    report: dict = field(default_factory=dict)


def _quality(kind: str, model, card: dict, job: QuantizeJob) -> dict:
    request = EvaluationRequest(model=job.model_dir, data=job.evaluate, data_root=job.data_root, n=job.samples,
                                progress=False)
    started = time.perf_counter()
    metrics = evaluator(kind)(model, card, request).metrics
    value = metrics[QUALITY_METRIC[kind]]
    return {QUALITY_METRIC[kind]: value, "data": request.data or "default", "seconds": time.perf_counter() - started}


def _latency_input(kind: str, model, card: dict, job: QuantizeJob) -> tuple:
    """The same real input for every method's latency comparison: the first calibration sample (an SR
    model's first LR image, a classifier's first batch of training images), else the model's own example."""
    try:
        return calibrator(kind)(model, card, job.calibrate, job.data_root, LATENCY_SAMPLES)[0]
    except ConfigError:
        return tuple(model.example_inputs(1))


def _check_qat_trained(card: dict, job: QuantizeJob) -> None:
    """``qat`` converts a model fine-tuned under the rounding it will get: 7-bit weights, ends in float."""
    recipe = card.get("run", {}).get("recipe", {}) or {}
    if not (recipe.get("objective") or {}).get("qat"):
        raise ConfigError(f"{job.model_dir} was not trained with quantization-aware training; fine-tune it first: "
                          f"genvision train sr-distill --data folder:HR_IMAGES teacher={job.model_dir} "
                          f"init={job.model_dir} objective.qat=true (or use --method static)")
    if not job.reduce_range or job.keep_ends is False:
        raise ConfigError("a QAT model was trained for 7-bit weights with its first and last convolution in float; "
                          "--method qat takes neither --full-range nor --quantize-ends")


def run_quantize(job: QuantizeJob) -> dict:
    """Quantize, measure, and return the report (the caller writes it)."""
    model, card = load_with_card(job.model_dir)
    kind = model.model_kind
    if kind not in QUALITY_METRIC:
        raise ConfigError(f"genvision quantize handles {', '.join(QUALITY_METRIC)} models today; "
                          f"{job.model_dir} is a {kind} model")
    model = model.to("cpu").float().eval()
    threads = torch.get_num_threads()
    report = {"model": card["model"], "kind": kind, "source": job.model_dir, "method": job.method,
              "threads": threads, "output": str(job.output)}
    if job.keep_ends is None:  # where 8-bit steps land on the image; a classifier's logits take them well
        job.keep_ends = kind in IMAGE_OUTPUT_KINDS
    fp32_bytes = (resolve_model_dir(job.model_dir) / WEIGHTS_FILE).stat().st_size
    calibration = []  # first: a model without calibration data fails before any long measurement
    if job.method == "qat":
        _check_qat_trained(card, job)
    if job.method in CALIBRATED_METHODS:
        calibration = calibrator(kind)(model, card, job.calibrate, job.data_root, job.calibration_images)
    quality_before = _quality(kind, model, card, job)
    if job.method == "qat":
        start = (card.get("run", {}).get("recipe", {}) or {}).get("init")
        if start and Path(start).exists():
            report["quality_before_qat"] = {"model": start, **_quality(kind, load_pretrained(start).float().eval(),
                                                                        card, job)}
    with tempfile.TemporaryDirectory(prefix="gv-quantize-") as scratch:
        if job.method in INT8_METHODS:
            fp32_onnx = Path(scratch) / "fp32.onnx"
            reports = export_onnx(model, fp32_onnx)
            if len(reports) != 1:
                raise ConfigError(f"{card['model']} exports {len(reports)} graphs; int8 quantization takes "
                                  "single-graph models")
            quantize_onnx(fp32_onnx, job.output, job.method, calibration, reduce_range=job.reduce_range,
                          keep_ends=job.keep_ends)
            inputs = _latency_input(kind, model, card, job)
            with torch.inference_mode():
                latency, rounds = interleaved_latency(
                    {"torch_eager_fp32": lambda: model(*inputs), "onnxruntime_fp32": onnx_runner(fp32_onnx, inputs, threads),
                     "quantized": onnx_runner(job.output, inputs, threads)}, LATENCY_ROUNDS)
            quantized = load_onnx_model(job.output, kind=kind, threads=threads)
            report.update(calibration_inputs=len(calibration), calibration_data=job.calibrate or "training data",
                          reduce_range=job.reduce_range, keep_ends=job.keep_ends and job.method in CALIBRATED_METHODS,
                          latency_input=[list(t.shape) for t in inputs],
                          bytes={"safetensors_fp32": fp32_bytes, "onnx_fp32": fp32_onnx.stat().st_size,
                                 "quantized": job.output.stat().st_size},
                          latency_s=latency, latency_rounds=LATENCY_ROUNDS,
                          speedup_vs_eager=median_ratio(rounds, "torch_eager_fp32", "quantized"),
                          speedup_vs_onnxruntime_fp32=median_ratio(rounds, "onnxruntime_fp32", "quantized"),
                          size_ratio=fp32_onnx.stat().st_size / job.output.stat().st_size)
        else:
            state = int8_weight_state(model) if job.method == "int8-weights" else half_width_state(model, job.method)
            if not all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point()):
                raise ConfigError(f"{job.model_dir} has weights beyond {job.method}'s range; use bf16")
            extra = {k: v for k, v in card.items() if k not in CARD_FIELDS_NOT_COPIED}
            extra["storage"] = {"dtype": job.method, "from": job.model_dir}
            save_pretrained(model, job.output, state=state, extra=extra)
            quantized = load_pretrained(job.output)
            report.update(bytes={"safetensors_fp32": fp32_bytes,
                                 "quantized": (job.output / WEIGHTS_FILE).stat().st_size},
                          size_ratio=fp32_bytes / (job.output / WEIGHTS_FILE).stat().st_size,
                          latency_note="computes in float32 after loading: the same speed as the original")
        quality_after = _quality(kind, quantized, card, job)
    metric = QUALITY_METRIC[kind]
    report.update(quality={"metric": metric, "original": quality_before, "quantized": quality_after,
                           "delta": quality_after[metric] - quality_before[metric]})
    return report


__all__ = ["QUALITY_METRIC", "QuantizeJob", "run_quantize"]
