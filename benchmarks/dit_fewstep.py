"""DiT in few steps (issue 19, part 2): teacher recipes at a fixed step count, then a few-step student
distilled from a teacher, all scored with domain FID on 10,000 samples.

    python benchmarks/dit_fewstep.py --part screen --steps 600 --n 5000  # teacher recipes, one after another
    python benchmarks/dit_fewstep.py --part teacher --minutes 30 --recipe v-logit-normal   # the 30-minute teacher
    python benchmarks/dit_fewstep.py --part distill --teacher zoo:dit-mnist --minutes 15  # the student + rows
    python benchmarks/dit_fewstep.py --part screen --steps 20 --n 500 --no-record         # smoke test

Protocol: every teacher recipe is configs/dit-mnist.yaml with the overrides in RECIPES, trained on
the MNIST train split; ``screen`` trains each for the same number of steps (batch 128) so recipes
compare at equal work; ``teacher`` trains one recipe for --minutes of wall time; both score the EMA
network at Euler 4 steps with guidance --cfg. ``distill`` trains ``genvision train dit-distill`` (K =
--k Euler steps, guidance --cfg folded in, --substeps Euler teacher steps per segment) for --minutes
from --teacher, then scores in one run the teacher at Euler K steps with guidance (with
--teacher-path-rows also on the path the student imitates, K x substeps Euler steps, and Heun with as
many evaluations) and the student at K steps (one network call per step) and fewer. Scores use the domain features of the shipped MNIST classifier (NOT comparable with
Inception-FID), labels cycling through the classes, against the MNIST test split. ``img/s``
counts generation alone (batches of 500). Rows land in benchmarks/results/dit-fewstep-domain/.
Run on an otherwise idle machine: the rows report wall time.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import RESULTS, ROOT, render_docs, score_generator, train  # noqa: E402

from genvision import io as gio  # noqa: E402
from genvision.checkpoints import load_pretrained  # noqa: E402
from genvision.data import load_dataset  # noqa: E402
from genvision.metrics.reference import reference_stats  # noqa: E402
from genvision.sampling import generate  # noqa: E402
from genvision.workflows.extractors import resolve_extractor  # noqa: E402

RUNS = RESULTS / "runs"
CAPABILITY = "dit-fewstep-domain"
CONFIG = ROOT / "configs" / "dit-mnist.yaml"
KEYS = ("fid", "kid", "precision", "recall", "density", "coverage", "inception_score", "class_coverage",
        "class_share_min", "class_share_max")
BATCH = 500
# Teacher recipes: configs/dit-mnist.yaml plus these overrides.
ALL_TOKENS = "objective.token_drop_steps=0"  # the config drops tokens early since issue 19's measurement
RECIPES = {
    "v-uniform": ["objective.time_sampling=uniform", ALL_TOKENS],  # round 1's recipe
    "v-logit-normal": ["objective.time_sampling=logit-normal", ALL_TOKENS],
    "x-logit-normal": ["objective.time_sampling=logit-normal", "model.prediction=data", ALL_TOKENS],
    "v-logit-normal-shift3": ["objective.time_sampling=logit-normal", "objective.time_shift=3", ALL_TOKENS],
    # fewer tokens early: 25 of the 49 tokens for the first 2,000 steps (about half the 30-minute budget), then
    # all (configs/dit-mnist.yaml's default now)
    "v-logit-normal-drop2000": ["objective.time_sampling=logit-normal", "objective.token_drop_steps=2000",
                                "objective.token_keep=0.5"],
    # latent DiT: the flow in zoo:vqvae-mnist's 16 x 7 x 7 latents, 49 tokens as the pixel recipes' patch 4
    "latent-v-uniform": ["vqvae=zoo:vqvae-mnist", "model.patch_size=1", "objective.time_sampling=uniform",
                         ALL_TOKENS],
    "latent-v-logit-normal": ["vqvae=zoo:vqvae-mnist", "model.patch_size=1", "objective.time_sampling=logit-normal",
                              ALL_TOKENS],
}


def timed_train(family: str, name: str, overrides: list[str], config_file: Path | None) -> dict:
    shutil.rmtree(RUNS / name, ignore_errors=True)
    t0 = time.perf_counter()
    result = train(family, config_file=config_file, progress=True,
                   overrides=[f"train.out_dir={RUNS}", f"train.name={name}", "train.tensorboard=false", *overrides])
    return {"minutes": (time.perf_counter() - t0) / 60, "steps": result.step}


def score(model, label: str, recipe: str, settings: list[dict], scorer, n: int, train_info: dict, save: bool
          ) -> list[tuple[float, dict]]:
    extractor, reference = scorer
    return score_generator(model, label, recipe, settings, extractor, reference, n=n, train_info=train_info,
                           capability=CAPABILITY, keys=KEYS, save=save, batch=BATCH)


def save_grid(model, path: Path, sampling: dict) -> None:
    grid = generate(model, 100, seed=0, **sampling)  # labels cycle: column j is class j
    gio.save_grid(grid, path, nrow=10, metadata={"seed": 0, **sampling})
    print(f"wrote {path}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["screen", "teacher", "distill"], required=True)
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--steps", type=int, default=600, help="screen: training steps per recipe")
    parser.add_argument("--only", nargs="*", choices=sorted(RECIPES), help="screen: these recipes only")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="v-logit-normal", help="teacher: the recipe")
    parser.add_argument("--minutes", type=float, default=30.0, help="teacher / distill: training wall time")
    parser.add_argument("--teacher", default="zoo:dit-mnist", help="distill: the teacher (run, model or zoo:NAME)")
    parser.add_argument("--k", type=int, default=4, help="distill: student steps")
    parser.add_argument("--substeps", type=int, default=2, help="distill: teacher Euler steps per student step")
    parser.add_argument("--teacher-path-rows", action="store_true",
                        help="distill: also score the teacher on the path the student imitates (slow: guided steps)")
    parser.add_argument("--cfg", type=float, default=3.0, help="guidance of the teacher rows and folded in")
    parser.add_argument("--n", type=int, default=10_000, help="samples per row")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--no-record", action="store_true", help="smoke test: print, record nothing")
    parser.add_argument("--suffix", default="", help="appended to run and row names")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    save = not args.no_record
    data = [f"data.root={args.data_root}", "data.name=mnist"]
    extractor = resolve_extractor("domain", dataset_name="mnist", data_root=args.data_root, device="cpu")
    test = load_dataset("mnist", split="test", root=args.data_root, download=False)
    scorer = (extractor, reference_stats(extractor, test, keep=args.n))
    guided = [{"steps": 4, "sampler": "euler", "cfg": args.cfg}]

    if args.part == "screen":
        for recipe in args.only or RECIPES:
            name = f"dit-screen-{recipe}-{args.steps}{args.suffix}"
            info = timed_train("dit", name, [*data, *RECIPES[recipe], f"train.steps={args.steps}",
                                             "train.sample_every=0", f"train.ckpt_every={args.steps}"], CONFIG)
            print(f"trained {name}: {info['steps']} steps in {info['minutes']:.1f} min", flush=True)
            model = load_pretrained(RUNS / name, kind="diffusion")
            score(model, name, f"configs/dit-mnist.yaml + {' '.join(RECIPES[recipe])} (EMA)", guided, scorer,
                  args.n, info, save)
    elif args.part == "teacher":
        name = f"dit-teacher-{args.recipe}-{args.minutes:g}min{args.suffix}"
        info = timed_train("dit", name, [*data, *RECIPES[args.recipe], "train.steps=10000000",
                                         f"train.max_minutes={args.minutes}"], CONFIG)
        print(f"trained {name}: {info['steps']} steps in {info['minutes']:.1f} min", flush=True)
        model = load_pretrained(RUNS / name, kind="diffusion")
        score(model, name, f"configs/dit-mnist.yaml + {' '.join(RECIPES[args.recipe])} (EMA)", guided, scorer,
              args.n, info, save)
    else:
        name = f"dit-distill-k{args.k}-{args.minutes:g}min{args.suffix}"
        info = timed_train("dit-distill", name, [
            *data, f"init={args.teacher}", f"objective.student_steps={args.k}",
            f"objective.teacher_substeps={args.substeps}", f"objective.teacher_cfg={args.cfg}",
            "train.steps=10000000", f"train.max_minutes={args.minutes}", "train.sample_every=500"], None)
        print(f"trained {name}: {info['steps']} steps in {info['minutes']:.1f} min", flush=True)
        teacher = load_pretrained(args.teacher, kind="diffusion")
        teacher_rows = [{"steps": args.k, "sampler": "euler", "cfg": args.cfg}]
        if args.teacher_path_rows:  # the path the student imitates, and Heun with as many evaluations
            teacher_rows += [{"steps": args.k * args.substeps, "sampler": "euler", "cfg": args.cfg},
                             {"steps": args.k * args.substeps // 2, "sampler": "heun", "cfg": args.cfg}]
        score(teacher, f"teacher {args.teacher}", f"the teacher, {args.teacher}", teacher_rows, scorer, args.n,
              {"minutes": 0.0, "steps": 0}, save)
        student = load_pretrained(RUNS / name, kind="diffusion")
        recipe = (f"dit-distill init={args.teacher} K={args.k}, {args.substeps} Euler substeps, guidance {args.cfg:g} "
                  f"folded (EMA)")
        rows = [{"steps": args.k, "sampler": "euler"}] + [{"steps": s, "sampler": "euler"} for s in (1, 2)
                                                          if s < args.k]
        scored = score(student, name, recipe, rows, scorer, args.n, info, save)
        grid = ROOT / "docs" / "images" / f"dit-fewstep-k{args.k}.png" if save and not args.suffix \
            else RUNS / name / "samples.png"
        save_grid(student, grid, scored[0][1])
    if save:
        print(render_docs())


if __name__ == "__main__":
    main()
