"""The ``genvision`` command line: parses, calls tasks/ or training/, prints. No model logic.

Every expected failure (bad arguments, missing files, wrong model kind) is one line on
stderr and a non-zero exit; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import os
import signal
import sys
import warnings
from pathlib import Path

import click

from . import __version__
from .commands.params import CLASS, MAX_COUNT, NROW, SCALE, SEED, Count, FiniteFloat, overwrite_option
from .errors import GenvisionError, reason

EXIT_USAGE, EXIT_ERROR, EXIT_INTERRUPTED = 2, 1, 130


def _debug_requested() -> bool:
    return "--debug" in sys.argv or os.environ.get("GENVISION_DEBUG") == "1"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="genvision")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
def cli(debug: bool) -> None:
    """Train and use image generation, editing and recognition models."""


def _data_overrides(data: str | None, data_root: str | None, device: str | None) -> list[str]:
    overrides = []
    if data is not None:
        overrides.append(f"data.name={data}")
    if data_root is not None:
        overrides.append(f"data.root={data_root}")
    if device is not None:
        overrides.append(f"train.device={device}")
    return overrides


@cli.command(context_settings={"ignore_unknown_options": False})
@click.argument("family")
@click.option("--data", help="Dataset: mnist, fashion-mnist, cifar10, mnist-mini or folder:PATH.")
@click.option("--data-root", type=click.Path(), help="Where dataset files live (default $GENVISION_DATA).")
@click.option("--config", "config_file", type=click.Path(), help="YAML recipe; key=value arguments override it.")
@click.option("--resume", type=click.Path(), help="Continue the run in this directory from its latest checkpoint.")
@click.option("--device", help="auto (default), cpu, cuda, cuda:N or mps.")
@click.option("--arch", help="Architecture within the family, e.g. cnn|resnet|vit for classifier, espcn|edsr for sr "
              "(same as arch=).")
@click.option("--scale", type=int, help="Super-resolution: upscaling factor 2, 3 or 4 (same as scale=).")
@click.option("--init", "init_dir", type=click.Path(),
              help="srgan: the trained sr run or model to refine (same as init=).")
@click.option("--overwrite", is_flag=True, help="Start over: replace an existing run directory of the same name.")
@click.argument("overrides", nargs=-1)
def train(family, data, data_root, config_file, resume, device, arch, scale, init_dir, overwrite, overrides):
    """Train a model FAMILY (gan, classifier, vae, cvae, vqvae, dit, sr, srgan, ...) with key=value overrides.

    Ctrl-C or SIGTERM writes a checkpoint and exits with status 130 or 143, so a scheduler sees the
    interruption; --resume RUN_DIR continues it exactly.
    """
    from .training.run import train as run_training
    from .training.trainer import describe

    # The flags are spellings of recipe keys, so a family without that key refuses them the same way.
    flags = {"arch": arch, "scale": scale, "init": init_dir}
    extra = [f"{key}={value}" for key, value in flags.items() if value is not None]
    result = run_training(family, config_file=config_file, resume=resume, overwrite=overwrite,
                          overrides=_data_overrides(data, data_root, device) + extra + list(overrides))
    click.echo(describe(result))
    if result.signal is not None:
        raise click.exceptions.Exit(128 + signal.Signals[result.signal].value)


def _load_generator(model_dir: str, use_ema: bool):
    from .checkpoints import load_pretrained
    from .tasks.generate import GENERATOR_KINDS

    return load_pretrained(model_dir, kind=GENERATOR_KINDS, use_ema=use_ema)


@cli.command()
@click.option("--model", "model_dir", required=True, help="Model or run directory.")
@click.option("-n", "num", default=64, show_default=True, type=Count(1, MAX_COUNT),
              help="Number of images (generated in batches: any number streams to a folder).")
@click.option("--seed", default=0, show_default=True, type=SEED, help="0..2**63-1; image i is the same for any -n.")
@click.option("--class", "class_label", type=CLASS, help="Class to generate (conditional models).")
@click.option("-o", "--output", default="samples.png", show_default=True, type=click.Path(),
              help="Grid PNG; a directory name (ending in /) writes one PNG per image.")
@click.option("--nrow", type=NROW, help="Images per grid row.")
@click.option("--batch-size", default=256, show_default=True, type=Count(1, 10_000),
              help="Images per forward pass: memory, not results (each image has its own seeded latent).")
@click.option("--no-ema", is_flag=True, help="Use the raw weights instead of the EMA weights.")
@click.option("--steps", type=Count(1, 10_000), help="Sampling steps (diffusion models).")
@click.option("--cfg", type=FiniteFloat(0.0, 100.0),
              help="Classifier-free guidance scale 0..100, 1 = conditional (diffusion models).")
@click.option("--sampler", help="ODE sampler: euler, heun or midpoint (diffusion models).")
@click.option("--temperature", type=FiniteFloat(0.0, 100.0, min_open=True),
              help="Scale of the prior latents, > 0; < 1 for cleaner samples (VAEs).")
@overwrite_option
def generate(model_dir, num, seed, class_label, output, nrow, batch_size, no_ema, steps, cfg, sampler, temperature,
             overwrite):
    """Sample images from a trained generator."""
    import torch

    from . import io as gio
    from .outputs import NumberedNames, OutputGuard, run_job
    from .tasks.generate import check_grid, image_shape, iter_generate

    model = _load_generator(model_dir, use_ema=not no_ema)
    options = {"steps": steps, "cfg": cfg, "sampler": sampler, "temperature": temperature}
    sampling = {k: v for k, v in options.items() if v is not None}
    meta = {"model": str(model_dir), "seed": seed, "n": num, "class": class_label, **sampling}
    guard = OutputGuard(overwrite=overwrite).add_model(model_dir)
    # Only options given on the command line are passed; tasks.generate refuses ones the model does not take.
    batches = iter_generate(model, num, seed=seed, class_label=class_label, batch_size=batch_size, **sampling)
    if output.endswith(os.sep) or output.endswith("/"):
        folder = guard.claim_numbered(output, NumberedNames(f"{seed}_", num, ".png"), sidecar=True)

        def numbered():
            index = 0
            for batch in batches:
                for image in batch:
                    yield index, image
                    index += 1

        def save(item):
            index, image = item
            return gio.save_image(image, folder / f"{seed}_{index:05d}.png", metadata={**meta, "index": index})

        # fail_fast: a write that fails (a full disk) would fail for every later image too
        report = run_job(numbered(), save, total=num, label=lambda item: f"image {item[0]}", fail_fast=True,
                         desc="generate")
        click.echo(report.summary(output))
    else:
        shape = image_shape(model)
        if shape is not None:
            check_grid(num, shape, nrow)  # before any sampling: a grid over io.MAX_PIXELS is refused
        path = guard.claim(output, sidecar=True)
        images = torch.cat(list(batches))  # the grid check bounds this by io.MAX_PIXELS images' pixels
        path = gio.save_grid(images, path, nrow=nrow, metadata=meta)
        click.echo(f"wrote {path}")


@cli.command()
@click.option("--model", "model_dir", required=True, help="Model or run directory.")
@click.option("--seeds", nargs=2, type=SEED, default=(1, 2), show_default=True, help="Start and end seeds.")
@click.option("--frames", default=8, show_default=True, type=Count(2, 1000))
@click.option("--method", type=click.Choice(["slerp", "lerp"]), default="slerp", show_default=True)
@click.option("--class", "class_label", type=CLASS, help="Class for conditional models.")
@click.option("-o", "--output", default="interpolation.png", show_default=True, type=click.Path(),
              help="PNG strip, or a .gif animation.")
@click.option("--images", nargs=2, type=click.Path(), help="VAEs: walk between these two images' latents instead.")
@overwrite_option
def interpolate(model_dir, seeds, frames, method, class_label, output, images, overwrite):
    """Walk the latent space between two seeds or two images (PNG strip or GIF)."""
    from . import io as gio
    from .outputs import OutputGuard
    from .tasks.generate import interpolate as run_interpolate

    guard = OutputGuard(overwrite=overwrite).add_model(model_dir).add_inputs(*(images or ()))
    guard.claim(output, sidecar=True)
    if images:
        from .checkpoints import load_pretrained
        from .tasks.vae import interpolate_images, load_images

        model = load_pretrained(model_dir, kind="vae")
        pair = load_images(list(images), model)
        frames_out = interpolate_images(model, pair[0], pair[1], frames, method=method, labels=class_label)
        meta = {"model": str(model_dir), "images": list(images), "frames": frames, "method": method}
        images = frames_out
    else:
        model = _load_generator(model_dir, use_ema=True)
        images = run_interpolate(model, tuple(seeds), frames, method=method, class_label=class_label)
        meta = {"model": str(model_dir), "seeds": list(seeds), "frames": frames, "method": method}
    if output.lower().endswith(".gif"):
        path = gio.save_gif(images, output, metadata=meta)
    else:
        path = gio.save_grid(images, output, nrow=frames, metadata=meta)
    click.echo(f"wrote {path}")


@cli.command()
@click.option("--model", "model_dir", required=True, help="Model or run directory.")
@click.option("--data", help="Dataset to compare with (default: the one the model was trained on).")
@click.option("--data-root", type=click.Path(), help="Where dataset files live.")
@click.option("-n", "num", default=10_000, show_default=True, type=Count(0, MAX_COUNT),
              help="Generated samples (generators; 0 skips sample metrics for VAEs).")
@click.option("--features", help="Feature space: domain (default), inception, or a classifier model directory.")
@click.option("--fid-weights", type=click.Path(), help="pytorch-fid's pt_inception-2015-12-05-6726825d.pth.")
@click.option("--batch-size", default=500, show_default=True, type=Count(1, 10_000))
@click.option("--seed", default=0, show_default=True, type=SEED)
@click.option("--class", "class_label", type=CLASS, help="Evaluate one class of a conditional generator.")
@click.option("--scale", type=SCALE, help="Super-resolution: 2, 3 or 4 (checked against the model; needed for bicubic).")
@click.option("--self-ensemble", is_flag=True, help="Super-resolution: average over the 8 flips/transposes.")
@click.option("--device", default="auto", show_default=True)
@click.option("-o", "--output", default="evaluation.json", show_default=True, type=click.Path(),
              help="JSON results (a confusion-matrix PNG is written beside it for classifiers).")
@overwrite_option
def evaluate(model_dir, data, data_root, num, features, fid_weights, batch_size, seed, class_label, scale,
             self_ensemble, device, output, overwrite):
    """Measure a model offline: FID/KID/precision-recall for generators, accuracy for classifiers."""
    from .tasks.evaluate import evaluate as run_evaluate

    if scale is not None or model_dir == "bicubic" or self_ensemble:  # SR: PSNR/SSIM (Set5/Set14 protocol)
        from .sr.evaluate import evaluate_sr

        click.echo(evaluate_sr(model_dir, data=data, data_root=data_root, scale=scale, device=device,
                               output=output, self_ensemble=self_ensemble, overwrite=overwrite).table())
        return
    result = run_evaluate(model_dir, data=data, data_root=data_root, n=num, features=features,
                          fid_weights=fid_weights, batch_size=batch_size, seed=seed, class_label=class_label,
                          device=device, output=output, overwrite=overwrite)
    click.echo(result.table())


@cli.command()
def models():
    """List the registered model architectures."""
    from .registry import list_models

    for entry in list_models():
        click.echo(f"{entry.name:<16} {entry.kind:<12} {entry.description}")


@cli.command()
def datasets():
    """List the named datasets."""
    from .data import list_datasets

    for info in list_datasets():
        click.echo(f"{info.name:<16} {info.channels}x{info.image_size}px  {info.num_classes or '-':>3} classes  "
                   f"{info.description}")


@cli.command()
@click.option("--out", default="out/demo", show_default=True, type=click.Path(), help="Report directory.")
@click.option("--minutes", default=1.0, show_default=True, type=FiniteFloat(0.0, 24 * 60.0, min_open=True),
              help="Training time budget (0 < minutes <= 1440).")
@click.option("--device", default="auto", show_default=True)
def demo(out, minutes, device):
    """Train a small DCGAN on the embedded mnist-mini and write an HTML report."""
    from .demo import run_demo

    report = run_demo(Path(out), minutes=minutes, device=device)
    click.echo(f"report: {report}")


def _add_capability_commands() -> None:
    import importlib

    from .commands import COMMAND_MODULES

    for module_name in COMMAND_MODULES:
        for command in importlib.import_module(module_name).COMMANDS:
            cli.add_command(command)


_add_capability_commands()


def _command_hint(exc: click.ClickException) -> str:
    """`` (see genvision train --help)`` for the command that failed; the group's own help otherwise."""
    ctx = getattr(exc, "ctx", None)
    path = ctx.command_path.split(" ", 1) if ctx is not None else []
    return f" (see genvision {path[1]} --help)" if len(path) == 2 else " (see genvision --help)"


def _report_warnings(caught: list[warnings.WarningMessage]) -> None:
    """Each distinct warning as one ``warning:`` line (library warnings are multi-line by default)."""
    for text in dict.fromkeys(" ".join(str(w.message).split()) for w in caught):
        click.echo(f"warning: {text}", err=True)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit status: 0, 1 (error), 2 (usage), 130/143 (interrupted)."""
    debug = _debug_requested()
    with warnings.catch_warnings(record=not debug) as caught:
        status = _run(argv, debug)
    # Warnings are shown after a success; after an error the one error line is all that is printed.
    if caught and status == 0:
        _report_warnings(caught)
    return status


def _run(argv: list[str] | None, debug: bool) -> int:
    try:
        # Without standalone mode click returns the code of an Exit raised by a command.
        status = cli.main(args=argv, prog_name="genvision", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        if debug:
            raise
        click.echo(f"error: {' '.join(exc.format_message().split())}{_command_hint(exc)}", err=True)
        return EXIT_USAGE
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        return EXIT_INTERRUPTED
    except GenvisionError as exc:
        if debug:
            raise
        click.echo(f"error: {' '.join(str(exc).split())}", err=True)
        return EXIT_ERROR
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: still one line unless --debug
        if debug:
            raise
        click.echo(f"error: unexpected {type(exc).__name__}: {reason(exc)} (run with --debug for the traceback)",
                   err=True)
        return EXIT_ERROR
    return status if isinstance(status, int) else 0


def entry_point() -> None:
    sys.exit(main())
