"""``genvision export``: a trained model to ONNX files that run without genvision or PyTorch; ``genvision
quantize``: a smaller one, with the report of what it cost (:mod:`.quantize`)."""

from __future__ import annotations

from pathlib import Path

import click

from ...checkpoints import CONFIG_FILE, WEIGHTS_FILE, load_with_card, resolve_model_dir
from ...cli_params import Count, overwrite_option
from ...errors import ConfigError
from ...export import export_onnx, output_paths
from ...export.program_export import export_program, program_paths
from ...export.quantize import INT8_METHODS, METHODS
from ...outputs import OutputError, OutputExistsError, OutputGuard, sidecar_of, write_json
from .prune import PruneJob, run_prune
from .quantize import QuantizeJob, run_quantize


@click.command()
@click.option("--model", "model_dir", required=True, help="Model or run directory (its EMA weights unless --no-ema).")
@click.option("--format", "fmt", type=click.Choice(["onnx", "exported-program"]), default="onnx", show_default=True,
              help="onnx (runs in onnxruntime; what --backend onnxruntime takes) or exported-program (torch.export's "
                   ".pt2, for AOTInductor / ExecuTorch).")
@click.option("-o", "--output", required=True, type=click.Path(),
              help="The .onnx (or .pt2) file; models with several graphs (a VAE's encoder and decoder, CycleGAN's two "
                   "directions) write STEM.GRAPH.onnx beside it.")
@click.option("--no-ema", is_flag=True, help="Export the raw weights instead of the EMA weights.")
@overwrite_option
def export(model_dir, fmt, output, no_ema, overwrite):
    """Export a model's inference path to ONNX (or a torch.export program), each graph checked against PyTorch.

    Batch is a free axis of every graph, and so are height and width for fully convolutional models
    (super-resolution, denoising, style, translation, embedding, inpainting). The check runs the file (in
    onnxruntime, or reloaded by torch.export.load) on inputs of other sizes than the traced ones and
    refuses a graph that differs from PyTorch by more than 1e-4; an ONNX file carries the model card in
    its metadata (genvision.*), and OUTPUT.json records the report.
    """
    model, card = load_with_card(model_dir, use_ema=not no_ema)
    paths = output_paths(model, output) if fmt == "onnx" else program_paths(model, output)
    guard = OutputGuard(overwrite=overwrite).add_model(model_dir)
    for path in paths.values():
        guard.claim(path)
    report_path = guard.claim(sidecar_of(Path(output)))
    reports = export_onnx(model, output) if fmt == "onnx" else export_program(model, output)
    write_json(report_path, {"model": card["model"], "kind": card["kind"], "source": str(model_dir), "format": fmt,
                             "ema": not no_ema, "graphs": [r.to_json() for r in reports]})
    for report in reports:
        click.echo(f"wrote {report.path} ({report.graph}: {report.bytes / 2**20:.2f} MiB, max abs error "
                   f"{report.max_abs_error:.2g} against PyTorch at {report.checked_shapes})")


def _claim_model_folder(guard: OutputGuard, output: Path, model_dir: str, overwrite: bool) -> None:
    """The half-width model directory replaces ``output`` as a whole, so it may be neither the source model
    (nor hold it) nor any folder but a model directory, and an existing one only with --overwrite."""
    guard.claim_folder(output)
    source = resolve_model_dir(model_dir).resolve()
    target = output.resolve()
    if target == source or target in source.parents:
        raise OutputError(f"refusing to write {output}: it holds the source model; choose another folder")
    if output.exists() and any(output.iterdir()):
        if not ((output / CONFIG_FILE).is_file() and (output / WEIGHTS_FILE).is_file()):
            raise OutputError(f"refusing to replace {output}: it is not a model directory; choose a new folder")
        if not overwrite:
            raise OutputExistsError(f"{output} already exists; pass --overwrite to replace it")


@click.command()
@click.option("--model", "model_dir", required=True, help="Model or run directory (super-resolution, classifier or GAN).")
@click.option("--method", type=click.Choice(METHODS), default="static", show_default=True,
              help="static: int8 with calibration (conv nets); qat: the same, for a model fine-tuned with "
                   "objective.qat=true (quantization-aware training); dynamic: int8 weights, activation ranges per input "
                   "(linear-heavy nets); fp16 / bf16: half-width weight storage; int8-weights: int8 weight "
                   "storage (per output channel), float compute.")
@click.option("--calibrate", help="static / qat: data whose inputs set the activation ranges (SR: folder:HR_IMAGES or "
                                  "sr:Set14; classifiers: a dataset name; GANs take their own seeded latents) "
                                  "[default: the model's training data].")
@click.option("--calibration-images", type=Count(1, 100_000), default=64, show_default=True,
              help="How many calibration images (GANs: latents).")
@click.option("--evaluate", "evaluation_data",
              help="Data for the quality comparison [default: sr:Set5 for SR, the test split for classifiers].")
@click.option("--samples", type=Count(100, 1_000_000), default=10_000, show_default=True,
              help="Generators: samples the domain FID before and after is computed on.")
@click.option("--data-root", help="Where named datasets live (default $GENVISION_DATA).")
@click.option("--reduce-range/--full-range", default=True, show_default=True,
              help="int8: 7-bit weights, which avoid the saturating uint8 x int8 multiply of x86 CPUs without VNNI.")
@click.option("--keep-ends/--quantize-ends", default=None,
              help="static: leave the first and last convolution in float [default: for models that output images].")
@click.option("-o", "--output", required=True, type=click.Path(),
              help="int8: the .onnx file; fp16 / bf16 / int8-weights: a model directory. OUTPUT.json gets the "
                   "report.")
@overwrite_option
def quantize(model_dir, method, calibrate, calibration_images, evaluation_data, samples, data_root, reduce_range,
             keep_ends, output, overwrite):
    """Quantize a model and report size, latency and quality against the original.

    int8 files run in onnxruntime (genvision upscale / classify --model OUT.onnx); half-width model
    directories load wherever a model directory does.
    """
    output = Path(output)
    int8 = method in INT8_METHODS
    if int8 and output.suffix.lower() != ".onnx":
        raise ConfigError(f"--method {method} writes an ONNX file: give -o NAME.onnx (got {output})")
    guard = OutputGuard(overwrite=overwrite).add_model(model_dir)
    if int8:
        guard.claim(output)
    else:
        _claim_model_folder(guard, output, model_dir, overwrite)
    report_path = guard.claim(sidecar_of(output))
    report = run_quantize(QuantizeJob(model_dir, method, output, calibrate, calibration_images, evaluation_data,
                                      data_root, samples=samples, reduce_range=reduce_range, keep_ends=keep_ends))
    write_json(report_path, report)
    quality = report["quality"]
    metric = quality["metric"]
    line = (f"wrote {output}: {report['size_ratio']:.2f}x smaller; {metric} {quality['original'][metric]:.4f} -> "
            f"{quality['quantized'][metric]:.4f} ({quality['delta']:+.4f})")
    if "quality_before_qat" in report:
        line += f" (the float model before QAT: {report['quality_before_qat'][metric]:.4f})"
    if "speedup_vs_eager" in report:
        line += (f"; {report['speedup_vs_eager']:.2f}x PyTorch eager, {report['speedup_vs_onnxruntime_fp32']:.2f}x "
                 f"onnxruntime fp32 on {report['latency_input']}")
    click.echo(line)
    click.echo(f"report: {report_path}")


@click.command()
@click.option("--model", "model_dir", required=True, help="Model or run directory (espcn or edsr today).")
@click.option("--amount", type=click.FloatRange(0.0, 1.0, max_open=True), default=0.5, show_default=True,
              help="Fraction of the channels of every group to remove (those whose filters have the smallest L1 norm).")
@click.option("--multiple-of", type=Count(1, 1024), default=1, show_default=True,
              help="Round each kept width to a multiple of this (8 suits CPU SIMD kernels).")
@click.option("--evaluate", "evaluation_data",
              help="Data to score the original and the pruned model on (e.g. sr:Set5); none by default.")
@click.option("--data-root", help="Where named datasets live (default $GENVISION_DATA).")
@click.option("-o", "--output", required=True, type=click.Path(), help="The pruned model directory.")
@overwrite_option
def prune(model_dir, amount, multiple_of, evaluation_data, data_root, output, overwrite):
    """Remove channels from a model (structured pruning) and save the smaller model of the same arch.

    Fine-tune it afterwards, best by distillation from the original:
    genvision train sr-distill --data folder:HR_IMAGES init=OUTPUT teacher=MODEL objective.lr=2e-4
    """
    output = Path(output)
    guard = OutputGuard(overwrite=overwrite).add_model(model_dir)
    _claim_model_folder(guard, output, model_dir, overwrite)
    report_path = guard.claim(sidecar_of(output))
    report = run_prune(PruneJob(model_dir, output, amount, multiple_of, evaluation_data, data_root))
    write_json(report_path, report)
    widths = ", ".join(f"{field} {before}->{after}" for field, (before, after) in report["widths"].items())
    line = (f"wrote {output}: {widths}; {report['params']['original']:,} -> {report['params']['pruned']:,} "
            f"parameters ({report['size_ratio']:.2f}x smaller), {report['speedup']:.2f}x faster eager on "
            f"{report['latency_input']}")
    if "quality" in report:
        quality = report["quality"]
        line += (f"; {quality['metric']} {quality['original']:.4f} -> {quality['pruned']:.4f} "
                 f"({quality['delta']:+.4f}) before fine-tuning")
    click.echo(line)
    click.echo(f"report: {report_path}")
