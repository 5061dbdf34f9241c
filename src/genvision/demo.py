"""``genvision demo``: the main job on the embedded default, end to end, in about a minute.

Trains a class-conditional DCGAN on ``mnist-mini`` (shipped inside the package, so nothing is
downloaded), then samples a grid, interpolates between two seeds, measures FID-family scores offline and
writes ``index.html`` with the loss curves. Later capabilities add their own sections to the same report.
"""

from __future__ import annotations

import html
import shutil
from pathlib import Path

from . import io as gio
from .checkpoints import load_pretrained
from .report import Section, image_html, line_chart_svg, read_metrics, write_report
from .sampling import generate, interpolate
from .workflows.evaluate import evaluate
from .workflows.train import train

DEMO_OVERRIDES = [
    "data.name=mnist-mini", "conditional=true", "train.steps=100000", "train.batch_size=64",
    "train.log_every=20", "train.sample_every=0", "train.ckpt_every=100000", "train.keep_last=1",
    "train.tensorboard=false",
]


def gan_section(run_dir: Path, out: Path) -> Section:
    model = load_pretrained(run_dir, kind="gan")
    grid = gio.save_grid(generate(model, 100, seed=0), out / "samples.png", nrow=10,
                         metadata={"model": str(run_dir), "seed": 0, "n": 100})
    strip_images = interpolate(model, (1, 2), 10, class_label=3)
    strip = gio.save_grid(strip_images, out / "interpolation.png", nrow=10,
                          metadata={"model": str(run_dir), "seeds": [1, 2], "frames": 10, "class": 3})
    gio.save_gif(strip_images, out / "interpolation.gif", metadata={"model": str(run_dir), "seeds": [1, 2]})
    rows = [r for r in read_metrics(run_dir / "metrics.jsonl") if "loss_d" in r]
    last = rows[-1] if rows else {}
    summary = (f"<p>Class-conditional DCGAN trained on the embedded <code>mnist-mini</code> "
               f"for {last.get('step', 0)} steps ({last.get('elapsed_s', 0):.0f} s, "
               f"{last.get('images_per_s', 0):.0f} images/s). Run directory: "
               f"<code>{html.escape(str(run_dir))}</code>.</p>")
    body = (summary + image_html(grid.name, "samples: one class per column (seed 0)", 280)
            + image_html(strip.name, "latent interpolation, seed 1 to seed 2 (class 3)", 560)
            + "<h3>Losses</h3>" + line_chart_svg(rows, ["loss_d", "loss_g"]))
    return Section("GAN: conditional DCGAN on mnist-mini", body)


def evaluation_section(run_dir: Path, out: Path) -> Section:
    """FID-family scores of the demo GAN against mnist-mini's test digits, in domain features."""
    # the demo regenerates its own report folder each time, so its previous scores are replaced
    result = evaluate(str(run_dir), data="mnist-mini", n=1000, output=out / "evaluation.json", progress=False,
                      overwrite=True)
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4g}</td></tr>" for k, v in result.metrics.items()
                   if isinstance(v, float))
    body = (f"<p>1,000 samples against the 1,000 mnist-mini test digits "
            f"(<code>genvision evaluate --model {html.escape(str(run_dir))} -n 1000</code>). "
            f"{html.escape(result.notes[0])}. For scale, docs/BENCHMARKS.md lists reference rows "
            f"(train vs test split, noise, a single digit).</p><table>{rows}</table>")
    return Section("Evaluation (offline, domain features)", body)


def run_demo(out: Path, *, minutes: float = 1.0, device: str = "auto") -> Path:
    out = Path(out)
    run_dir = out / "gan-run"
    if run_dir.exists():
        shutil.rmtree(run_dir)  # the demo's own previous output, regenerated each time
    overrides = DEMO_OVERRIDES + [f"train.out_dir={out}", "train.name=gan-run", f"train.max_minutes={minutes}",
                                  f"train.device={device}"]
    train("gan", overrides=overrides)
    sections = [gan_section(run_dir, out), evaluation_section(run_dir, out)]
    return write_report(out / "index.html", "genvision demo", sections)
