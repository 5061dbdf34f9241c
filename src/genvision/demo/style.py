"""Style transfer three ways on one photo: Gatys et al.'s optimisation (short, small), a fast per-style
network from the zoo, and the zoo's AdaIN decoder with any painting, including a blend of two."""

from __future__ import annotations

import time

from ..apps.style.fast import load_style_model, run
from ..apps.style.pipeline import transfer
from .panel import DemoContext, commands, figure, paragraph, table

SIZE = 256  # the networks' results, longest side
OPTIMIZE_SIZE = 192  # the optimisation's cost grows with the pixel count: ~0.3 s a step here on 2 cores
OPTIMIZE_STEPS = (30, 20)  # L-BFGS steps at half and full size: enough for the style to show, not to converge


def style_transfer(ctx: DemoContext) -> str:
    content = ctx.copy_photo("amber.jpg")
    starry, scream = ctx.copy_photo("starry_night.jpg"), ctx.copy_photo("the_scream.jpg")
    rows, figures = [], [figure(content, "content", 200), figure(starry, "style: The Starry Night", 200),
                         figure(scream, "style: The Scream", 160)]

    start = time.perf_counter()
    result = transfer(ctx.out / content, [ctx.out / starry], size=OPTIMIZE_SIZE, steps=OPTIMIZE_STEPS,
                      scales=2)
    rows.append(("optimize (Gatys), VGG-19", time.perf_counter() - start))
    figures.append(figure(ctx.save(result.image, "style-optimize.png", method="optimize", steps=list(OPTIMIZE_STEPS),
                                   size=OPTIMIZE_SIZE), f"optimisation, {sum(OPTIMIZE_STEPS)} L-BFGS steps", SIZE))

    fast = load_style_model("zoo:johnson-starry-night")
    out = run(fast, ctx.out / content, size=SIZE)
    rows.append(("fast (Johnson), zoo:johnson-starry-night", out.seconds))
    figures.append(figure(ctx.save(out.image, "style-fast.png", model="zoo:johnson-starry-night", size=SIZE),
                          "fast network trained on this painting", SIZE))

    adain = load_style_model("zoo:adain-vgg19")
    for name, styles, weights, caption in (
            ("style-adain-scream.png", [scream], None, "AdaIN, The Scream (any painting, one network)"),
            ("style-adain-blend.png", [starry, scream], (0.5, 0.5), "AdaIN, half Starry Night, half Scream")):
        out = run(adain, ctx.out / content, [ctx.out / s for s in styles], weights, size=SIZE)
        rows.append((f"AdaIN, zoo:adain-vgg19, {len(styles)} style(s)", out.seconds))
        figures.append(figure(ctx.save(out.image, name, model="zoo:adain-vgg19", styles=styles, size=SIZE),
                              caption, SIZE))
    ctx.record("style", seconds=dict(rows))
    return (paragraph("The same photo restyled by the three methods: optimisation is the reference (any style, "
                      "minutes at full size); the networks run in a fraction of a second.")
            + "".join(figures) + table(rows, ("method", "seconds"))
            + commands(f"genvision stylize {content} --style {starry} --method optimize --size {OPTIMIZE_SIZE} "
                       f"--scales 2 --steps {','.join(map(str, OPTIMIZE_STEPS))} -o style-optimize.png",
                       f"genvision stylize {content} --model zoo:johnson-starry-night --size {SIZE} -o style-fast.png",
                       f"genvision stylize {content} --model zoo:adain-vgg19 --style {scream} --size {SIZE} "
                       f"-o style-adain-scream.png",
                       f"genvision stylize {content} --model zoo:adain-vgg19 --style {starry} --style {scream} "
                       f"--style-weights 0.5,0.5 --size {SIZE} -o style-adain-blend.png"))
