"""Smaller models: int8 graphs by ONNX Runtime's quantizer, and fp16 / bf16 weight storage.

* ``static``: post-training quantization with calibration (ONNX Runtime's ``quantize_static``): weights
  int8 per output channel, activations uint8 with ranges observed on calibration inputs (MinMax), in the
  QDQ format that ONNX Runtime fuses into integer kernels. The usual choice for convolutional networks.
* ``qat``: the same conversion as ``static``, of a model fine-tuned under int8 rounding first
  (quantization-aware training: ``objective.qat=true``, genvision.nn.fake_quant).
* ``dynamic``: weights int8, activation ranges measured on the fly for every input
  (``quantize_dynamic``); no calibration data. Suited to linear-heavy models (transformers).
* ``fp16`` / ``bf16``: the weights stored at half width in the model directory for shipping; they are
  widened back to float32 when loaded, so the network computes exactly as before up to that rounding.
* ``int8-weights``: weight matrices and kernels stored as int8 (one scale per output channel), the rest
  as float32; widened back to float32 when loaded (weight-only quantization for shipping).

ONNX Runtime's quantizer is used rather than PyTorch's PT2E flow: its int8 graphs run in the same
runtime the exported fp32 graphs already run in (``--backend onnxruntime``), with no compiler needed at
inference time. Which one is faster on a given CPU is measured in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import onnx
import torch
from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from ..atomic import write_bytes
from ..checkpoints import INT8_SCALE_SUFFIX
from ..errors import ConfigError
from .onnx_export import ExportError, session_for

INT8_METHODS = ("static", "qat", "dynamic")
CALIBRATED_METHODS = ("static", "qat")
WEIGHT_METHODS = ("fp16", "bf16", "int8-weights")
METHODS = INT8_METHODS + WEIGHT_METHODS
WEIGHT_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}

__all__ = ["CALIBRATED_METHODS", "INT8_METHODS", "METHODS", "WEIGHT_DTYPES", "WEIGHT_METHODS", "half_width_state",
           "int8_weight_state", "interleaved_latency", "median_latency", "median_ratio",
           "quantize_onnx"]


def _feed(tensor: torch.Tensor) -> np.ndarray:
    """A graph input as ONNX Runtime takes it: labels as int64, everything else float32."""
    array = tensor.detach().cpu().numpy()
    return array.astype(np.int64) if array.dtype.kind in "iu" else array.astype(np.float32)


class _Calibration:
    """ONNX Runtime's CalibrationDataReader over a list of input tuples (one tuple per graph run)."""

    def __init__(self, input_names: Sequence[str], samples: Sequence[tuple[torch.Tensor, ...]]):
        self._feeds = iter([{name: _feed(t) for name, t in zip(input_names, s)} for s in samples])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def _end_convolutions(path: Path) -> list[str]:
    """The first and the last convolution of a graph (the image-facing layers; a generator's are transposed)."""
    convs = [node.name for node in onnx.load(str(path)).graph.node if node.op_type in ("Conv", "ConvTranspose")]
    return sorted({convs[0], convs[-1]}) if convs else []


def quantize_onnx(fp32_path: str | Path, output: str | Path, method: str,
                  calibration: Sequence[tuple[torch.Tensor, ...]] = (), *, reduce_range: bool = True,
                  keep_ends: bool = True) -> None:
    """Write the int8 version of the exported graph ``fp32_path`` to ``output``, keeping its genvision.*
    metadata and adding ``genvision.quantization`` (the method and its settings).

    ``reduce_range``: 7-bit weights. x86 CPUs without VNNI multiply uint8 by int8 with an instruction
    (VPMADDUBSW) whose 16-bit sums saturate; a super-resolution network lost 2.7-4.9 dB on Set5 to it
    here, and one bit of weight precision avoids it on any CPU. ``keep_ends``: the first and last
    convolution stay in float (static only), where 8-bit steps land directly on the image."""
    if method not in INT8_METHODS:
        raise ConfigError(f"unknown int8 method {method!r}; choose from {', '.join(INT8_METHODS)}")
    if method in CALIBRATED_METHODS and not calibration:
        raise ConfigError("static quantization needs calibration inputs (--calibrate DATA)")
    source = onnx.load(str(fp32_path))
    metadata = {p.key: p.value for p in source.metadata_props}
    input_names = [i.name for i in source.graph.input]
    with tempfile.TemporaryDirectory(prefix="gv-quantize-") as scratch:
        prepared, quantized = Path(scratch) / "prepared.onnx", Path(scratch) / "int8.onnx"
        try:
            # Shape inference and graph optimisation first, as ONNX Runtime's quantization guide asks.
            quant_pre_process(str(fp32_path), str(prepared))
            if method in CALIBRATED_METHODS:
                kept = _end_convolutions(prepared) if keep_ends else []
                quantize_static(str(prepared), str(quantized), _Calibration(input_names, calibration),
                                quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                                weight_type=QuantType.QInt8, reduce_range=reduce_range, nodes_to_exclude=kept)
            else:
                kept = []
                quantize_dynamic(str(prepared), str(quantized), weight_type=QuantType.QInt8, reduce_range=reduce_range)
        except (RuntimeError, ValueError, onnx.checker.ValidationError) as exc:
            raise ExportError(f"onnxruntime could not quantize {fp32_path} ({method}): "
                              f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        result = onnx.load(str(quantized))
    del result.metadata_props[:]
    metadata["genvision.quantization"] = json.dumps({"method": method, "weights": "int7" if reduce_range else "int8",
                                                     "activations": "uint8" if method in CALIBRATED_METHODS else "dynamic",
                                                     "float_nodes": kept, "calibration_inputs": len(calibration)})
    for key, value in metadata.items():
        entry = result.metadata_props.add()
        entry.key, entry.value = key, value
    write_bytes(output, result.SerializeToString())


def median_latency(run, repeats: int = 10, warmup: int = 2) -> float:
    """Median seconds of ``run()`` over ``repeats`` calls after ``warmup`` unmeasured ones."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def interleaved_latency(runs: dict[str, Callable[[], object]], rounds: int = 20,
                        warmup: int = 2) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Seconds per call of each of ``runs``, timed in interleaved rounds (A B C, A B C, ...) so that a slow
    spell of the machine hits every contender alike: the median of each, and every round's times (for
    ratios taken round by round, see :func:`median_ratio`)."""
    for run in runs.values():
        for _ in range(warmup):
            run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}, times


def median_ratio(times: dict[str, list[float]], slower: str, faster: str) -> float:
    """The median over rounds of ``slower / faster``: a speed-up robust to the machine's noise."""
    return statistics.median(a / b for a, b in zip(times[slower], times[faster]))


def onnx_runner(path: Path, inputs: Iterable[torch.Tensor], threads: int | None = None):
    """A no-argument callable running the graph at ``path`` on ``inputs`` (for :func:`median_latency`)."""
    session = session_for(path, threads)
    feeds = {spec.name: _feed(tensor) for spec, tensor in zip(session.get_inputs(), inputs)}
    return lambda: session.run(None, feeds)


def int8_weight_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state with every weight matrix and kernel (2-D and up) stored as int8, symmetric per output
    channel, its scale beside it as ``NAME.int8_scale`` (float32); biases, norms and buffers as they are.
    genvision.checkpoints widens them back to float32 on loading: storage only, the compute stays float."""
    state = {}
    for name, tensor in model.state_dict().items():
        if not tensor.is_floating_point() or tensor.ndim < 2:
            state[name] = tensor
            continue
        scale = tensor.detach().float().abs().flatten(1).amax(1).clamp_min(1e-12) / 127  # (out,)
        levels = (tensor.float() / scale.view(-1, *([1] * (tensor.ndim - 1)))).round().clamp(-127, 127)
        state[name], state[name + INT8_SCALE_SUFFIX] = levels.to(torch.int8), scale
    return state


def half_width_state(model: torch.nn.Module, method: str) -> dict[str, torch.Tensor]:
    """The model's state with every floating tensor stored as fp16 or bf16 (integer buffers as they are)."""
    if method not in WEIGHT_DTYPES:
        raise ConfigError(f"unknown weight format {method!r}; choose from {', '.join(WEIGHT_DTYPES)}")
    dtype = WEIGHT_DTYPES[method]
    return {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in model.state_dict().items()}
