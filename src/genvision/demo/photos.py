"""Photo work from the zoo on the bundled photos: super-resolution with close-up crops, an editing chain,
denoising and inpainting, each scored where a reference exists."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from .. import io as gio
from ..apps.denoise.pipeline import denoise
from ..apps.edit.commands import build_chain, edit_image
from ..apps.edit.imagefile import read_editable
from ..apps.edit.inpaint import inpaint_classical
from ..apps.edit.learned import fill_net
from ..apps.sr.pipeline import upscale
from ..metrics.image import psnr, sr_psnr_ssim
from .panel import DemoContext, commands, figure, paragraph, table

SCALE = 3
NOISE_SIGMA = 25  # on the 0-255 scale, the middle of DnCnn's blind range
HOLE = (150, 70, 110, 80)  # x, y, w, h on the 384x288 dog photo: the bicycle and porch rail above the dog


def _unit(path) -> torch.Tensor:
    return gio.load_image_tensor(path, channels=3)  # (3, H, W) in [0, 1]


def _crop_strip(images: list[torch.Tensor], box: tuple[int, int, int, int], zoom: int = 3) -> torch.Tensor:
    """The same box of each (3, H, W) image, enlarged with nearest neighbours and laid side by side."""
    x, y, w, h = box
    gap = torch.ones(3, h * zoom, 4)
    tiles = []
    for image in images:
        crop = image[:, y:y + h, x:x + w].clamp(0, 1)  # (3, h, w)
        tiles += [crop.repeat_interleave(zoom, 1).repeat_interleave(zoom, 2), gap]
    return torch.cat(tiles[:-1], dim=2)  # (3, h * zoom, sum of widths)


def super_resolution(ctx: DemoContext) -> str:
    hr = _unit(ctx.photo("dog.jpg"))  # (3, 288, 384)
    height, width = hr.shape[-2] // SCALE * SCALE, hr.shape[-1] // SCALE * SCALE
    hr = hr[:, :height, :width]
    low = gio.tensor_to_pil(hr, (0, 1)).resize((width // SCALE, height // SCALE), Image.BICUBIC)
    ctx.save(low, "sr-input.png", source="assets/demo/dog.jpg", downscale=SCALE)
    low_unit = gio.load_image_tensor(ctx.out / "sr-input.png", channels=3)
    rows, outputs = [], {}
    for name in ("bicubic", "zoo:espcn-x3", "zoo:edsr-x3"):
        out = upscale(name, low_unit, scale=SCALE).clamp(0, 1)  # (3, H, W)
        outputs[name] = out
        y_psnr, y_ssim = sr_psnr_ssim(out, hr, SCALE)
        rows.append((name, y_psnr, y_ssim))
    ctx.record("super_resolution", y_psnr={name: value for name, value, _ in rows})
    saved = ctx.save(outputs["zoo:edsr-x3"], "sr-edsr-x3.png", model="zoo:edsr-x3", source="sr-input.png")
    strip = ctx.save(_crop_strip([outputs["bicubic"], outputs["zoo:espcn-x3"], outputs["zoo:edsr-x3"], hr],
                                 (120, 60, 96, 80)), "sr-crops.png", box=[120, 60, 96, 80], zoom=3)
    return (paragraph(f"The photo shrunk {SCALE}x with bicubic, then brought back by each method; PSNR/SSIM on "
                      f"the luma channel against the original (the SR benchmarks' protocol).")
            + figure("sr-input.png", f"input {width // SCALE}x{height // SCALE}", width // SCALE)
            + figure(saved, f"zoo:edsr-x3 output {width}x{height}", width)
            + figure(strip, "crops at 3x: bicubic | zoo:espcn-x3 | zoo:edsr-x3 | original", 860, pixelated=True)
            + table(rows, ("method", "Y-PSNR dB", "Y-SSIM"))
            + commands("genvision upscale sr-input.png --model zoo:edsr-x3 -o sr-edsr-x3.png",
                       "genvision upscale sr-input.png --model bicubic --scale 3 -o sr-bicubic.png"))


EDIT_OPS = ("crop=aspect:4:3", "rotate=-8", "crop=center:0.86", "auto", "saturation=1.3", "resize=320x")


def editing(ctx: DemoContext) -> str:
    original = ctx.copy_photo("horses.jpg")
    edited = edit_image(build_chain(EDIT_OPS), read_editable(ctx.out / original))
    name = ctx.save(Image.fromarray(edited.pixels), "edit-chain.png", ops=list(EDIT_OPS), source=original)
    ctx.record("editing", size=list(edited.size))
    ops = " ".join(f"--op {op}" for op in EDIT_OPS)
    return (paragraph("One chain of geometric and tone edits, resampled once: straighten by 8 degrees, crop, "
                      "auto-enhance, saturate, resize. The sidecar records the chain; --replay applies it again.")
            + figure(original, "input", 320) + figure(name, "after the chain", 320)
            + commands(f"genvision edit {original} {ops} -o edit-chain.png"))


def denoising(ctx: DemoContext) -> str:
    clean = _unit(ctx.photo("eagle.jpg"))
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(0)) * (NOISE_SIGMA / 255)
    noisy = (clean + noise).clamp(0, 1)
    ctx.save(noisy, "denoise-input.png", sigma=NOISE_SIGMA, seed=0, source="assets/demo/eagle.jpg")
    noisy = gio.load_image_tensor(ctx.out / "denoise-input.png", channels=3)  # as the command reads it
    rows = [("noisy input", psnr(noisy[None], clean[None]))]
    outputs = {}
    for method in ("nlmeans", "zoo:dncnn"):
        outputs[method] = denoise(method, noisy).clamp(0, 1)
        rows.append((method, psnr(outputs[method][None], clean[None])))
    ctx.record("denoising", psnr=dict(rows))
    name = ctx.save(outputs["zoo:dncnn"], "denoise-dncnn.png", model="zoo:dncnn", source="denoise-input.png")
    nl = ctx.save(outputs["nlmeans"], "denoise-nlmeans.png", method="nlmeans", source="denoise-input.png")
    return (paragraph(f"Gaussian noise of sigma {NOISE_SIGMA} (0-255 scale) added to a photo; the blind DnCNN "
                      "is not told the level. RGB PSNR against the clean photo:")
            + figure("denoise-input.png", "noisy", 300) + figure(nl, "nlmeans (OpenCV)", 300)
            + figure(name, "zoo:dncnn", 300) + table(rows, ("", "PSNR dB"))
            + commands("genvision denoise denoise-input.png --model zoo:dncnn -o denoise-dncnn.png",
                       "genvision denoise denoise-input.png --model nlmeans -o denoise-nlmeans.png"))


def inpainting(ctx: DemoContext) -> str:
    source = ctx.copy_photo("dog.jpg")
    pixels = np.array(Image.open(ctx.out / source).convert("RGB"))  # (H, W, 3) uint8
    x, y, w, h = HOLE
    hole = np.zeros(pixels.shape[:2], bool)
    hole[y:y + h, x:x + w] = True
    shown = pixels.copy()
    shown[hole] = 255
    ctx.save(Image.fromarray(shown), "inpaint-input.png", box=list(HOLE))
    filled = {"telea": inpaint_classical(pixels, hole, "telea"), "zoo:lama-photos": fill_net(pixels, hole,
                                                                                             model="zoo:lama-photos")}
    reference = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255  # (3, H, W)
    rows, names = [], {}
    for method, array in filled.items():
        names[method] = ctx.save(Image.fromarray(array), f"inpaint-{method.replace('zoo:', '')}.png", method=method,
                                 box=list(HOLE))
        result = torch.from_numpy(array).permute(2, 0, 1).float() / 255  # (3, H, W)
        rows.append((method, psnr(result[None, :, y:y + h, x:x + w], reference[None, :, y:y + h, x:x + w])))
    ctx.record("inpainting", hole_psnr=dict(rows))
    return (paragraph("A box over the bicycle and the porch rail removed and filled from its surroundings; PSNR "
                      "inside the hole against the real pixels (a low bar: any plausible fill differs from the truth).")
            + figure("inpaint-input.png", "hole", 300)
            + "".join(figure(n, m, 300) for m, n in names.items()) + table(rows, ("method", "hole PSNR dB"))
            + commands(f"genvision inpaint {source} --box {x},{y},{w},{h} --method net "
                       f"--model zoo:lama-photos -o inpaint-lama-photos.png",
                       f"genvision inpaint {source} --box {x},{y},{w},{h} --method telea "
                       f"-o inpaint-telea.png"))
