"""Deployable forms of genvision's models: ONNX graphs and torch.export programs checked against PyTorch
on the spot, and int8 / half-width variants, shared by the commands that write them (``genvision export``,
``genvision quantize``) and the commands that can run them (``--backend onnxruntime``).

A shared service below the applications: :mod:`.graphs` says what each kind of model exports
(dispatching on the protocols of ``genvision.models.protocols``), :mod:`.onnx_export` and
:mod:`.program_export` write and check the files, :mod:`.quantize` makes them smaller.
"""

from .graphs import Graph, graphs_for
from .onnx_export import FP32_TOLERANCE, ExportError, GraphReport, export_onnx, output_paths, read_metadata

__all__ = ["FP32_TOLERANCE", "ExportError", "Graph", "GraphReport", "export_onnx", "graphs_for", "output_paths",
           "read_metadata"]
