"""The evaluator of classifiers: accuracy, per-class accuracy and the confusion matrix (a PNG
beside the JSON results) on the test split."""

from __future__ import annotations

from ...data import test_split
from ...evaluation import Evaluation, EvaluationRequest, evaluation_data
from ...metrics.classification import plot_confusion_matrix
from .pipeline import evaluate_classifier


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


__all__ = ["evaluate_classifier_model"]
