"""Tests for genvision.metrics: closed forms, reference implementations, hand-worked cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image
from scipy.signal import convolve2d

from genvision.errors import DataError
from genvision.metrics import (
    FeatureStats,
    accuracy,
    class_histogram_stats,
    confusion_matrix,
    density_coverage,
    fid_from_stats,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
    per_class_accuracy,
    plot_confusion_matrix,
    precision_recall,
    psnr,
    reconstruction_errors,
    rgb_to_y,
    sr_psnr_ssim,
    ssim,
)


def _random_psd(d: int, rng: np.random.Generator) -> np.ndarray:
    a = rng.standard_normal((d, d))
    return a @ a.T + 0.1 * np.eye(d)


# --------------------------------------------------------------------------------------------
# FID
# --------------------------------------------------------------------------------------------


def test_fid_closed_form_diagonal_covariances():
    m1, m2 = np.array([0.0, 0.0]), np.array([1.0, 2.0])
    s1, s2 = np.diag([1.0, 4.0]), np.diag([4.0, 1.0])
    # trace term: (1 + 4) + (4 + 1) - 2 * (sqrt(1*4) + sqrt(4*1)) = 10 - 8 = 2; mean term: 1 + 4.
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(2.0 + 5.0, abs=1e-10)


def test_fid_non_commuting_matches_scipy_sqrtm():
    rng = np.random.default_rng(0)
    d = 6
    s1, s2 = _random_psd(d, rng), _random_psd(d, rng)
    m1, m2 = rng.standard_normal(d), rng.standard_normal(d)
    assert not np.allclose(s1 @ s2, s2 @ s1)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    expected = np.sum((m1 - m2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    got = frechet_distance(torch.from_numpy(m1), torch.from_numpy(s1), m2, s2)  # tensors or arrays
    assert got == pytest.approx(expected, rel=1e-9)


def test_fid_identical_and_rank_deficient_stats():
    rng = np.random.default_rng(1)
    feats = rng.standard_normal((40, 64)) * 3 + 5  # fewer samples than dimensions: rank 39
    stats = FeatureStats().update(feats)
    assert abs(fid_from_stats(stats, stats)) < 1e-8
    other = FeatureStats().update(rng.standard_normal((40, 64)) * 3 + 5)
    fid = fid_from_stats(stats, other)
    assert math.isfinite(fid) and fid > 0


def test_fid_rejects_bad_shapes():
    with pytest.raises(ValueError, match="shape"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))


# --------------------------------------------------------------------------------------------
# FeatureStats
# --------------------------------------------------------------------------------------------


def test_feature_stats_match_numpy_over_batches():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((257, 7)) * rng.uniform(0.5, 3, size=7) + 100.0  # large mean
    stats = FeatureStats()
    for chunk in np.array_split(x, [1, 50, 51, 200]):
        stats.update(torch.from_numpy(chunk).float() if len(chunk) % 2 else chunk)
    stats_np = FeatureStats().update(x)
    assert stats.count == 257
    np.testing.assert_allclose(stats_np.mean.numpy(), x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats_np.cov.numpy(), np.cov(x, rowvar=False), rtol=1e-9)
    # The float32 chunks lose precision only at float32 level.
    np.testing.assert_allclose(stats.cov.numpy(), np.cov(x, rowvar=False), rtol=1e-4, atol=1e-4)


def test_feature_stats_merge_equals_concatenation():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((30, 5)), rng.standard_normal((45, 5)) + 2
    merged = FeatureStats(keep=100).update(a).merge(FeatureStats(keep=100).update(b))
    whole = FeatureStats(keep=100).update(np.concatenate([a, b]))
    assert merged.count == whole.count == 75
    torch.testing.assert_close(merged.mean, whole.mean)
    torch.testing.assert_close(merged.cov, whole.cov)
    torch.testing.assert_close(merged.features, whole.features)  # all fit: kept in order
    with pytest.raises(ValueError, match="width"):
        merged.merge(FeatureStats(keep=100).update(np.zeros((2, 3))))
    with pytest.raises(ValueError, match="sample sizes"):
        merged.merge(FeatureStats(keep=0).update(a))


def test_feature_stats_reservoir_is_bounded_and_uniform():
    x = torch.arange(2000, dtype=torch.float64).unsqueeze(1)  # an ordered stream
    stats = FeatureStats(keep=200, seed=0)
    for chunk in x.split(64):
        stats.update(chunk)
    kept = stats.features.flatten()
    assert kept.shape == (200,) and len(kept.unique()) == 200  # a sample without replacement
    assert 800 < kept.mean() < 1200  # spread over the whole stream, not the first 200 rows
    shard = FeatureStats(keep=200, seed=1).update(x[:1000]).merge(FeatureStats(keep=200, seed=2).update(x[1000:]))
    assert shard.features.shape == (200, 1) and 700 < shard.features.mean() < 1300


def test_feature_stats_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    stats = FeatureStats(keep=10, metadata={"extractor": "inception-v3"}).update(rng.standard_normal((25, 4)))
    path = stats.save(tmp_path / "sub" / "stats.safetensors", metadata={"key": "abc123"})
    loaded = FeatureStats.load(path)
    assert loaded.count == 25 and loaded.keep == 10
    assert loaded.metadata == {"extractor": "inception-v3", "key": "abc123"}
    torch.testing.assert_close(loaded.mean, stats.mean)
    torch.testing.assert_close(loaded.cov, stats.cov)
    torch.testing.assert_close(loaded.features, stats.features)
    loaded.update(rng.standard_normal((5, 4)))  # can keep accumulating
    assert loaded.count == 30 and len(loaded.features) == 10
    assert [p.name for p in path.parent.iterdir()] == ["stats.safetensors"]  # no temp files left
    with pytest.raises(ValueError, match="reserved"):
        stats.save(tmp_path / "x.safetensors", metadata={"genvision.format": "x"})


def test_feature_stats_load_refuses_other_files(tmp_path):
    bad = tmp_path / "stats.safetensors"
    bad.write_bytes(b"\x80\x04not a safetensors file")
    with pytest.raises(DataError, match="stats.safetensors"):
        FeatureStats.load(bad)
    with pytest.raises(DataError, match="not found"):
        FeatureStats.load(tmp_path / "missing.safetensors")
    from safetensors.torch import save_file

    save_file({"mean": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(DataError, match="not a genvision"):
        FeatureStats.load(tmp_path / "other.safetensors")


def test_feature_stats_rejects_non_finite():
    with pytest.raises(ValueError, match="NaN"):
        FeatureStats().update(torch.tensor([[1.0, float("nan")]]))


# --------------------------------------------------------------------------------------------
# KID
# --------------------------------------------------------------------------------------------


def _mmd2_unbiased_numpy(x: np.ndarray, y: np.ndarray, degree=3, coef=1.0) -> float:
    """Direct O(n^2) double loop over pairs, the textbook unbiased estimator."""
    gamma = 1.0 / x.shape[1]
    k = lambda a, b: (gamma * a @ b + coef) ** degree  # noqa: E731
    m = len(x)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_matches_direct_numpy():
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((12, 5)), rng.standard_normal((12, 5)) + 0.5
    mean, std = kernel_inception_distance(x, y, subsets=1, subset_size=12)
    assert mean == pytest.approx(_mmd2_unbiased_numpy(x, y), rel=1e-10)
    assert std == 0.0


def test_kid_same_vs_shifted_distribution():
    g = torch.Generator().manual_seed(6)
    a, b = torch.randn(600, 16, generator=g), torch.randn(600, 16, generator=g)
    same, same_std = kernel_inception_distance(a, b, subsets=20, subset_size=200)
    shifted, _ = kernel_inception_distance(a, b + 1.0, subsets=20, subset_size=200)
    assert abs(same) < 3 * same_std + 1e-3
    assert shifted > 0.1 and shifted > 20 * abs(same)
    # subset_size is clipped to the smaller set; the seed makes it reproducible.
    r1 = kernel_inception_distance(a[:50], b, subsets=3, subset_size=1000, seed=1)
    assert r1 == kernel_inception_distance(a[:50], b, subsets=3, subset_size=1000, seed=1)


# --------------------------------------------------------------------------------------------
# Precision / recall, density / coverage
# --------------------------------------------------------------------------------------------


def _clusters(n_per: int, centres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.concatenate([c + rng.standard_normal((n_per, centres.shape[1])) for c in centres])


def test_precision_recall_identical_sets():
    x = torch.randn(300, 8, generator=torch.Generator().manual_seed(7))
    assert precision_recall(x, x.clone(), k=3, batch_size=64) == (1.0, 1.0)
    density, coverage = density_coverage(x, x.clone(), k=5, batch_size=64)
    assert coverage == 1.0 and 0.8 < density < 1.3


def test_precision_recall_mode_collapse():
    rng = np.random.default_rng(8)
    centres = 20.0 * np.array([[0, 0], [1, 0], [0, 1], [1, 1], [2, 0]])  # five separated clusters
    real = _clusters(200, centres, rng)
    fake = _clusters(500, centres[:1], rng)  # every fake sample in cluster 0
    precision, recall = precision_recall(real, fake, k=3, batch_size=128)
    assert precision > 0.9
    assert recall < 0.3
    density, coverage = density_coverage(real, fake, k=5)
    assert coverage < 0.3


def test_precision_recall_chunking_does_not_change_result():
    g = torch.Generator().manual_seed(9)
    real, fake = torch.randn(200, 4, generator=g), torch.randn(150, 4, generator=g) * 1.5
    assert precision_recall(real, fake, batch_size=7) == precision_recall(real, fake, batch_size=10_000)
    assert density_coverage(real, fake, batch_size=7) == pytest.approx(density_coverage(real, fake, batch_size=999))


# --------------------------------------------------------------------------------------------
# Inception score and class histogram
# --------------------------------------------------------------------------------------------


def test_inception_score_extremes():
    c = 7
    one_hot = torch.eye(c).repeat(10 * 3, 1)  # 10 splits, each a balanced set of one-hots
    mean, std = inception_score(one_hot, splits=10)
    assert mean == pytest.approx(c) and std == pytest.approx(0.0, abs=1e-12)
    same = torch.softmax(torch.randn(1, c), dim=1).repeat(100, 1)
    assert inception_score(same, splits=10)[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="softmax"):
        inception_score(torch.randn(20, c), splits=2)


def test_class_histogram_stats():
    one_class = class_histogram_stats(torch.full((50,), 3), num_classes=10)
    assert one_class["coverage"] == pytest.approx(0.1)
    assert one_class["kl_to_uniform"] == pytest.approx(math.log(10))
    assert one_class["histogram"] == [0, 0, 0, 50, 0, 0, 0, 0, 0, 0]
    balanced = class_histogram_stats(torch.arange(10).repeat(5), num_classes=10)
    assert balanced["coverage"] == 1.0 and balanced["kl_to_uniform"] == pytest.approx(0.0, abs=1e-12)
    # One stray prediction of class 1 among 1000 is below the default minimum share (1%).
    stray = class_histogram_stats(torch.tensor([0] * 999 + [1]), num_classes=10)
    assert stray["coverage"] == pytest.approx(0.1)
    assert class_histogram_stats(torch.tensor([0] * 999 + [1]), 10, min_share=1e-12)["coverage"] == pytest.approx(0.2)


# --------------------------------------------------------------------------------------------
# Image metrics
# --------------------------------------------------------------------------------------------


def test_rgb_to_y_white_black():
    assert rgb_to_y(torch.ones(3, 2, 2)).unique().tolist() == [pytest.approx(235.0)]
    assert rgb_to_y(torch.zeros(2, 3, 2, 2)).shape == (2, 1, 2, 2)
    assert rgb_to_y(torch.zeros(3, 1, 1)).item() == pytest.approx(16.0)


def test_psnr_known_mse():
    x = torch.rand(2, 3, 16, 16) * 0.8
    assert psnr(x + 0.1, x) == pytest.approx(20.0, abs=1e-4)  # MSE 0.01 on [0, 1]
    assert psnr(x, x) == math.inf


def _ssim_reference(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    """Wang et al. 2004 / BasicSR: gaussian 11x11 sigma 1.5, 'valid' filtering."""
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    f = lambda t: convolve2d(t, w, mode="valid")  # noqa: E731
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = f(a), f(b)
    va, vb, cab = f(a * a) - mu_a**2, f(b * b) - mu_b**2, f(a * b) - mu_a * mu_b
    m = ((2 * mu_a * mu_b + c1) * (2 * cab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (va + vb + c2))
    return float(m.mean())


def test_ssim_identity_and_reference():
    g = torch.Generator().manual_seed(10)
    x = torch.rand(1, 24, 30, generator=g, dtype=torch.float64)
    assert ssim(x, x) == pytest.approx(1.0)
    y = (x + 0.1 * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    assert ssim(x, y) == pytest.approx(_ssim_reference(x[0].numpy(), y[0].numpy(), 1.0), rel=1e-10)
    with pytest.raises(ValueError, match="11x11"):
        ssim(torch.rand(1, 8, 8), torch.rand(1, 8, 8))


def test_sr_protocol_shave_and_quantization():
    g = torch.Generator().manual_seed(11)
    hr = torch.randint(0, 256, (3, 32, 32), generator=g).float() / 255
    sr = hr.clone()
    sr[:, :2, :] = 1 - sr[:, :2, :]  # errors only in a 2-pixel border
    sr[:, :, -2:] = 0.0
    p, s = sr_psnr_ssim(sr, hr, scale=2)
    assert p == math.inf and s == pytest.approx(1.0)
    assert sr_psnr_ssim(sr, hr, scale=1)[0] < 40  # without enough shave the error counts
    # Sub-level noise disappears in the 8-bit quantisation; out-of-range values are clamped.
    assert sr_psnr_ssim((hr + 0.001).clamp(max=1.5), hr, scale=2)[0] == math.inf


def test_sr_protocol_known_value_on_y_and_gray():
    hr = torch.full((3, 20, 20), 100 / 255)
    sr = hr + 10 / 255  # +10 levels on each of R, G, B
    dy = 10 * (65.481 + 128.553 + 24.966) / 255  # the Y difference
    p, _ = sr_psnr_ssim(sr, hr, scale=4)
    assert p == pytest.approx(20 * math.log10(255 / dy), abs=1e-9)
    p_rgb, _ = sr_psnr_ssim(sr, hr, scale=4, y_only=False)
    assert p_rgb == pytest.approx(20 * math.log10(255 / 10), abs=1e-9)
    p_gray, s_gray = sr_psnr_ssim(sr[:1], hr[:1], scale=4)
    assert p_gray == pytest.approx(p_rgb) and 0 < s_gray <= 1
    with pytest.raises(ValueError, match="mod-crop"):
        sr_psnr_ssim(sr, hr[:, :18], scale=2)


def test_reconstruction_errors_value_ranges():
    x = torch.rand(4, 3, 16, 16) * 0.8
    r01 = reconstruction_errors(x + 0.1, x)
    r11 = reconstruction_errors((x + 0.1) * 2 - 1, x * 2 - 1, value_range=(-1, 1))
    for r in (r01, r11):
        assert r["mse"] == pytest.approx(0.01, rel=1e-6)
        assert r["psnr"] == pytest.approx(20.0, abs=1e-4)
        assert 0 < r["ssim"] < 1
    assert reconstruction_errors(x, x)["ssim"] == pytest.approx(1.0)
    assert math.isnan(reconstruction_errors(torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8))["ssim"])


# --------------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------------


def test_confusion_matrix_and_accuracy_by_hand():
    target = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    pred = torch.tensor([0, 0, 1, 1, 2, 2, 2, 2, 0])
    cm = confusion_matrix(pred, target, num_classes=4)
    expected = torch.tensor([[2, 1, 0, 0], [0, 1, 1, 0], [1, 0, 3, 0], [0, 0, 0, 0]])
    assert cm.dtype == torch.int64 and torch.equal(cm, expected)
    assert accuracy(pred, target) == pytest.approx(6 / 9)
    assert accuracy(torch.nn.functional.one_hot(pred, 4).float(), target) == pytest.approx(6 / 9)  # scores
    pca = per_class_accuracy(cm)
    assert pca[:3].tolist() == pytest.approx([2 / 3, 1 / 2, 3 / 4]) and math.isnan(pca[3])
    with pytest.raises(ValueError, match="lie in"):
        confusion_matrix(pred, target, num_classes=2)


def test_plot_confusion_matrix_png(tmp_path):
    cm = torch.tensor([[50, 2, 0], [3, 40, 7], [0, 10, 38]])
    path = plot_confusion_matrix(cm, ["cat", "dog", "a rather long class name"], tmp_path / "out" / "cm.png")
    with Image.open(path) as img:
        assert img.format == "PNG" and img.mode == "RGB"
        w, h = img.size
        assert w == h and w > 3 * 24  # square: grid plus equal label margins
        # The diagonal of a well-classified matrix is dark, an empty cell stays white.
        px = np.asarray(img)
    assert px.min() < 60 and px.max() == 255
    big = plot_confusion_matrix(torch.eye(10, dtype=torch.long), [str(i) for i in range(10)], tmp_path / "big.png")
    with Image.open(big) as img:
        assert img.size[0] == img.size[1] > w - 100
    with pytest.raises(ValueError, match="class names"):
        plot_confusion_matrix(cm, ["a", "b"], tmp_path / "x.png")
