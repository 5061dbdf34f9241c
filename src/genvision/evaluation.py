"""What every application's evaluator shares: the request it is handed and the result it returns.

``genvision evaluate`` (``genvision.workflows.evaluate``) builds one :class:`EvaluationRequest`,
loads the model, and calls the evaluator the application manifest names for the model's kind:
``evaluator(model, card, request) -> Evaluation``. The request carries what the user asked for and
the two services an evaluator may need from above its layer: a feature extractor for FID-style
scores (resolved, and trained once if need be, only when asked for) and the output guard that
checks every file before anything is written.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .checkpoints import load_pretrained
from .errors import ConfigError
from .metrics.features import ClassifierExtractor, FeatureExtractor
from .outputs import OutputGuard, write_json

# dataset name -> directory under assets/extractors/ (the domain feature extractors that ship)
SHIPPED_EXTRACTORS = {"mnist": "mnist-cnn", "mnist-mini": "mnist-cnn"}

EXTRACTORS_DIR = Path(__file__).resolve().parent / "assets" / "extractors"


def shipped_extractor_dir(dataset_name: str) -> Path | None:
    """The shipped extractor directory for ``dataset_name``, or None when none ships for it."""
    key = dataset_name.lower().replace("_", "-")
    sub = SHIPPED_EXTRACTORS.get(key)
    if sub is None:
        return None
    path = EXTRACTORS_DIR / sub
    return path if (path / "model.safetensors").is_file() else None


def load_shipped_extractor(dataset_name: str, device: str = "cpu") -> ClassifierExtractor | None:
    """A :class:`~genvision.metrics.features.ClassifierExtractor` over the shipped classifier for
    ``dataset_name``, or None when none ships for it."""
    path = shipped_extractor_dir(dataset_name)
    if path is None:
        return None
    model = load_pretrained(path, device=device, kind="classifier")
    return ClassifierExtractor(model, name=f"domain:{path.name}")



@dataclass
class EvaluationRequest:
    model: str  # a model or run directory, or the name of a weightless registered model (bicubic)
    data: str | None = None  # dataset name; default: the one the model was trained on
    data_root: str | None = None
    n: int = 10_000  # generated samples (generators); 0 = none (VAE likelihood only)
    features: str | None = None  # domain (default), inception, or a classifier model directory
    fid_weights: str | None = None  # pytorch-fid's Inception weights file
    batch_size: int = 500
    seed: int = 0
    class_label: int | None = None  # one class of a conditional generator
    scale: int | None = None  # image-to-image models: checked against the model (the factor of bicubic)
    self_ensemble: bool = False  # image-to-image models: average the 8 flips/transposes
    tile: int | None = None  # image-to-image models: tile size in input pixels
    sigma: float | None = None  # denoising models: noise std in 8-bit levels, (0, 255]; default 25
    k: int = 500  # VAEs: importance samples per image
    limit: int | None = None  # only the first N test images
    device: str = "auto"
    output: str | Path | None = None  # JSON results (and files beside it: confusion matrix, crops)
    overwrite: bool = False
    progress: bool = True
    # Set by the workflow that runs the evaluation (genvision.workflows.evaluate):
    extractor_for: Callable[[str, str | None], FeatureExtractor] | None = None  # (dataset, root) -> extractor
    guard: OutputGuard | None = None

    @property
    def output_path(self) -> Path | None:
        return Path(self.output) if self.output else None

    def claim_beside(self, suffix: str, *, sidecar: bool = False) -> Path | None:
        """The path ``<output stem><suffix>`` for a file written beside the JSON (claimed through the
        guard, so an existing one needs --overwrite), or None when no output was asked for."""
        json_path = self.output_path
        if json_path is None:
            return None
        path = json_path.with_name(json_path.stem + suffix)
        if self.guard is not None:
            self.guard.claim(path, sidecar=sidecar)
        return path

    def feature_extractor(self, dataset: str, root: str | None) -> FeatureExtractor:
        if self.extractor_for is None:
            # outside the evaluation workflow (genvision quantize): the domain extractors that ship still work
            shipped = load_shipped_extractor(dataset) if self.features in (None, "domain") else None
            if shipped is None:
                raise ConfigError(f"no feature extractor ships for {dataset}: score it with genvision evaluate, "
                                  "which trains one (once)")
            return shipped
        return self.extractor_for(dataset, root)


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


def trained_on(card: dict[str, Any]) -> tuple[str | None, str | None]:
    """(dataset name, data root) of the run that trained the model, from its model card."""
    data = card.get("run", {}).get("recipe", {}).get("data", {})
    return data.get("name"), data.get("root")


def evaluation_data(request: EvaluationRequest, card: dict[str, Any]) -> tuple[str, str | None]:
    """(dataset, root) to evaluate on: the request's, else those the model was trained on."""
    trained_name, trained_root = trained_on(card)
    data = request.data or trained_name
    if data is None:
        raise ConfigError("this model does not record its training data: pass --data NAME")
    return data, request.data_root or trained_root


def write_evaluation(evaluation: Evaluation, output: Path) -> None:
    """The JSON results, written atomically (a temp file renamed into place)."""
    write_json(output, evaluation.to_json())
    evaluation.files["json"] = output


__all__ = ["EXTRACTORS_DIR", "SHIPPED_EXTRACTORS", "Evaluation", "EvaluationRequest", "evaluation_data",
           "load_shipped_extractor", "shipped_extractor_dir", "trained_on", "write_evaluation"]
