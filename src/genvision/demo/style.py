"""Style transfer three ways on one photo: Gatys et al.'s optimisation (short, small), fast networks from
the zoo (one per painting, and one holding seven paintings, including a blend of two), and the zoo's AdaIN
decoder with any painting, including a blend of two."""

from __future__ import annotations

import time

from ..apps.style.fast import load_style_model, run
from ..apps.style.pipeline import transfer
from .panel import DemoContext, commands, figure, paragraph, table

SIZE = 256  # the networks' results, longest side
PAINTINGS_SIZE = 160  # the seven-painting network's row: eight small results
PAINTINGS_BLEND = ("candy", "udnie")
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

    paintings = load_style_model("zoo:johnson-paintings")
    seconds = 0.0
    for names, weights in [((name,), None) for name in paintings.style_names] + [(PAINTINGS_BLEND, (0.5, 0.5))]:
        out = run(paintings, ctx.out / content, list(names), weights, size=PAINTINGS_SIZE)
        seconds += out.seconds
        label = "-".join(names)
        figures.append(figure(ctx.save(out.image, f"style-paintings-{label}.png", model="zoo:johnson-paintings",
                                       styles=list(names), size=PAINTINGS_SIZE),
                              " + ".join(names) + (" (50/50)" if weights else ""), PAINTINGS_SIZE))
    rows.append((f"fast, zoo:johnson-paintings, {len(paintings.style_names) + 1} results", seconds))

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
                      "minutes at full size); the networks run in a fraction of a second. zoo:johnson-paintings is "
                      "one network for seven paintings (a scale and shift per painting in each instance norm): "
                      "--style NAME chooses one, --style-weights blends them.")
            + "".join(figures) + table(rows, ("method", "seconds"))
            + commands(f"genvision stylize {content} --style {starry} --method optimize --size {OPTIMIZE_SIZE} "
                       f"--scales 2 --steps {','.join(map(str, OPTIMIZE_STEPS))} -o style-optimize.png",
                       f"genvision stylize {content} --model zoo:johnson-starry-night --size {SIZE} -o style-fast.png",
                       f"genvision stylize {content} --model zoo:johnson-paintings --style candy "
                       f"--size {PAINTINGS_SIZE} -o style-paintings-candy.png",
                       f"genvision stylize {content} --model zoo:johnson-paintings --style {PAINTINGS_BLEND[0]} "
                       f"--style {PAINTINGS_BLEND[1]} --style-weights 0.5,0.5 --size {PAINTINGS_SIZE} "
                       f"-o style-paintings-{'-'.join(PAINTINGS_BLEND)}.png",
                       f"genvision stylize {content} --model zoo:adain-vgg19 --style {scream} --size {SIZE} "
                       f"-o style-adain-scream.png",
                       f"genvision stylize {content} --model zoo:adain-vgg19 --style {starry} --style {scream} "
                       f"--style-weights 0.5,0.5 --size {SIZE} -o style-adain-blend.png"))
