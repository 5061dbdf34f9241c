"""The commands that span applications: ``train`` (any family), ``evaluate`` (any model),
``models`` and ``datasets``. The CLI loads this module only when one of them runs."""

from __future__ import annotations

import os
import signal
import sys

import click

from . import apps
from .cli_params import (
    CLASS,
    MAX_COUNT,
    SCALE,
    SEED,
    Count,
    FiniteFloat,
    overwrite_option,
)
from .data import list_datasets
from .evaluation import EvaluationRequest
from .registry import list_models
from .training.launch import run_torchrun, world_size_from_environment
from .training.trainer import describe
from .workflows.evaluate import evaluate as run_evaluation
from .workflows.train import train as run_training


def _data_overrides(data: str | None, data_root: str | None, device: str | None) -> list[str]:
    overrides = []
    if data is not None:
        overrides.append(f"data.name={data}")
    if data_root is not None:
        overrides.append(f"data.root={data_root}")
    if device is not None:
        overrides.append(f"train.device={device}")
    return overrides


def _without_nproc(args: list[str]) -> list[str]:
    """The command line minus ``--nproc N`` (torchrun's own parser would take it for --nproc-per-node)."""
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            kept.append(arg)
    return kept


@click.command(context_settings={"ignore_unknown_options": False})
@click.argument("family")
@click.option("--data", help="Dataset: mnist, fashion-mnist, cifar10, mnist-mini or folder:PATH.")
@click.option("--data-root", type=click.Path(), help="Where dataset files live (default $GENVISION_DATA).")
@click.option("--data-a", help="cyclegan: domain A, a dataset or folder:PATH (same as data_a.name=).")
@click.option("--data-b", help="cyclegan: domain B, a dataset or folder:PATH (same as data_b.name=).")
@click.option("--style", "style_image", type=click.Path(),
              help="style (Johnson): the painting this network learns (same as style=).")
@click.option("--style-data", help="adain: the paintings, folder:PATH (same as style_data=).")
@click.option("--hold-out", help="adain: paintings left out for evaluation, names or stems, comma-separated "
              "(same as hold_out=).")
@click.option("--config", "config_file", type=click.Path(), help="YAML recipe; key=value arguments override it.")
@click.option("--resume", type=click.Path(), help="Continue the run in this directory from its latest checkpoint.")
@click.option("--device", help="auto (default), cpu, cuda, cuda:N or mps.")
@click.option("--arch", help="Architecture within the family, e.g. cnn|resnet|vit for classifier, espcn|edsr for sr "
              "(same as arch=).")
@click.option("--scale", type=int, help="Super-resolution: upscaling factor 2, 3 or 4 (same as scale=).")
@click.option("--init", "init_dir", type=click.Path(),
              help="srgan: the trained sr run or model to refine; maskgit: the trained VQ-VAE (run, model or "
              "zoo:NAME) whose tokens it models; dit-distill: the DiT teacher (same as init=).")
@click.option("--overwrite", is_flag=True, help="Start over: replace an existing run directory of the same name.")
@click.option("--nproc", type=click.IntRange(1, 1024), help="Run as N local processes under torchrun (DDP-style data "
              "parallel; gloo on CPU, NCCL on GPUs); train.batch_size is per process.")
@click.argument("overrides", nargs=-1)
def train(family, data, data_root, data_a, data_b, style_image, style_data, hold_out, config_file, resume, device,
          arch, scale, init_dir, overwrite, nproc, overrides):
    """Train a model FAMILY (gan, classifier, vae, cvae, vqvae, dit, sr, srgan, ...) with key=value overrides.

    Ctrl-C or SIGTERM writes a checkpoint and exits with status 130 or 143, so a scheduler sees the
    interruption; --resume RUN_DIR continues it exactly. Under torchrun (or with --nproc N) every process
    trains on its shard of each global batch and rank 0 writes the run.
    """
    world = world_size_from_environment()
    if nproc is not None and world == 1 and nproc > 1:
        # This process becomes torchrun's agent: signals reach it, and through it every rank.
        raise click.exceptions.Exit(run_torchrun(nproc, _without_nproc(sys.argv[1:])))
    if nproc is not None and world > 1 and nproc != world:
        raise click.UsageError(f"--nproc {nproc} contradicts the {world} processes torchrun started")
    # The flags are spellings of recipe keys, so a family without that key refuses them the same way.
    flags = {"arch": arch, "scale": scale, "init": init_dir, "data_a.name": data_a, "data_b.name": data_b,
             "style": style_image, "style_data": style_data, "hold_out": hold_out}
    extra = [f"{key}={value}" for key, value in flags.items() if value is not None]
    result = run_training(family, config_file=config_file, resume=resume, overwrite=overwrite,
                          overrides=_data_overrides(data, data_root, device) + extra + list(overrides))
    if os.environ.get("RANK", "0") == "0":
        click.echo(describe(result))
    if result.signal is not None:
        raise click.exceptions.Exit(128 + signal.Signals[result.signal].value)


# Flags of model evaluation that mean nothing for an index (refused rather than ignored with --index).
_MODEL_ONLY = {"data": "--data", "num": "-n", "features": "--features", "fid_weights": "--fid-weights", "seed": "--seed",
               "class_label": "--class", "scale": "--scale", "self_ensemble": "--self-ensemble", "sigma": "--sigma"}
RETRIEVAL_EVALUATE = "genvision.apps.retrieval.evaluate"


def _given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT)


@click.command()
@click.option("--model", "model_dir", help="Model or run directory (required unless --index).")
@click.option("--index", "index_path", type=click.Path(),
              help="Retrieval: evaluate this image index (NAME.gvindex) with --queries instead of a model.")
@click.option("--queries", help="Retrieval: labelled query images, mnist:test (a dataset[:split]) or folder:PATH "
              "with class sub-folders; relevant = same label as the index item.")
@click.option("-k", "k", default=10, show_default=True, type=Count(1, 10_000),
              help="Retrieval: recall@k and precision@k at this k (mAP@R and precision@1 are always given).")
@click.option("--data", help="Dataset to compare with (default: the one the model was trained on).")
@click.option("--data-root", type=click.Path(), help="Where dataset files live.")
@click.option("-n", "num", default=10_000, show_default=True, type=Count(0, MAX_COUNT),
              help="Generated samples (generators; 0 skips sample metrics for VAEs).")
@click.option("--features", help="Feature space: domain (default), inception (standard FID: the inception-fid "
              "backbone of `genvision weights get inception-fid`), or a classifier model directory.")
@click.option("--fid-weights", type=click.Path(), help="Use this pytorch-fid pt_inception-2015-12-05-6726825d.pth "
              "for --features inception instead of the inception-fid backbone.")
@click.option("--batch-size", default=500, show_default=True, type=Count(1, 10_000))
@click.option("--seed", default=0, show_default=True, type=SEED)
@click.option("--class", "class_label", type=CLASS, help="Evaluate one class of a conditional generator.")
@click.option("--scale", type=SCALE, help="Super-resolution: 2, 3 or 4 (checked against the model; needed for bicubic).")
@click.option("--self-ensemble", is_flag=True, help="Super-resolution: average over the 8 flips/transposes.")
@click.option("--sigma", type=FiniteFloat(0.0, 255.0, min_open=True),
              help="Denoising: Gaussian noise std in 8-bit levels, (0, 255] (default 25); --seed seeds the noise.")
@click.option("--device", default="auto", show_default=True)
@click.option("-o", "--output", default="evaluation.json", show_default=True, type=click.Path(),
              help="JSON results (a confusion-matrix PNG is written beside it for classifiers).")
@overwrite_option
@click.pass_context
def evaluate(ctx, model_dir, index_path, queries, k, data, data_root, num, features, fid_weights, batch_size, seed,
             class_label, scale, self_ensemble, sigma, device, output, overwrite):
    """Measure a model offline: FID/KID/precision-recall for generators, accuracy for classifiers,
    likelihoods for VAEs, PSNR/SSIM for super-resolution (the Set5/Set14 protocol) and denoising
    (Gaussian noise of --sigma); or an image index (--index with --queries): mAP@R, precision@1,
    recall@k."""
    if index_path is not None:
        if model_dir is not None:
            raise click.UsageError("give --model or --index, not both", ctx)
        if queries is None:
            raise click.UsageError("--index needs --queries (labelled images to search with)", ctx)
        refused = [flag for name, flag in _MODEL_ONLY.items() if _given(ctx, name)]
        if refused:
            raise click.UsageError(f"{', '.join(refused)}: for model evaluation only, not with --index", ctx)
        result = apps.resolve(f"{RETRIEVAL_EVALUATE}:evaluate_index")(
            index_path, queries, k=k, data_root=data_root, batch_size=batch_size, device=device, output=output,
            overwrite=overwrite, progress=True)
        click.echo(apps.resolve(f"{RETRIEVAL_EVALUATE}:describe")(result))
        return
    if model_dir is None:
        raise click.UsageError("Missing option '--model' (or --index with --queries).", ctx)
    if queries is not None or _given(ctx, "k"):
        raise click.UsageError("--queries and -k apply to --index evaluation", ctx)
    request = EvaluationRequest(model=model_dir, data=data, data_root=data_root, n=num, features=features,
                                fid_weights=fid_weights, batch_size=batch_size, seed=seed, class_label=class_label,
                                scale=scale, self_ensemble=self_ensemble, sigma=sigma, device=device, output=output,
                                overwrite=overwrite)
    click.echo(run_evaluation(request).table())


@click.command()
def models():
    """List the registered model architectures."""
    for entry in list_models():
        click.echo(f"{entry.name:<16} {entry.kind:<12} {entry.description}")


@click.command()
def datasets():
    """List the named datasets."""
    for info in list_datasets():
        click.echo(f"{info.name:<16} {info.channels}x{info.image_size}px  {info.num_classes or '-':>3} classes  "
                   f"{info.description}")
