"""``genvision demo``: the whole product from the zoo, offline, in about two minutes on two CPU cores.

One short training run (a conditional DCGAN learning the embedded ``mnist-mini``, so a newcomer sees a model
learn), then every application run with a shipped model on the bundled photos and digits: generation,
latent walks, super-resolution, editing, denoising, inpainting, three kinds of style transfer, translation,
recognition with Grad-CAM, near-duplicate search and learned compression. Everything lands in one folder:
``index.html`` with every image, number and the command that reproduces each panel (run from that folder).

A panel that fails is reported in the page and the run still finishes; the command then exits non-zero.
The only inputs from outside the package are the pretrained backbones of ``genvision weights`` (recognition
and the VGG-based style methods): ``make demo`` fetches them once; without them those panels say which
command fetches them.
"""

from __future__ import annotations

import html
import json
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from ..atomic import write_text
from ..errors import ConfigError, GenvisionError, display_path
from ..io import json_default
from ..report import Section, write_report
from . import generation, photos, style, training, understanding
from .panel import DemoContext, Panel, paragraph

MISSING_WEIGHTS = "genvision weights get"
SUMMARY_FILE = "demo.json"  # timings, skips, failures and the panels' numbers; also marks a demo's folder  # the phrase every "backbone not on this machine" error carries


def panels(minutes: float) -> list[Panel]:
    return [
        Panel("Training: a conditional DCGAN learns mnist-mini", partial(training.train_gan, minutes=minutes)),
        Panel("Evaluation of that run (offline, domain features)", training.evaluate_gan),
        Panel("Generation: GAN, VAE and DiT from the zoo, class-conditional", generation.generators),
        Panel("Latent interpolation", generation.latent_walks),
        Panel("Latent traversal", generation.traversal),
        Panel("Super-resolution of a photo", photos.super_resolution),
        Panel("Editing chain", photos.editing),
        Panel("Denoising", photos.denoising),
        Panel("Inpainting", photos.inpainting),
        Panel("Style transfer: optimisation, fast network, AdaIN", style.style_transfer),
        Panel("Translation (CycleGAN)", understanding.translation),
        Panel("Recognition of photos and digits, explained", understanding.recognition),
        Panel("Retrieval: searching an index with edited copies", understanding.retrieval),
        Panel("Compression: learned codec vs JPEG at the same size", understanding.compression),
    ]


@dataclass
class DemoResult:
    report: Path
    seconds: dict[str, float] = field(default_factory=dict)  # panel title -> wall seconds
    skipped: dict[str, str] = field(default_factory=dict)  # panel title -> what to run so it can run
    failed: dict[str, str] = field(default_factory=dict)  # panel title -> the error line
    numbers: dict[str, dict] = field(default_factory=dict)  # what the panels measured


def _run_panel(panel: Panel, ctx: DemoContext, result: DemoResult, log) -> Section:
    start = time.perf_counter()
    try:
        body = panel.build(ctx)
    except GenvisionError as exc:
        message = str(exc)
        if MISSING_WEIGHTS in message:
            result.skipped[panel.title] = message
            body = f'<p class="skip">Not run: {html.escape(message)}</p>'
        else:
            result.failed[panel.title] = message
            body = f'<p class="fail">Failed: {html.escape(message)}</p>'
    except Exception as exc:  # noqa: BLE001 -- one broken panel must not hide the others; the exit code tells
        result.failed[panel.title] = f"{type(exc).__name__}: {exc}"
        body = f'<p class="fail">Failed: {html.escape(result.failed[panel.title])}</p>'
    seconds = time.perf_counter() - start
    result.seconds[panel.title] = seconds
    status = "skipped" if panel.title in result.skipped else "FAILED" if panel.title in result.failed else "done"
    log(f"{status:>7}  {seconds:6.1f} s  {panel.title}")
    return Section(f"{panel.title} ({seconds:.1f} s)", body)


def _holds_a_demo(folder: Path) -> bool:
    """A folder an earlier ``genvision demo`` wrote (before demo.json existed, its index.html said so)."""
    report = folder / "index.html"
    return (folder / SUMMARY_FILE).is_file() or (
        report.is_file() and "<title>genvision demo</title>" in report.read_text(errors="replace")[:2000])


def run_demo(out: Path, *, minutes: float = 1.0, device: str = "auto", only: list[str] | None = None,
             log=print) -> DemoResult:
    """Run every panel (or those whose title contains one of ``only``) into ``out``; see the module doc."""
    out = Path(out)
    chosen = [p for p in panels(minutes) if not only or any(word.lower() in p.title.lower() for word in only)]
    if not chosen:
        raise ConfigError(f"no panel title contains {', '.join(map(repr, only))}; the panels: "
                          f"{'; '.join(p.title for p in panels(minutes))}")
    if out.is_dir() and any(out.iterdir()) and not _holds_a_demo(out):
        # the demo replaces its own files (and its training run) each time: never someone else's
        raise ConfigError(f"{display_path(out)} is not empty and holds no earlier demo report: give --out a new or "
                          f"empty folder")
    out.mkdir(parents=True, exist_ok=True)
    ctx = DemoContext(out=out, device=device)
    result = DemoResult(report=out / "index.html")
    start = time.perf_counter()
    sections = [_run_panel(panel, ctx, result, log) for panel in chosen]
    total = time.perf_counter() - start
    summary = paragraph(f"{len(chosen)} panels in {total:.0f} s. Every command below runs from this folder "
                        f"(add --overwrite to replace the demo's own file). Skipped: {len(result.skipped)}. "
                        f"Failed: {len(result.failed)}.")
    write_report(result.report, "genvision demo", [Section("Summary", summary), *sections])
    result.seconds["total"] = total
    result.numbers = ctx.numbers
    write_text(out / SUMMARY_FILE, json.dumps({"seconds": result.seconds, "skipped": result.skipped,
                                              "failed": result.failed, "numbers": ctx.numbers}, indent=2,
                                             default=json_default))
    return result


__all__ = ["DemoResult", "panels", "run_demo"]
