"""ONNX export of a registered model, each graph checked against PyTorch on the spot.

``torch.onnx.export(..., dynamo=True)`` (torch.export underneath, then onnxscript's translation) does
the work; what this module adds is what users of exporters keep asking for: the free axes declared
(batch always, height and width for fully convolutional nets), the parity with PyTorch measured
on inputs of *other* sizes than the traced ones (a dimension frozen by tracing fails there, not in
a user's deployment), and the model card in the file's metadata, so an ``.onnx`` alone says what it
is (``genvision.model``, ``genvision.kind``, ``genvision.graph``, ``genvision.config``, the free axes and
input ranges).

The check runs the file through onnxruntime's CPU provider; fp32 graphs must agree within
:data:`FP32_TOLERANCE` (max absolute difference), else the export is refused and nothing is left
under the output name.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from .. import __version__
from ..atomic import write_bytes
from ..config import to_dict
from ..errors import ConfigError, GenvisionError
from .graphs import Graph, graphs_for

FP32_TOLERANCE = 1e-4  # the bar for fp32 parity (max absolute difference)
OPSET = 18  # the dynamo exporter's own default; onnxruntime 1.2x runs it on every provider


class ExportError(GenvisionError):
    """The exporter failed, or the exported graph does not compute what the PyTorch model computes."""


@dataclass(frozen=True)
class GraphReport:
    graph: str
    path: Path
    inputs: dict[str, list]  # name -> shape, the free axes by name
    output: str
    max_abs_error: float  # against PyTorch, on inputs of other sizes than the traced ones
    checked_shapes: dict[str, list[int]]
    bytes: int
    seconds: float

    def to_json(self) -> dict:
        return {"graph": self.graph, "path": str(self.path), "inputs": self.inputs, "output": self.output,
                "max_abs_error": self.max_abs_error, "checked_shapes": self.checked_shapes, "bytes": self.bytes,
                "seconds": round(self.seconds, 2)}


def output_paths(model: nn.Module, output: str | Path) -> dict[str, Path]:
    """graph name -> file: ``output`` itself for a one-graph model, ``STEM.GRAPH.onnx`` beside it for
    models with several (a VAE's ``vae.encoder.onnx`` and ``vae.decoder.onnx``)."""
    output = Path(output)
    if output.suffix.lower() != ".onnx":
        raise ConfigError(f"the ONNX output must end in .onnx, got {output.name}")
    names = [graph.name for graph in graphs_for(model)]
    if len(names) == 1:
        return {names[0]: output}
    return {name: output.with_name(f"{output.stem}.{name}.onnx") for name in names}


def _dynamic_shapes(graph: Graph) -> tuple[tuple[dict[int, object], ...]]:
    """The free axes in torch.export's structure: the graph modules take ``*inputs``, one tuple."""
    return (tuple({axis: torch.export.Dim.DYNAMIC for axis in axes} for axes in graph.axes),)


def _reason(exc: Exception) -> str:
    """The line of an exporter error that says what went wrong (its summary, not its advice)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if "## Exception summary" in lines:
        after = lines[lines.index("## Exception summary") + 1:]
        if after:
            return after[0][:300]
    return (lines[0] if lines else type(exc).__name__)[:300]


def _onnx_model(graph: Graph) -> onnx.ModelProto:
    """The traced graph as an in-memory ONNX model (the exporter's own chatter silenced: a user sees
    our one-line result, or our one-line error)."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "onnxscript", "torch._dynamo")]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(graph.module, graph.inputs, input_names=list(graph.input_names),
                                        output_names=[graph.output_name], dynamic_shapes=_dynamic_shapes(graph),
                                        opset_version=OPSET, dynamo=True, verbose=False, report=False)
    except Exception as exc:  # noqa: BLE001 (the exporter raises many types; the user needs the line that says why)
        raise ExportError(f"graph {graph.name}: torch.onnx.export failed: {_reason(exc)}") from None
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
    return program.model_proto


def _metadata(model: nn.Module, graph: Graph) -> dict[str, str]:
    axes = {name: {str(axis): label for axis, label in axes.items()} for name, axes in zip(graph.input_names, graph.axes)}
    return {"genvision.version": __version__, "genvision.model": model.registry_name,
            "genvision.kind": model.model_kind, "genvision.graph": graph.name,
            "genvision.config": json.dumps(to_dict(model.config), sort_keys=True),
            "genvision.free_axes": json.dumps(axes, sort_keys=True),
            "genvision.output": graph.output_name}


def run_onnx(session: ort.InferenceSession, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """The first output of ``session`` on named numpy inputs."""
    return session.run(None, inputs)[0]


def session_for(data: bytes | str | Path, threads: int | None = None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: its warnings would reach a user's terminal
    if threads:
        options.intra_op_num_threads = threads
    source = str(data) if isinstance(data, Path) else data
    return ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])


def check_parity(graph: Graph, data: bytes) -> tuple[float, dict[str, list[int]]]:
    """(max |onnx - torch| on the probe inputs, their shapes)."""
    session = session_for(data)
    feeds = {name: tensor.numpy() for name, tensor in zip(graph.input_names, graph.probe)}
    got = run_onnx(session, feeds)
    with torch.no_grad():
        want = graph.module(*graph.probe).numpy()
    if got.shape != want.shape:
        raise ExportError(f"graph {graph.name}: onnxruntime gives shape {list(got.shape)}, PyTorch "
                          f"{list(want.shape)} for inputs {[list(t.shape) for t in graph.probe]}")
    return float(np.abs(got.astype(np.float64) - want).max()) if got.size else 0.0, \
        {name: list(t.shape) for name, t in zip(graph.input_names, graph.probe)}


def export_onnx(model: nn.Module, output: str | Path, *, tolerance: float = FP32_TOLERANCE) -> list[GraphReport]:
    """Export every graph of ``model`` (eval mode, CPU, fp32) to ``output`` (see :func:`output_paths`),
    each checked against PyTorch; a graph over ``tolerance`` is refused (ExportError) and no file of
    this export is left behind. Files are written atomically."""
    model = model.eval().to("cpu").float()
    paths = output_paths(model, output)
    reports, staged = [], []
    with tempfile.TemporaryDirectory(prefix="gv-export-") as scratch:
        for graph in graphs_for(model):
            started = time.perf_counter()
            proto = _onnx_model(graph)
            for key, value in _metadata(model, graph).items():
                entry = proto.metadata_props.add()
                entry.key, entry.value = key, value
            data = proto.SerializeToString()  # the weights inline: one self-contained file (< 2 GB)
            error, shapes = check_parity(graph, data)
            if not error <= tolerance:  # also refuses NaN
                raise ExportError(f"graph {graph.name}: onnxruntime differs from PyTorch by {error:.3g} (max abs), "
                                  f"over the tolerance {tolerance:g}; nothing was written")
            scratch_file = Path(scratch) / f"{graph.name}.onnx"
            scratch_file.write_bytes(data)
            staged.append((scratch_file, paths[graph.name]))
            inputs = {name: [axes.get(i, size) for i, size in enumerate(t.shape)]
                      for name, t, axes in zip(graph.input_names, graph.inputs, graph.axes)}
            reports.append(GraphReport(graph.name, paths[graph.name], inputs, graph.output_name, error, shapes,
                                       len(data), time.perf_counter() - started))
        for scratch_file, target in staged:  # every graph passed: now the real names
            write_bytes(target, scratch_file.read_bytes())
    return reports


def read_metadata(path: str | Path) -> dict[str, str]:
    """The genvision.* metadata of an exported file (without loading its weights)."""
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 (protobuf raises DecodeError, onnx its own: either way not an ONNX file)
        raise ExportError(f"{path} is not an ONNX model file") from None
    return {entry.key: entry.value for entry in proto.metadata_props if entry.key.startswith("genvision.")}


__all__ = ["FP32_TOLERANCE", "ExportError", "GraphReport", "check_parity", "export_onnx", "output_paths",
           "read_metadata", "run_onnx", "session_for"]
