"""Distribution metrics on feature vectors: FID, KID, precision/recall, density/coverage, IS.

Everything here is pure math on ``(N, D)`` feature matrices (or ``(N, C)`` class
probabilities); which network produced the features is someone else's business. Inputs may
be torch tensors or numpy arrays; results are plain Python floats.

Why hand-written: torchmetrics and torch-fidelity implement these metrics only fused to their
own Inception wrapper and their own state handling; we need them on cached statistics, on
features from any extractor, and with streaming/mergeable state (for DDP and for caching the
statistics of a dataset once). Each function cites the paper it implements.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..errors import DataError

__all__ = [
    "FeatureStats",
    "frechet_distance",
    "fid_from_stats",
    "kernel_inception_distance",
    "precision_recall",
    "density_coverage",
    "inception_score",
    "class_histogram_stats",
]

_FORMAT = "genvision.feature_stats"
_FORMAT_VERSION = "1"
_RESERVED_PREFIX = "genvision."


def _as_matrix(x, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A ``(N, D)`` CPU tensor from a tensor or array; refuses other shapes and non-finite values."""
    t = torch.as_tensor(x).detach().cpu()
    if t.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (N, D) matrix of features, got shape {tuple(t.shape)}")
    if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64, torch.uint8)):
        raise ValueError(f"{name} must be numeric, got dtype {t.dtype}")
    if dtype is not None:
        t = t.to(dtype)
    elif not t.is_floating_point() or t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()  # distances in half precision are too coarse for k-NN radii
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return t


# --------------------------------------------------------------------------------------------
# Streaming feature statistics
# --------------------------------------------------------------------------------------------


class FeatureStats:
    """Streaming, mergeable mean/covariance of features, plus an optional sample of raw rows.

    Accumulates in float64 with the pairwise (Chan et al. 1979) update: per batch we add the
    batch's centred scatter matrix and a correction for the shift between the running mean and
    the batch mean. This keeps the same information as "count, sum, sum of outer products"
    (``sum = count * mean``, ``sum_outer = m2 + count * mean mean^T``) but does not subtract
    two huge nearly-equal numbers at the end, which loses digits when features have a large
    mean relative to their spread (Inception pool features are all positive). Exact: the result
    does not depend on how the stream was cut into batches or merged, up to rounding.

    ``keep > 0`` also keeps up to ``keep`` raw feature rows (float32) for the metrics that need
    samples rather than moments (KID, precision/recall, density/coverage). Rows are kept by
    reservoir sampling (Vitter's Algorithm R), so the kept rows are a uniform sample of the
    whole stream even when the stream is ordered (an unshuffled, class-sorted dataset); while
    fewer than ``keep`` rows have been seen, all are kept in order.

    Example::

        stats = FeatureStats(keep=10_000)
        for batch in loader:
            stats.update(extractor(batch))        # (B, D)
        stats.save("cache/cifar10-train.safetensors", metadata={"key": cache_key})
    """

    def __init__(
        self,
        dim: int | None = None,
        *,
        keep: int = 0,
        seed: int = 0,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        if keep < 0:
            raise ValueError(f"keep must be >= 0, got {keep}")
        self.dim = dim  # feature width D; fixed by the first update when None
        self.keep = keep  # at most this many raw rows are kept (0: none)
        self.seed = seed  # seeds the reservoir sampler, so runs are reproducible
        self.metadata: dict[str, str] = dict(metadata or {})  # saved with the file (e.g. a cache key)
        self.count = 0
        self._mean: torch.Tensor | None = None  # (D,) float64
        self._m2: torch.Tensor | None = None  # (D, D) float64, sum of centred outer products
        self._features: torch.Tensor | None = None  # (<=keep, D) float32
        self._rng = torch.Generator().manual_seed(seed)

    # -- accumulation -----------------------------------------------------------------------

    def _init_dim(self, dim: int) -> None:
        if self.dim is None:
            self.dim = dim
        elif self.dim != dim:
            raise ValueError(f"feature width mismatch: these statistics have D={self.dim}, got D={dim}")
        if self._mean is None:
            self._mean = torch.zeros(dim, dtype=torch.float64)
            self._m2 = torch.zeros(dim, dim, dtype=torch.float64)
            self._features = torch.zeros(0, dim, dtype=torch.float32)

    def _combine(self, n_b: int, mean_b: torch.Tensor, m2_b: torch.Tensor) -> None:
        """Chan et al.'s pairwise combination of (count, mean, M2) triples."""
        n_a = self.count
        n = n_a + n_b
        delta = mean_b - self._mean  # (D,)
        self._mean = self._mean + delta * (n_b / n)
        self._m2 = self._m2 + m2_b + torch.outer(delta, delta) * (n_a * n_b / n)
        self.count = n

    @torch.no_grad()
    def update(self, feats) -> "FeatureStats":
        """Add a batch of features ``(B, D)``; returns ``self``."""
        x = _as_matrix(feats, "feats", torch.float64)
        b, d = x.shape
        self._init_dim(d)
        if b == 0:
            return self
        if self.keep:
            self._reservoir_add(x.float())
        mean_b = x.mean(0)
        xc = x - mean_b  # (B, D)
        self._combine(b, mean_b, xc.T @ xc)
        return self

    def _reservoir_add(self, x: torch.Tensor) -> None:
        """Algorithm R, vectorised over a batch: item number t (0-based) replaces a uniformly
        chosen slot j in [0, t] when j < keep. Must run before ``count`` is advanced."""
        t0, k = self.count, self.keep
        n_fill = max(0, min(len(x), k - t0))
        if n_fill:
            self._features = torch.cat([self._features, x[:n_fill]])
        rest = x[n_fill:]
        if len(rest) == 0:
            return
        t = torch.arange(t0 + n_fill, t0 + n_fill + len(rest), dtype=torch.float64)
        j = (torch.rand(len(rest), generator=self._rng, dtype=torch.float64) * (t + 1)).floor().long()
        accepted = torch.nonzero(j < k).flatten()
        if len(accepted) == 0:
            return
        slots = j[accepted].numpy()
        # Several items may hit the same slot; sequentially the last one wins.
        uniq, first_in_reversed = np.unique(slots[::-1], return_index=True)
        winners = accepted.numpy()[::-1][first_in_reversed]
        self._features[torch.from_numpy(uniq)] = rest[torch.from_numpy(winners.copy())]

    @torch.no_grad()
    def merge(self, other: "FeatureStats") -> "FeatureStats":
        """Fold ``other`` into ``self`` (as if its features had been passed to ``update``);
        returns ``self``. Used to combine shards (DDP ranks, dataset chunks)."""
        if not isinstance(other, FeatureStats):
            raise TypeError(f"can only merge FeatureStats, got {type(other).__name__}")
        if other.count == 0:
            return self
        if self.keep != other.keep:
            raise ValueError(f"cannot merge statistics that keep different sample sizes ({self.keep} vs {other.keep})")
        self._init_dim(other.dim)
        if self.keep:
            self._reservoir_merge(other)
        self._combine(other.count, other._mean, other._m2)
        return self

    def _reservoir_merge(self, other: "FeatureStats") -> None:
        """A uniform sample of the union from uniform samples of the parts: draw how many rows
        come from each part as a uniform subset of all ``n_a + n_b`` positions would
        (hypergeometric), then take that many random rows of each part's sample."""
        n_a, n_b, k = self.count, other.count, self.keep
        if n_a + n_b <= k:  # everything fits: plain concatenation, order kept
            self._features = torch.cat([self._features, other._features])
            return
        pick = torch.randperm(n_a + n_b, generator=self._rng)[:k]
        from_a = int((pick < n_a).sum())
        ia = torch.randperm(len(self._features), generator=self._rng)[:from_a]
        ib = torch.randperm(len(other._features), generator=self._rng)[: k - from_a]
        self._features = torch.cat([self._features[ia], other._features[ib]])

    # -- results ----------------------------------------------------------------------------

    def _require(self, n: int) -> None:
        if self.count < n:
            raise ValueError(f"need at least {n} feature rows, have {self.count}")

    @property
    def mean(self) -> torch.Tensor:
        """Mean feature, ``(D,)`` float64."""
        self._require(1)
        return self._mean.clone()

    @property
    def cov(self) -> torch.Tensor:
        """Unbiased covariance (divides by N - 1), ``(D, D)`` float64."""
        self._require(2)
        return self._m2 / (self.count - 1)

    @property
    def features(self) -> torch.Tensor:
        """The kept raw rows, ``(min(keep, count), D)`` float32 (empty when ``keep == 0``)."""
        if self._features is None:
            return torch.zeros(0, self.dim or 0)
        return self._features

    def __repr__(self) -> str:
        return f"FeatureStats(dim={self.dim}, count={self.count}, keep={self.keep}, kept={len(self.features)})"

    # -- persistence ------------------------------------------------------------------------

    def save(self, path: str | os.PathLike, metadata: Mapping[str, str] | None = None) -> Path:
        """Write to a safetensors file (atomically: temp file, then rename). ``metadata``
        (strings only) is added to ``self.metadata`` and stored with it."""
        self._require(1)
        meta = {**self.metadata, **dict(metadata or {})}
        for key, value in meta.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise ValueError(f"metadata must map str to str, got {key!r}: {value!r}")
            if key.startswith(_RESERVED_PREFIX):
                raise ValueError(f"metadata keys starting with {_RESERVED_PREFIX!r} are reserved: {key!r}")
        self.metadata = meta
        header = {
            **meta,
            "genvision.format": _FORMAT,
            "genvision.format_version": _FORMAT_VERSION,
            "genvision.keep": str(self.keep),
            "genvision.seed": str(self.seed),
        }
        tensors = {
            "count": torch.tensor(self.count, dtype=torch.int64),
            "mean": self._mean.contiguous(),
            "m2": self._m2.contiguous(),
        }
        if self.keep:
            tensors["features"] = self._features.contiguous()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            save_file(tensors, tmp, metadata=header)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FeatureStats":
        """Read a file written by :meth:`save`. Only safetensors is read; nothing is unpickled."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"feature statistics file not found: {path}")
        try:
            with safe_open(str(path), framework="pt") as f:
                header = dict(f.metadata() or {})
                if header.get("genvision.format") != _FORMAT:
                    raise DataError(f"{path} is not a genvision feature-statistics file")
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except DataError:
            raise
        except Exception as e:  # safetensors raises its own error types for corrupt headers
            raise DataError(f"cannot read feature statistics from {path}: {e}") from None
        version = header.get("genvision.format_version")
        if version != _FORMAT_VERSION:
            raise DataError(f"{path} has feature-statistics format version {version}, expected {_FORMAT_VERSION}")
        try:
            mean, m2, count = tensors["mean"], tensors["m2"], int(tensors["count"])
            keep = int(header["genvision.keep"])
            seed = int(header.get("genvision.seed", "0"))
        except (KeyError, ValueError) as e:
            raise DataError(f"{path} is missing part of the feature statistics ({e})") from None
        d = mean.shape[0]
        if mean.shape != (d,) or m2.shape != (d, d) or count < 1:
            raise DataError(f"{path} holds inconsistent feature statistics")
        user_meta = {k: v for k, v in header.items() if not k.startswith(_RESERVED_PREFIX)}
        stats = cls(d, keep=keep, seed=seed, metadata=user_meta)
        stats._init_dim(d)
        stats.count = count
        stats._mean = mean.to(torch.float64)
        stats._m2 = m2.to(torch.float64)
        if keep:
            feats = tensors.get("features", torch.zeros(0, d))
            if feats.ndim != 2 or feats.shape[1] != d or len(feats) != min(keep, count):
                raise DataError(f"{path} holds a kept-features table of the wrong shape {tuple(feats.shape)}")
            stats._features = feats.float()
        return stats


# --------------------------------------------------------------------------------------------
# Fréchet distance (FID)
# --------------------------------------------------------------------------------------------


def _sqrt_psd(s: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a symmetric PSD matrix via eigh (negative eigenvalues,
    which are rounding noise, are clamped to zero)."""
    w, v = torch.linalg.eigh(s)
    return (v * w.clamp_min(0).sqrt()) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2).

    ``||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2})`` (Dowson & Landau 1982; FID,
    Heusel et al. 2017, when the moments are of Inception pool features).

    The trace of the matrix square root is computed as ``sum_i sqrt(lambda_i)`` over the
    eigenvalues of ``M = S1^{1/2} S2 S1^{1/2}``: ``S1 S2`` and ``M`` are similar (same
    eigenvalues), and ``M`` is symmetric PSD, so a symmetric eigensolver (``eigh``, backward
    stable) applies and tiny negative eigenvalues from rounding are simply clamped to 0.
    The usual route, ``scipy.linalg.sqrtm(S1 @ S2)``, takes the Schur-based square root of a
    *non-symmetric* product; with rank-deficient covariances (fewer samples than dimensions,
    common with 2048-D features) it returns complex parts and inaccurate traces, which is why
    pytorch-fid adds ``eps * I`` and drops imaginary parts. Eigenvalues of ``M`` under its
    rounding floor are treated as 0, so identical statistics give ~0 even when rank-deficient
    (instead of the ``sqrt(noise)`` bias). Everything is in float64.
    """
    mu1 = torch.as_tensor(mu1).detach().cpu().to(torch.float64)
    mu2 = torch.as_tensor(mu2).detach().cpu().to(torch.float64)
    s1 = torch.as_tensor(sigma1).detach().cpu().to(torch.float64)
    s2 = torch.as_tensor(sigma2).detach().cpu().to(torch.float64)
    d = mu1.shape[0] if mu1.ndim == 1 else -1
    if mu1.ndim != 1 or mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(
            "expected mu1, mu2 of shape (D,) and sigma1, sigma2 of shape (D, D), got "
            f"{tuple(mu1.shape)}, {tuple(s1.shape)}, {tuple(mu2.shape)}, {tuple(s2.shape)}"
        )
    for name, t in (("mu1", mu1), ("sigma1", s1), ("mu2", mu2), ("sigma2", s2)):
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} contains NaN or infinite values")
    s1 = (s1 + s1.T) / 2  # symmetrise away rounding asymmetry
    s2 = (s2 + s2.T) / 2
    root1 = _sqrt_psd(s1)
    m = root1 @ s2 @ root1
    eig = torch.linalg.eigvalsh((m + m.T) / 2)
    # Eigenvalues below the rounding floor of M (D * eps * largest) are noise of either sign;
    # the square root would turn +1e-12 into a 1e-6 bias, so they count as 0.
    floor = eig.abs().max() * eig.numel() * torch.finfo(eig.dtype).eps
    tr_covmean = torch.where(eig > floor, eig, 0).sqrt().sum()
    diff = mu1 - mu2
    return float(diff @ diff + torch.trace(s1) + torch.trace(s2) - 2 * tr_covmean)


def fid_from_stats(a: FeatureStats, b: FeatureStats) -> float:
    """:func:`frechet_distance` between two :class:`FeatureStats`."""
    return frechet_distance(a.mean, a.cov, b.mean, b.cov)


# --------------------------------------------------------------------------------------------
# Kernel Inception distance (KID)
# --------------------------------------------------------------------------------------------


def _mmd2_unbiased_poly(x: torch.Tensor, y: torch.Tensor, degree: int, gamma: float, coef: float) -> float:
    """Unbiased MMD^2 with k(a, b) = (gamma a.b + coef)^degree for equal-size samples."""
    m = x.shape[0]
    k_xx = (x @ x.T * gamma + coef) ** degree  # (m, m)
    k_yy = (y @ y.T * gamma + coef) ** degree  # (m, m)
    k_xy = (x @ y.T * gamma + coef) ** degree  # (m, m)
    sum_xx = k_xx.sum() - k_xx.diagonal().sum()  # i != j only
    sum_yy = k_yy.sum() - k_yy.diagonal().sum()
    return float((sum_xx + sum_yy) / (m * (m - 1)) - 2 * k_xy.sum() / (m * m))


def kernel_inception_distance(
    feats1,
    feats2,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef: float = 1.0,
    seed: int = 0,
) -> tuple[float, float]:
    """KID (Bińkowski et al. 2018, "Demystifying MMD GANs"): mean and std of the unbiased
    MMD^2 estimate over ``subsets`` random subsets of ``subset_size`` rows of each set, with
    the polynomial kernel ``k(x, y) = (gamma x.y + coef)^degree``, ``gamma = 1/D`` by
    default. Same estimator and defaults as torch-fidelity / the authors' code (the cross
    term averages all m^2 pairs, the within-set terms exclude the diagonal); the std is the
    population std over subsets. ``subset_size`` is clipped to ``min(n1, n2)``.
    Computed in float64; subsets drawn without replacement from a generator seeded by ``seed``.
    """
    x = _as_matrix(feats1, "feats1", torch.float64)
    y = _as_matrix(feats2, "feats2", torch.float64)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature widths differ: {x.shape[1]} vs {y.shape[1]}")
    if subsets < 1:
        raise ValueError(f"subsets must be >= 1, got {subsets}")
    m = min(subset_size, len(x), len(y))
    if m < 2:
        raise ValueError(f"KID needs at least 2 rows in each set, got {len(x)} and {len(y)}")
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    g = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(subsets):
        xs = x[torch.randperm(len(x), generator=g)[:m]]
        ys = y[torch.randperm(len(y), generator=g)[:m]]
        values.append(_mmd2_unbiased_poly(xs, ys, degree, gamma, coef))
    t = torch.tensor(values, dtype=torch.float64)
    return float(t.mean()), float(t.std(unbiased=False))


# --------------------------------------------------------------------------------------------
# k-NN manifold metrics: precision/recall, density/coverage
# --------------------------------------------------------------------------------------------


def _sq_dists(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances ``(len(a), len(b))`` via the Gram trick, clamped at 0."""
    d = a.pow(2).sum(1, keepdim=True) + b.pow(2).sum(1) - 2 * (a @ b.T)
    return d.clamp_min_(0)


def _knn_radii_sq(x: torch.Tensor, k: int, batch_size: int) -> torch.Tensor:
    """Squared distance from each row to its k-th nearest *other* row, ``(N,)``.
    The row itself sits at distance 0, hence the (k+1)-th smallest; rows are processed in
    chunks so memory is ``batch_size * N``."""
    if not 1 <= k < len(x):
        raise ValueError(f"k must be in [1, {len(x) - 1}] for {len(x)} rows, got {k}")
    out = torch.empty(len(x), dtype=x.dtype)
    for i in range(0, len(x), batch_size):
        d = _sq_dists(x[i : i + batch_size], x)  # (b, N)
        out[i : i + batch_size] = d.kthvalue(k + 1, dim=1).values
    return out


def _pair(real, fake) -> tuple[torch.Tensor, torch.Tensor]:
    r = _as_matrix(real, "real")
    f = _as_matrix(fake, "fake")
    dtype = torch.promote_types(r.dtype, f.dtype)
    r, f = r.to(dtype), f.to(dtype)
    if r.shape[1] != f.shape[1]:
        raise ValueError(f"feature widths differ: real D={r.shape[1]}, fake D={f.shape[1]}")
    return r, f


def _fraction_inside(points: torch.Tensor, centres: torch.Tensor, radii_sq: torch.Tensor, batch_size: int) -> float:
    """Fraction of ``points`` inside at least one ball (centre_i, radius_i), boundary included."""
    inside = 0
    for i in range(0, len(points), batch_size):
        d = _sq_dists(points[i : i + batch_size], centres)  # (b, N_centres)
        inside += int((d <= radii_sq).any(dim=1).sum())
    return inside / len(points)


@torch.no_grad()
def precision_recall(real, fake, k: int = 3, batch_size: int = 1000) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019).

    Each set's manifold is the union of balls around its points with radius the distance to
    the point's k-th nearest neighbour in the same set. Precision: fraction of fake points
    inside the real manifold (quality); recall: fraction of real points inside the fake
    manifold (diversity). ``k=3`` is the paper's default. Distances are computed
    ``batch_size`` rows at a time, so memory is ``batch_size * max(N_real, N_fake)`` floats.
    """
    r, f = _pair(real, fake)
    precision = _fraction_inside(f, r, _knn_radii_sq(r, k, batch_size), batch_size)
    recall = _fraction_inside(r, f, _knn_radii_sq(f, k, batch_size), batch_size)
    return precision, recall


@torch.no_grad()
def density_coverage(real, fake, k: int = 5, batch_size: int = 1000) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics").

    With real k-NN balls B_i: density = (1 / (k M)) sum_j #{i : fake_j in B_i} (about 1 when
    fakes are distributed like reals, can exceed 1); coverage = fraction of real balls that
    contain at least one fake. Only real balls are used, so outlying fakes cannot inflate the
    scores. Strict ``<`` comparisons as in the authors' ``prdc`` code; ``k=5`` is their default.
    """
    r, f = _pair(real, fake)
    radii = _knn_radii_sq(r, k, batch_size)  # (N_real,)
    hits = 0
    nearest_fake = torch.full((len(r),), float("inf"), dtype=r.dtype)  # (N_real,)
    for i in range(0, len(f), batch_size):
        d = _sq_dists(f[i : i + batch_size], r)  # (b, N_real)
        hits += int((d < radii).sum())
        nearest_fake = torch.minimum(nearest_fake, d.min(dim=0).values)
    density = hits / (k * len(f))
    coverage = float((nearest_fake < radii).double().mean())
    return density, coverage


# --------------------------------------------------------------------------------------------
# Class-probability metrics: IS and the predicted-class histogram
# --------------------------------------------------------------------------------------------


def inception_score(probs, splits: int = 10) -> tuple[float, float]:
    """Inception score (Salimans et al. 2016) from class probabilities ``(N, C)``:
    ``exp(E_x KL(p(y|x) || p(y)))`` computed on each of ``splits`` contiguous chunks (as the
    original code does), returned as (mean, population std) over chunks. Rows must be
    probabilities (softmax already applied), not logits."""
    p = _as_matrix(probs, "probs", torch.float64)
    n = len(p)
    if not 1 <= splits <= n:
        raise ValueError(f"splits must be in [1, {n}], got {splits}")
    if (p < 0).any() or not torch.allclose(p.sum(1), torch.ones(n, dtype=p.dtype), atol=1e-3):
        raise ValueError("probs rows must be non-negative and sum to 1 (apply softmax to logits first)")
    scores = []
    for i in range(splits):
        part = p[i * n // splits : (i + 1) * n // splits]  # (n / splits, C)
        py = part.mean(0, keepdim=True)  # (1, C)
        # xlogy: 0 * log 0 = 0, so one-hot rows and never-predicted classes are fine.
        kl = (torch.xlogy(part, part) - torch.xlogy(part, py)).sum(1)
        scores.append(math.exp(float(kl.mean())))
    t = torch.tensor(scores, dtype=torch.float64)
    return float(t.mean()), float(t.std(unbiased=False))


def class_histogram_stats(pred_labels, num_classes: int, min_share: float | None = None) -> dict:
    """How generated samples spread over classes, as judged by a classifier's predictions.

    Returns a dict with

    - ``histogram``: list of per-class counts (length ``num_classes``);
    - ``coverage``: fraction of classes whose share of the predictions is at least
      ``min_share``. The default ``min_share = 0.1 / num_classes`` (a tenth of the uniform
      share) counts a class as covered only if it is produced at a non-negligible rate, so a
      few misclassified samples do not make a collapsed generator look diverse (pass a tiny
      value such as ``1e-12`` for "predicted at least once");
    - ``kl_to_uniform``: KL(hist || uniform) in nats, 0 for a perfectly balanced set and
      ``log C`` when everything falls in one class;
    - ``min_share`` and ``num_samples`` for the record.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    labels = torch.as_tensor(pred_labels).detach().cpu()
    if labels.ndim != 1 or labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"pred_labels must be a 1-D integer tensor, got {labels.dtype} of shape {tuple(labels.shape)}")
    if len(labels) == 0:
        raise ValueError("pred_labels is empty")
    labels = labels.long()
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"pred_labels must lie in [0, {num_classes - 1}], got [{int(labels.min())}, {int(labels.max())}]")
    min_share = 0.1 / num_classes if min_share is None else float(min_share)
    if not 0 < min_share <= 1:
        raise ValueError(f"min_share must be in (0, 1], got {min_share}")
    counts = torch.bincount(labels, minlength=num_classes)
    share = counts.double() / len(labels)
    kl = float((torch.xlogy(share, share) + share * math.log(num_classes)).sum())
    return {
        "coverage": float((share >= min_share).double().mean()),
        "kl_to_uniform": max(kl, 0.0),
        "histogram": counts.tolist(),
        "min_share": min_share,
        "num_samples": len(labels),
    }
