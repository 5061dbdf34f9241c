"""CycleGAN on two unpaired pairs available offline, trained for fixed step counts, then scored.

1. photos (../shared/data/sr-train) <-> painting patches (../shared/data/style-images/style, or one
   painting with --painting): Inception FID (the ``inception-fid`` backbone, standard FID features)
   of translated photo crops against painting crops, next to the identity baseline (untranslated
   photos against the same paintings), and the cycle-reconstruction PSNR a -> b -> a. When no
   Inception weights are here the FID rows are left out and the notes say so. ``--photo-curve`` then
   scores each of the run's eight checkpoints on the same crops (table ``cyclegan-photo-curve``).
2. MNIST <-> scikit-learn's 8x8 digits upsampled to 28x28: domain FID in the shipped MNIST
   classifier's features (``assets/extractors/mnist-cnn``) of sklearn test digits translated to
   MNIST, against MNIST test digits (and the untranslated baseline), and how often the shipped
   classifier still reads the sklearn label after b -> a (target >= 90 %). ``--digit-framing stretch``
   upsamples the 8x8 digits to fill 28x28; ``mnist`` frames them as MNIST's are (upsampled to 20x20,
   then a 4 px black border), so the translator changes strokes, not the digit's size.

    OMP_NUM_THREADS=1 python benchmarks/cyclegan.py --photo-steps 4000 --digit-steps 3000 \
        --mnist-root ../shared/data/mnist

Fixed step counts, not wall time: on a shared 2-core machine times are not speed figures.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import record, train

from genvision.apps.translate.data import load_domain, random_crops
from genvision.apps.translate.pipeline import load_translator
from genvision.checkpoints import load_pretrained
from genvision.data import load_dataset
from genvision.errors import ConfigError
from genvision.metrics.distribution import frechet_distance
from genvision.metrics.image import psnr

ROOT = Path(__file__).resolve().parents[1]
MNIST_CNN = ROOT / "src" / "genvision" / "assets" / "extractors" / "mnist-cnn"


def _features(extract, images01: torch.Tensor, batch: int = 50) -> torch.Tensor:
    """Images in [0, 1] (N, C, H, W) -> features (N, D) (extractors take [-1, 1])."""
    return torch.cat([extract(images01[i:i + batch] * 2 - 1).features.double() for i in range(0, len(images01), batch)])


def _fid(x: torch.Tensor, y: torch.Tensor) -> float:
    return frechet_distance(x.mean(0), torch.cov(x.T), y.mean(0), torch.cov(y.T))


@torch.no_grad()
def _translate(model, images01: torch.Tensor, direction: str, batch: int = 32) -> torch.Tensor:
    return torch.cat([model(images01[i:i + batch], direction).clamp(0, 1) for i in range(0, len(images01), batch)])


def _crops(name: str, n: int, patch: int, load_size: int, channels: int, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)
    domain = load_domain(name, channels=channels, load_size=load_size, patch_size=patch)
    picks = torch.randint(0, len(domain.images), (n,)).tolist()
    return random_crops(domain, picks, patch, flip=False)  # (n, C, p, p) in [0, 1]


class PhotoScorer:
    """The photo <-> painting protocol, with its crops and reference features computed once, so a run's
    checkpoints are all scored on the same images."""

    def __init__(self, painting: str, n: int):
        # evaluation crops: photos at the training scale; paintings as the critic saw them
        self.real_a = _crops("folder:../shared/data/sr-train", n, 64, 72, 3, seed=1)
        self.real_b = _crops(painting, n, 64, 256, 3, seed=2)
        self.notes = f"{n} 64px crops per set"
        self.extract = None
        try:
            from genvision.workflows.extractors import pretrained_inception_extractor

            self.extract = pretrained_inception_extractor()
            self.feats_b = _features(self.extract, self.real_b)
            self.identity = _fid(_features(self.extract, self.real_a), self.feats_b)
            self.notes += "; Inception FID (inception-fid backbone) of 64px crops upsampled to 299"
        except ConfigError as exc:
            self.notes += f"; no Inception FID: {exc}"

    def __call__(self, model) -> dict:
        fake_b = _translate(model, self.real_a, "a2b")
        quality = {"cycle_psnr_db": psnr(_translate(model, fake_b, "b2a"), self.real_a)}
        if self.extract is not None:
            quality["fid_inception_translated"] = _fid(_features(self.extract, fake_b), self.feats_b)
            quality["fid_inception_identity"] = self.identity
        return quality


def photos(args) -> None:
    painting = f"folder:{args.painting}" if args.painting else "folder:../shared/data/style-images/style"
    name = f"cyclegan-photo2painting-{args.photo_steps}steps"
    recipe = f"train cyclegan photos<->{painting}"
    if args.photo_curve:
        photo_curve(args, name, recipe, painting)
        return
    start = time.perf_counter()
    result = train("cyclegan", overrides=[
        "data_a.name=folder:../shared/data/sr-train", f"data_b.name={painting}", "data_b.load_size=256",
        f"train.steps={args.photo_steps}", f"train.out_dir={args.out_dir}", f"train.name={name}",
        f"train.sample_every={max(1, args.photo_steps // 8)}", f"train.ckpt_every={max(1, args.photo_steps // 8)}",
        "train.keep_last=8"],  # every checkpoint, for --photo-curve
        overwrite=True)
    wall = time.perf_counter() - start
    scorer = PhotoScorer(painting, args.eval_n)
    quality = scorer(load_translator(result.run_dir))
    record("cyclegan", name, recipe=recipe, wall_s=wall, throughput={"steps": result.step}, quality=quality,
           notes=f"{scorer.notes}; {result.step} steps")
    print(name, quality)


def photo_curve(args, name: str, recipe: str, painting: str) -> None:
    """Score every checkpoint a finished photo run kept (table ``cyclegan-photo-curve``): is the translation
    still moving toward the paintings when the schedule ends?"""
    checkpoints = sorted((Path(args.out_dir) / name / "checkpoints").glob("step_*"))
    if not checkpoints:
        raise SystemExit(f"no checkpoints under {Path(args.out_dir) / name}: train it first")
    scorer = PhotoScorer(painting, args.eval_n)
    for ckpt in checkpoints:
        step = int(ckpt.name.split("_")[1])
        start = time.perf_counter()
        quality = scorer(load_translator(ckpt))
        record("cyclegan-photo-curve", f"{name} @ step {step:05d}", recipe=recipe,
               wall_s=time.perf_counter() - start, throughput={"step": step}, quality=quality, notes=scorer.notes)
        print(step, quality, flush=True)


def digits(args) -> None:
    framed = args.digit_framing == "mnist"
    name = f"cyclegan-mnist2sklearn-{args.digit_steps}steps{'-framed' if framed else ''}"
    # data_b's own load_size must be set: the recipe's default (256, for paintings) would crop 28 px pieces of
    # digits enlarged to 256 px, as the first run here did
    framing = ["data_b.load_size=20", "data_b.pad=4"] if framed else ["data_b.load_size=28"]
    common = ["data.channels=1", "data.patch_size=28", "data.load_size=28", "data.flip=false"]
    root = [f"data.root={args.mnist_root}"] if args.mnist_root else []
    start = time.perf_counter()
    result = train("cyclegan", overrides=[
        f"data_a.name={args.mnist}", "data_b.name=sklearn-digits", *common, *framing, *root, "model.blocks=4",
        f"train.steps={args.digit_steps}", f"train.out_dir={args.out_dir}", f"train.name={name}",
        f"train.sample_every={max(1, args.digit_steps // 8)}", f"train.ckpt_every={max(1, args.digit_steps // 8)}"],
        overwrite=True)
    wall = time.perf_counter() - start
    model = load_translator(result.run_dir)
    classifier = load_pretrained(MNIST_CNN, kind="classifier")
    sk = load_dataset("sklearn-digits", split="test", image_size=20 if framed else 28)
    mn = load_dataset(args.mnist, split="test", root=args.mnist_root, limit=args.eval_n)
    sk01, mn01 = sk.images.float() / 255, mn.images.float() / 255  # (N, 1, S, S) in [0, 1]
    if framed:
        sk01 = torch.nn.functional.pad(sk01, (4, 4, 4, 4))  # (N, 1, 20, 20) -> (N, 1, 28, 28), as in training
    to_mnist = _translate(model, sk01, "b2a")

    @torch.no_grad()
    def keeps(images01: torch.Tensor) -> float:
        return float((classifier(images01 * 2 - 1).argmax(1) == sk.labels).float().mean())

    class Extract:  # the shipped classifier's penultimate features: MNIST's domain features
        def __call__(self, x):
            with torch.no_grad():
                return type("F", (), {"features": classifier.forward_features(x)})()

    extract = Extract()
    feats_mn = _features(extract, mn01)
    quality = {"label_kept_b2a": keeps(to_mnist), "label_kept_untranslated": keeps(sk01),
               "fid_domain_b2a": _fid(_features(extract, to_mnist), feats_mn),
               "fid_domain_identity": _fid(_features(extract, sk01), feats_mn),
               "cycle_psnr_db": psnr(_translate(model, to_mnist, "a2b"), sk01)}
    recipe = f"train cyclegan {args.mnist}<->sklearn-digits" + (" (data_b.load_size=20 data_b.pad=4)" if framed else "")
    record("cyclegan", name, recipe=recipe, wall_s=wall,
           throughput={"steps": result.step}, quality=quality,
           notes=f"sklearn test split ({len(sk01)}) -> MNIST; domain FID in mnist-cnn features against "
                 f"{len(mn01)} MNIST test digits; target label_kept_b2a >= 0.9")
    print(name, quality)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo-steps", type=int, default=4000)
    parser.add_argument("--digit-steps", type=int, default=3000)
    parser.add_argument("--painting", help="one painting file (default: every painting in style-images/style)")
    parser.add_argument("--mnist", default="mnist", help="mnist (needs --mnist-root or a cache) or mnist-mini")
    parser.add_argument("--mnist-root", default=None)
    parser.add_argument("--digit-framing", choices=("stretch", "mnist"), default="mnist",
                        help="sklearn digits filling 28x28 (stretch) or in MNIST's 20-in-28 framing")
    parser.add_argument("--eval-n", type=int, default=500)
    parser.add_argument("--out-dir", default="benchmarks/results/runs")
    parser.add_argument("--only", choices=("photos", "digits"))
    parser.add_argument("--photo-curve", action="store_true",
                        help="do not train: score every checkpoint of the --photo-steps run already in --out-dir")
    args = parser.parse_args()
    if args.photo_curve:
        photos(args)
        return
    if args.only != "digits":
        photos(args)
    if args.only != "photos":
        digits(args)


if __name__ == "__main__":
    main()
