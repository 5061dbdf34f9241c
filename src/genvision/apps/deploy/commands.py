"""``genvision export``: a trained model to ONNX files that run without genvision or PyTorch."""

from __future__ import annotations

from pathlib import Path

import click

from ...checkpoints import load_with_card
from ...cli_params import overwrite_option
from ...export import export_onnx, output_paths
from ...outputs import OutputGuard, sidecar_of, write_json


@click.command()
@click.option("--model", "model_dir", required=True, help="Model or run directory (its EMA weights unless --no-ema).")
@click.option("--format", "fmt", type=click.Choice(["onnx"]), default="onnx", show_default=True,
              help="Export format.")
@click.option("-o", "--output", required=True, type=click.Path(),
              help="The .onnx file; models with several graphs (a VAE's encoder and decoder, CycleGAN's two "
                   "directions) write STEM.GRAPH.onnx beside it.")
@click.option("--no-ema", is_flag=True, help="Export the raw weights instead of the EMA weights.")
@overwrite_option
def export(model_dir, fmt, output, no_ema, overwrite):
    """Export a model's inference path to ONNX, each graph checked against PyTorch.

    Batch is a free axis of every graph, and so are height and width for fully convolutional models
    (super-resolution, denoising, style, translation, embedding, inpainting). The check runs the file in
    onnxruntime on inputs of other sizes than the traced ones and refuses a graph that differs from
    PyTorch by more than 1e-4; the file carries the model card in its metadata (genvision.*), and
    OUTPUT.json records the report.
    """
    model, card = load_with_card(model_dir, use_ema=not no_ema)
    paths = output_paths(model, output)
    guard = OutputGuard(overwrite=overwrite).add_model(model_dir)
    for path in paths.values():
        guard.claim(path)
    report_path = guard.claim(sidecar_of(Path(output)))
    reports = export_onnx(model, output)
    write_json(report_path, {"model": card["model"], "kind": card["kind"], "source": str(model_dir), "format": fmt,
                             "ema": not no_ema, "graphs": [r.to_json() for r in reports]})
    for report in reports:
        click.echo(f"wrote {report.path} ({report.graph}: {report.bytes / 2**20:.2f} MiB, max abs error "
                   f"{report.max_abs_error:.2g} against PyTorch at {report.checked_shapes})")
