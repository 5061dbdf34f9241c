"""GPU readiness check: each family trains a few hundred steps on one GPU; images/s, MFU, peak memory.

    python benchmarks/gpu_check.py                      # one CUDA GPU, <= 8 minutes; writes gpu-check rows
    python benchmarks/gpu_check.py --device cpu --steps 4 --no-record   # a smoke run of the script itself

Everything it needs ships with genvision (mnist-mini; the demo photos for super-resolution), so it runs
on a bare GPU machine with no dataset or network. Per family (GAN, VAE, DiT, ViT classifier, EDSR) it
runs ``genvision.workflows.train.train`` with the recipe's device precision (bf16 autocast on GPUs),
channels_last and the fused optimizers, and reads images/s from the run's own metrics (the last logged
window, after warm-up). FLOPs per training step are counted once by ``torch.utils.flop_counter`` over
one real ``train_step`` (forward and backward of every network the objective runs), and MFU = achieved
FLOP/s / the bf16 matmul peak measured here (8192^3 matmuls), not a datasheet number. ``--compile``
repeats the DiT run with ``train.compile=true`` to decide by measurement whether compiling pays off.
Rows land in ``benchmarks/results/gpu-check/``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ROOT, record, render_docs  # noqa: E402

from genvision.config import load_recipe  # noqa: E402
from genvision.data import dataset_from_config  # noqa: E402
from genvision.runtime import resolve_precision  # noqa: E402
from genvision.training.objective import StepContext  # noqa: E402
from genvision.workflows.train import data_info, get_family, train  # noqa: E402

PHOTOS = ROOT / "src" / "genvision" / "assets" / "demo"
# family -> (config file or None, overrides, batch size)
FAMILIES = {
    "gan": (None, ["data.name=mnist-mini", "model.width=64"], 256),
    "vae": ("configs/vae-mnist.yaml", ["data.name=mnist-mini"], 256),
    "dit": ("configs/dit-mnist.yaml", ["data.name=mnist-mini"], 256),
    "classifier": ("configs/vit-mnist.yaml", ["data.name=mnist-mini"], 256),
    "sr": ("configs/sr-edsr.yaml", [f"data.name=folder:{PHOTOS}", "scale=3", "model.scale=3"], 32),
}


def matmul_peak(device: torch.device, dtype=torch.bfloat16, n: int = 8192, repeats: int = 20) -> float:
    """Measured dense matmul FLOP/s in ``dtype`` (the MFU denominator)."""
    if device.type != "cuda":
        n, repeats, dtype = 1024, 3, torch.float32
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _sync(device)
    return 2 * n**3 * repeats / (time.perf_counter() - t0)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def flops_per_step(family_name: str, config: str | None, overrides: list[str], device: torch.device) -> float:
    """FLOPs of one real training step (every forward and backward the objective runs)."""
    family = get_family(family_name)
    recipe = load_recipe(family.recipe_cls, ROOT / config if config else None, overrides)
    dataset = family.build_dataset(recipe) if family.build_dataset else dataset_from_config(recipe.data)
    model, objective = family.build(recipe, data_info(dataset))
    model.to(device)
    images, labels = next(iter(torch.utils.data.DataLoader(dataset, batch_size=recipe.train.batch_size,
                                                            shuffle=False)))
    ctx = StepContext(step=0, device=device, precision=resolve_precision(recipe.train.precision, device),
                      grad_clip=None, optimizers=objective.optimizers())
    counter = FlopCounterMode(display=False)
    with counter:
        objective.train_step((images.to(device), labels.to(device)), ctx)
    return float(counter.get_total_flops())


def check(family_name: str, steps: int, device: torch.device, out: Path, peak: float, extra: list[str],
          label: str, save: bool) -> None:
    config, overrides, batch = FAMILIES[family_name]
    overrides = [*overrides, f"train.batch_size={batch}", f"train.device={device}", f"train.steps={steps}",
                 f"train.log_every={max(1, steps // 4)}", "train.sample_every=0", "train.tensorboard=false",
                 f"train.ckpt_every={steps}", f"train.out_dir={out}",
                 f"train.name={re.sub(r'[^A-Za-z0-9._-]+', '-', label)}", *extra]
    flops = flops_per_step(family_name, config, overrides, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    result = train(family_name, config_file=ROOT / config if config else None, overrides=overrides, progress=False)
    wall = time.perf_counter() - t0
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in rows if "steps_per_s" in r][-1]
    achieved = flops * last["steps_per_s"]
    memory = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0
    line = {"img/s": last["images_per_s"], "steps/s": last["steps_per_s"], "GFLOP/step": flops / 1e9,
            "achieved TFLOP/s": achieved / 1e12, "MFU": achieved / peak, "peak GiB": memory}
    print(label, {k: round(v, 4) for k, v in line.items()}, f"{wall:.0f} s", flush=True)
    if save:
        record("gpu-check", label, recipe=f"{family_name} {config or 'defaults'} batch {batch}, {steps} steps, "
               f"{' '.join(extra) or 'recipe defaults'}", wall_s=wall, throughput=line,
               notes=f"MFU against the measured bf16 matmul peak {peak / 1e12:.0f} TFLOP/s; {device}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--compile", action="store_true", help="also DiT with train.compile=true")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: this check is for a GPU machine (use --device cpu to smoke-test it)")
    out = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    try:
        peak = matmul_peak(device)
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        print(f"{name}: measured matmul peak {peak / 1e12:.1f} TFLOP/s", flush=True)
        for family in args.families:
            check(family, args.steps, device, out, peak, [], f"{family} on {name}", not args.no_record)
        if args.compile:
            check("dit", args.steps, device, out, peak, ["train.compile=true"], f"dit compiled on {name}",
                  not args.no_record)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    if not args.no_record:
        print(render_docs())


if __name__ == "__main__":
    main()
