"""Image edit ops: the 5-op chain's throughput against the libraries users compare with, the
accuracy of one fused warp against resampling after every op, and classical inpainting.

    python benchmarks/edit_ops.py [--data-root ../shared/data] [--repeats 20]
    python benchmarks/edit_ops.py --part speed|accuracy|parity|inpaint

Speed: rotate 10 deg, centre crop 80%, resize to 512x512, colour jitter (brightness, contrast,
saturation 1.1) and sharpen on a 1024x1024 uint8 RGB photo, one image at a time on the CPU, each
library in its own idiom: albumentations (OpenCV), torchvision.transforms.v2 on uint8 tensors,
Pillow, kornia on float tensors, and genvision's Chain on arrays (one fused warp) and unfused.
Libraries alternate within each round; the best round counts (these machines are noisy).

Accuracy: the same geometry (rotate 10, resize 0.7, rotate -10, then crop) of an analytic,
band-limited texture, against the texture sampled exactly through the composed transform, fused vs
one resampling per op, PSNR, with and without the antialias prefilter.

Inpainting: Set5 + Set14 with a fixed seeded mask set at 10-20% and 30-40% hole area; PSNR/SSIM
inside the hole (bounding box) for Telea and Navier-Stokes (the learned and generative methods
add their rows here when they land).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ROOT, record, render_docs  # noqa: E402

from genvision import io as gio  # noqa: E402
from genvision.apps.edit.inpaint import inpaint_classical  # noqa: E402
from genvision.ops.chain import Chain  # noqa: E402
from genvision.ops.masks import random_mask  # noqa: E402

SIDE, OUT = 1024, 512
ANGLE, CROP, JITTER, SHARPEN = 10.0, 0.8, 1.1, 1.0
GENVISION_OPS = [f"rotate={ANGLE:g}", f"crop=center:{CROP:g}", f"resize={OUT}x{OUT}", f"brightness={JITTER:g}",
                 f"contrast={JITTER:g}", f"saturation={JITTER:g}", f"sharpen={SHARPEN:g}"]


def test_photo(data_root: Path) -> np.ndarray:
    """A real 1024x1024 photo: Set14's largest image, centre-cropped to a square and enlarged (bicubic)."""
    candidates = sorted((data_root / "sr-benchmarks" / "Set14").glob("*.png"))
    best = max(candidates, key=lambda p: np.prod(gio.load_image(p, "RGB").size))
    image = np.asarray(gio.load_image(best, "RGB"))
    side = min(image.shape[:2])
    top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    return cv2.resize(image[top:top + side, left:left + side], (SIDE, SIDE), interpolation=cv2.INTER_CUBIC)


def peers():
    """name -> (prepare(uint8 HWC) -> input, run(input) -> output). Imports here: peers are optional."""
    import albumentations as A
    import kornia
    import torchvision.transforms.v2.functional as TF
    from PIL import Image, ImageEnhance, ImageFilter

    crop = round(SIDE * CROP)
    album = A.Compose([
        A.Rotate(limit=(ANGLE, ANGLE), border_mode=cv2.BORDER_CONSTANT, p=1.0),
        A.CenterCrop(crop, crop, p=1.0), A.Resize(OUT, OUT, p=1.0),
        A.ColorJitter(brightness=(JITTER, JITTER), contrast=(JITTER, JITTER), saturation=(JITTER, JITTER),
                      hue=(0.0, 0.0), p=1.0),
        A.UnsharpMask(blur_limit=(3, 3), sigma_limit=(1.0, 1.0), alpha=(0.5, 0.5), threshold=0, p=1.0)])

    def torchvision_run(x):
        x = TF.rotate(x, ANGLE, interpolation=TF.InterpolationMode.BILINEAR)
        x = TF.center_crop(x, [crop, crop])
        x = TF.resize(x, [OUT, OUT], antialias=True)
        x = TF.adjust_brightness(x, JITTER)
        x = TF.adjust_contrast(x, JITTER)
        x = TF.adjust_saturation(x, JITTER)
        return TF.adjust_sharpness(x, 1.0 + SHARPEN)

    def pillow_run(img):
        img = img.rotate(ANGLE, resample=Image.Resampling.BILINEAR)
        offset = (SIDE - crop) // 2
        img = img.crop((offset, offset, offset + crop, offset + crop)).resize((OUT, OUT), Image.Resampling.BILINEAR)
        for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
            img = enhance(img).enhance(JITTER)
        return img.filter(ImageFilter.UnsharpMask(radius=1, percent=int(100 * SHARPEN), threshold=0))

    def kornia_run(x):
        angle = torch.tensor([ANGLE])
        x = kornia.geometry.transform.rotate(x, angle)
        x = kornia.geometry.transform.center_crop(x, (crop, crop))
        x = kornia.geometry.transform.resize(x, (OUT, OUT), antialias=True)
        x = kornia.enhance.adjust_brightness(x, JITTER - 1.0)  # kornia's brightness is additive
        x = kornia.enhance.adjust_contrast(x, JITTER)
        x = kornia.enhance.adjust_saturation(x, JITTER)
        return kornia.filters.unsharp_mask(x, (5, 5), (1.0, 1.0))

    chain = Chain.parse(GENVISION_OPS)
    return {
        "albumentations": (lambda a: a, lambda a: album(image=a)["image"]),
        "torchvision v2 (uint8)": (lambda a: torch.from_numpy(a).permute(2, 0, 1).contiguous(), torchvision_run),
        "Pillow": (Image.fromarray, pillow_run),
        "kornia (float)": (lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float().div(255), kornia_run),
        "genvision (fused)": (lambda a: a, chain.apply_array),
        "genvision (op by op)": (lambda a: a, chain.apply_array_sequential),
    }


def run_speed(data_root: Path, repeats: int, rounds: int) -> None:
    photo = test_photo(data_root)
    candidates = peers()
    inputs = {name: prepare(photo) for name, (prepare, _) in candidates.items()}
    best = {name: float("inf") for name in candidates}
    start = time.perf_counter()
    with torch.inference_mode():
        for name, (_, run) in candidates.items():  # warm-up: first calls build kernels and tables
            run(inputs[name])
        for _ in range(rounds):
            for name, (_, run) in candidates.items():
                t0 = time.perf_counter()
                for _ in range(repeats):
                    run(inputs[name])
                best[name] = min(best[name], (time.perf_counter() - t0) / repeats)
    megapixels = SIDE * SIDE / 1e6
    throughput = {f"{name} MP/s": megapixels / best[name] for name in candidates}
    fastest_peer = max((n for n in candidates if not n.startswith("genvision")), key=lambda n: throughput[f"{n} MP/s"])
    ratio = throughput["genvision (fused) MP/s"] / throughput[f"{fastest_peer} MP/s"]
    throughput["genvision / fastest peer"] = ratio
    throughput["fused / op by op"] = best["genvision (op by op)"] / best["genvision (fused)"]
    for key, value in throughput.items():
        print(f"{key:32s} {value:8.2f}")
    record("edit-ops-speed", "5-op chain 1024px", wall_s=time.perf_counter() - start, throughput=throughput,
           recipe=f"rotate {ANGLE:g}, centre crop {CROP:g}, resize {OUT}x{OUT}, brightness/contrast/saturation "
                  f"{JITTER:g}, sharpen; 1024x1024 uint8 RGB; one image per call; input MP/s",
           notes=f"best of {rounds} alternating rounds of {repeats} calls; fastest peer: {fastest_peer}; "
                 f"torch threads {torch.get_num_threads()}, cv2 threads {cv2.getNumThreads()}")


def texture(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """An analytic test image in [0, 1] over a 1024-pixel square: oriented gratings of several
    frequencies (up to 0.15 cycles/pixel) under a smooth vignette."""
    u, v = x / SIDE, y / SIDE
    waves = (np.sin(2 * np.pi * (37 * u + 11 * v)) + np.sin(2 * np.pi * (-23 * u + 61 * v))
             + np.sin(2 * np.pi * (120 * u + 90 * v)) + np.sin(2 * np.pi * (-150 * u + 40 * v)))
    return 0.5 + 0.45 * (waves / 4) * np.exp(-((u - 0.5) ** 2 + (v - 0.5) ** 2) * 2)


def render(warp_matrix: np.ndarray | None, size: tuple[int, int]) -> np.ndarray:
    """The texture point-sampled at each pixel centre mapped through ``warp_matrix`` (output ->
    input pixel coords; None = identity): float64 (H, W). The texture is band-limited well below
    the output's Nyquist rate (<= 0.15 cycles per input pixel, <= 0.22 per output pixel after the
    0.7 shrink), so this is exactly what an ideal resampler of the point-sampled input gives."""
    height, width = size
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    if warp_matrix is None:
        return texture(xs, ys)
    m = warp_matrix
    w = m[2, 0] * xs + m[2, 1] * ys + m[2, 2]
    return texture((m[0, 0] * xs + m[0, 1] * ys + m[0, 2]) / w, (m[1, 0] * xs + m[1, 1] * ys + m[1, 2]) / w)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


def run_accuracy() -> None:
    start = time.perf_counter()
    ops = ["rotate=10", "resize=0.7", "rotate=-10", "crop=center:0.6"]
    chain = Chain.parse(ops)
    size, warp = (SIDE, SIDE), None
    for op in chain.ops:  # the composed transform, for the exact render
        step = op.warp(size)
        warp, size = (step if warp is None else warp.then(step)), step.size
    reference = render(warp.matrix, size)
    source = render(None, (SIDE, SIDE)).astype(np.float32)
    quality = {}
    # Without the antialias prefilter the rows measure resampling error alone (the texture needs no
    # antialiasing); with it, both paths blur by the same Gaussian, which the unblurred reference
    # counts as error too.
    for antialias in (False, True):
        for interpolation in ("bilinear", "bicubic", "lanczos"):
            label = f"{interpolation}{' +antialias' if antialias else ''}"
            fused = chain.apply_array(source, interpolation=interpolation, antialias=antialias)
            sequential = chain.apply_array_sequential(source, interpolation=interpolation, antialias=antialias)
            quality[f"{label} fused dB"] = psnr(fused, reference)
            quality[f"{label} op by op dB"] = psnr(sequential, reference)
            print(f"{label}: fused {quality[f'{label} fused dB']:.2f} dB, "
                  f"op by op {quality[f'{label} op by op dB']:.2f} dB")
    record("edit-ops-accuracy", "rotate-resize-rotate-crop", wall_s=time.perf_counter() - start, quality=quality,
           recipe=" ".join(ops) + f" on an analytic band-limited {SIDE}px texture (float32)",
           notes="PSNR against the texture point-sampled through the composed transform (exact)")


def parity_cases(photo: np.ndarray):
    """(op, genvision result, the reference a user would compare with, reference name), uint8 RGB
    (grey for CLAHE). Each pair is meant to be the same operation, parameters translated."""
    import skimage.exposure
    import torchvision.transforms.v2.functional as TF
    from PIL import Image, ImageEnhance, ImageFilter, ImageOps

    from genvision.ops import tone
    from genvision.ops.colour import clahe, hue

    pil = Image.fromarray(photo)
    grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    height, width = photo.shape[:2]

    def chain(*ops, image=photo):
        return Chain.parse(list(ops)).apply_array(image)

    def tv(function, *args):
        return function(torch.from_numpy(photo.copy()).permute(2, 0, 1), *args).permute(1, 2, 0).numpy()

    centre = ((width - 1) / 2, (height - 1) / 2)
    # OpenCV's angle is counter-clockwise for a y-down image, as genvision's
    rotation = cv2.getRotationMatrix2D(centre, 12.0, 1.0)
    yield ("brightness 1.3", tone.brightness(photo, 1.3), np.asarray(ImageEnhance.Brightness(pil).enhance(1.3)),
           "Pillow ImageEnhance")
    yield ("contrast 1.3", tone.contrast(photo, 1.3), np.asarray(ImageEnhance.Contrast(pil).enhance(1.3)),
           "Pillow ImageEnhance")
    yield ("saturation 1.3", tone.saturation(photo, 1.3), np.asarray(ImageEnhance.Color(pil).enhance(1.3)),
           "Pillow ImageEnhance")
    yield "hue +20 deg", hue(photo, 20.0), tv(TF.adjust_hue, 20.0 / 360), "torchvision adjust_hue"
    yield ("gamma 0.8", tone.gamma(photo, 0.8), skimage.exposure.adjust_gamma(photo, 0.8),
           "scikit-image adjust_gamma")
    yield "autocontrast", tone.autocontrast(photo), np.asarray(ImageOps.autocontrast(pil)), "Pillow ImageOps"
    yield "equalize", tone.equalize(photo), np.asarray(ImageOps.equalize(pil)), "Pillow ImageOps"
    yield ("equalize (grey)", tone.equalize(grey), cv2.equalizeHist(grey), "OpenCV equalizeHist")
    yield ("CLAHE clip 2, 8x8 (grey)", clahe(grey, 2.0, 8),
           cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(grey), "OpenCV createCLAHE")
    yield ("blur sigma 2", tone.blur(photo, 2.0),
           cv2.GaussianBlur(photo, (13, 13), 2.0, borderType=cv2.BORDER_REFLECT_101), "OpenCV GaussianBlur")
    yield ("blur sigma 2 (vs Pillow)", tone.blur(photo, 2.0), np.asarray(pil.filter(ImageFilter.GaussianBlur(2))),
           "Pillow GaussianBlur")
    yield ("sharpen 1.5 r2", tone.sharpen(photo, 1.5, 2.0),
           np.asarray(pil.filter(ImageFilter.UnsharpMask(radius=2, percent=150, threshold=0))), "Pillow UnsharpMask")
    yield ("rotate 12 (bilinear)", chain("rotate=12"),
           cv2.warpAffine(photo, rotation, (width, height), flags=cv2.INTER_LINEAR), "OpenCV warpAffine")
    yield ("rotate 12 (bilinear, vs Pillow)", chain("rotate=12"),
           np.asarray(pil.rotate(12.0, resample=Image.Resampling.BILINEAR)), "Pillow rotate")
    yield ("resize 0.5 (area)", chain("resize=0.5"),
           cv2.resize(photo, (width // 2, height // 2), interpolation=cv2.INTER_AREA), "OpenCV INTER_AREA")
    yield ("resize 0.5 (antialiased bilinear, vs Pillow)", chain("resize=0.5"),
           np.asarray(pil.resize((width // 2, height // 2), Image.Resampling.BILINEAR)), "Pillow resize")
    yield ("resize 1.5 (bicubic)", Chain.parse(["resize=1.5"]).apply_array(photo, interpolation="bicubic"),
           cv2.resize(photo, (round(width * 1.5), round(height * 1.5)), interpolation=cv2.INTER_CUBIC),
           "OpenCV INTER_CUBIC")
    yield "flip h + transpose", chain("flip=h", "transpose"), np.ascontiguousarray(photo[:, ::-1].swapaxes(0, 1)), \
        "numpy"
    yield "crop centre 0.5", chain("crop=center:0.5"), photo[height // 4:height // 4 + height // 2,
                                                             width // 4:width // 4 + width // 2], "numpy"


def run_parity(data_root: Path) -> None:
    start = time.perf_counter()
    photo = np.asarray(gio.load_image(data_root / "sr-benchmarks" / "Set14" / "lenna.png", "RGB"))
    quality = {}
    for name, ours, theirs, reference in parity_cases(photo):
        if ours.shape != theirs.shape:
            raise SystemExit(f"{name}: genvision gives {ours.shape}, {reference} {theirs.shape}")
        difference = np.abs(ours.astype(np.int32) - theirs.astype(np.int32))
        border = 8  # edge handling differs by design; report the interior too
        inner = difference[border:-border, border:-border]
        quality[f"{name} vs {reference}: mean"] = float(difference.mean())
        quality[f"{name} vs {reference}: max interior"] = int(inner.max())
        print(f"{name:45s} vs {reference:24s} mean {difference.mean():6.3f}  max {difference.max():3d}  "
              f"max interior {inner.max():3d}  (8-bit levels)")
    record("edit-ops-parity", "Set14 lenna, 8-bit RGB", wall_s=time.perf_counter() - start, quality=quality,
           recipe="each op against the library a user would compare it with; |difference| in 8-bit levels",
           notes=f"'max interior' leaves out an {8}-pixel border, where edge handling differs by design")


def hole_scores(filled: np.ndarray, original: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """PSNR over the hole pixels and SSIM over the hole's bounding box, on BT.601 luma."""
    from skimage.metrics import structural_similarity

    def luma(a):
        return a.astype(np.float64) @ np.array([0.299, 0.587, 0.114]) / 255.0

    f, o = luma(filled), luma(original)
    hole_psnr = float(10 * np.log10(1.0 / np.mean((f[mask] - o[mask]) ** 2)))
    ys, xs = np.nonzero(mask)
    box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    window = max(3, (min(7, int(np.ptp(ys)) + 1, int(np.ptp(xs)) + 1) - 1) // 2 * 2 + 1)  # odd, fits the box
    return hole_psnr, float(structural_similarity(f[box], o[box], data_range=1.0, win_size=window))


def run_inpaint(data_root: Path) -> None:
    start = time.perf_counter()
    files = sorted((data_root / "sr-benchmarks" / "Set5").glob("*.png")) + sorted(
        (data_root / "sr-benchmarks" / "Set14").glob("*.png"))
    quality = {}
    for low, high in ((0.10, 0.20), (0.30, 0.40)):
        scores = {"telea": [], "ns": []}
        for index, path in enumerate(files):
            image = np.asarray(gio.load_image(path, "RGB"))
            mask = random_mask(image.shape[:2], area=(low, high), seed=1000 + index)
            for method in scores:
                scores[method].append(hole_scores(inpaint_classical(image, mask, method), image, mask))
        for method, rows in scores.items():
            label = f"{method} {round(low * 100)}-{round(high * 100)}%"
            quality[f"{label} PSNR"] = float(np.mean([r[0] for r in rows]))
            quality[f"{label} SSIM"] = float(np.mean([r[1] for r in rows]))
            print(f"{label}: PSNR {quality[f'{label} PSNR']:.2f} dB, SSIM {quality[f'{label} SSIM']:.4f}")
    record("inpainting", "classical Set5+Set14", wall_s=time.perf_counter() - start, quality=quality,
           recipe=f"{len(files)} images, random_mask(area, seed=1000+i) strokes and boxes; scores inside the hole",
           notes="PSNR over hole pixels, SSIM over the hole's bounding box, BT.601 luma")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--part", choices=["speed", "accuracy", "parity", "inpaint", "all"], default="all")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    data_root = Path(args.data_root)
    if args.part in ("speed", "all"):
        run_speed(data_root, args.repeats, args.rounds)
    if args.part in ("accuracy", "all"):
        run_accuracy()
    if args.part in ("parity", "all"):
        run_parity(data_root)
    if args.part in ("inpaint", "all"):
        run_inpaint(data_root)
    print(render_docs())


if __name__ == "__main__":
    main()
