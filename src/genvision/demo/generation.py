"""Generation from the zoo: class-conditional digits from a GAN, a VAE and a DiT, a latent walk between two
seeds, a walk between two real digits' encodings, and a VAE's latent traversal."""

from __future__ import annotations

import torch

from .. import io as gio
from ..apps.vae.pipeline import traverse
from ..checkpoints import load_pretrained
from ..data import load_dataset
from ..sampling import generate, interpolate, interpolate_images
from .panel import DemoContext, commands, figure, paragraph

DIT_SAMPLES = 30  # three per class
# zoo:dit-mnist's card: Euler 4 steps with classifier-free guidance 3 (domain FID 4.8; docs/BENCHMARKS.md, issue 19)
DIT_SAMPLING = {"steps": 4, "sampler": "euler", "cfg": 3.0}


def generators(ctx: DemoContext) -> str:
    """One grid per family, each column one class (generate cycles the labels 0..9)."""
    body = paragraph("Three model families trained on MNIST, each asked for the digits 0-9 (one class per "
                     "column, seed 0). The zoo's GAN trained for 10 minutes and its DiT for 30, on two CPU cores; "
                     "their model cards give the scores (domain FID 3.1 and 4.8).")
    lines = []
    for name, n, what, sampling in (("dcgan-mnist", 100, "GAN (conditional DCGAN)", {}),
                                    ("cvae-mnist", 100, "VAE (conditional)", {}),
                                    ("dit-mnist", DIT_SAMPLES, "DiT (flow matching, guidance 3)", DIT_SAMPLING)):
        model = load_pretrained(f"zoo:{name}")
        grid = ctx.save_grid(generate(model, n, seed=0, **sampling), f"generate-{name}.png", nrow=10,
                             model=f"zoo:{name}", seed=0, n=n, **sampling)
        ctx.record("generation", **{name: n})
        body += figure(grid, f"{what}: zoo:{name}", 280, pixelated=True)
        options = "".join(f" --{key} {value}" for key, value in sampling.items())
        lines.append(f"genvision generate --model zoo:{name} -n {n} --seed 0{options} -o {grid}")
    return body + commands(*lines)


def _digits(*indices: int) -> tuple[torch.Tensor, list[int]]:
    test = load_dataset("mnist-mini", split="test")
    pairs = [test[i] for i in indices]
    return torch.stack([image for image, _ in pairs]), [int(label) for _, label in pairs]  # (N, 1, 28, 28)


def latent_walks(ctx: DemoContext) -> str:
    gan = load_pretrained("zoo:dcgan-mnist")
    frames = interpolate(gan, (1, 2), 10, class_label=7)
    strip = ctx.save_grid(frames, "walk-gan-seeds.png", nrow=10, model="zoo:dcgan-mnist", seeds=[1, 2],
                          **{"class": 7})
    gio.save_gif(frames, ctx.out / "walk-gan-seeds.gif", metadata={"model": "zoo:dcgan-mnist", "seeds": [1, 2]})
    vae = load_pretrained("zoo:cvae-mnist")
    digits, labels = _digits(0, 1)
    for i, image in enumerate(digits):
        gio.save_image(gio.tensor_to_pil(image, (-1, 1)), ctx.out / f"digit-{i}.png", metadata={"label": labels[i]})
    walk = interpolate_images(vae, digits[0], digits[1], 10, labels=labels[0])
    between = ctx.save_grid(walk, "walk-vae-images.png", nrow=10, model="zoo:cvae-mnist", labels=labels)
    return (figure(strip, "GAN: spherical walk from seed 1 to seed 2 (class 7)", 560, pixelated=True)
            + figure(between, f"VAE: from one real test digit's encoding to another's (class held at "
                              f"{labels[0]})", 560, pixelated=True)
            + commands("genvision interpolate --model zoo:dcgan-mnist --seeds 1 2 --frames 10 --class 7 "
                       "-o walk-gan-seeds.gif",
                       f"genvision interpolate --model zoo:cvae-mnist --images digit-0.png digit-1.png --frames 10 "
                       f"--class {labels[0]} -o walk-vae-images.png"))


def traversal(ctx: DemoContext) -> str:
    vae = load_pretrained("zoo:cvae-mnist")
    digits, labels = _digits(0)
    grid = traverse(vae, digits[0], [0, 1, 2, 3], span=2.5, steps=9, labels=labels[0])  # (4 * 9, 1, 28, 28)
    name = ctx.save_grid(grid, "traverse-vae.png", nrow=9,
                         model="zoo:cvae-mnist", dims=[0, 1, 2, 3], span=2.5)
    return (paragraph("Each row moves one latent dimension from -2.5 to +2.5 around a real digit's encoding, "
                      "the others held: what each dimension controls (stroke width, slant, ...).")
            + figure(name, "VAE latent traversal, dimensions 0-3", 420, pixelated=True)
            + commands(f"genvision traverse --model zoo:cvae-mnist --image digit-0.png --class {labels[0]} "
                       "--dims 0,1,2,3 --range 2.5 --steps 9 -o traverse-vae.png"))
