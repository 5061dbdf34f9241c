"""Generation and evaluation with bounded memory whatever -n is, and seeds that do not depend on the batch size."""

from __future__ import annotations

import time

import pytest
import torch
from PIL import Image

from genvision import io as gio
from genvision.cli import main
from genvision.errors import ConfigError
from genvision.metrics import samples as ev
from genvision.registry import create_model
from genvision.runtime import SEED_MAX, derive_seed
from genvision.sampling import (
    MAX_GENERATE_BYTES,
    generate,
    interpolate,
    iter_generate,
    latents_for,
)


@pytest.fixture(scope="module")
def gan():
    torch.manual_seed(0)
    return create_model("dcgan", {"image_size": 28, "width": 8, "num_classes": 10}).eval()


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return create_model("vae", {"arch": "mlp", "hidden": 16, "latent_dim": 5}).eval()


def test_torch_randn_in_pieces_differs_from_one_draw():
    """Why latents are drawn per image: torch's CPU randn cut into pieces is not one big draw
    (its vectorised path works in blocks of 16 values), so batching would change the images."""
    one = torch.randn(10, 100, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    pieces = torch.cat([torch.randn(3, 100, generator=g), torch.randn(7, 100, generator=g)])
    assert not torch.equal(one, pieces)


@pytest.mark.parametrize("name", ["gan", "vae"])
def test_images_do_not_depend_on_the_batch_size(name, request):
    """The latents are exactly the same for any batching; the images then agree up to the float
    rounding of the network's batched arithmetic (its kernels differ by batch size)."""
    model = request.getfixturevalue(name)
    whole = latents_for(model, 11, 0, 7)
    assert torch.equal(torch.cat([latents_for(model, 11, 0, 3), latents_for(model, 11, 3, 4)]), whole)
    reference = generate(model, 7, seed=11, batch_size=256)
    for batch_size in (1, 3, 7):
        torch.testing.assert_close(generate(model, 7, seed=11, batch_size=batch_size), reference, atol=1e-5, rtol=0)
    streamed = torch.cat(list(iter_generate(model, 7, seed=11, batch_size=2)))
    torch.testing.assert_close(streamed, reference, atol=1e-5, rtol=0)
    torch.testing.assert_close(generate(model, 1, seed=11)[0], reference[0], atol=1e-5, rtol=0)  # a prefix
    assert torch.equal(generate(model, 7, seed=11, batch_size=256), reference)  # and repeatable exactly
    assert (generate(model, 7, seed=12) - reference).abs().max() > 1e-3


def test_interpolation_endpoints_are_the_seeds_images(gan):
    walk = interpolate(gan, (5, 9), 4, class_label=0, batch_size=3)
    start = generate(gan, 1, seed=5, class_label=0)[0]
    end = generate(gan, 1, seed=9, class_label=0)[0]
    torch.testing.assert_close(walk[0], start, atol=1e-5, rtol=0)
    torch.testing.assert_close(walk[-1], end, atol=1e-5, rtol=0)


def test_derived_seeds_stay_in_range_and_apart():
    assert derive_seed(123, 0) == 123
    seeds = {derive_seed(s, i) for s in (0, 1, SEED_MAX) for i in range(1, 2000)}
    assert len(seeds) == 3 * 1999 and all(0 <= s <= SEED_MAX for s in seeds)
    assert all(0 <= derive_seed(SEED_MAX, i) <= SEED_MAX for i in (10**9, 2**62))
    torch.Generator().manual_seed(derive_seed(SEED_MAX, 1))  # accepted by torch


def test_seed_range_is_checked(gan):
    for bad in (-1, SEED_MAX + 1, 2**64, 1.5):
        with pytest.raises(ConfigError, match=r"--seed must be an integer in 0\.\.9223372036854775807"):
            generate(gan, 1, seed=bad)
    assert generate(gan, 1, seed=SEED_MAX).shape == (1, 1, 28, 28)


def test_in_memory_generate_refuses_huge_requests_at_once(gan):
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="over the 4 GiB bound of generate.*iter_generate"):
        generate(gan, 100_000_000)
    assert time.perf_counter() - start < 1.0  # refused before drawing anything
    per_image = 28 * 28 * 4
    assert (MAX_GENERATE_BYTES // per_image) * per_image <= MAX_GENERATE_BYTES


def test_iter_generate_is_lazy_for_any_n(gan, monkeypatch):
    calls = []
    original = gan.generate

    def counting(z, labels=None, **kw):
        calls.append(z.shape[0])
        return original(z, labels, **kw)

    monkeypatch.setattr(gan, "generate", counting)
    batches = iter_generate(gan, 100_000_000, seed=1, batch_size=64)
    first, second = next(batches), next(batches)
    assert first.shape == (64, 1, 28, 28) and second.shape == (64, 1, 28, 28) and calls == [64, 64]
    batches.close()
    with pytest.raises(ConfigError, match="-n must be at least 1"):
        iter_generate(gan, 0)  # checked on the call, before the first batch is asked for


@pytest.fixture(scope="module")
def saved_gan(tmp_path_factory, gan):
    from genvision.checkpoints import save_pretrained

    path = tmp_path_factory.mktemp("gan") / "model"
    save_pretrained(gan, path)
    return path


def test_cli_grid_over_the_pixel_limit_is_refused_up_front(saved_gan, tmp_path, capsys):
    start = time.perf_counter()
    code = main(["generate", "--model", str(saved_gan), "-n", "1e8", "-o", str(tmp_path / "grid.png")])
    err = capsys.readouterr().err
    assert code != 0 and err.count("\n") == 1
    assert f"over the limit of {gio.MAX_PIXELS}" in err and "-o FOLDER/" in err
    assert time.perf_counter() - start < 5 and not (tmp_path / "grid.png").exists()


def test_cli_folder_output_streams_batch_by_batch(saved_gan, tmp_path, capsys, monkeypatch):
    """-n 100000000 to a folder: images are written as each batch comes; a write failure at image
    300 stops the job after only two 256-image batches were generated."""
    from genvision.checkpoints import load_pretrained

    model = load_pretrained(saved_gan, kind="gan")
    generated = []
    original = type(model).generate

    def counting(self, z, labels=None, **kw):
        generated.append(z.shape[0])
        return original(self, z, labels, **kw)

    monkeypatch.setattr(type(model), "generate", counting)
    saved = {"n": 0}

    def save(image, path, **kw):
        saved["n"] += 1
        if saved["n"] > 300:
            raise ConfigError(f"{path}: cannot write (No space left on device)")
        return path  # no real file: the test is about what is held in memory

    monkeypatch.setattr(gio, "save_image", save)
    code = main(["generate", "--model", str(saved_gan), "-n", "100000000", "-o", f"{tmp_path}/out/"])
    err = capsys.readouterr().err
    assert code != 0 and "No space left on device" in err and "stopped after writing 300 of 100000000" in err
    assert generated == [256, 256]


def test_cli_folder_images_equal_the_python_api(saved_gan, tmp_path, capsys):
    from genvision.checkpoints import load_pretrained

    out = tmp_path / "out"
    assert main(["generate", "--model", str(saved_gan), "-n", "5", "--seed", "7", "--batch-size", "2",
                 "-o", f"{out}/"]) == 0
    expected = generate(load_pretrained(saved_gan, kind="gan"), 5, seed=7)
    for i in range(5):
        got = torch.from_numpy(gio.to_uint8_array(out / f"7_{i:05d}.png", "L")).permute(2, 0, 1)
        want = ((expected[i] + 1) / 2 * 255).round().to(torch.uint8)
        assert torch.equal(got, want), i
    assert Image.open(out / "7_00004.png").size == (28, 28)


class _FakeExtractor:
    """Features = the flattened mean of each image (enough for the bookkeeping tested here)."""

    class _Out:
        def __init__(self, features):
            self.features, self.probs = features, None

    def __call__(self, images):
        return self._Out(images.flatten(1)[:, :4].double())


def test_sample_metrics_keeps_a_bounded_sample_and_seeds_in_range(monkeypatch):
    seeds, keeps = [], []
    original = ev.FeatureStats

    class Recording(original):
        def __init__(self, *args, keep=0, **kw):
            keeps.append(keep)
            super().__init__(*args, keep=keep, **kw)

    monkeypatch.setattr(ev, "FeatureStats", Recording)
    monkeypatch.setattr(ev, "MAX_KEPT_FEATURES", 50)

    def sampler(n, seed):
        seeds.append(seed)
        return torch.randn(n, 1, 4, 4, generator=torch.Generator().manual_seed(seed))

    reference = original(keep=50)
    reference.update(torch.randn(200, 4, dtype=torch.float64))
    metrics = ev.sample_metrics(sampler, _FakeExtractor(), reference, n=120, batch_size=32, seed=SEED_MAX,
                                progress=False, full=False)
    assert keeps == [50] and metrics["num_samples"] == 120
    assert len(seeds) == 4 and len(set(seeds)) == 4 and all(0 <= s < 2**63 for s in seeds)
    assert seeds[0] == SEED_MAX  # the first batch uses the seed itself
    assert "uniform sample of 50 of" in ev.kept_features_note(120)[0] and not ev.kept_features_note(50)
