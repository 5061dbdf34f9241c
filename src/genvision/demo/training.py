"""The demo's one training run: a class-conditional DCGAN learns the embedded ``mnist-mini`` for a short
budget, so a newcomer sees a model learn (its loss curves, its samples, its scores) next to the zoo's
finished models."""

from __future__ import annotations

import html
import shutil

from .. import io as gio
from ..checkpoints import load_pretrained
from ..report import line_chart_svg, read_metrics
from ..sampling import generate, interpolate
from ..workflows.evaluate import evaluate
from ..workflows.train import train
from .panel import DemoContext, commands, figure

RUN_NAME = "gan-run"
DEMO_OVERRIDES = [
    "data.name=mnist-mini", "conditional=true", "train.steps=100000", "train.batch_size=64",
    "train.log_every=20", "train.sample_every=0", "train.ckpt_every=100000", "train.keep_last=1",
    "train.tensorboard=false",
]


def train_gan(ctx: DemoContext, minutes: float) -> str:
    run_dir = ctx.out / RUN_NAME
    if run_dir.exists():
        shutil.rmtree(run_dir)  # the demo's own previous output, regenerated each time
    overrides = DEMO_OVERRIDES + [f"train.out_dir={ctx.out}", f"train.name={RUN_NAME}",
                                  f"train.max_minutes={minutes}", f"train.device={ctx.device}"]
    train("gan", overrides=overrides)
    model = load_pretrained(run_dir, kind="gan")
    grid = ctx.save_grid(generate(model, 100, seed=0), "samples.png", nrow=10,
                         model=RUN_NAME, seed=0, n=100)
    strip_images = interpolate(model, (1, 2), 10, class_label=3)
    strip = ctx.save_grid(strip_images, "interpolation.png", nrow=10, model=RUN_NAME, seeds=[1, 2], frames=10,
                          **{"class": 3})
    gio.save_gif(strip_images, ctx.out / "interpolation.gif", metadata={"model": RUN_NAME, "seeds": [1, 2]})
    rows = [r for r in read_metrics(run_dir / "metrics.jsonl") if "loss_d" in r]
    last = rows[-1] if rows else {}
    ctx.record("training", steps=last.get("step", 0), seconds=last.get("elapsed_s", 0.0))
    summary = (f"<p>A class-conditional DCGAN trained here on the embedded <code>mnist-mini</code> for "
               f"{last.get('step', 0)} steps ({last.get('elapsed_s', 0):.0f} s, {last.get('images_per_s', 0):.0f} "
               f"images/s). The zoo's <code>dcgan-mnist</code> below is the same recipe after 3,000 steps.</p>")
    return (summary + figure(grid, "samples: one class per column (seed 0)", 280, pixelated=True)
            + figure(strip, "latent interpolation, seed 1 to seed 2 (class 3)", 560, pixelated=True)
            + "<h3>Losses</h3>" + line_chart_svg(rows, ["loss_d", "loss_g"])
            + commands(f"genvision train gan data.name=mnist-mini conditional=true train.max_minutes={minutes} "
                       f"train.out_dir=. train.name={RUN_NAME}",
                       f"genvision generate --model {RUN_NAME} -n 100 -o samples.png",
                       f"genvision interpolate --model {RUN_NAME} --seeds 1 2 --frames 10 --class 3 "
                       f"-o interpolation.gif"))


def evaluate_gan(ctx: DemoContext) -> str:
    """FID-family scores of the demo GAN against mnist-mini's test digits, in domain features."""
    # the demo regenerates its own report folder each time, so its previous scores are replaced
    result = evaluate(str(ctx.out / RUN_NAME), data="mnist-mini", n=1000, output=ctx.out / "evaluation.json",
                      progress=False, overwrite=True)
    ctx.record("evaluation", fid=result.metrics["fid"], samples=result.metrics["num_samples"])
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4g}</td></tr>" for k, v in result.metrics.items()
                   if isinstance(v, float))
    return (f"<p>1,000 samples against the 1,000 mnist-mini test digits. {html.escape(result.notes[0])}. "
            f"For scale, docs/BENCHMARKS.md lists reference rows (train vs test split, noise, a single digit); "
            f"the zoo's 3,000-step GAN scores 55 against the full MNIST test set.</p><table>{rows}</table>"
            + commands(f"genvision evaluate --model {RUN_NAME} --data mnist-mini -n 1000 -o evaluation.json"))
