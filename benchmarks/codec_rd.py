"""The learned codec's rate-distortion curve on Set5 and Set14 against JPEG and WebP (Pillow).

    python benchmarks/codec_rd.py --models runs/codec-hp-0.0018,runs/codec-hp-0.0035,... [--data-root ../shared/data]

For every image and codec model: the real .gvc file (header and checksum included) gives the bits per
pixel; the decoded PNG gives RGB PSNR and MS-SSIM against the original; encode and decode are timed
(one image at a time, CPU). JPEG (quality 5-95, 4:2:0 as Pillow's default) and WebP (quality 0-100)
are swept per image, and their PSNR / MS-SSIM at the codec's exact rate is read off each image's own
curve by linear interpolation in bpp (no value where the codec's rate is outside the sweep: JPEG cannot
go below ~0.15 bpp on these images). Writes results/codec/, the curves and crops figure
docs/images/codec-rd.png, and prints the table BENCHMARKS quotes.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ROOT, record

from genvision.apps.codec.bitstream import decode_file, encode_file, weights_fingerprint
from genvision.checkpoints import load_with_card

JPEG_QUALITIES = [5, 10, 15, 20, 25, 30, 40, 50, 60, 70, 80, 90, 95]
WEBP_QUALITIES = [0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95]
FIGURE = ROOT / "docs" / "images" / "codec-rd.png"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


class MSSSIM:
    """torchmetrics' MS-SSIM (5 scales, Wang et al. 2003 weights) on uint8 RGB arrays."""

    def __init__(self):
        from torchmetrics.image import MultiScaleStructuralSimilarityIndexMeasure

        self.metric = MultiScaleStructuralSimilarityIndexMeasure(data_range=1.0)

    def __call__(self, a: np.ndarray, b: np.ndarray) -> float:
        ta, tb = (torch.from_numpy(x).permute(2, 0, 1)[None].float() / 255 for x in (a, b))  # (1, 3, H, W)
        self.metric.reset()
        return float(self.metric(ta, tb))


def classic(image: np.ndarray, fmt: str, quality: int) -> tuple[float, np.ndarray, float, float]:
    """(bpp, decoded uint8, encode s, decode s) for Pillow's JPEG or WebP at ``quality``."""
    buffer = io.BytesIO()
    t = time.perf_counter()
    Image.fromarray(image).save(buffer, format=fmt, quality=quality)
    encode_s = time.perf_counter() - t
    data = buffer.getvalue()
    t = time.perf_counter()
    decoded = np.array(Image.open(io.BytesIO(data)).convert("RGB"))
    decode_s = time.perf_counter() - t
    return 8 * len(data) / (image.shape[0] * image.shape[1]), decoded, encode_s, decode_s


def at_rate(curve: list[tuple[float, float]], bpp: float) -> float | None:
    """The value at ``bpp`` on a (bpp, value) curve by linear interpolation; None outside it."""
    rates, values = zip(*sorted(curve), strict=True)
    if not rates[0] <= bpp <= rates[-1]:
        return None
    return float(np.interp(bpp, rates, values))


def codec_point(model, name: str, image: np.ndarray, workdir: Path) -> dict:
    pixels = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255  # (1, 3, H, W)
    t = time.perf_counter()
    data = encode_file(name, weights_fingerprint(model), model.compress(pixels))
    encode_s = time.perf_counter() - t
    path = workdir / "x.gvc"
    path.write_bytes(data)
    t = time.perf_counter()
    decoded = model.decompress(decode_file(path).coded)
    decode_s = time.perf_counter() - t
    decoded = (decoded[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()  # (H, W, 3), as the PNG holds
    return {"bpp": 8 * len(data) / (image.shape[0] * image.shape[1]), "decoded": decoded,
            "encode_s": encode_s, "decode_s": decode_s}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", required=True, help="codec model or run directories, comma-separated")
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--sets", default="Set5,Set14")
    parser.add_argument("--figure", default=str(FIGURE))
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)
    msssim = MSSSIM()
    models = []
    for spec in args.models.split(","):
        model, card = load_with_card(spec, kind="codec")
        lmbda = card.get("run", {}).get("recipe", {}).get("objective", {}).get("lmbda")
        models.append((spec, model.eval(), card["model"], lmbda))
    workdir = Path(args.figure).parent / ".codec-rd-tmp"
    workdir.mkdir(parents=True, exist_ok=True)
    rows, started = [], time.perf_counter()
    for set_name in args.sets.split(","):
        for path in sorted((Path(args.data_root) / "sr-benchmarks" / set_name).glob("*.png")):
            image = np.array(Image.open(path).convert("RGB"))
            entry = {"set": set_name, "image": path.stem, "pixels": image.shape[0] * image.shape[1]}
            for fmt, qualities in (("JPEG", JPEG_QUALITIES), ("WEBP", WEBP_QUALITIES)):
                points = []
                for q in qualities:
                    bpp, decoded, enc, dec = classic(image, fmt, q)
                    points.append({"quality": q, "bpp": bpp, "psnr": psnr(image, decoded),
                                   "msssim": msssim(image, decoded), "encode_s": enc, "decode_s": dec})
                entry[fmt.lower()] = points
            entry["codec"] = []
            for spec, model, name, lmbda in models:
                point = codec_point(model, name, image, workdir)
                decoded = point.pop("decoded")
                point.update(model=spec, lmbda=lmbda, psnr=psnr(image, decoded), msssim=msssim(image, decoded))
                for fmt in ("jpeg", "webp"):
                    for metric in ("psnr", "msssim"):
                        curve = [(p["bpp"], p[metric]) for p in entry[fmt]]
                        point[f"{fmt}_{metric}"] = at_rate(curve, point["bpp"])
                entry["codec"].append(point)
            rows.append(entry)
            print(f"{set_name}/{path.stem}: " + ", ".join(
                f"{p['bpp']:.3f} bpp {p['psnr']:.2f} dB (jpeg {p['jpeg_psnr'] or float('nan'):.2f}, "
                f"webp {p['webp_psnr'] or float('nan'):.2f})" for p in entry["codec"]), flush=True)
    wall = time.perf_counter() - started
    (workdir / "x.gvc").unlink(missing_ok=True)
    workdir.rmdir()
    out = ROOT / "benchmarks" / "results" / "codec" / "rd-points.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1) + "\n")
    summarise(rows, models, wall)
    figure(rows, models, args)


def summarise(rows: list[dict], models, wall: float) -> None:
    """Per codec model and set: mean bpp, PSNR, MS-SSIM, and the mean gap to JPEG / WebP at equal rate."""
    for set_name in sorted({r["set"] for r in rows}, reverse=True) + ["all"]:
        chosen = [r for r in rows if set_name in ("all", r["set"])]
        for i, (spec, _, name, lmbda) in enumerate(models):
            points = [r["codec"][i] for r in chosen]
            quality = {"bpp": float(np.mean([p["bpp"] for p in points])), "psnr": float(np.mean([p["psnr"] for p in points])),
                       "msssim": float(np.mean([p["msssim"] for p in points]))}
            for fmt in ("jpeg", "webp"):
                gaps = [p["psnr"] - p[f"{fmt}_psnr"] for p in points if p[f"{fmt}_psnr"] is not None]
                quality[f"dpsnr_vs_{fmt}"] = float(np.mean(gaps)) if gaps else float("nan")
                quality[f"{fmt}_comparable"] = f"{len(gaps)}/{len(points)}"
            enc = float(np.mean([p["encode_s"] for p in points]))
            dec = float(np.mean([p["decode_s"] for p in points]))
            line = {k: round(v, 4) if isinstance(v, float) else v for k, v in quality.items()}
            print(f"{set_name} {name} lambda {lmbda}: {line} encode {enc:.3f} s decode {dec:.3f} s")
            record("codec", f"{name} lambda {lmbda} on {set_name}", recipe=f"{spec}", wall_s=wall,
                   throughput={"encode_s_per_image": round(enc, 3), "decode_s_per_image": round(dec, 3)},
                   quality=line, notes="dpsnr_vs_X: codec PSNR minus X's PSNR at the same bpp, per image, "
                                       "then averaged over the images where X reaches that rate")


def figure(rows: list[dict], models, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(15, 9))
    for k, metric in enumerate(("psnr", "msssim")):
        ax = fig.add_subplot(2, 3, k + 1)
        for fmt, qualities, style in (("jpeg", JPEG_QUALITIES, "s--"), ("webp", WEBP_QUALITIES, "^--")):
            bpp = [np.mean([r[fmt][j]["bpp"] for r in rows]) for j in range(len(qualities))]
            val = [np.mean([r[fmt][j][metric] for r in rows]) for j in range(len(qualities))]
            ax.plot(bpp, val, style, label=f"{fmt.upper()} (Pillow)")
        bpp = [np.mean([r["codec"][i]["bpp"] for r in rows]) for i in range(len(models))]
        val = [np.mean([r["codec"][i][metric] for r in rows]) for i in range(len(models))]
        ax.plot(bpp, val, "o-", label=f"genvision {models[0][2]}")
        ax.set_xlim(0, 1.2)
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel("RGB PSNR (dB)" if metric == "psnr" else "MS-SSIM")
        ax.set_title(f"Set5 + Set14, mean of {len(rows)} images")
        ax.grid(alpha=0.3)
        ax.legend()
    crop_row(fig, rows, models, args)
    fig.tight_layout()
    fig.savefig(args.figure, dpi=80)
    print(f"wrote {args.figure}")


def crop_row(fig, rows, models, args) -> None:
    """One image at the codec's lowest-but-one rate beside JPEG and WebP at the nearest rate."""
    target = next((r for r in rows if r["image"] == "monarch"), rows[0])
    image = np.array(Image.open(Path(args.data_root) / "sr-benchmarks" / target["set"] / f"{target['image']}.png")
                     .convert("RGB"))
    i = min(1, len(models) - 1)
    _, model, name, _ = models[i]
    point = codec_point(model, name, image, Path(args.figure).parent)
    Path(args.figure).parent.joinpath("x.gvc").unlink(missing_ok=True)
    panels = [("original", image, None)]
    panels.append((f"genvision {point['bpp']:.3f} bpp", point["decoded"], point["bpp"]))
    for fmt, qualities in (("JPEG", JPEG_QUALITIES), ("WEBP", range(101))):
        best = min(qualities, key=lambda q: abs(classic(image, fmt, q)[0] - point["bpp"]))
        bpp, decoded, _, _ = classic(image, fmt, best)
        panels.append((f"{fmt} q{best} {bpp:.3f} bpp", decoded, bpp))
    h, w = image.shape[:2]
    top, left = h // 2 - 96, w // 2 - 96
    for k, (title, pixels, _) in enumerate(panels[1:]):
        ax = fig.add_subplot(2, 3, 4 + k)
        ax.imshow(pixels[top:top + 192, left:left + 192], interpolation="nearest")
        ax.set_title(f"{target['image']}: {title}, {psnr(image, pixels):.2f} dB")
        ax.axis("off")


if __name__ == "__main__":
    main()
