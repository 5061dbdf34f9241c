"""GAN training benchmark: speed of genvision's loop vs a plain PyTorch loop, MFU, and sample quality.

    python benchmarks/train_gan.py --data-root ../shared/data            # everything (~15 min on 2 cores)
    python benchmarks/train_gan.py --data-root ../shared/data --part speed

Speed: images/s of the default MNIST recipe (DCGAN, batch 64) in a plain fp32 eager loop -- the
textbook DCGAN loop of the PyTorch examples: BCE on logits, contiguous tensors, default Adam,
the D-step fakes reused for the G step -- against genvision's Trainer running the same model on
the same batches (channels_last, fused Adam, no D weight-gradients in the G step, EMA and
logging included; bf16 where the machine runs it faster; with and without torch.compile).
Rounds alternate between the two loops so machine noise hits both. MFU counts the FLOPs of
one step with torch.utils.flop_counter and divides by the fp32 matmul peak measured in the
same run. Quality: sample grids after one epoch and after 10 minutes of full-MNIST training.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import RESULTS, ROOT, record, render_docs, train  # noqa: E402

from genvision import io as gio  # noqa: E402
from genvision.apps.gan.objective import GANObjective, GANObjectiveConfig  # noqa: E402
from genvision.checkpoints import load_pretrained  # noqa: E402
from genvision.data import load_dataset  # noqa: E402
from genvision.registry import create_model  # noqa: E402
from genvision.sampling import generate  # noqa: E402
from genvision.training.batches import batch_stream  # noqa: E402
from genvision.training.objective import DataInfo, StepContext  # noqa: E402

RUNS = RESULTS / "runs"
BATCH = 64


def plain_loop_images_per_s(dataset, steps: int, warmup: int) -> float:
    """The reference: a plain fp32 eager DCGAN loop over the same model and batches."""
    torch.manual_seed(0)
    model = create_model("dcgan", {"image_size": 28, "channels": 1})
    G, D = model.generator, model.discriminator
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    batches = batch_stream(dataset, BATCH, seed=0, start_step=0)
    ones, zeros = torch.ones(BATCH), torch.zeros(BATCH)
    start = 0.0
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        real, _ = next(batches)
        fake = G(torch.randn(BATCH, 100))
        opt_d.zero_grad()
        loss_d = (F.binary_cross_entropy_with_logits(D(real), ones)
                  + F.binary_cross_entropy_with_logits(D(fake.detach()), zeros))
        loss_d.backward()
        opt_d.step()
        opt_g.zero_grad()
        loss_g = F.binary_cross_entropy_with_logits(D(fake), ones)
        loss_g.backward()
        opt_g.step()
    return steps * BATCH / (time.perf_counter() - start)


def genvision_images_per_s(data_root: str, steps: int, compile_model: bool, tag: str) -> float:
    """Steady-state images/s of the real Trainer: the second logging window of 2 x steps."""
    name = f"speed-{tag}"
    shutil.rmtree(RUNS / name, ignore_errors=True)
    train("gan", overrides=["data.name=mnist", f"data.root={data_root}", f"train.out_dir={RUNS}",
                            f"train.name={name}", f"train.steps={2 * steps}", f"train.log_every={steps}",
                            "train.sample_every=0", f"train.ckpt_every={10 * steps}", "train.tensorboard=false",
                            f"train.compile={str(compile_model).lower()}"], progress=False)
    rows = [json.loads(line) for line in (RUNS / name / "metrics.jsonl").read_text().splitlines()]
    shutil.rmtree(RUNS / name, ignore_errors=True)
    return rows[-1]["images_per_s"]


def matmul_peak_gflops(dtype=torch.float32, n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


def flops_per_step() -> float:
    from torch.utils.flop_counter import FlopCounterMode

    model = create_model("dcgan", {"image_size": 28, "channels": 1}).to(memory_format=torch.channels_last)
    objective = GANObjective(model, GANObjectiveConfig(), DataInfo(1, 28, 10))
    ctx = StepContext(step=0, device=torch.device("cpu"), precision="fp32", grad_clip=None,
                      optimizers=objective.optimizers())
    batch = (torch.rand(BATCH, 1, 28, 28) * 2 - 1, torch.zeros(BATCH, dtype=torch.long))
    with FlopCounterMode(display=False) as counter:
        objective.train_step(batch, ctx)
    return counter.get_total_flops()


def run_speed(data_root: str, steps: int, rounds: int, name: str = "dcgan-mnist-b64") -> None:
    dataset = load_dataset("mnist", root=data_root, download=False)
    t0 = time.perf_counter()
    results = {"plain": [], "genvision": [], "genvision+compile": []}
    for _ in range(rounds):  # alternate so drifts in machine load hit every loop alike
        results["plain"].append(plain_loop_images_per_s(dataset, steps, warmup=10))
        results["genvision"].append(genvision_images_per_s(data_root, steps, False, "eager"))
        results["genvision+compile"].append(genvision_images_per_s(data_root, steps, True, "compile"))
    best = {k: max(v) for k, v in results.items()}
    peak = matmul_peak_gflops()
    peak_bf16 = matmul_peak_gflops(torch.bfloat16)
    flops = flops_per_step()
    ours = max(best["genvision"], best["genvision+compile"])
    throughput = {
        "plain img/s": best["plain"], "genvision img/s": best["genvision"],
        "genvision+compile img/s": best["genvision+compile"], "speed-up": ours / best["plain"],
        "GFLOP/step": flops / 1e9, "achieved GFLOP/s": flops / 1e9 * ours / BATCH,
        "fp32 matmul peak GFLOP/s": peak, "bf16 matmul peak GFLOP/s": peak_bf16,
        "MFU (fp32 peak)": flops / 1e9 * ours / BATCH / peak,
    }
    record("gan-training-speed", name, recipe="gan default (DCGAN w64, 28px, batch 64)",
           wall_s=time.perf_counter() - t0, throughput=throughput,
           notes=f"best of {rounds} alternating rounds of {steps} steps; all rounds: {json.dumps(results)}")
    print(json.dumps(throughput, indent=2))


def sample_grid(run_dir: Path, out_name: str) -> Path:
    model = load_pretrained(run_dir, kind="gan")
    return gio.save_grid(generate(model, 100, seed=0), ROOT / "docs" / "images" / out_name, nrow=10,
                         metadata={"model": str(run_dir), "seed": 0})


def run_quality(data_root: str, minutes: float) -> None:
    steps_per_epoch = 60000 // BATCH
    for name, overrides in [
        ("gan-mnist-1epoch", [f"train.steps={steps_per_epoch}"]),
        (f"gan-mnist-{minutes:g}min", ["train.steps=1000000", f"train.max_minutes={minutes}"]),
    ]:
        shutil.rmtree(RUNS / name, ignore_errors=True)
        t0 = time.perf_counter()
        result = train("gan", overrides=["data.name=mnist", f"data.root={data_root}", f"train.out_dir={RUNS}",
                                         f"train.name={name}", "train.sample_every=0", "train.ckpt_every=2000",
                                         "train.tensorboard=false", *overrides], progress=False)
        wall = time.perf_counter() - t0
        grid = sample_grid(result.run_dir, f"{name}.png")
        record("gan-training-quality", name, recipe="gan default (DCGAN w64, non-saturating, EMA)", wall_s=wall,
               throughput={"steps": result.step, "epochs": result.step / steps_per_epoch,
                           "img/s": result.last_metrics.get("images_per_s", 0.0)},
               notes=f"grid: docs/images/{grid.name}; run dir kept in {result.run_dir}")
        print(name, result.step, "steps", f"{wall:.0f} s", grid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--part", choices=["speed", "quality", "all"], default="all")
    parser.add_argument("--steps", type=int, default=100, help="timed steps per speed round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--name", default="dcgan-mnist-b64", help="result row name of the speed part")
    args = parser.parse_args()
    if args.part in ("speed", "all"):
        run_speed(args.data_root, args.steps, args.rounds, args.name)
    if args.part in ("quality", "all"):
        run_quality(args.data_root, args.minutes)
    print(render_docs())


if __name__ == "__main__":
    main()
