"""The evaluator of generators (GANs, DiT; VAEs add it to their own): FID, KID, precision/recall,
density/coverage, Inception Score and class coverage of ``n`` samples against the test split, in
the feature space the request names, streamed in batches with bounded memory."""

from __future__ import annotations

from ...data import test_split
from ...evaluation import Evaluation, EvaluationRequest, evaluation_data
from ...metrics.reference import reference_stats
from ...metrics.samples import MAX_KEPT_FEATURES, check_sample_count, kept_features_note, sample_metrics
from ...sampling import sampler_for


def evaluate_generator_model(model, card: dict, request: EvaluationRequest) -> Evaluation:
    check_sample_count(request.n)  # before the (possibly long) reference statistics
    data, root = evaluation_data(request, card)
    extractor = request.feature_extractor(data, root)
    # The reference at the samples' size and channels: a folder's default (64 px RGB) or a dataset's own size
    # would otherwise compare a 32 px GAN with sharper images than it was trained on.
    config = getattr(model, "config", None)
    dataset = test_split(data, root, image_size=getattr(config, "image_size", None),
                         channels=getattr(config, "channels", None))
    reference = reference_stats(extractor, dataset, keep=min(request.n, len(dataset), MAX_KEPT_FEATURES),
                                batch_size=request.batch_size, progress=request.progress)
    metrics = sample_metrics(sampler_for(model, request.class_label), extractor, reference, n=request.n,
                             batch_size=request.batch_size, seed=request.seed, progress=request.progress)
    metrics["reference_images"] = reference.count
    return Evaluation(card["kind"], str(model.model_dir), f"{data}:{dataset.split}", metrics,
                      notes=[f"features: {extractor.describe()}", *kept_features_note(request.n)])


__all__ = ["evaluate_generator_model"]
