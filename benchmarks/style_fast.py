"""Fast feed-forward style (Johnson et al.) and arbitrary style (AdaIN): training within a CPU budget,
inference speed against the peer, and the losses of their outputs relative to the optimisation result.

    genvision weights get vgg19
    python benchmarks/style_fast.py [--data-root ../shared/data] [--style starry_night.jpg] [--hold-out udnie]
    python benchmarks/style_fast.py --smoke      # tiny images, 2 steps: checks the script, records nothing

1. Trains a Johnson net for ``--style`` (``genvision train style``, at most ``--minutes`` CPU-minutes;
   target <= 60) and an AdaIN decoder on the other paintings (``genvision train adain hold_out=...``).
2. Speed: ms per megapixel at ``--size`` x ``--size`` (1024) on ``--threads`` cores (2), the trained
   Johnson net through genvision's pipeline (``genvision.apps.style.fast.run``: channels_last,
   inference_mode) against pytorch/examples' ``fast_neural_style`` TransformerNet (written below from
   its description: the same architecture, reflection-padded convolutions, instance norm, 5 residual
   blocks, nearest upsampling + convolution) run in plain eager PyTorch (NCHW, no_grad) with the *same
   weights* (copied in; the outputs are checked equal, so the two compute the same function). Median of
   ``--repeats`` after one warm-up. Target: <= 1 s for 1024x1024. AdaIN's speed is measured the same way.
3. Quality: the weighted style and content losses (apps/style's own objective, VGG-19, default weights)
   of each output at ``--loss-size``, relative to those of ``stylize --method optimize`` on the same
   content and style (ratio > 1 = higher loss than the optimisation). AdaIN on the held-out painting.

Phases: ``--phase johnson`` and ``--phase adain`` each only train (so the two can run side by side,
``--train-threads 1`` each, one core apiece: their minutes are then CPU-minutes); ``--phase evaluate`` only
measures, on the runs those left in ``--runs``; ``--phase all`` (the default) does the three in turn.
``--phase multi`` trains one network for the seven paintings (``--multi-styles``; conditional instance norm)
for a fixed ``--multi-steps``, and ``--phase evaluate-multi`` scores it per painting, against the one-style
net of ``--style`` and the optimisation, and writes a grid (table ``style-multi``).
Time the evaluation only on an otherwise idle machine (two OpenMP jobs on two cores slow each other far
more than 2x).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

from genvision import io as gio
from genvision.apps.style import pipeline
from genvision.apps.style.fast import load_style_model, run
from genvision.apps.style.optimize import area_size, fit_size, resize

# ----------------------------------------------------------------------------- the peer


class ConvLayer(nn.Module):
    """pytorch/examples: ReflectionPad2d(k // 2) then Conv2d."""

    def __init__(self, c_in, c_out, kernel, stride):
        super().__init__()
        self.reflection_pad = nn.ReflectionPad2d(kernel // 2)
        self.conv2d = nn.Conv2d(c_in, c_out, kernel, stride)

    def forward(self, x):
        return self.conv2d(self.reflection_pad(x))


class ResidualBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1, self.in1 = ConvLayer(channels, channels, 3, 1), nn.InstanceNorm2d(channels, affine=True)
        self.conv2, self.in2 = ConvLayer(channels, channels, 3, 1), nn.InstanceNorm2d(channels, affine=True)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.in2(self.conv2(self.relu(self.in1(self.conv1(x))))) + x


class UpsampleConvLayer(nn.Module):
    """pytorch/examples: nearest interpolate by ``upsample``, then ConvLayer."""

    def __init__(self, c_in, c_out, kernel, stride, upsample=None):
        super().__init__()
        self.upsample = upsample
        self.reflection_pad = nn.ReflectionPad2d(kernel // 2)
        self.conv2d = nn.Conv2d(c_in, c_out, kernel, stride)

    def forward(self, x):
        if self.upsample:
            x = F.interpolate(x, mode="nearest", scale_factor=self.upsample)
        return self.conv2d(self.reflection_pad(x))


class TransformerNet(nn.Module):
    """pytorch/examples fast_neural_style/neural_style/transformer_net.py's architecture (width 32)."""

    def __init__(self, width: int = 32):
        super().__init__()
        w = width
        self.conv1, self.in1 = ConvLayer(3, w, 9, 1), nn.InstanceNorm2d(w, affine=True)
        self.conv2, self.in2 = ConvLayer(w, 2 * w, 3, 2), nn.InstanceNorm2d(2 * w, affine=True)
        self.conv3, self.in3 = ConvLayer(2 * w, 4 * w, 3, 2), nn.InstanceNorm2d(4 * w, affine=True)
        self.res1, self.res2, self.res3, self.res4, self.res5 = (ResidualBlock(4 * w) for _ in range(5))
        self.deconv1, self.in4 = UpsampleConvLayer(4 * w, 2 * w, 3, 1, 2), nn.InstanceNorm2d(2 * w, affine=True)
        self.deconv2, self.in5 = UpsampleConvLayer(2 * w, w, 3, 1, 2), nn.InstanceNorm2d(w, affine=True)
        self.deconv3 = ConvLayer(w, 3, 9, 1)
        self.relu = nn.ReLU()

    def forward(self, x):
        y = self.relu(self.in1(self.conv1(x)))
        y = self.relu(self.in2(self.conv2(y)))
        y = self.relu(self.in3(self.conv3(y)))
        y = self.res5(self.res4(self.res3(self.res2(self.res1(y)))))
        y = self.relu(self.in4(self.deconv1(y)))
        y = self.relu(self.in5(self.deconv2(y)))
        return self.deconv3(y)


def peer_with_weights(model: nn.Module) -> TransformerNet:
    """The peer carrying the genvision net's weights: both define their tensors in the same order."""
    peer = TransformerNet(model.config.width)
    ours, theirs = list(model.state_dict().values()), peer.state_dict()
    if len(ours) != len(theirs) or any(a.shape != b.shape for a, b in zip(ours, theirs.values())):
        raise SystemExit("the genvision net and TransformerNet differ in architecture (5 blocks expected)")
    peer.load_state_dict(dict(zip(theirs, ours)))
    return peer.eval()


# ----------------------------------------------------------------------------- measurements


def timed(fn, repeats: int) -> float:
    fn()  # warm-up: oneDNN picks its kernels on the first call
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def speed(model, content: torch.Tensor, styles, repeats: int, peer: nn.Module | None) -> dict:
    megapixels = content.shape[-1] * content.shape[-2] / 1e6
    ours = timed(lambda: run(model, content, styles), repeats)
    row = {"ours_s": ours, "ours_ms_per_mp": 1000 * ours / megapixels}
    if peer is not None:
        with torch.no_grad():
            diff = (peer(content).clamp(0, 1) - run(model, content).image[None]).abs().max().item()
        row["max_abs_diff_vs_peer"] = diff

        def eager():
            with torch.no_grad():
                peer(content)

        theirs = timed(eager, repeats)
        row.update({"peer_s": theirs, "peer_ms_per_mp": 1000 * theirs / megapixels, "speedup": theirs / ours})
    return row


def relative_losses(image: torch.Tensor, reference: torch.Tensor, content: torch.Tensor, style: torch.Tensor) -> dict:
    ours = pipeline.style_losses(image, content, style)
    base = pipeline.style_losses(reference, content, style)
    return {"style": ours["style"], "content": ours["content"], "style_vs_optimize": ours["style"] / base["style"],
            "content_vs_optimize": ours["content"] / base["content"], "total_vs_optimize": ours["total"] / base["total"]}


def save_grid(contents: dict, per_style: list[list[torch.Tensor]], names, path: Path, height: int = 160) -> None:
    """One row per content photo: the photo, then its pastiche in each painting (``names`` order), all
    ``height`` px tall; rows padded with white to the widest."""
    rows = []
    for i, photo in enumerate(contents.values()):
        h, w = photo.shape[-2:]
        side = (height, round(w * height / h))
        tiles = [resize(photo, side)[0]] + [resize(outs[i][None], side)[0] for outs in per_style]  # each (3, h, w)
        rows.append(torch.cat(tiles, dim=2))  # (3, height, 8 w)
    width = max(r.shape[-1] for r in rows)
    grid = torch.cat([F.pad(r, (0, width - r.shape[-1]), value=1.0) for r in rows], dim=1)  # (3, rows*height, W)
    path.parent.mkdir(parents=True, exist_ok=True)
    gio.save_image(grid.clamp(0, 1), path, value_range=(0.0, 1.0),
                   metadata={"columns": ["photo", *names], "rows": list(contents)})
    print(f"wrote {path}")


def evaluate_multi(args, runs: Path, paintings: Path, photos: Path) -> None:
    """The one network for every painting (``--phase multi``), per painting: the style and content losses of
    its outputs on every content photo at ``--loss-size``, and how much of the photo's own style loss is
    left (``style_vs_photo``: 1 = no style at all, the optimisation reaches ~0.01-0.05). On
    ``--style`` also against the one-style net ``--single`` and ``stylize --method optimize`` (the
    ``style-fast`` row's protocol), and the speed of both at ``--size``. A grid of every painting."""
    torch.set_num_threads(args.threads)
    model = load_style_model(str(runs / "johnson-paintings"))
    single = load_style_model(args.single)
    names = model.style_names
    contents = {p.stem: gio.load_image_tensor(p, channels=3)[None] for p in sorted(photos.glob("*.jpg"))}
    loss_size = 64 if args.smoke else args.loss_size
    contents = {k: resize(v, fit_size(*v.shape[-2:], loss_size)) for k, v in contents.items()}  # longest side
    steps_done, train_s = harness.run_summary(runs / "johnson-paintings")
    recipe = (f"johnson width 32, {len(names)} styles (conditional instance norm), {steps_done} steps x "
              f"{args.batch} crops of {args.patch} px, round-robin styles, style_scale {args.style_scale}")
    grid_rows, style_left = [], []
    for name in names:
        style = gio.load_image_tensor(paintings / f"{name}.jpg", channels=3)[None]
        per_photo = []
        row_images = []
        for stem, content in contents.items():
            out = run(model, content, [name]).image
            ours = pipeline.style_losses(out, content, style)
            photo = pipeline.style_losses(content, content, style)
            per_photo.append({"style": ours["style"], "content": ours["content"],
                              "style_vs_photo": ours["style"] / photo["style"]})
            if name == args.style.removesuffix(".jpg"):
                alone = pipeline.style_losses(run(single, content).image, content, style)
                per_photo[-1].update({"single_style": alone["style"], "single_content": alone["content"],
                                      "single_style_vs_photo": alone["style"] / photo["style"]})
            row_images.append(out)
        quality = {k: statistics.mean(r[k] for r in per_photo) for k in per_photo[0]}
        print(name, {k: round(v, 4) for k, v in quality.items()})
        grid_rows.append(row_images)
        style_left.append(quality["style_vs_photo"])
        if not args.smoke:
            harness.record("style-multi", f"johnson-paintings {name}{args.suffix}", recipe=recipe, wall_s=train_s,
                           quality={**quality, "photos": len(contents)},
                           notes=f"losses at {loss_size} px (longest side), mean over {', '.join(contents)}")
    # the style-fast row's protocol on --style: tubingen at --loss-size against --method optimize
    content = contents.get(Path(args.content).stem)
    style = gio.load_image_tensor(paintings / args.style, channels=3)[None]
    steps = 2 if args.smoke else int(args.optimize_steps)
    reference = pipeline.transfer(content, [style], size=None, steps=steps).image
    multi_q = relative_losses(run(model, content, [args.style.removesuffix(".jpg")]).image, reference, content, style)
    single_q = relative_losses(run(single, content).image, reference, content, style)
    size = 128 if args.smoke else args.size
    square = resize(content, (size, size))
    multi_s = timed(lambda: run(model, square, [args.style.removesuffix(".jpg")]), args.repeats)
    single_s = timed(lambda: run(single, square), args.repeats)
    print(f"vs optimize: multi {multi_q}\n  single {single_q}\nspeed {size}px: multi {multi_s:.2f} s, single "
          f"{single_s:.2f} s")
    save_grid(contents, grid_rows, names, Path(args.grid))
    if args.smoke:
        print("smoke run: nothing recorded")
        return
    harness.record("style-multi", f"johnson-paintings {args.style} vs one-style net and optimize {size}px{args.suffix}",
                   recipe=recipe, wall_s=train_s,
                   throughput={"multi_s": multi_s, "single_s": single_s, "multi_vs_single_time": multi_s / single_s,
                               "threads": args.threads},
                   quality={**multi_q, **{f"single_{k}": v for k, v in single_q.items()},
                            "mean_style_vs_photo": statistics.mean(style_left), "paintings": len(names)},
                   notes=f"{args.content} at {loss_size} px; optimize {steps} steps per scale; one-style net "
                         f"{args.single}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--style", default="starry_night.jpg", help="Johnson's painting (in style-images/style)")
    parser.add_argument("--hold-out", default="udnie.jpg", help="the painting AdaIN never sees")
    parser.add_argument("--content", default="tubingen.jpg", help="content photo (in style-images/content)")
    parser.add_argument("--minutes", type=float, default=60.0, help="Johnson training budget (CPU minutes)")
    parser.add_argument("--johnson-steps", type=int, default=4000)
    parser.add_argument("--adain-minutes", type=float, default=60.0)
    parser.add_argument("--adain-steps", type=int, default=4000)
    parser.add_argument("--patch", type=int, default=256, help="training crop size (Johnson et al.: 256)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--style-scale", type=float, default=1.0,
                        help="Johnson: the painting's area relative to a crop's, squared (objective.style_scale)")
    parser.add_argument("--styles-resize", type=int, default=512, help="AdaIN: each painting's short side (styles.resize)")
    parser.add_argument("--schedule", default=None, help="both nets' objective.schedule (constant suits a time budget)")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--loss-size", type=int, default=512)
    parser.add_argument("--optimize-steps", default="200")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="threads for the speed and loss measurements")
    parser.add_argument("--train-threads", type=int, default=None, help="threads for training (default --threads)")
    parser.add_argument("--multi-steps", type=int, default=800,
                        help="--phase multi: steps of the one network for every painting (fixed, not timed)")
    parser.add_argument("--multi-styles", default="candy,mosaic,rain-princess,shipwreck,starry_night,the_scream,udnie",
                        help="--phase multi: the paintings (stems in style-images/style; rain-princess-cropped is "
                             "a crop of rain-princess, so it is left out)")
    parser.add_argument("--single", default="zoo:johnson-starry-night",
                        help="--phase evaluate-multi: the one-style net of --style to compare with")
    parser.add_argument("--grid", default="docs/images/style-multi-paintings.png",
                        help="--phase evaluate-multi: where the grid of every painting goes")
    parser.add_argument("--suffix", default="", help="--phase evaluate-multi: appended to the rows' names")
    parser.add_argument("--multi-minutes", type=float, default=90.0, help="--phase multi: a safety budget only")
    parser.add_argument("--phase", choices=("all", "johnson", "adain", "evaluate", "multi", "evaluate-multi"),
                        default="all")
    parser.add_argument("--runs", default=None,
                        help="where the runs go [default: benchmarks/results/runs/style-fast; --smoke: a temp folder]")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and 2 steps; records nothing")
    args = parser.parse_args(argv)
    train_threads = args.train_threads or args.threads
    torch.set_num_threads(train_threads)
    data = Path(args.data_root)
    paintings, photos = data / "style-images" / "style", data / "style-images" / "content"
    style_path, held_path, content_path = paintings / args.style, paintings / args.hold_out, photos / args.content
    runs = Path(args.runs or (tempfile.mkdtemp() if args.smoke else "benchmarks/results/runs/style-fast"))
    patch, batch = (32, 2) if args.smoke else (args.patch, args.batch)
    j_steps, a_steps = (2, 2) if args.smoke else (args.johnson_steps, args.adain_steps)
    size, loss_size = (128, 64) if args.smoke else (args.size, args.loss_size)
    common = [f"data.name=folder:{data / 'sr-train'}", f"train.out_dir={runs}", "tensorboard=false",
              f"data.patch_size={patch}", f"batch_size={batch}", "sample_every=0"]
    if args.smoke:
        common.append("data.limit=4")
    if args.schedule:
        common.append(f"objective.schedule={args.schedule}")

    if args.phase in ("all", "johnson"):
        harness.train("style", progress=not args.smoke, overwrite=True, overrides=[
            *common, f"style={style_path}", f"steps={j_steps}", f"max_minutes={args.minutes}", "train.name=johnson",
            f"objective.style_scale={args.style_scale}"])
    if args.phase == "multi":  # one network for every painting (conditional instance norm)
        names = [f"{stem}.jpg" for stem in args.multi_styles.split(",")]
        harness.train("style", progress=not args.smoke, overwrite=True, overrides=[
            *common, f"styles=[{','.join(str(paintings / n) for n in names)}]", f"steps={2 if args.smoke else args.multi_steps}",
            f"max_minutes={args.multi_minutes}", "train.name=johnson-paintings", f"objective.style_scale={args.style_scale}"])
        return
    if args.phase == "evaluate-multi":
        evaluate_multi(args, runs, paintings, photos)
        return
    if args.phase in ("all", "adain"):
        harness.train("adain", progress=not args.smoke, overwrite=True, overrides=[
            *common, f"style_data=folder:{paintings}", f"hold_out={held_path.name}", f"steps={a_steps}",
            f"max_minutes={args.adain_minutes}", "train.name=adain", f"styles.resize={64 if args.smoke else args.styles_resize}"])
    if args.phase not in ("all", "evaluate"):
        return
    torch.set_num_threads(args.threads)
    johnson_dir, adain_dir = runs / "johnson", runs / "adain"

    j_model, a_model = load_style_model(str(johnson_dir)), load_style_model(str(adain_dir))
    content_full = gio.load_image_tensor(content_path, channels=3)[None]  # (1, 3, H, W)
    square = resize(content_full, (size, size))  # the speed test's 1024x1024 input (aspect not kept: speed only)
    held = gio.load_image_tensor(held_path, channels=3)[None]
    held_small = resize(held, area_size(*held.shape[-2:], size * size))
    j_speed = speed(j_model, square, (), args.repeats, peer_with_weights(j_model))
    a_speed = speed(a_model, square, [held_small], args.repeats, None)

    content = resize(content_full, area_size(*content_full.shape[-2:], loss_size * loss_size))
    style_img = gio.load_image_tensor(style_path, channels=3)[None]
    steps = "2" if args.smoke else args.optimize_steps
    opt_style = pipeline.transfer(content, [style_img], size=None, steps=int(steps)).image
    opt_held = pipeline.transfer(content, [held], size=None, steps=int(steps)).image
    j_quality = relative_losses(run(j_model, content).image, opt_style, content, style_img)
    a_quality = relative_losses(run(a_model, content, [held]).image, opt_held, content, held)
    a_seen = relative_losses(run(a_model, content, [style_img]).image, opt_style, content, style_img)
    print(f"johnson: {j_speed}\n  {j_quality}\nadain (held-out {held_path.name}): {a_speed}\n  {a_quality}\n"
          f"adain (seen {style_path.name}): {a_seen}")
    if args.smoke:
        print("smoke run: nothing recorded")
        return
    j_steps_done, j_train_s = harness.run_summary(johnson_dir)
    a_steps_done, a_train_s = harness.run_summary(adain_dir)
    recipe = (f"johnson width 32, {j_steps_done} steps x {batch} crops of {patch} px, style_scale {args.style_scale}, "
              f"VGG-19 Gram/content losses")
    harness.record("style-fast", f"johnson {args.style} {size}px vs TransformerNet eager", recipe=recipe,
                   wall_s=j_train_s, throughput={**j_speed, "train_minutes": j_train_s / 60,
                                               "train_threads": train_threads, "threads": args.threads},
                   quality=j_quality, notes=f"target <= 1 s at 1024x1024 on 2 cores: "
                                            f"{'met' if j_speed['ours_s'] <= 1 else 'missed'}; losses at {loss_size} px")
    harness.record("style-fast", f"adain held-out {held_path.name} {size}px",
                   recipe=f"adain VGG-19 encoder, {a_steps_done} steps x {batch} crops of {patch} px, "
                          f"styles.resize={args.styles_resize}, hold_out={held_path.name}",
                   wall_s=a_train_s, throughput={**a_speed, "train_minutes": a_train_s / 60,
                                               "train_threads": train_threads, "threads": args.threads},
                   quality={**a_quality, **{f"seen_{k}": v for k, v in a_seen.items()}},
                   notes=f"losses at {loss_size} px relative to --method optimize ({steps} steps per scale)")


if __name__ == "__main__":
    main()
