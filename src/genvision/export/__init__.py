"""Deployable forms of genvision's models: ONNX graphs checked against PyTorch on the spot (and later
int8 and pruned variants), shared by the command that writes them (``genvision export``) and the
commands that can run them (``--backend onnxruntime``).

A shared service below the applications: :mod:`.graphs` says what each kind of model exports
(dispatching on the protocols of ``genvision.models.protocols``), :mod:`.onnx_export` writes and checks
the files.
"""

from .graphs import Graph, graphs_for
from .onnx_export import FP32_TOLERANCE, ExportError, GraphReport, export_onnx, output_paths, read_metadata

__all__ = ["FP32_TOLERANCE", "ExportError", "Graph", "GraphReport", "export_onnx", "graphs_for", "output_paths",
           "read_metadata"]
