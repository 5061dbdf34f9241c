"""The ``genvision`` command line: a thin front end that finds its commands, parses, and prints.

The cross-application commands (train, evaluate, models, datasets, demo) live in
``genvision.core_commands``; every application adds its own through the manifest
(``genvision.apps``). Commands are imported only when one runs, so ``genvision --help`` lists them
all from the manifest's summaries without importing torch.

Every expected failure (bad arguments, missing files, wrong model kind) is one line on
stderr and a non-zero exit; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import difflib
import os
import sys
import warnings

import click

from . import __version__, apps
from .errors import GenvisionError, reason

EXIT_USAGE, EXIT_ERROR, EXIT_INTERRUPTED = 2, 1, 130
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())  # click >= 8.2 raises it for a bare command

# The commands that span applications, with their one-line summaries for --help.
CORE_COMMANDS = (
    apps.CommandRef("train", "genvision.core_commands:train",
                    "Train a model FAMILY (gan, classifier, vae, dit, sr, ...) with key=value overrides."),
    apps.CommandRef("evaluate", "genvision.core_commands:evaluate",
                    "Measure a model offline: FID/KID, accuracy, likelihood or PSNR/SSIM."),
    apps.CommandRef("models", "genvision.core_commands:models", "List the registered model architectures."),
    apps.CommandRef("datasets", "genvision.core_commands:datasets", "List the named datasets."),
    apps.CommandRef("weights", "genvision.pretrained.commands:weights",
                    "List, fetch and verify pretrained backbones (VGG-16/19, EfficientNet-Lite0, FID Inception)."),
    apps.CommandRef("demo", "genvision.demo.commands:demo",
                    "Every application with the zoo's models, plus a short training run, in one HTML report."),
    apps.CommandRef("web", "genvision.web.commands:web",
                    "Serve a browser UI over the zoo models: generate, edit, inpaint, upscale, stylize, ..."),
)


def _debug_requested() -> bool:
    return "--debug" in sys.argv or os.environ.get("GENVISION_DEBUG") == "1"


class ManifestGroup(click.Group):
    """A click group whose commands come from the manifest and are imported on first use."""
    def _refs(self) -> dict[str, apps.CommandRef]:
        return {ref.name: ref for ref in CORE_COMMANDS} | apps.commands()

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *self._refs()]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is not None:
            return command
        ref = self._refs().get(name)
        return apps.resolve(ref.target) if ref is not None else None

    def resolve_command(self, ctx: click.Context, args: list[str]):
        # click suggests close names only among commands already loaded; suggest among all of them
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            close = difflib.get_close_matches(name, self.list_commands(ctx), n=1)
            ctx.fail(f"No such command {name!r}." + (f" Did you mean {close[0]!r}?" if close else ""))
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # the manifest's summaries, so listing the commands imports none of them
        rows = [(name, cmd.get_short_help_str()) for name, cmd in self.commands.items()]
        rows += [(ref.name, ref.summary) for ref in self._refs().values()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=ManifestGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="genvision")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
def cli(debug: bool) -> None:
    """Train and use image generation, editing and recognition models."""


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
    except _NO_ARGS_IS_HELP as exc:  # plain `genvision`: the help, as click prints it
        click.echo(exc.format_message(), err=True)
        return EXIT_USAGE
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
