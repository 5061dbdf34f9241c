"""``genvision prune``: a model with fewer channels, saved as an ordinary model directory of its arch.

The pruned model loses quality at once; fine-tuning brings it back, best by distillation from the
model it was cut from:

    genvision prune --model runs/edsr --amount 0.5 -o models/edsr-half
    genvision train sr-distill --data folder:HR_IMAGES init=models/edsr-half teacher=runs/edsr objective.lr=2e-4

The report (OUTPUT.json) holds the widths, parameters and bytes before and after, eager latency on the
same input in the same run, and, with ``evaluate``, the quality of both in the kind's own metric.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save

from ...apps import evaluator
from ...checkpoints import load_pretrained, load_with_card, save_pretrained
from ...evaluation import EvaluationRequest
from ...export.pruning import prune_channels
from ...export.quantize import interleaved_latency, median_ratio
from .quantize import CARD_FIELDS_NOT_COPIED, QUALITY_METRIC


@dataclass
class PruneJob:
    model_dir: str
    output: Path
    amount: float = 0.5  # fraction of each group's channels removed
    multiple_of: int = 1  # kept widths rounded to a multiple of this (8 suits SIMD kernels)
    evaluate: str | None = None  # data for the quality comparison; None: no comparison (it takes a while)
    data_root: str | None = None


def _quality(model, card: dict, job: PruneJob) -> float:
    request = EvaluationRequest(model=job.model_dir, data=job.evaluate, data_root=job.data_root, progress=False)
    return evaluator(model.model_kind)(model, card, request).metrics[QUALITY_METRIC[model.model_kind]]


def _parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _weights_bytes(model: torch.nn.Module) -> int:
    return len(save({k: v.contiguous() for k, v in model.state_dict().items()}))


def run_prune(job: PruneJob) -> dict:
    """Prune, save ``job.output`` and return the report (the caller writes it)."""
    model, card = load_with_card(job.model_dir)
    model = model.to("cpu").float().eval()
    pruned, widths = prune_channels(model, job.amount, job.multiple_of)
    extra = {key: value for key, value in card.items() if key not in CARD_FIELDS_NOT_COPIED}
    extra["pruned"] = {"from": str(job.model_dir), "amount": job.amount, "widths": widths,
                       "importance": "L1 norm of each channel's producing filters"}
    save_pretrained(pruned, job.output, extra=extra)
    inputs = model.example_inputs(1)
    if model.model_kind == "sr":  # a photo-sized input: latency on 8x8 measures only the call overhead
        inputs = (torch.rand(1, model.config.channels, 128, 128, generator=torch.Generator().manual_seed(0)),)
    with torch.inference_mode():
        latency, rounds = interleaved_latency({"original": lambda: model(*inputs), "pruned": lambda: pruned(*inputs)})
    report = {"model": card["model"], "kind": card["kind"], "source": str(job.model_dir), "output": str(job.output),
              "amount": job.amount, "widths": widths,
              "params": {"original": _parameters(model), "pruned": _parameters(pruned)},
              "bytes": {"original": _weights_bytes(model), "pruned": _weights_bytes(pruned)},
              "latency_s": latency, "latency_input": [list(t.shape) for t in inputs],
              "speedup": median_ratio(rounds, "original", "pruned"), "threads": torch.get_num_threads()}
    report["size_ratio"] = report["bytes"]["original"] / report["bytes"]["pruned"]
    if job.evaluate is not None and card["kind"] in QUALITY_METRIC:
        started = time.perf_counter()
        before, after = _quality(model, card, job), _quality(load_pretrained(job.output), card, job)
        report["quality"] = {"metric": QUALITY_METRIC[card["kind"]], "data": job.evaluate, "original": before,
                             "pruned": after, "delta": after - before, "seconds": time.perf_counter() - started}
    return report


__all__ = ["PruneJob", "run_prune"]
