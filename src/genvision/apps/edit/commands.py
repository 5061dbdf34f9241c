"""``genvision edit``: crop, rotate, flip, resize, tone and colour ops on a file or a folder of files.

The ops (``--op rotate=12 --op crop=center:0.8``, a ``--pipeline`` YAML/JSON file, or the chain a
``--replay`` sidecar recorded) form one :class:`genvision.ops.chain.Chain`, applied in order;
consecutive geometric ops resample once. Files keep their bit depth, alpha, ICC profile, EXIF
and dpi (:mod:`.imagefile`). Every output gets a JSON sidecar (``out.png.json``) with the chain,
interpolation and fill, so ``genvision edit SRC -o OUT --replay out.png.json`` makes the same
output again, bit for bit.

A folder gives a folder with the same relative names; ``--format keep`` (the default) keeps each
file's format (BMP, GIF and PPM, which are not written, become PNG), and names that would collide
get their source suffix added, as ``genvision upscale`` does (:func:`genvision.outputs.output_names`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
import numpy as np

from ... import io as gio
from ...cli_params import fail_fast_option, folder_job_options, overwrite_option
from ...errors import ConfigError, GenvisionError, display_path, reason
from ...jobs import FolderJob, Shard
from ...ops.chain import Chain, describe_ops
from ...outputs import (
    OVERWRITE_HINT,
    JobReport,
    OutputExistsError,
    OutputGuard,
    PlannedOutput,
    plan_folder_job,
    run_job,
    sidecar_of,
)
from .imagefile import (
    WRITE_FORMATS,
    EditableImage,
    output_format,
    read_editable,
    write_edited,
)

__all__ = [
    "FORMATS",
    "INTERPOLATIONS",
    "build_chain",
    "edit",
    "edit_file",
    "edit_image",
    "edit_path",
    "parse_fill",
    "read_replay",
]

INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "area", "lanczos")
FORMATS = {"keep": None, "png": ".png", "jpg": ".jpg", "tif": ".tif", "webp": ".webp"}  # --format -> suffix
_MAX_SIDECAR_BYTES = 1 << 20  # a chain is a few hundred bytes; a megabyte is not a sidecar
_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, for a colour fill on a grey image


# ----------------------------------------------------------------------------- what to apply


def parse_fill(text: str) -> tuple[int, int, int, int]:
    """``--fill``: a grey level 0..255 (transparent on images with alpha, as
    :meth:`genvision.ops.chain.Chain.apply_array` treats a single value), ``#rrggbb`` (opaque) or
    ``#rrggbbaa`` -> RGBA in 8-bit units."""
    value = str(text).strip()
    if value.startswith("#"):
        digits = value[1:]
        if len(digits) in (6, 8) and all(c in "0123456789abcdefABCDEF" for c in digits):
            rgba = [int(digits[i:i + 2], 16) for i in range(0, len(digits), 2)]
            return tuple(rgba + [255] * (4 - len(rgba)))  # type: ignore[return-value]
    else:
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if 0 <= number <= 255 and number == int(number):
            return (int(number),) * 3 + (0,)
    raise ConfigError(f"--fill {text}: expected a number 0..255, #rrggbb or #rrggbbaa")


def fill_for(rgba: tuple[int, int, int, int], pixels: np.ndarray) -> tuple[float, ...]:
    """The fill colour for ``pixels``' channels in units of full scale (what the warps take): one
    value per channel, grey from BT.601 luma."""
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    colour = list(rgba[:3]) if channels in (3, 4) else [round(sum(w * c for w, c in zip(_LUMA, rgba[:3])))]
    return tuple(v / 255.0 for v in colour + ([rgba[3]] if channels in (2, 4) else []))


def read_replay(path: str | os.PathLike) -> dict:
    """An edit sidecar (``out.png.json``) -> its record; ConfigError (one line) if it is not one."""
    name = display_path(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(_MAX_SIDECAR_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"--replay {name}: cannot read ({reason(exc)})") from exc
    if len(data) > _MAX_SIDECAR_BYTES:
        raise ConfigError(f"--replay {name}: over {_MAX_SIDECAR_BYTES} bytes; not an edit sidecar")
    try:
        record = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"--replay {name}: not JSON ({reason(exc)})") from exc
    if not isinstance(record, dict) or not isinstance(record.get("chain"), list):
        raise ConfigError(f"--replay {name}: not an edit sidecar (it has no 'chain' list)")
    return record


def build_chain(ops: tuple[str, ...] | list[str] = (), pipeline: str | os.PathLike | None = None,
                replay: dict | None = None) -> Chain:
    """The replayed chain, then the ``--pipeline`` file's ops, then the ``--op``s, as one Chain."""
    parts = []
    if replay is not None:
        parts.append(Chain.from_json(replay["chain"]))
    if pipeline is not None:
        parts.append(Chain.from_file(pipeline))
    if ops:
        parts.append(Chain.parse(list(ops)))
    records = [record for part in parts for record in part.to_json()]
    if not records:
        raise ConfigError("no edit ops given: add --op (e.g. --op rotate=90), --pipeline FILE or --replay "
                          "SIDECAR.json (genvision edit --list-ops lists the ops)")
    return Chain.from_json(records)


# ----------------------------------------------------------------------------- applying


def edit_image(chain: Chain, image: EditableImage, *, interpolation: str = "bilinear",
               fill: str = "0") -> EditableImage:
    """Apply ``chain`` to an image's pixels; metadata is kept (EXIF orientation stays 1)."""
    pixels = image.pixels
    out = chain.apply_array(pixels, interpolation=interpolation, fill=fill_for(parse_fill(fill), pixels))
    if out.ndim == 3 and out.shape[2] == 1:
        out = out[..., 0]  # (H, W, 1) -> (H, W)
    if out.dtype != pixels.dtype:  # the chain keeps the dtype; this only guards the file's bit depth
        peak = float(np.iinfo(pixels.dtype).max)
        scale = peak if out.dtype.kind == "f" else 1.0
        out = np.clip(np.rint(out.astype(np.float64) * scale), 0, peak).astype(pixels.dtype)
    return image.with_pixels(np.ascontiguousarray(out))


def edit_file(chain: Chain, source: str | os.PathLike, output: str | os.PathLike, *,
              interpolation: str = "bilinear", fill: str = "0", sidecar: bool = True) -> Path:
    """Edit one image file into ``output`` (format by suffix), with a JSON sidecar that replays it."""
    output = Path(output)
    output_format(output)  # an unwritable suffix fails before the image is read
    # never replace the source, whatever the caller planned (existing outputs are the caller's decision)
    OutputGuard().add_inputs(source).claim(output, check_exists=False)
    image = read_editable(source)
    try:
        edited = edit_image(chain, image, interpolation=interpolation, fill=fill)
    except GenvisionError as exc:  # an op that does not fit this image (a crop box outside it): say which image
        raise type(exc)(f"{display_path(source)}: {exc}") from exc
    record = {"source": str(source), "source_size": [image.size[1], image.size[0]],
              "size": [edited.size[1], edited.size[0]], "bit_depth": edited.bit_depth, "mode": edited.mode,
              "chain": chain.to_json(), "interpolation": interpolation, "fill": fill}
    json.dumps(record, default=gio.json_default)  # a record that cannot be written fails before the image is
    write_edited(edited, output)
    if sidecar:
        gio.write_sidecar(output, record)
    return output


def _output_suffix(source: Path, fmt: str) -> str:
    """The suffix ``--format`` gives ``source``'s output: keep = its own where it is writable, else .png."""
    if FORMATS[fmt] is not None:
        return FORMATS[fmt]
    return source.suffix if source.suffix.lower() in WRITE_FORMATS else ".png"


def _plan_folder(files: list[Path], source: Path, out: Path, fmt: str, overwrite: bool,
                 job: FolderJob) -> list[PlannedOutput]:
    """:func:`genvision.outputs.plan_folder_job` for outputs of mixed suffixes (``--format keep``):
    names are made per output suffix, and every output is checked against every input; ``job`` keeps
    this process's shard of the files not done yet."""
    guard = OutputGuard(overwrite=True)  # existing outputs are counted over the whole plan below
    guard.add_input_folder(source).add_inputs(*files)
    groups: dict[str, list[Path]] = {}
    for path in files:
        groups.setdefault(_output_suffix(path, fmt), []).append(path)
    plan = [planned for suffix, group in groups.items()
            for planned in plan_folder_job(group, source, out, guard=guard, suffix=suffix, sidecar=True)]
    order = {path: index for index, path in enumerate(files)}
    plan.sort(key=lambda p: order[p.source])  # the files' order, not the groups'
    plan = job.select(plan)
    if not job.overwrite(overwrite):
        existing = [p.output if os.path.lexists(p.output) else sidecar_of(p.output) for p in plan
                    if os.path.lexists(p.output) or os.path.lexists(sidecar_of(p.output))]
        if existing:
            more = f" (and {len(existing) - 1} more of the {len(plan)} outputs)" if len(existing) > 1 else ""
            raise OutputExistsError(f"{display_path(existing[0])} already exists{more}; {OVERWRITE_HINT} "
                                    f"{'them' if more else 'it'}")
    return plan


def edit_path(chain: Chain, source: str | os.PathLike, output: str | os.PathLike, *, fmt: str = "keep",
              interpolation: str = "bilinear", fill: str = "0", inputs: tuple[str | os.PathLike, ...] = (),
              overwrite: bool = False, fail_fast: bool = False, progress: bool = True, shard: Shard | None = None,
              resume: bool = False) -> JobReport:
    """One file -> ``output`` (a file, or a folder ending in / or existing); a folder -> a folder with
    the same relative names (hidden files skipped). Every output is planned before anything is
    written: an output that is an input (``inputs``: the pipeline and replay files too), an output
    folder equal to or inside the input folder, colliding names and (without ``overwrite``) existing
    outputs or sidecars are refused. In a folder, a file that fails is reported and the rest go on."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    source, out = Path(source), Path(output)
    parse_fill(fill)  # a bad --fill is one line before anything is read
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in gio.IMAGE_SUFFIXES
                       and not any(part.startswith(".") for part in p.relative_to(source).parts))
        if not files:
            raise ConfigError(f"{display_path(source)}: no image files found")
        if out.exists() and not out.is_dir():
            raise ConfigError(f"{display_path(out)} exists and is not a folder (a folder input needs an output folder)")
        job = FolderJob(out, shard, resume)
        plan = _plan_folder(files, source, out, fmt, overwrite, job)
        guard = OutputGuard(overwrite=True).add_inputs(*inputs)
        for planned in plan:
            guard.claim(planned.output, sidecar=True, check_exists=False)
        job.announce(progress)
        return run_job(plan, lambda p: edit_file(chain, p.source, p.output, interpolation=interpolation, fill=fill),
                       total=len(plan), label=lambda p: display_path(p.source), fail_fast=fail_fast,
                       progress=progress, desc="edit", on_done=job.record)
    if not source.exists():
        raise ConfigError(f"{display_path(source)}: no such file or folder")
    if str(output).endswith(("/", os.sep)) or out.is_dir():
        out = out / (source.stem + _output_suffix(source, fmt))
    elif FORMATS[fmt] is not None and output_format(out) != output_format(Path("x" + FORMATS[fmt])):
        raise ConfigError(f"--format {fmt} does not match the output {display_path(out)}; "
                          f"name it {display_path(out.with_suffix(FORMATS[fmt]))} or drop --format")
    output_format(out)
    guard = OutputGuard(overwrite=overwrite).add_inputs(source, *inputs)
    guard.claim(out, sidecar=True)
    return JobReport(1, [edit_file(chain, source, out, interpolation=interpolation, fill=fill)])


# ----------------------------------------------------------------------------- the command


def _list_ops(ctx: click.Context, _param, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo("\n".join(describe_ops()))
        ctx.exit()


@click.command()
@click.argument("source", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(),
              help="Output file (.png, .jpg, .tif, .webp) or folder (for a folder input, or ending in /); "
                   "it may not be the input or inside the input folder.")
@click.option("--op", "ops", multiple=True, metavar="OP=ARGS",
              help="An edit op, repeatable, applied in order: rotate=12, crop=center:0.8, flip=h, resize=512x512, "
                   "contrast=1.2, auto ... (--list-ops).")
@click.option("--pipeline", type=click.Path(dir_okay=False),
              help="A YAML or JSON file with a list of ops, applied before the --op ones.")
@click.option("--replay", type=click.Path(dir_okay=False),
              help="An edit's JSON sidecar (out.png.json): apply the chain it recorded (before --pipeline and --op), "
                   "with its interpolation and fill unless given.")
@click.option("--interpolation", type=click.Choice(INTERPOLATIONS),
              help="Resampling for geometric ops [default: bilinear].")
@click.option("--fill", help="Colour for areas outside the source (rotate, pad): a grey level 0..255 (transparent "
                             "where there is alpha), #rrggbb (opaque) or #rrggbbaa [default: 0].")
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), default="keep", show_default=True,
              help="Output format for a folder (or -o ending in /): keep each file's (BMP/GIF/PPM become PNG), or "
                   "one for all. JPEG has no alpha (flattened on white) and, like WebP, no 16 bit.")
@overwrite_option
@fail_fast_option
@folder_job_options
@click.option("--list-ops", is_flag=True, is_eager=True, expose_value=False, callback=_list_ops,
              help="List the ops and their arguments, then exit.")
def edit(source, output, ops, pipeline, replay, interpolation, fill, fmt, overwrite, fail_fast, shard, resume):
    """Edit an image or a folder of images: crop, rotate, flip, resize, tone and colour ops, chained
    so the geometry resamples once.

    Each output gets a JSON sidecar (out.png.json) recording the chain; --replay it to make the
    same output again. A file that fails in a folder is reported and the rest go on; the exit
    status is 1 if any failed.
    """
    record = read_replay(replay) if replay is not None else {}
    chain = build_chain(ops, pipeline, record if replay is not None else None)
    interpolation = interpolation or record.get("interpolation", "bilinear")
    if interpolation not in INTERPOLATIONS:
        raise ConfigError(f"--replay {display_path(replay)}: unknown interpolation {interpolation!r}")
    fill = fill if fill is not None else str(record.get("fill", "0"))
    report = edit_path(chain, source, output, fmt=fmt, interpolation=interpolation, fill=fill,
                       inputs=tuple(p for p in (pipeline, replay) if p is not None), overwrite=overwrite,
                       fail_fast=fail_fast, progress=True, shard=Shard.parse(shard), resume=resume)
    report.raise_if_failed(output)  # the summary as the one error line, and a non-zero exit
    click.echo(f"wrote {display_path(report.written[0])}" if report.total == 1 else report.summary(output))
