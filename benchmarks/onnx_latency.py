"""ONNX Runtime against PyTorch eager: the latency of every exportable kind at its default size.

    python benchmarks/onnx_latency.py [--repeats 10]
    python benchmarks/onnx_latency.py --model zoo:lama-photos --model benchmarks/results/runs/style-fast/adain


Each network is built at its registry default config (random weights: latency does not depend on
them), exported by genvision.export (parity-checked on the spot, max abs error recorded), and both
runtimes run the same graph module on the same input, a realistic one per kind (batch 32 at the model's
size for fixed-size models; one 256x256 image, or a 128x128 LR tile for super-resolution, for fully
convolutional ones). Median of ``--repeats`` runs after two warm-ups, same process, same threads.
``--model`` measures trained models instead (zoo:NAME or a model/run directory, 256x256 images), for the
kinds whose default config cannot stand alone (AdaIN needs its VGG encoder's weights) or whose random
weights are not what users export (LaMa).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import record

import genvision.models  # noqa: F401 (registers the networks)
from genvision.apps.style.fast import load_style_model
from genvision.checkpoints import load_pretrained
from genvision.errors import GenvisionError
from genvision.export import export_onnx
from genvision.export.graphs import IMAGE_AXES, graphs_for
from genvision.export.quantize import median_latency, onnx_runner
from genvision.registry import create_model

# model name, config overrides, the image side for fully convolutional graphs (None: the model's own inputs)
CASES = [
    ("espcn", {"scale": 3}, 128), ("edsr", {"scale": 3}, 128), ("dncnn", {}, 256), ("cnn", {}, None),
    ("resnet", {}, None), ("vit", {}, None), ("dcgan", {}, None), ("vae", {}, None), ("dit", {}, None),
    ("johnson", {}, 256), ("adain", {}, 256), ("cyclegan", {}, 256), ("embednet", {}, 256), ("lama", {}, 256),
]
BATCH = 32


def realistic(graph, side: int | None) -> tuple[torch.Tensor, ...]:
    """The graph's example inputs grown to batch 32 (fixed-size models) or one side x side image."""
    torch.manual_seed(0)
    out = []
    for tensor, axes in zip(graph.inputs, graph.axes, strict=True):
        shape = list(tensor.shape)
        if side is not None and axes == IMAGE_AXES:
            shape = [1, shape[1], side, side]
        elif side is not None:
            shape = [1, *shape[1:2], side, side] if tensor.ndim == 4 else [1, *shape[1:]]
        elif 0 in axes:
            shape[0] = BATCH
        if tensor.is_floating_point():
            out.append(torch.rand(shape) if tensor.ndim == 4 else torch.randn(shape))
        else:
            out.append(torch.randint(0, max(int(tensor.max()) + 1, 1), shape))
    return tuple(out)


def load_trained(spec: str):
    """A trained model; style models through the style app, which attaches AdaIN's VGG-19 encoder."""
    model = load_pretrained(spec)
    return load_style_model(spec) if model.model_kind == "style" else model


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--only", help="comma-separated model names")
    parser.add_argument("--model", action="append", help="a trained model (zoo:NAME or a directory) instead")
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    chosen = [c for c in CASES if not args.only or c[0] in args.only.split(",")]
    if args.model:
        chosen = [(spec, {}, 256) for spec in args.model]
    with tempfile.TemporaryDirectory() as scratch:
        for spec, overrides, side in chosen:
            model = (load_trained(spec) if args.model else create_model(spec, overrides)).eval()
            name = f"{model.registry_name} ({spec})" if args.model else spec
            started = time.perf_counter()
            try:
                reports = export_onnx(model, Path(scratch) / f"{model.registry_name}.onnx")
            except GenvisionError as exc:  # e.g. AdaIN's default config needs its VGG encoder attached
                print(f"{name}: not measured ({exc})", flush=True)
                continue
            export_s = time.perf_counter() - started
            for graph, report in zip(graphs_for(model), reports, strict=True):
                inputs = realistic(graph, side)
                with torch.inference_mode():
                    eager = median_latency(lambda g=graph, x=inputs: g.module(*x), args.repeats)
                ort = median_latency(onnx_runner(report.path, inputs, threads), args.repeats)
                shapes = [list(t.shape) for t in inputs]
                print(f"{name}/{graph.name} {shapes}: eager {1000 * eager:.1f} ms, onnxruntime {1000 * ort:.1f} ms, "
                      f"{eager / ort:.2f}x; parity {report.max_abs_error:.2g}", flush=True)
                record("onnx-latency", f"{name} {graph.name}",
                       recipe=f"{'trained weights' if args.model else 'default config'}, input {shapes}",
                       wall_s=export_s, throughput={"eager_ms": round(1000 * eager, 2), "ort_ms": round(1000 * ort, 2),
                                                    "ort_speedup": round(eager / ort, 2)},
                       quality={"max_abs_error": float(f"{report.max_abs_error:.3g}"),
                                "onnx_mb": round(report.bytes / 2**20, 2)},
                       notes=f"{threads} threads")


if __name__ == "__main__":
    main()
