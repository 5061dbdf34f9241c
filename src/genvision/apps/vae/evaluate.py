"""``genvision evaluate`` for the VAE family: likelihood, reconstruction, samples, codebook.

For a VAE / CVAE on the test split (``limit`` images, default all):

* ``neg_elbo_nats``: -ELBO (one posterior sample per image, beta = 1), an upper bound on -log p(x);
* ``nll_iwae_nats``: -L_k, the importance-weighted bound (Burda et al. 2016) with ``k`` samples
  per image, drawn in chunks, combined with a float64 logsumexp; it tightens towards -log p(x) as
  k grows (k = 5000 is the literature's "NLL" for MNIST);
* both also in bits/dim (nats / (D ln 2), D = C H W). Gaussian likelihoods are converted from a
  density on [-1, 1] to 8-bit bins (``discrete_nll_offset``); Bernoulli ones are exact only on
  binarised data.

**Binarised test set.** A model trained with dynamic binarisation is evaluated on the test images
binarised *once* with a fixed generator: ``x_bin = Bernoulli((x + 1) / 2)`` drawn in one call over
the (N, 1, 28, 28) tensor of the first N test images from ``torch.Generator().manual_seed(0)``
(``binarize_seed``), so every evaluation (and every model) sees the same bits.

Reconstruction MSE / PSNR / SSIM compare the decoder mean of the posterior mean (or of the token
grid) with the *grey* test image it was encoded from ([0, 1] units). Sample metrics (FID family, in
the chosen feature space) compare ``n`` prior samples (decoder means) with the grey test split.
VQ-VAEs additionally report codebook usage and perplexity over all test tokens, and an upper bound
on the NLL under the model's per-position token prior: -log p(x) <= -log p(x|z_q) - log pi(tokens).
"""

from __future__ import annotations

import math

import torch
from tqdm import tqdm

from ...checkpoints import load_pretrained, read_model_card
from ...data import test_split
from ...errors import ConfigError
from ...evaluation import Evaluation, EvaluationRequest, evaluation_data
from ...metrics.image import reconstruction_errors
from ...metrics.reference import reference_stats
from ...metrics.samples import MAX_KEPT_FEATURES, kept_features_note, sample_metrics
from ...models.vae import discrete_nll_offset
from ...runtime import model_device, select_device
from ...sampling import sampler_for
from .objective import binarize_fixed, model_binarizes

PRIOR_NOTE = ("VQ-VAE samples come from a per-position categorical token prior (positions independent), "
              "not a learned autoregressive prior: expect much worse samples than reconstructions")


def test_images(dataset, *, binarize: bool, binarize_seed: int = 0, limit: int | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``limit`` images (all by default) and labels of ``dataset``; binarised models get
    them binarised in one draw over the whole tensor from ``Generator().manual_seed(binarize_seed)``,
    so the bits do not depend on batch sizes or on how an evaluation is split."""
    n = len(dataset) if limit is None else min(limit, len(dataset))
    x, y = dataset.get_batch(torch.arange(n))
    if binarize:
        x = binarize_fixed(x, torch.Generator().manual_seed(binarize_seed))
    return x, y


def likelihood_metrics(model, dataset, *, k: int = 500, limit: int | None = None, start: int = 0,
                       stop: int | None = None, batch_size: int = 100, chunk: int | None = None, seed: int = 0,
                       binarize: bool | None = None, binarize_seed: int = 0, progress: bool = True) -> dict:
    """-ELBO and -L_k (IWAE) on test images ``start .. stop-1`` of the first ``limit`` (binarised
    together, see the module doc); the sums
    (``sum_neg_elbo_nats``, ``sum_nll_iwae_nats``) let split evaluations be combined."""
    if model.is_vq:
        raise ConfigError("ELBO / importance-weighted NLL need a continuous-latent VAE (vae or cvae)")
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    binarize = model_binarizes(model) if binarize is None else binarize
    images, labels_all = test_images(dataset, binarize=binarize, binarize_seed=binarize_seed, limit=limit)
    images, labels_all = images[start:stop], labels_all[start:stop]
    n = images.shape[0]
    if n < 1:
        raise ConfigError("no test images to evaluate")
    chunk = chunk or max(1, min(k, 20_000 // batch_size))  # at most ~20k decoded images in memory
    device = model_device(model)
    conditional = model.config.num_classes > 0
    torch.manual_seed(seed)  # the posterior samples
    neg_elbo, neg_iwae = torch.zeros((), dtype=torch.float64), torch.zeros((), dtype=torch.float64)
    with tqdm(total=n, desc=f"likelihood (k={k})", unit="img", disable=not progress, dynamic_ncols=True) as bar:
        for i in range(0, n, batch_size):
            x = images[i:i + batch_size].to(device)
            labels = labels_all[i:i + batch_size].to(device) if conditional else None
            neg_elbo += -model.elbo(x, labels).sum().cpu()
            neg_iwae += -model.importance_log_likelihood(x, labels, k=k, chunk=chunk).sum().cpu()
            bar.update(x.shape[0])
    offset = discrete_nll_offset(model.config.likelihood, model.num_dims)
    per_dim = model.num_dims * math.log(2.0)
    elbo_nats, iwae_nats = float(neg_elbo) / n + offset, float(neg_iwae) / n + offset
    return {"neg_elbo_nats": elbo_nats, "nll_iwae_nats": iwae_nats, "neg_elbo_bits_per_dim": elbo_nats / per_dim,
            "nll_iwae_bits_per_dim": iwae_nats / per_dim, "iwae_k": k, "likelihood_images": n,
            "binarized": bool(binarize), "sum_neg_elbo_nats": float(neg_elbo) + n * offset,
            "sum_nll_iwae_nats": float(neg_iwae) + n * offset}


@torch.no_grad()
def reconstruction_metrics(model, dataset, *, limit: int | None = None, batch_size: int = 500) -> dict:
    n = len(dataset) if limit is None else min(limit, len(dataset))
    device = model_device(model)
    conditional = model.num_classes > 0
    totals = {"mse": 0.0, "psnr": 0.0, "ssim": 0.0}
    for start in range(0, n, batch_size):
        x, y = dataset.get_batch(torch.arange(start, min(start + batch_size, n)))
        if model.is_vq:
            recon = model.reconstruct(x.to(device))
        else:
            recon = model.reconstruct(x.to(device), y.to(device) if conditional else None)
        errors = reconstruction_errors(x, recon.float().cpu(), value_range=(-1.0, 1.0))
        for key in totals:
            totals[key] += errors[key] * x.shape[0]
    return {f"recon_{key}": value / n for key, value in totals.items()}


@torch.no_grad()
def codebook_metrics(model, dataset, *, limit: int | None = None, batch_size: int = 500, binarize: bool = False,
                     binarize_seed: int = 0) -> dict:
    """Codebook usage / perplexity over all test tokens and the NLL bound under the token prior."""
    n = len(dataset) if limit is None else min(limit, len(dataset))
    device = model_device(model)
    K = model.config.codebook_size
    counts = torch.zeros(K, dtype=torch.float64)
    bound = 0.0
    log_prior = torch.log(model.prior_probs.double().clamp_min(1e-12)).cpu()  # (h*w, K)
    images, _ = test_images(dataset, binarize=binarize, binarize_seed=binarize_seed, limit=n)
    for start in range(0, n, batch_size):
        x = images[start:start + batch_size].to(device)
        tokens = model.encode(x)  # (B, h, w)
        counts += torch.bincount(tokens.flatten().cpu(), minlength=K).double()
        params = model.decode_latent(model.quantizer.lookup(tokens))
        recon = model.nll(params, x).double().cpu()  # (B,)
        flat = tokens.flatten(1).cpu()  # (B, h*w)
        prior = log_prior.gather(1, flat.t()).t().sum(1) if model.prior_fitted else torch.full(
            (flat.shape[0],), flat.shape[1] * math.log(K), dtype=torch.float64).neg()
        bound += float((recon - prior).sum())
    probs = counts / counts.sum()
    entropy = float(-(probs[probs > 0] * probs[probs > 0].log()).sum())
    nats = bound / n + discrete_nll_offset(model.config.likelihood, model.num_dims)
    return {"codebook_usage": float((counts > 0).double().mean()), "codebook_perplexity": math.exp(entropy),
            "codebook_size": K, "nll_bound_token_prior_nats": nats,
            "nll_bound_token_prior_bits_per_dim": nats / (model.num_dims * math.log(2.0))}


def evaluate_vae_model(model, card: dict, request: EvaluationRequest) -> Evaluation:
    """The evaluator of VAEs: likelihood (VAE/CVAE) or codebook (VQ-VAE) metrics, reconstruction
    errors, and FID-family metrics of ``request.n`` samples (``n=0`` skips them)."""
    data, root = evaluation_data(request, card)
    dataset = test_split(data, root)
    if dataset.channels != model.config.channels or dataset.image_size != model.config.image_size:
        raise ConfigError(f"{data} has {dataset.channels}x{dataset.image_size}px images but the model takes "
                          f"{model.config.channels}x{model.config.image_size}px")
    binarize = model_binarizes(model, card)
    notes = []
    metrics: dict = {}
    if model.is_vq:
        metrics.update(codebook_metrics(model, dataset, limit=request.limit, binarize=binarize))
        notes.append("nll_bound_token_prior: -log p(x|z_q(x)) - log pi(tokens(x)) under the per-position prior")
    else:
        metrics.update(likelihood_metrics(model, dataset, k=request.k, limit=request.limit, seed=request.seed,
                                          binarize=binarize, progress=request.progress))
    if binarize:
        notes.append("likelihoods on the test split binarised once with Generator().manual_seed(0)")
    metrics.update(reconstruction_metrics(model, dataset, limit=request.limit))
    if request.n > 0:
        if model.is_vq:
            notes.append(PRIOR_NOTE)
        extractor = request.feature_extractor(data, root)
        reference = reference_stats(extractor, dataset, keep=min(request.n, len(dataset), MAX_KEPT_FEATURES),
                                    batch_size=request.batch_size, progress=request.progress)
        metrics.update(sample_metrics(sampler_for(model, request.class_label), extractor, reference, n=request.n,
                                      batch_size=request.batch_size, seed=request.seed, progress=request.progress))
        metrics["reference_images"] = reference.count
        notes.append(f"features: {extractor.describe()}")
        notes.extend(kept_features_note(request.n))
    return Evaluation(card["kind"], str(getattr(model, "model_dir", "")), f"{data}:{dataset.split}", metrics,
                      notes=notes)


def evaluate_vae(model_dir: str, *, data: str | None = None, data_root: str | None = None, k: int = 500,
                 limit: int | None = None, seed: int = 0, device: str = "auto", progress: bool = True) -> Evaluation:
    """Likelihood and reconstruction numbers (no samples, so no feature extractor) with the knobs
    ``genvision likelihood`` gives; ``genvision.workflows.evaluate`` adds sample metrics."""
    card = read_model_card(model_dir)
    model = load_pretrained(model_dir, kind="vae", device=select_device(device))
    return evaluate_vae_model(model, card, EvaluationRequest(model=str(model_dir), data=data, data_root=data_root,
                                                             n=0, k=k, limit=limit, seed=seed, progress=progress))


__all__ = ["test_images", "evaluate_vae_model", "evaluate_vae", "likelihood_metrics", "reconstruction_metrics",
           "codebook_metrics", "PRIOR_NOTE"]
