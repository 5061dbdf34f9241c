"""Generative inpainting (issue 13): RePaint with a DiT, latent optimisation with a VAE/CVAE, and
``genvision inpaint --method dit|vae`` — on tiny untrained models, in a few seconds.

What is checked: known pixels never change (tensors and files, bit for bit), seeds repeat and
differ, N samples come back, the RePaint process by hand (an all-known mask, the exact field of a
one-image dataset, every network call seeing the context on its path, the resampling schedule and
its noising), the latent search lowering the masked error, the CVAE's label, one-line refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from genvision import cli
from genvision.apps.edit.generative import fit_latents, inpaint_dit, inpaint_vae
from genvision.apps.edit.inpaint import inpaint_array, inpaint_samples
from genvision.checkpoints import save_pretrained
from genvision.errors import ConfigError
from genvision.models.dit import DiT, DiTConfig
from genvision.processes.flow import interpolate
from genvision.processes.inpaint import renoise, repaint_integrate, repaint_schedule
from genvision.registry import create_model, get_entry
from genvision.sampling import latents_for


def tiny_dit(num_classes: int = 3) -> DiT:
    torch.manual_seed(0)
    model = DiT(DiTConfig(image_size=8, channels=1, num_classes=num_classes, patch_size=4, dim=16, depth=2,
                          heads=2, sample_steps=4, sampler="euler"))
    with torch.no_grad():  # adaLN-Zero starts as the zero field; give every layer some weight
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model.eval()


def tiny_vae(name: str = "vae") -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, get_entry(name).tiny).eval()  # MLP, latent_dim 4, 28x28 grey


def _digit(size: int) -> torch.Tensor:
    """(1, size, size) in [-1, 1]: a bright ring on black, a stand-in for a digit."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    r = (xx**2 + yy**2).sqrt()
    return (((r > 0.35) & (r < 0.7)).float() * 2 - 1)[None]


def _bottom_half(size: int) -> torch.Tensor:
    mask = torch.zeros(size, size, dtype=torch.bool)
    mask[size // 2:] = True
    return mask


def _run(argv, capsys) -> tuple[int, str, str]:
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


# ----------------------------------------------------------------------------- the process


def test_repaint_schedule_and_renoise_keep_the_path_marginals():
    assert repaint_schedule(3) == [0, 1, 2, 3]
    assert repaint_schedule(4, resample=2, jump=2) == [0, 1, 2, 0, 1, 2, 3, 4, 2, 3, 4]
    assert repaint_schedule(2, resample=3) == [0, 1, 0, 1, 0, 1, 2, 1, 2, 1, 2]
    for bad in ({"steps": 0}, {"steps": 2, "resample": 0}, {"steps": 2, "jump": 0}, {"steps": 2, "resample": 101}):
        with pytest.raises(ConfigError):
            repaint_schedule(**{"resample": 1, **bad})
    # noising back from s to t keeps x_t ~ t x1 + (1 - t) N(0, 1) given the data x1
    g = torch.Generator().manual_seed(0)
    x1, s, t = 0.6, 0.8, 0.3
    x_s = s * x1 + (1 - s) * torch.randn(200_000, generator=g)
    x_t = renoise(x_s, s, t, torch.randn(200_000, generator=g))
    assert float(x_t.mean()) == pytest.approx(t * x1, abs=0.01)
    assert float(x_t.std()) == pytest.approx(1 - t, abs=0.01)


def test_an_all_known_mask_returns_the_image_without_a_step():
    known = torch.randn(2, 1, 8, 8)

    def never(x, t):
        raise AssertionError("no network call for an all-known mask")

    out = repaint_integrate(never, known, torch.zeros(2, 1, 8, 8, dtype=torch.bool), torch.randn(2, 1, 8, 8),
                            steps=4, sampler="heun", resample=3)
    assert torch.equal(out, known)
    image = _digit(8)
    filled = inpaint_dit(tiny_dit(), image, torch.zeros(8, 8, dtype=torch.bool), samples=2)
    assert torch.equal(filled, image[None].expand(2, -1, -1, -1))


@pytest.mark.parametrize("resample", [1, 3])
def test_the_exact_field_of_a_one_image_dataset_fills_the_hole_with_that_image(resample):
    """With data = one image x*, the flow's velocity is (x* - x) / (1 - t); Euler lands on x* exactly
    at the last step, so the hole must hold x*'s pixels, whatever the context and the jumps."""
    target = torch.rand(1, 1, 6, 6) * 2 - 1
    mask = torch.zeros(1, 1, 6, 6, dtype=torch.bool)
    mask[..., 2:5, 1:4] = True
    context = torch.where(mask, torch.zeros_like(target), target)
    field = lambda x, t: (target - x) / (1 - t.view(-1, 1, 1, 1))
    x0 = torch.randn(3, 1, 6, 6, generator=torch.Generator().manual_seed(1))
    out = repaint_integrate(field, context, mask, x0, steps=5, sampler="euler", resample=resample, jump=2)
    torch.testing.assert_close(out, target.expand(3, -1, -1, -1), atol=1e-5, rtol=0)
    assert torch.equal(out[~mask.expand(3, -1, -1, -1)], context.expand(3, -1, -1, -1)[~mask.expand(3, -1, -1, -1)])


@pytest.mark.parametrize("sampler", ["euler", "heun", "midpoint"])
def test_every_network_call_sees_the_known_pixels_on_their_path(sampler):
    known, x0 = torch.randn(2, 1, 8, 8), torch.randn(2, 1, 8, 8)
    mask = _bottom_half(8)[None, None]
    calls = []

    def recording(x, t):
        expected = interpolate(x0, known, t.expand(2))
        assert torch.equal(x[..., :4, :], expected[..., :4, :]), float(t)
        calls.append(float(t))
        return torch.sin(x)  # some field

    repaint_integrate(recording, known, mask, x0, steps=3, sampler=sampler, resample=2)
    per_step = 1 if sampler == "euler" else 2
    assert len(calls) == 3 * 2 * per_step


# ----------------------------------------------------------------------------- DiT


def test_dit_fills_keep_known_pixels_repeat_per_seed_and_differ_between_seeds():
    model, image, mask = tiny_dit(), _digit(8), _bottom_half(8)
    a = inpaint_dit(model, image, mask, samples=3, seed=0, label=1)
    assert a.shape == (3, 1, 8, 8) and a.dtype == torch.float32
    assert torch.equal(a[:, :, :4], image[None, :, :4].expand(3, -1, -1, -1))  # known rows, bit for bit
    assert torch.equal(a, inpaint_dit(model, image, mask, samples=3, seed=0, label=1))
    b = inpaint_dit(model, image, mask, samples=3, seed=1, label=1)
    assert not torch.equal(a[:, :, 4:], b[:, :, 4:])
    assert not torch.equal(a[0, :, 4:], a[1, :, 4:])  # samples differ from each other
    # sample i does not depend on how many are drawn (float rounding of batched arithmetic aside)
    torch.testing.assert_close(inpaint_dit(model, image, mask, samples=1, seed=0, label=1)[0], a[0])
    # the label conditions the field; resampling changes the fill and stays seeded
    assert not torch.equal(inpaint_dit(model, image, mask, samples=3, seed=0, label=2), a)
    r = inpaint_dit(model, image, mask, samples=2, seed=0, label=1, resample=2, sampler="heun")
    assert torch.equal(r, inpaint_dit(model, image, mask, samples=2, seed=0, label=1, resample=2, sampler="heun"))
    assert torch.equal(r[:, :, :4], a[:2, :, :4])
    # a per-sample mask (B, 1, H, W)
    masks = torch.stack([_bottom_half(8), _bottom_half(8).flip(0)])[:, None]
    m = inpaint_dit(model, image, masks, samples=2, seed=0)
    assert torch.equal(m[0, :, :4], image[:, :4]) and torch.equal(m[1, :, 4:], image[:, 4:])


def test_dit_refuses_bad_requests_on_one_line():
    model, image, mask = tiny_dit(), _digit(8), _bottom_half(8)
    cases = [(lambda: inpaint_dit(model, _digit(9), mask), r"\(C, H, W\) = \(1, 8, 8\)"),
             (lambda: inpaint_dit(model, image, mask.float()), "must be bool"),
             (lambda: inpaint_dit(model, image, mask[:4]), "the mask must be"),
             (lambda: inpaint_dit(model, image, mask, label=3), "in 0..2"),
             (lambda: inpaint_dit(tiny_dit(num_classes=0), image, mask, label=0), "unconditional"),
             (lambda: inpaint_dit(model, image, mask, steps=0), "--steps"),
             (lambda: inpaint_dit(model, image, mask, samples=0), "samples"),
             (lambda: inpaint_dit(tiny_vae(), _digit(28), _bottom_half(28)), "needs a flow-matching model")]
    for call, message in cases:
        with pytest.raises(ConfigError, match=message) as info:
            call()
        assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- VAE / CVAE


def test_latent_optimisation_lowers_the_masked_error_and_keeps_known_pixels():
    model = tiny_vae()
    with torch.no_grad():  # an image the decoder can make, so the fit has somewhere to go
        image = model.decode_latents(torch.tensor([[1.5, -1.0, 0.5, 2.0]]))[0]
    mask = _bottom_half(28)
    known = ~mask

    def masked_error(fills):
        return ((fills - image) ** 2)[:, :, known].sum(dim=(1, 2))

    with torch.no_grad():
        starts = model.decode_latents(latents_for(model, 0, 0, 4))
    fills = inpaint_vae(model, image, mask, samples=4, seed=0, steps=60, lr=0.1, prior_weight=1e-3)
    assert fills.shape == (4, 1, 28, 28)
    assert torch.equal(fills[:, :, known], image[None, :, known].expand(4, -1, -1))
    z, _ = fit_latents(model, image[None], mask[None, None], latents_for(model, 0, 0, 4), steps=60, lr=0.1,
                       prior_weight=1e-3)
    with torch.no_grad():
        decoded = model.decode_latents(z)
    assert torch.equal(fills[:, :, mask], decoded[:, :, mask])  # the fill is the fitted latents' decoding
    assert (masked_error(decoded) < 0.5 * masked_error(starts)).all()
    # steps=0 decodes the seeded starts; another seed starts elsewhere
    zero = inpaint_vae(model, image, mask, samples=4, seed=0, steps=0)
    torch.testing.assert_close(zero[:, :, mask], starts[:, :, mask])
    other = inpaint_vae(model, image, mask, samples=4, seed=5, steps=0)
    assert not torch.equal(other[:, :, mask], zero[:, :, mask])
    # the model is left as it was: no gradients on its weights
    assert all(p.grad is None for p in model.parameters())


def test_cvae_uses_the_label_and_without_one_keeps_each_samples_best_class():
    model = tiny_vae("cvae")
    image, mask = _digit(28), _bottom_half(28)
    a, labels_a = inpaint_vae(model, image, mask, samples=3, seed=0, steps=15, label=2, return_labels=True)
    b = inpaint_vae(model, image, mask, samples=3, seed=0, steps=15, label=7)
    assert labels_a.tolist() == [2, 2, 2] and not torch.equal(a, b)
    # no label: every class is fitted; each sample keeps the class whose fit has the lowest loss
    fills, chosen = inpaint_vae(model, image, mask, samples=3, seed=0, steps=15, return_labels=True)
    z0 = latents_for(model, 0, 0, 3)
    losses = torch.stack([fit_latents(model, image[None], mask[None, None], z0, torch.full((3,), c), steps=15)[1]
                          for c in range(10)])  # (10, 3)
    assert chosen.tolist() == losses.argmin(0).tolist()
    assert torch.equal(fills[:, :, ~mask], image[None, :, ~mask].expand(3, -1, -1))
    with pytest.raises(ConfigError, match="unconditional"):
        inpaint_vae(tiny_vae(), image, mask, label=1)
    vq = create_model("vqvae", get_entry("vqvae").tiny).eval()
    with pytest.raises(ConfigError, match="VQ-VAE latents are discrete") as info:
        inpaint_vae(vq, image, mask)
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- arrays and the command


def test_arrays_of_any_size_and_layout_keep_their_known_pixels():
    model, cvae = tiny_dit(), tiny_vae("cvae")
    rng = np.random.default_rng(0)
    hole = np.zeros((30, 40), bool)
    hole[12:25, 5:30] = True
    for image in (rng.integers(0, 256, (30, 40, 3), dtype=np.uint8), rng.integers(0, 65536, (30, 40), dtype=np.uint16),
                  rng.integers(0, 256, (30, 40, 4), dtype=np.uint8), rng.random((30, 40, 1), dtype=np.float32)):
        fills = inpaint_samples(image, hole, method="dit", samples=2, model=model, seed=3, label=0)
        assert fills.shape == (2, *image.shape) and fills.dtype == image.dtype
        assert all(np.array_equal(f[~hole], image[~hole]) for f in fills)
        assert not np.array_equal(fills[0][hole], fills[1][hole])
        one = inpaint_array(image, hole, method="vae", model=cvae, seed=0, steps=5, label=1)
        assert one.shape == image.shape and np.array_equal(one[~hole], image[~hole])
    with pytest.raises(ConfigError, match="several samples need one of dit, vae"):
        inpaint_samples(image, hole, method="telea", samples=2)


@pytest.fixture
def saved(tmp_path):
    save_pretrained(tiny_dit(), tmp_path / "dit")
    save_pretrained(tiny_vae("cvae"), tmp_path / "cvae")
    digit = ((_digit(28)[0].numpy() + 1) * 127.5).astype(np.uint8)
    Image.fromarray(digit).save(tmp_path / "digit.png")
    return tmp_path


def test_cli_writes_seeded_samples_whose_known_pixels_are_the_input(saved, capsys):
    digit = np.asarray(Image.open(saved / "digit.png"))
    out = saved / "out" / "filled.png"
    argv = ["inpaint", saved / "digit.png", "--box", "0,14,28,14", "-o", out, "--method", "dit", "--model",
            saved / "dit", "--samples", 3, "--seed", 0, "--class", 1]
    status, stdout, err = _run(argv, capsys)
    assert status == 0 and err == "" and stdout.startswith("wrote 3 samples: ")
    files = [saved / "out" / f"filled_{i}.png" for i in range(3)]
    fills = [np.asarray(Image.open(f)) for f in files]
    for fill in fills:
        assert fill.shape == (28, 28) and np.array_equal(fill[:14], digit[:14])
    assert not np.array_equal(fills[0][14:], fills[1][14:])
    meta = json.loads((saved / "out" / "filled_2.png.json").read_text())
    assert meta["method"] == "dit" and meta["sample"] == 2 and meta["samples"] == 3 and meta["seed"] == 0
    assert meta["options"]["model"] == str(saved / "dit") and meta["options"]["label"] == 1
    before = [f.read_bytes() for f in files]
    assert _run([*argv, "--overwrite"], capsys)[0] == 0
    assert [f.read_bytes() for f in files] == before  # the same seed, the same files
    status, _, err = _run(argv, capsys)
    assert status == 1 and "already exists" in err and err.count("\n") == 1

    vae_out = saved / "vae.png"
    status, stdout, err = _run(["inpaint", saved / "digit.png", "--box", "0,14,28,14", "-o", vae_out, "--method",
                                "vae", "--model", saved / "cvae", "--steps", 10], capsys)
    assert status == 0 and stdout == f"wrote {vae_out}\n"
    assert np.array_equal(np.asarray(Image.open(vae_out))[:14], digit[:14])


def test_cli_refuses_bad_generative_requests_on_one_line_and_writes_nothing(saved, capsys):
    (saved / "folder").mkdir()
    Image.open(saved / "digit.png").save(saved / "folder" / "a.png")
    before = sorted(p.relative_to(saved) for p in saved.rglob("*"))
    base = ["inpaint", saved / "digit.png", "--box", "0,14,28,14", "-o", saved / "x.png"]
    cases = [(["--method", "dit"], "needs --model"),
             (["--method", "telea", "--model", saved / "dit"], "--model is for the inpainting methods net, dit, vae"),
             (["--method", "ns", "--samples", 2], "gives one fill; --samples needs one of dit, vae"),
             (["--method", "vae", "--model", saved / "dit"], "holds a diffusion model"),
             (["--method", "dit", "--model", saved / "nothing"], "model not found"),
             (["--method", "dit", "--model", saved / "dit", "--class", 7], "in 0..2"),
             (["--method", "vae", "--model", saved / "cvae", "--resample", 2], "--resample is for the inpainting methods dit"),
             (["--method", "dit", "--model", saved / "dit", "--sampler", "rk4"], "--sampler must be one of")]
    for extra, message in cases:
        status, stdout, err = _run([*base, *extra], capsys)
        assert status == 1 and stdout == "" and err.startswith("error: ") and err.count("\n") == 1, (extra, err)
        assert message in err, (extra, err)
    status, _, err = _run(["inpaint", saved / "folder", "--box", "0,14,28,14", "-o", saved / "outs", "--method",
                           "dit", "--model", saved / "dit", "--samples", 2], capsys)
    assert status == 1 and "--samples > 1 takes a single image" in err
    assert sorted(p.relative_to(saved) for p in saved.rglob("*")) == before
