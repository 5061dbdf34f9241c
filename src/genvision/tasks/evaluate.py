"""``genvision evaluate``: offline quality numbers for any saved model, dispatched on its kind.

Generators get FID / KID / precision-recall / density-coverage / Inception Score / class
coverage in a chosen feature space, computed from streamed batches (bounded memory) against
reference statistics of the dataset's test split that are computed once and cached, keyed by
(dataset fingerprint, extractor weights and preprocessing). Classifiers get accuracy,
per-class accuracy and a confusion matrix. Later families plug in through ``EVALUATORS``.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from ..errors import ConfigError, DataError
from ..metrics.distribution import (
    FeatureStats,
    class_histogram_stats,
    density_coverage,
    fid_from_stats,
    inception_score,
    kernel_inception_distance,
    precision_recall,
)
from ..metrics.features import ClassifierExtractor, FeatureExtractor

Sampler = Callable[[int, int], torch.Tensor]  # (n, seed) -> images in [-1, 1] (n, C, H, W)

# Raw feature rows kept for the sample-based metrics (KID, precision/recall, density/coverage): a
# uniform reservoir sample of at most this many rows per side, so memory (and their O(N^2)
# nearest-neighbour work) is bounded whatever -n is; FID uses the streamed moments of all n.
MAX_KEPT_FEATURES = 50_000


def cache_dir() -> Path:
    """$GENVISION_CACHE, else ~/.cache/genvision: reference statistics and domain extractors."""
    return Path(os.environ.get("GENVISION_CACHE", Path.home() / ".cache" / "genvision"))


# --- feature extractors ---------------------------------------------------------------------


def _trained_domain_extractor(dataset_name: str, data_root: str | None, progress: bool) -> Path:
    """Train (once) a classifier on a labelled dataset; cached under its data fingerprint."""
    from ..data import load_dataset
    from ..training.run import train

    dataset = load_dataset(dataset_name, split="train", root=data_root, download=False)
    if dataset.num_classes < 2:
        raise ConfigError(f"domain features need a labelled dataset (class sub-folders); {dataset_name} has none: "
                          f"pass --features MODEL_DIR or --fid-weights PATH")
    safe = re.sub(r"[^A-Za-z0-9]+", "-", dataset_name).strip("-")[-40:]
    name = f"{safe}-{dataset.fingerprint()}"
    parent = cache_dir() / "extractors"
    target = parent / name
    if not (target / "checkpoints" / "latest").is_file():
        print(f"training a domain feature extractor for {dataset_name} (once; cached in {target})")
        if target.exists():
            import shutil
            shutil.rmtree(target)  # an interrupted earlier attempt: start over
        train("classifier", overrides=[f"data.name={dataset_name}", f"data.root={data_root}" if data_root else
                                       "data.root=null", f"train.out_dir={parent}", f"train.name={name}",
                                       "train.tensorboard=false", "train.sample_every=0"], progress=progress)
    return target


def domain_extractor(dataset_name: str, *, data_root: str | None = None, device: str = "cpu",
                     progress: bool = True) -> FeatureExtractor:
    from ..checkpoints import load_pretrained
    from ..metrics.domain import shipped_extractor_dir

    model_dir = shipped_extractor_dir(dataset_name) or _trained_domain_extractor(dataset_name, data_root, progress)
    model = load_pretrained(model_dir, kind="classifier", device=device)
    return ClassifierExtractor(model, name=f"domain:{dataset_name.split(':', 1)[0]}")


def resolve_extractor(features: str | None, *, dataset_name: str, data_root: str | None = None,
                      fid_weights: str | None = None, device: str = "cpu", progress: bool = True) -> FeatureExtractor:
    """``features``: None/"auto" (Inception if --fid-weights is given, else domain), "domain",
    "inception", or a classifier model directory."""
    if features in (None, "auto"):
        features = "inception" if fid_weights else "domain"
    if features == "inception":
        from ..metrics.inception import get_inception_extractor
        return get_inception_extractor(fid_weights, device=device)
    if features == "domain":
        return domain_extractor(dataset_name, data_root=data_root, device=device, progress=progress)
    from ..checkpoints import load_pretrained
    model = load_pretrained(features, kind="classifier", device=device)
    return ClassifierExtractor(model, name=f"classifier:{Path(features).name}")


# --- statistics -----------------------------------------------------------------------------


def _stream_features(batches, extractor: FeatureExtractor, stats: FeatureStats, total: int, desc: str,
                     progress: bool) -> torch.Tensor | None:
    probs = []
    with tqdm(total=total, desc=desc, unit="img", disable=not progress, dynamic_ncols=True) as bar:
        for images in batches:
            out = extractor(images)
            stats.update(out.features)
            if out.probs is not None:
                probs.append(out.probs)
            bar.update(images.shape[0])
    return torch.cat(probs) if probs else None


def reference_stats(extractor: FeatureExtractor, dataset, *, keep: int = 10_000, batch_size: int = 500,
                    progress: bool = True) -> FeatureStats:
    """Feature statistics of a dataset split, computed once and cached."""
    key = hashlib.sha256(f"{dataset.fingerprint()}|{extractor.key()}|keep={keep}".encode()).hexdigest()[:24]
    path = cache_dir() / "stats" / f"{key}.safetensors"
    if path.is_file():
        try:
            stats = FeatureStats.load(path)
            if stats.metadata.get("cache_key") == key:
                return stats
        except (DataError, ValueError):
            pass  # a damaged cache entry is recomputed
    stats = FeatureStats(keep=keep, metadata={"cache_key": key, "dataset": dataset.name, "split": dataset.split,
                                              "extractor": extractor.name})
    n = len(dataset)
    if hasattr(dataset, "get_batch"):
        batches = (dataset.get_batch(torch.arange(i, min(i + batch_size, n)))[0] for i in range(0, n, batch_size))
    else:
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size)
        batches = (images for images, _ in loader)
    _stream_features(batches, extractor, stats, n, f"reference {dataset.name}:{dataset.split}", progress)
    stats.save(path, metadata=stats.metadata)
    return stats


# --- generators -----------------------------------------------------------------------------


def sample_metrics(sampler: Sampler, extractor: FeatureExtractor, reference: FeatureStats, *, n: int,
                   batch_size: int = 500, seed: int = 0, progress: bool = True, full: bool = True) -> dict:
    """FID-family metrics of ``n`` generated images against ``reference``.

    ``full=False`` computes FID and KID only (cheap enough for training-time evaluation).
    """
    from .generate import check_seed, derive_seed

    _check_sample_count(n)
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    check_seed(seed)
    stats = FeatureStats(keep=min(n, MAX_KEPT_FEATURES))
    # each batch's seed is derived from (seed, first index): distinct, reproducible, within 0..2**63-1
    batches = (sampler(min(batch_size, n - start), derive_seed(seed, start)) for start in range(0, n, batch_size))
    probs = _stream_features(batches, extractor, stats, n, "generated", progress)
    real, fake = reference.features, stats.features
    subset = min(1000, real.shape[0], fake.shape[0])
    kid, kid_std = kernel_inception_distance(real, fake, subsets=100 if full else 20, subset_size=subset, seed=seed)
    metrics = {"fid": fid_from_stats(reference, stats), "kid": kid, "kid_std": kid_std}
    if full:
        metrics["precision"], metrics["recall"] = precision_recall(real, fake, k=3)
        metrics["density"], metrics["coverage"] = density_coverage(real, fake, k=5)
        if probs is not None:
            metrics["inception_score"], metrics["inception_score_std"] = inception_score(probs)
            hist = class_histogram_stats(probs.argmax(dim=1), probs.shape[1])
            metrics["class_coverage"] = hist["coverage"]
            metrics["class_kl_to_uniform"] = hist["kl_to_uniform"]
    metrics["num_samples"] = n
    return metrics


def _check_sample_count(n: int) -> None:
    if n < 2:
        raise ConfigError(f"-n must be at least 2 to compare distributions, got {n}")


def kept_features_note(n: int) -> list[str]:
    """The evaluation note saying that the sample-based metrics saw a subsample (when they did)."""
    if n <= MAX_KEPT_FEATURES:
        return []
    return [f"FID uses all {n} samples; KID, precision/recall and density/coverage use a uniform sample of "
            f"{MAX_KEPT_FEATURES} of their feature rows (and of the reference's)"]


def fixed_images_sampler(images: torch.Tensor) -> Sampler:
    """A 'generator' that hands out ``images`` in order: scores a fixed set (reference rows,
    real-data baselines) with the same code path as a model. The seed is ignored."""
    offset = {"next": 0}

    def sample(n: int, seed: int) -> torch.Tensor:
        start = offset["next"]
        offset["next"] += n
        return images[start:start + n]

    return sample


def model_sampler(model, class_label: int | None = None) -> Sampler:
    from .generate import generate

    return lambda n, seed: generate(model, n, seed=seed, class_label=class_label)


# --- dispatch -------------------------------------------------------------------------------


@dataclass
class Evaluation:
    kind: str
    model: str
    data: str
    metrics: dict
    notes: list[str] = field(default_factory=list)
    files: dict = field(default_factory=dict)

    def table(self) -> str:
        width = max(len(k) for k in self.metrics) + 2
        lines = [f"{self.kind} model {self.model} on {self.data}"]
        for key, value in self.metrics.items():
            if isinstance(value, float):
                text = f"{value:.5g}"
            elif isinstance(value, list):
                text = " ".join(f"{v:.3f}" for v in value) if value and isinstance(value[0], float) else str(value)
            else:
                text = str(value)
            lines.append(f"  {key:<{width}}{text}")
        lines += [f"  note: {n}" for n in self.notes]
        lines += [f"  wrote {path}" for path in self.files.values()]
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"kind": self.kind, "model": self.model, "data": self.data, "metrics": self.metrics,
                "notes": self.notes, "files": {k: str(v) for k, v in self.files.items()},
                "date": time.strftime("%Y-%m-%d %H:%M:%S")}


def _trained_on(card: dict) -> tuple[str | None, str | None]:
    data = card.get("run", {}).get("recipe", {}).get("data", {})
    return data.get("name"), data.get("root")


def _test_split(name: str, data_root: str | None, download: bool = False):
    from ..data import load_dataset

    try:
        return load_dataset(name, split="test", root=data_root, download=download)
    except DataError as exc:
        if "split" not in str(exc):
            raise
        return load_dataset(name, split="train", root=data_root, download=download)


def evaluate_generator_model(model, card, *, data: str, data_root, n, features, fid_weights, batch_size, seed,
                             class_label, device, progress, **_) -> Evaluation:
    _check_sample_count(n)  # before the (possibly long) reference statistics
    extractor = resolve_extractor(features, dataset_name=data, data_root=data_root, fid_weights=fid_weights,
                                  device=device, progress=progress)
    dataset = _test_split(data, data_root)
    reference = reference_stats(extractor, dataset, keep=min(n, len(dataset), MAX_KEPT_FEATURES),
                                batch_size=batch_size, progress=progress)
    metrics = sample_metrics(model_sampler(model, class_label), extractor, reference, n=n, batch_size=batch_size,
                             seed=seed, progress=progress)
    metrics["reference_images"] = reference.count
    return Evaluation(card["kind"], str(model.model_dir), f"{data}:{dataset.split}", metrics,
                      notes=[f"features: {extractor.describe()}", *kept_features_note(n)])


def evaluate_classifier_model(model, card, *, data: str, data_root, batch_size, output: Path | None, **_) -> Evaluation:
    from ..metrics.classification import plot_confusion_matrix
    from .classify import evaluate_classifier

    dataset = _test_split(data, data_root)
    result = evaluate_classifier(model, dataset, batch_size=batch_size)
    metrics = {"accuracy": result["accuracy"], "per_class_accuracy": result["per_class_accuracy"],
               "num_samples": result["num_samples"]}
    files = {}
    if output is not None:
        names = dataset.class_names or [str(i) for i in range(model.config.num_classes)]
        files["confusion"] = plot_confusion_matrix(result["confusion"], names, confusion_path(output))
    evaluation = Evaluation("classifier", str(model.model_dir), f"{data}:{dataset.split}", metrics, files=files)
    evaluation.metrics["confusion"] = result["confusion"].tolist()
    return evaluation


# kind -> evaluator; a "module:function" string is imported on first use, so families can keep
# their evaluation code in their own module.
EVALUATORS = {
    "gan": evaluate_generator_model,
    "diffusion": evaluate_generator_model,
    "classifier": evaluate_classifier_model,
    "vae": "genvision.tasks.evaluate_vae:evaluate_vae_model",
    "sr": "genvision.sr.evaluate:evaluate_sr_model",
}


def confusion_path(output: Path) -> Path:
    return output.with_name(output.stem + "-confusion.png")


def plan_outputs(kind: str, output: str | Path | None, *, model_dir: str, data: str | None = None,
                 overwrite: bool = False) -> Path | None:
    """Check every file an evaluation of a ``kind`` model will write (the JSON, and the classifier's
    confusion PNG or the SR crops PNG beside it) before it runs: none may be an input (the model's
    files, a folder: dataset) or exist without ``overwrite``. Returns the JSON path."""
    from ..outputs import OutputGuard

    if not output:
        return None
    output = Path(output)
    guard = OutputGuard(overwrite=overwrite)
    if model_dir != "bicubic":
        guard.add_model(model_dir)
    if data and data.startswith("folder:"):
        guard.add_input_folder(Path(data[len("folder:"):]).expanduser())
    guard.claim(output)
    if kind == "classifier":
        guard.claim(confusion_path(output))
    elif kind == "sr":
        guard.claim(output.with_name(output.stem + "-crops.png"), sidecar=True)
    return output


def write_evaluation(evaluation: Evaluation, output: Path) -> None:
    """The JSON results, written atomically (a temp file renamed into place)."""
    from ..outputs import write_json

    write_json(output, evaluation.to_json())
    evaluation.files["json"] = output


def _evaluator(kind: str):
    target = EVALUATORS[kind]
    if isinstance(target, str):
        import importlib

        module_name, function = target.split(":")
        target = getattr(importlib.import_module(module_name), function)
    return target


def evaluate(model_dir: str, *, data: str | None = None, data_root: str | None = None, n: int = 10_000,
             features: str | None = None, fid_weights: str | None = None, batch_size: int = 500, seed: int = 0,
             class_label: int | None = None, device: str = "auto", output: str | Path | None = None,
             progress: bool = True, overwrite: bool = False) -> Evaluation:
    """Evaluate the model in ``model_dir``; with ``output``, also write the results as JSON (and
    a confusion-matrix PNG beside it for classifiers). Outputs are checked before the evaluation
    runs: existing ones are refused unless ``overwrite``, and the model's own files always are."""
    from ..checkpoints import load_pretrained, read_model_card
    from ..runtime import select_device
    from .generate import check_seed

    check_seed(seed)
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    card = read_model_card(model_dir)
    kind = card.get("kind")
    if kind not in EVALUATORS:
        raise ConfigError(f"evaluate does not support {kind} models yet (supported: {', '.join(EVALUATORS)})")
    trained_name, trained_root = _trained_on(card)
    data = data or trained_name
    if data is None:
        raise ConfigError("this model does not record its training data: pass --data NAME")
    output_path = plan_outputs(kind, output, model_dir=model_dir, data=data, overwrite=overwrite)
    data_root = data_root or trained_root
    torch_device = select_device(device)
    model = load_pretrained(model_dir, kind=kind, device=torch_device)
    evaluation = _evaluator(kind)(model, card, data=data, data_root=data_root, n=n, features=features,
                                  fid_weights=fid_weights, batch_size=batch_size, seed=seed, class_label=class_label,
                                  device=str(torch_device), progress=progress, output=output_path)
    if output_path is not None:
        write_evaluation(evaluation, output_path)
    return evaluation


def training_evaluator(objective, recipe, *, device: str, progress: bool = False):
    """The trainer's periodic evaluation for generator families: FID/KID on ``eval_samples``."""
    extractor = resolve_extractor("domain", dataset_name=recipe.data.name, data_root=recipe.data.root,
                                  device=device, progress=progress)
    reference = reference_stats(extractor, _test_split(recipe.data.name, recipe.data.root),
                                keep=recipe.train.eval_samples, progress=progress)

    def run(network, step: int) -> dict:
        sampler = lambda n, seed: objective.sample_grid(network, n, seed)  # noqa: E731
        return sample_metrics(sampler, extractor, reference, n=recipe.train.eval_samples, seed=recipe.train.seed,
                              progress=False, full=False)

    return run
