"""Denoising evaluation: additive white Gaussian noise of a known sigma on benchmark images.

The protocol of the published grey-denoising tables (DnCNN, FFDNet, DRUNet): each clean image is
converted to 8-bit greyscale (BT.601 luma; RGB for a 3-channel model, as the colour tables),
``noisy = clean / 255 + sigma / 255 * N(0, 1)`` in floating point (neither clipped nor
quantised), the denoiser's output is clamped and quantised to 8 bits, and PSNR / SSIM are
measured against the clean 8-bit image over the whole image (no border shaved; SSIM with the
standard 11x11 Gaussian window, per channel). Means are over images.

The noise of image ``i`` comes from its own generator seeded with ``derive_seed(seed, i)``
(``--seed``, default 0), so numbers are reproducible and every method compared on a run sees
the same noisy images. Beside the model: the noisy input's own PSNR (``20 log10(255 / sigma)``
up to sampling, 20.17 dB at sigma 25) and OpenCV's non-local means on the same noisy images
(:class:`genvision.models.denoise.NLMeans`, which needs 8-bit input: the noisy image is clipped
and quantised for it). Conditioned models are given the true sigma (the non-blind protocol).

Data names: ``sr:Set5``, ``sr:Set14`` or ``folder:PATH`` (see :mod:`genvision.data.benchmarks`).
Published numbers are on Set12 / BSD68, which are not shipped: compare methods measured here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ... import io as gio
from ...config import check_range
from ...data.benchmarks import (
    list_benchmark_images,
    load_benchmark_image,
    resolve_image_folder,
)
from ...errors import ConfigError
from ...evaluation import Evaluation, EvaluationRequest
from ...metrics.image import psnr, ssim
from ...models.denoise import nlmeans_model
from ...runtime import check_seed, derive_seed
from .pipeline import check_sigma, denoise_tensor, resolve_denoiser

__all__ = [
    "DEFAULT_SIGMA",
    "Denoise",
    "DenoiseEvaluation",
    "evaluate_denoiser",
    "evaluate_denoiser_model",
    "model_denoiser",
    "noisy_images",
]

DEFAULT_SIGMA = 25.0
# float (1, C, H, W) noisy in [0, 1] (unclipped), sigma as a fraction of the range -> (1, C, H, W)
Denoise = Callable[[torch.Tensor, float], torch.Tensor]


def noisy_images(data: str, *, sigma: float, seed: int = 0, channels: int = 1, data_root: str | None = None,
                 limit: int | None = None) -> tuple[str, Path, Iterator[tuple[str, torch.Tensor, torch.Tensor]]]:
    """(label, folder, iterator of ``(name, clean uint8 (C, H, W), noisy float32 (C, H, W))``): the
    protocol's noisy images, the same for every caller with the same ``(data, sigma, seed, channels)``."""
    sigma = check_sigma(sigma)
    if sigma is None:
        raise ConfigError("--sigma is needed to add noise")
    check_seed(seed)
    if channels not in (1, 3):
        raise ConfigError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
    label, folder = resolve_image_folder(data, data_root, what="denoising evaluation")
    files = list_benchmark_images(folder)[:limit]

    def items() -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
        for i, path in enumerate(files):
            clean8 = load_benchmark_image(path, "L" if channels == 1 else "RGB")
            generator = torch.Generator().manual_seed(derive_seed(seed, i))
            noise = torch.randn(clean8.shape, generator=generator, dtype=torch.float32)
            yield path.name, clean8, clean8.float() / 255.0 + noise * (sigma / 255.0)

    return label, folder, items()


def _to8(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0, 1).mul(255.0).round().to(torch.uint8)


def _scores(out8: torch.Tensor, clean8: torch.Tensor) -> tuple[float, float]:
    a, b = out8.to(torch.float64), clean8.to(torch.float64)
    return psnr(a, b, data_range=255.0), ssim(a, b, data_range=255.0)


def _crop_box(h: int, w: int, size: int) -> tuple[int, int, int]:
    size = min(size, h, w)
    return (h - size) // 2, (w - size) // 2, size


@torch.no_grad()
def evaluate_denoiser(denoiser: Denoise, data: str, *, sigma: float, seed: int = 0, channels: int = 1,
                      data_root: str | None = None, limit: int | None = None, compare_nlmeans: bool = True,
                      crops: Path | None = None, crop_size: int = 128, progress: bool = False) -> dict:
    """Score ``denoiser`` by the protocol at noise level ``sigma`` (8-bit levels); returns means,
    per-image rows and (optionally) writes a crop grid PNG (rows: images; columns: clean | noisy |
    NL-means | model, centre crops)."""
    label, folder, items = noisy_images(data, sigma=sigma, seed=seed, channels=channels, data_root=data_root,
                                        limit=limit)
    level = sigma / 255.0
    nlm = nlmeans_model(channels) if compare_nlmeans else None
    rows, tiles = [], []
    start = time.perf_counter()
    infer_s = nlm_s = 0.0
    for name, clean8, noisy in tqdm(items, desc=f"evaluate {label} sigma {sigma:g}", unit="img",
                                    disable=not progress):
        t0 = time.perf_counter()
        out = denoiser(noisy[None], level)[0].float()
        infer_s += time.perf_counter() - t0
        if out.shape != clean8.shape:
            raise ConfigError(f"{name}: the denoiser returned {tuple(out.shape)} for {tuple(noisy.shape)}")
        out8 = _to8(out)
        p, s = _scores(out8, clean8)
        row = {"image": name, "psnr": p, "ssim": s, "size": list(clean8.shape[-2:]),
               "noisy_psnr": psnr(noisy.double() * 255.0, clean8.double(), data_range=255.0),
               "noisy_ssim": ssim(_to8(noisy).double(), clean8.double(), data_range=255.0)}
        nlm8 = None
        if nlm is not None:
            t0 = time.perf_counter()
            nlm8 = _to8(nlm(noisy[None], level)[0])
            nlm_s += time.perf_counter() - t0
            row["nlmeans_psnr"], row["nlmeans_ssim"] = _scores(nlm8, clean8)
        rows.append(row)
        if crops is not None:
            y, x, n = _crop_box(*clean8.shape[-2:], crop_size)
            panel = [clean8, _to8(noisy), nlm8 if nlm8 is not None else _to8(noisy), out8]
            tiles += [t[:, y:y + n, x:x + n].expand(3, -1, -1) for t in panel]
    metrics: dict = {"sigma": sigma, "seed": seed, "channels": channels, "images": len(rows)}
    for key in ("psnr", "ssim", "noisy_psnr", "noisy_ssim", "nlmeans_psnr", "nlmeans_ssim"):
        if rows and key in rows[0]:
            metrics[key] = float(np.mean([r[key] for r in rows]))
    metrics["inference_s"] = infer_s
    if nlm is not None:
        metrics["nlmeans_s"] = nlm_s
    metrics["wall_s"] = time.perf_counter() - start
    result = {"data": label, "folder": str(folder), "metrics": metrics, "per_image": rows}
    if crops is not None and tiles:
        size = max(t.shape[-1] for t in tiles)
        padded = [torch.nn.functional.pad(t, (0, size - t.shape[-1], 0, size - t.shape[-2])) for t in tiles]
        result["crops"] = str(gio.save_grid(torch.stack(padded), crops, nrow=4,
                                            metadata={"columns": ["clean", "noisy", "nlmeans", "model"],
                                                      "data": label, "sigma": sigma, "seed": seed,
                                                      "images": [r["image"] for r in rows]}))
    return result


def model_denoiser(model, tile: int | None = None) -> Denoise:
    """A denoiser module as a :data:`Denoise` function (the true sigma for conditioned models)."""
    conditioned = bool(getattr(model, "conditioned", False))
    return lambda noisy, level: denoise_tensor(model, noisy[0], sigma=level * 255.0 if conditioned else None,
                                               tile=tile)[None]


def evaluate_denoiser_model(model, card: dict, request: EvaluationRequest) -> Evaluation:
    """The evaluator of denoising models: PSNR/SSIM at ``request.sigma`` (default 25) beside NL-means."""
    net = resolve_denoiser(model)
    sigma = DEFAULT_SIGMA if request.sigma is None else request.sigma
    check_range("--sigma", sigma, 0.0, 255.0, low_open=True)
    channels = 3 if getattr(net.config, "channels", 1) == 3 else 1
    crops = request.claim_beside("-crops.png", sidecar=True)
    data = request.data or "sr:Set5"
    trained_on = (card.get("run", {}).get("recipe", {}).get("data", {}) or {}).get("name")
    result = evaluate_denoiser(model_denoiser(net, request.tile), data, sigma=sigma, seed=request.seed,
                               channels=channels, data_root=request.data_root, limit=request.limit, crops=crops,
                               compare_nlmeans=getattr(net, "registry_name", "") != "nlmeans",
                               progress=request.progress)
    metrics = dict(result["metrics"])
    metrics["per_image"] = [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}
                            for r in result["per_image"]]
    notes = [(f"{'grey (BT.601)' if channels == 1 else 'RGB'} images plus Gaussian noise of sigma {sigma:g}/255 "
              f"(seed {request.seed}, unclipped); outputs quantised to 8 bits; PSNR/SSIM over the whole image")]
    if getattr(net, "conditioned", False):
        notes.append("the model was given the true sigma (non-blind)")
    if "nlmeans_psnr" in metrics:
        notes.append("nlmeans: OpenCV fastNlMeansDenoising(Colored) on the clipped 8-bit noisy image, h = sigma "
                     "(grey) or 0.6 sigma (colour)")
    if trained_on and data == trained_on:
        notes.append("evaluated on the model's own training images (pass --data sr:Set5 for the benchmark)")
    files = {"crops": result["crops"]} if "crops" in result else {}
    return DenoiseEvaluation("denoise", str(getattr(model, "model_dir", card.get("model"))), result["data"], metrics,
                             notes=notes, files=files)


class DenoiseEvaluation(Evaluation):
    def table(self) -> str:  # per-image rows as a table, then the means
        m = self.metrics
        nan = float("nan")
        lines = [f"denoise model {self.model} on {self.data} (sigma {m['sigma']:g}, seed {m['seed']})",
                 f"  {'image':<16}{'noisy':>8}{'PSNR':>8}{'SSIM':>8}{'NLM':>8}{'SSIM':>8}"]
        for r in [*m["per_image"], {"image": "mean", **m}]:
            lines.append(f"  {r['image']:<16}{r['noisy_psnr']:>8.2f}{r['psnr']:>8.2f}{r['ssim']:>8.4f}"
                         f"{r.get('nlmeans_psnr', nan):>8.2f}{r.get('nlmeans_ssim', nan):>8.4f}")
        lines += [f"  note: {n}" for n in self.notes]
        lines += [f"  wrote {path}" for path in self.files.values()]
        return "\n".join(lines)
