"""Samples per second of every zoo generator at the sampling setting its quality row was measured with.

    python benchmarks/generator_speed.py                 # 2,000 images per model, batches of 500
    python benchmarks/generator_speed.py --n 200         # a quick look

Each model draws --n images through ``genvision.sampling.generate`` (seeded latents, labels cycling
through the classes for conditional models), after one warm-up batch; the rows say which setting
and which FID row it belongs to. The models run one after another in one process, so the ratios
between them are measured under the same machine load.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import record, render_docs  # noqa: E402

from genvision.checkpoints import load_pretrained  # noqa: E402
from genvision.sampling import generate  # noqa: E402
from genvision.zoo import entries  # noqa: E402

# zoo name -> (sampling options, the quality row they go with)
SETTINGS: dict[str, tuple[dict, str]] = {
    "dcgan-mnist": ({}, "gan-recipes: cond-r1-ms0.1 @ 10 min (domain FID 3.13)"),
    "dit-mnist": ({"steps": 4, "sampler": "euler", "cfg": 3.0},
                  "dit-fewstep-domain: token-dropping teacher, Euler 4, cfg 3 (domain FID 4.8)"),
    "dit-fast-mnist": ({"steps": 4, "sampler": "euler"}, "dit-fewstep-domain: its 4-step student (domain FID 4.8)"),
    "maskgit-mnist": ({"steps": 8, "cfg": 2.0}, "maskgit-evaluation-domain: 8 steps, cfg 2 (domain FID 3.41)"),
    "vqvae-mnist": ({}, "vae evaluation: per-position token prior"),
    "vae-mnist": ({}, "vae evaluation: prior samples"),
    "cvae-mnist": ({}, "vae evaluation: prior samples, labels cycling"),
}


def images_per_second(model, n: int, options: dict) -> float:
    generate(model, min(n, 100), seed=1, **options)  # warm-up: first-call allocations and kernel choices
    start = time.perf_counter()
    generate(model, n, seed=0, batch_size=500, **options)  # conditional models: labels cycle through the classes
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    shipped = entries()
    for name, (options, quality_row) in SETTINGS.items():
        if name not in shipped:
            print(f"skip {name}: not in the zoo")
            continue
        model = load_pretrained(f"zoo:{name}")
        t0 = time.perf_counter()
        rate = images_per_second(model, args.n, options)
        desc = " ".join(f"{k}={v}" for k, v in options.items()) or "defaults"
        record("generator-speed", name, recipe=f"zoo:{name}, {desc}", wall_s=time.perf_counter() - t0,
               throughput={"images": args.n, "img/s": rate}, notes=f"quality: {quality_row}")
        print(f"{name}: {rate:.0f} img/s ({desc})", flush=True)
    print(render_docs())


if __name__ == "__main__":
    main()
