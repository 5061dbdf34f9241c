"""The evaluator of classifiers: accuracy, per-class accuracy and the confusion matrix (a PNG
beside the JSON results) on the test split."""

from __future__ import annotations

from ...data import load_dataset, test_split
from ...errors import ConfigError
from ...evaluation import Evaluation, EvaluationRequest, evaluation_data, trained_on
from ...metrics.classification import plot_confusion_matrix
from .pipeline import _batches, evaluate_classifier, prepare

CALIBRATION_BATCH = 32


def evaluate_classifier_model(model, card: dict, request: EvaluationRequest) -> Evaluation:
    confusion_png = request.claim_beside("-confusion.png")
    data, root = evaluation_data(request, card)
    dataset = test_split(data, root)
    result = evaluate_classifier(model, dataset, batch_size=request.batch_size)
    metrics = {"accuracy": result["accuracy"], "per_class_accuracy": result["per_class_accuracy"],
               "num_samples": result["num_samples"]}
    files = {}
    if confusion_png is not None:
        names = dataset.class_names or [str(i) for i in range(model.num_classes)]
        files["confusion"] = plot_confusion_matrix(result["confusion"], names, confusion_png)
    evaluation = Evaluation("classifier", str(model.model_dir), f"{data}:{dataset.split}", metrics, files=files)
    evaluation.metrics["confusion"] = result["confusion"].tolist()
    return evaluation


def calibration_inputs(model, card: dict, data: str | None, data_root: str | None, limit: int) -> list[tuple]:
    """Inputs for int8 calibration (genvision quantize): the first ``limit`` training images of ``data``
    (default: the model's own training data; never the test split that measures the result), as batches
    of the model's input ((B, C, S, S) in [-1, 1])."""
    trained_name, trained_root = trained_on(card)
    if not (data or trained_name):
        raise ConfigError("this model does not record its training data: pass --calibrate NAME")
    dataset = load_dataset(data or trained_name, split="train", root=data_root or trained_root, download=False,
                           limit=limit)
    return [(prepare(model, images),) for images, _ in _batches(dataset, CALIBRATION_BATCH)]


__all__ = ["calibration_inputs", "evaluate_classifier_model"]
