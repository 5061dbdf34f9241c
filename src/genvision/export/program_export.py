"""torch.export of a registered model: each graph as an ExportedProgram file (``.pt2``), checked on the spot.

The same graphs and free axes as the ONNX export (:mod:`.graphs`), saved by ``torch.export.save`` for
runtimes that take PyTorch's own exported format (AOTInductor, ExecuTorch, ``torch.export.load`` in
another process). The parity check loads the written file back and compares it with the eager module on
inputs of other sizes than the traced ones, like the ONNX check. genvision itself never loads a ``.pt2``
a user gives it: the format's weights go through Python's pickle.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch import nn

from ..atomic import write_bytes
from ..errors import ConfigError
from .graphs import Graph, graphs_for
from .onnx_export import FP32_TOLERANCE, ExportError, GraphReport, _dynamic_shapes, _reason

SUFFIX = ".pt2"

__all__ = ["SUFFIX", "export_program", "program_paths"]


def program_paths(model: nn.Module, output: str | Path) -> dict[str, Path]:
    """graph name -> file, as :func:`.onnx_export.output_paths` names them, with the ``.pt2`` suffix."""
    output = Path(output)
    if output.suffix.lower() != SUFFIX:
        raise ConfigError(f"the ExportedProgram output must end in {SUFFIX}, got {output.name}")
    names = [graph.name for graph in graphs_for(model)]
    if len(names) == 1:
        return {names[0]: output}
    return {name: output.with_name(f"{output.stem}.{name}{SUFFIX}") for name in names}


def _program(graph: Graph) -> torch.export.ExportedProgram:
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            shapes = tuple(None if t is None else axes for t, axes in zip(graph.inputs, _dynamic_shapes(graph)[0]))
            return torch.export.export(graph.module, graph.inputs, dynamic_shapes=(shapes,))
    except Exception as exc:  # noqa: BLE001 (torch.export raises many types; the user needs the line that says why)
        raise ExportError(f"graph {graph.name}: torch.export failed: {_reason(exc)}") from None


def export_program(model: nn.Module, output: str | Path, *, tolerance: float = FP32_TOLERANCE) -> list[GraphReport]:
    """Export every graph of ``model`` (eval, CPU, fp32) as ExportedProgram files, each reloaded from disk
    and checked against the eager module; over ``tolerance`` nothing of this export is written."""
    model = model.eval().to("cpu").float()
    paths = program_paths(model, output)
    reports, staged = [], []
    with tempfile.TemporaryDirectory(prefix="gv-export-") as scratch:
        for graph in graphs_for(model):
            started = time.perf_counter()
            scratch_file = Path(scratch) / f"{graph.name}{SUFFIX}"
            torch.export.save(_program(graph), str(scratch_file))
            reloaded = torch.export.load(str(scratch_file)).module()  # our own file, just written
            with torch.no_grad():
                want = graph.module(*graph.probe)
                try:
                    got = reloaded(*graph.probe)
                except Exception as exc:  # noqa: BLE001 (a guard the trace added refuses the other sizes)
                    raise ExportError(f"graph {graph.name}: the exported program refuses inputs of other sizes "
                                      f"({_reason(exc)})") from None
            if got.shape != want.shape:
                raise ExportError(f"graph {graph.name}: the exported program gives shape {list(got.shape)}, "
                                  f"PyTorch {list(want.shape)}")
            error = float((got.double() - want.double()).abs().max()) if got.numel() else 0.0
            if not error <= tolerance:
                raise ExportError(f"graph {graph.name}: the exported program differs from PyTorch by {error:.3g} "
                                  f"(max abs), over the tolerance {tolerance:g}; nothing was written")
            staged.append((scratch_file, paths[graph.name]))
            inputs = {name: [axes.get(i, size) for i, size in enumerate(t.shape)]
                      for name, t, axes in zip(graph.input_names, graph.inputs, graph.axes)}
            shapes = {name: list(t.shape) for name, t in zip(graph.input_names, graph.probe)}
            reports.append(GraphReport(graph.name, paths[graph.name], inputs, graph.output_name, error, shapes,
                                       scratch_file.stat().st_size, time.perf_counter() - started))
        for scratch_file, target in staged:
            write_bytes(target, scratch_file.read_bytes())
    return reports
