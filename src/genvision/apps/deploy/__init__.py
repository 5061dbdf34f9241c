"""Deployment: ``genvision export`` writes a model's inference path as ONNX, checked against PyTorch on
the spot (the graphs and the check live a layer down, in :mod:`genvision.export`, so the commands that
can run an exported file share them).

- :mod:`.commands`: ``genvision export``, ``genvision quantize`` and ``genvision prune``;
- :mod:`.quantize`: quantizing and the report (size, latency, quality in the kind's own metric);
- :mod:`.prune`: structured channel pruning into a smaller model of the same arch, with the same report.
"""

from .. import App, CommandRef

APP = App(
    name="deploy",
    summary="deployment: export any model's inference path to ONNX, checked against PyTorch",
    commands=(CommandRef("export", "genvision.apps.deploy.commands:export",
                         "Export a model to ONNX (each graph checked against PyTorch; config in its metadata)."),
              CommandRef("quantize", "genvision.apps.deploy.commands:quantize",
                         "Quantize a model (int8 ONNX or fp16/bf16 weights) with a size/speed/quality report."),
              CommandRef("prune", "genvision.apps.deploy.commands:prune",
                         "Remove channels (structured pruning) into a smaller model of the same arch.")),
)
