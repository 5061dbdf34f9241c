"""The SR evaluation protocol on Set5 / Set14 / any folder of HR images.

For every HR image: mod-crop to the scale, LR = MATLAB bicubic down (``make_lr``, 8-bit), run the
upscaler on the LR image (float RGB in [0, 1]), quantise to 8 bits, and score with
:func:`genvision.metrics.image.sr_psnr_ssim` (BT.601 Y, ``scale`` pixels shaved). The bicubic
baseline (``imresize(LR, s)``, 8-bit) is scored alongside. Means are over images (the papers'
convention).

Greyscale HR files (Set14's ``bridge`` in common copies) are scored as one grey channel, which is
what the published tables did: with it, this module reproduces the published bicubic numbers
(Set5 33.66 / 30.39 / 28.42, Set14 30.24 / 27.55 / 26.00 dB at x2 / x3 / x4) to within 0.02 dB.
Models see the grey image replicated to RGB; their output is turned back into grey by BT.601 luma.

Data names: ``sr:Set5``, ``sr:Set14`` (``<data root>/sr-benchmarks/<name>``, data root =
``--data-root`` / $GENVISION_DATA / ~/.cache/genvision/data; the repository's
``../shared/data`` is tried last), or ``folder:PATH``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from ... import io as gio
from ...data.benchmarks import (
    list_benchmark_images,
    load_benchmark_image,
    resolve_image_folder,
)
from ...errors import ConfigError
from ...evaluation import Evaluation, EvaluationRequest
from ...metrics.image import rgb_to_y, sr_psnr_ssim
from ...nn.resize import imresize, make_lr
from .ensemble import SelfEnsemble
from .pipeline import resolve_sr_model, upscale_tensor

# Published bicubic baselines (PSNR dB, SSIM) on the Y channel, as tabulated by EDSR/RCAN.
PUBLISHED_BICUBIC = {
    ("Set5", 2): (33.66, 0.9299), ("Set5", 3): (30.39, 0.8682), ("Set5", 4): (28.42, 0.8104),
    ("Set14", 2): (30.24, 0.8688), ("Set14", 3): (27.55, 0.7742), ("Set14", 4): (26.00, 0.7027),
}

Upscaler = Callable[[torch.Tensor], torch.Tensor]  # float (1, C, h, w) in [0, 1] -> (1, C, s*h, s*w)


def resolve_hr_folder(data: str, data_root: str | None = None) -> tuple[str, Path]:
    """``sr:Set5`` / ``sr:Set14`` / ``folder:PATH`` -> (label, folder)."""
    return resolve_image_folder(data, data_root, what="SR evaluation")


def list_hr_images(folder: Path) -> list[Path]:
    return list_benchmark_images(folder)


def load_hr(path: Path) -> torch.Tensor:
    """uint8 ``(C, H, W)``: C = 1 for greyscale files (scored as grey), else 3 (alpha flattened on white)."""
    return load_benchmark_image(path)


def sharpness(image8: torch.Tensor, shave: int = 0) -> float:
    """Variance of the Laplacian of the BT.601 Y channel (grey as is) of an 8-bit ``(C, H, W)``
    image: a standard no-reference sharpness measure (higher = more high-frequency detail).
    Used to show what adversarial refinement buys (sharper textures) for its PSNR cost."""
    x = image8.to(torch.float64)
    y = rgb_to_y(x / 255.0) if x.shape[0] == 3 else x  # (1, H, W)
    if shave:
        y = y[..., shave:-shave, shave:-shave]
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    lap = torch.nn.functional.conv2d(y[None], kernel.view(1, 1, 3, 3))  # 'valid'
    return float(lap.var())


def bicubic_upscaler(scale: int) -> Upscaler:
    """MATLAB ``imresize(LR, s, 'bicubic')`` on the 8-bit LR image, as the published baselines."""
    def upscale(lr: torch.Tensor) -> torch.Tensor:
        lr8 = lr.mul(255.0).round().clamp(0, 255).to(torch.uint8)
        return imresize(lr8, scale).float() / 255.0

    return upscale


def _crop_box(h: int, w: int, size: int) -> tuple[int, int, int]:
    size = min(size, h, w)
    return (h - size) // 2, (w - size) // 2, size


@torch.no_grad()
def evaluate_upscaler(upscaler: Upscaler, data: str, *, scale: int, data_root: str | None = None,
                      limit: int | None = None, compare_bicubic: bool = True, crops: Path | None = None,
                      crop_size: int = 128, measure_sharpness: bool = False, progress: bool = False) -> dict:
    """Score ``upscaler`` by the protocol; returns means, per-image rows and (optionally) writes
    a crop grid PNG (rows: images; columns: HR | bicubic | model, centre crops).
    ``measure_sharpness`` adds the variance of the Laplacian of Y (model, bicubic, HR)."""
    if scale not in (2, 3, 4):
        raise ConfigError(f"scale must be 2, 3 or 4, got {scale}")
    label, folder = resolve_hr_folder(data, data_root)
    files = list_hr_images(folder)[:limit]
    rows, tiles = [], []
    start = time.perf_counter()
    infer_s = 0.0
    for path in tqdm(files, desc=f"evaluate {label} x{scale}", unit="img", disable=not progress):
        hr8, lr8 = make_lr(load_hr(path), scale)  # (C, H, W) uint8, H, W multiples of scale
        lr = lr8.float().div(255.0)[None]  # (1, C, h, w)
        t0 = time.perf_counter()
        sr = upscaler(lr)[0].float()  # (C, s*h, s*w)
        infer_s += time.perf_counter() - t0
        if sr.shape != hr8.shape:
            raise ConfigError(f"{path.name}: the upscaler returned {tuple(sr.shape)} for LR "
                              f"{tuple(lr.shape[1:])}; expected {tuple(hr8.shape)}")
        sr8 = sr.clamp(0, 1).mul(255).round().to(torch.uint8)
        p, s = sr_psnr_ssim(sr8, hr8, scale)
        row = {"image": path.name, "psnr": p, "ssim": s, "size": list(hr8.shape[-2:])}
        bic8 = None
        if compare_bicubic:
            bic8 = imresize(lr8, scale)  # MATLAB bicubic on 8-bit, as the baseline tables
            row["bicubic_psnr"], row["bicubic_ssim"] = sr_psnr_ssim(bic8, hr8, scale)
        if measure_sharpness:
            row["sharpness"], row["hr_sharpness"] = sharpness(sr8, scale), sharpness(hr8, scale)
            if bic8 is not None:
                row["bicubic_sharpness"] = sharpness(bic8, scale)
        rows.append(row)
        if crops is not None:
            y, x, n = _crop_box(*hr8.shape[-2:], crop_size)
            panel = [hr8, bic8 if bic8 is not None else imresize(lr8, scale), sr8]
            tiles += [t[:, y:y + n, x:x + n].expand(3, -1, -1) for t in panel]
    metrics = {"scale": scale, "images": len(rows),
               "psnr": float(np.mean([r["psnr"] for r in rows])), "ssim": float(np.mean([r["ssim"] for r in rows]))}
    if compare_bicubic:
        metrics["bicubic_psnr"] = float(np.mean([r["bicubic_psnr"] for r in rows]))
        metrics["bicubic_ssim"] = float(np.mean([r["bicubic_ssim"] for r in rows]))
    for key in ("sharpness", "bicubic_sharpness", "hr_sharpness"):
        if rows and key in rows[0]:
            metrics[key] = float(np.mean([r[key] for r in rows]))
    published = PUBLISHED_BICUBIC.get((label.split(":", 1)[-1], scale)) if label.startswith("sr:") else None
    if published:
        metrics["published_bicubic_psnr"], metrics["published_bicubic_ssim"] = published
    metrics["inference_s"] = infer_s
    metrics["wall_s"] = time.perf_counter() - start
    result = {"data": label, "folder": str(folder), "metrics": metrics, "per_image": rows}
    if crops is not None and tiles:
        size = max(t.shape[-1] for t in tiles)
        padded = [torch.nn.functional.pad(t, (0, size - t.shape[-1], 0, size - t.shape[-2])) for t in tiles]
        result["crops"] = str(gio.save_grid(torch.stack(padded), crops, nrow=3,
                                            metadata={"columns": ["HR", "bicubic", "model"], "data": label,
                                                      "scale": scale, "images": [r["image"] for r in rows]}))
    return result


def calibration_inputs(model, card: dict, data: str | None, data_root: str | None, limit: int) -> list[tuple]:
    """LR inputs for int8 calibration (genvision quantize): the first ``limit`` HR images of ``data``
    (default: the model's training folder) made LR by the protocol, each a (1, C, h, w) tensor in [0, 1]."""
    data = data or (card.get("run", {}).get("recipe", {}).get("data", {}) or {}).get("name")
    if not data:
        raise ConfigError("this model does not record its training images: pass --calibrate folder:HR_IMAGES")
    _, folder = resolve_hr_folder(data, data_root)
    files = list_hr_images(folder)[:limit]
    channels = model.config.channels
    samples = []
    for path in files:
        _, lr8 = make_lr(load_hr(path), model.scale)  # (C, h, w) uint8
        lr = lr8.float().div(255.0)[None]  # (1, C, h, w)
        samples.append((lr.expand(-1, channels, -1, -1) if lr.shape[1] != channels else lr,))
    return samples


def _model_upscaler(model, tile: int | None) -> Upscaler:
    return lambda lr: upscale_tensor(model, lr[0], tile=tile)[None]


def evaluate_sr_model(model, card: dict, request: EvaluationRequest) -> Evaluation:
    """The evaluator of image-to-image models: the Set5/Set14 protocol at the model's own scale
    (``request.scale`` must agree with it), single-pass or x8 self-ensembled."""
    net = resolve_sr_model(model, request.scale, self_ensemble=request.self_ensemble)
    crops = request.claim_beside("-crops.png", sidecar=True)
    scale = model.scale
    data = request.data or "sr:Set5"
    trained_on = (card.get("run", {}).get("recipe", {}).get("data", {}) or {}).get("name")
    result = evaluate_upscaler(_model_upscaler(net, request.tile), data, scale=scale, data_root=request.data_root,
                               crops=crops, limit=request.limit, measure_sharpness=True, progress=request.progress)
    metrics = dict(result["metrics"])
    metrics["per_image"] = [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}
                            for r in result["per_image"]]
    notes = ["PSNR/SSIM on BT.601 Y (grey files as grey), scale px shaved, LR by MATLAB bicubic (8-bit)"]
    metrics["self_ensemble"] = isinstance(net, SelfEnsemble)
    if metrics["self_ensemble"]:
        notes.append("x8 self-ensemble (flips/transposes averaged): compare with EDSR+-style rows, not single-pass")
    if trained_on and data == trained_on:
        notes.append("evaluated on the model's own training images (pass --data sr:Set5 for the benchmark)")
    files = {"crops": result["crops"]} if "crops" in result else {}
    return SREvaluation("sr", str(getattr(model, "model_dir", card.get("model"))), result["data"], metrics,
                        notes=notes, files=files)


class SREvaluation(Evaluation):
    def table(self) -> str:  # per-image rows as a table, then the means
        m = self.metrics
        lines = [f"sr model {self.model} on {self.data} (x{m['scale']})",
                 f"  {'image':<16}{'PSNR':>8}{'SSIM':>8}{'bicubic':>10}{'SSIM':>8}"]
        for r in m["per_image"]:
            lines.append(f"  {r['image']:<16}{r['psnr']:>8.2f}{r['ssim']:>8.4f}"
                         f"{r.get('bicubic_psnr', float('nan')):>10.2f}{r.get('bicubic_ssim', float('nan')):>8.4f}")
        lines.append(f"  {'mean':<16}{m['psnr']:>8.2f}{m['ssim']:>8.4f}"
                     f"{m.get('bicubic_psnr', float('nan')):>10.2f}{m.get('bicubic_ssim', float('nan')):>8.4f}")
        if "published_bicubic_psnr" in m:
            lines.append(f"  {'published bic.':<16}{'':>16}{m['published_bicubic_psnr']:>10.2f}"
                         f"{m['published_bicubic_ssim']:>8.4f}")
        lines += [f"  note: {n}" for n in self.notes]
        lines += [f"  wrote {path}" for path in self.files.values()]
        return "\n".join(lines)


__all__ = ["PUBLISHED_BICUBIC", "calibration_inputs", "resolve_hr_folder", "list_hr_images", "load_hr", "evaluate_upscaler", "sharpness",
           "evaluate_sr_model", "bicubic_upscaler", "SREvaluation"]
