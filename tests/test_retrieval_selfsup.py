"""The self-supervised embedding (genvision.models.embednet, apps/retrieval's ``simclr`` family): NT-Xent
against its formula by hand, views that are random yet reproducible, JPEG-like compression near libjpeg's,
the net overfitting a tiny set (two views of one image end nearer than views of different images), exact
save/load/resume, recipe errors naming their key, and ``genvision train simclr`` on a tiny folder and on
mnist-mini. Images are 16-40 px; no weights, no network."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from genvision.apps.retrieval.selfsup import SimCLRObjective, SimCLRObjectiveConfig, nt_xent
from genvision.apps.retrieval.selfsup_views import ViewConfig, jpeg_like, make_views, random_view
from genvision.checkpoints import load_pretrained
from genvision.cli import main
from genvision.config import load_recipe
from genvision.errors import ConfigError, InputShapeError
from genvision.registry import create_model
from genvision.training.objective import DataInfo
from genvision.workflows.train import get_family, train

TINY_NET = ["model.width=8", "model.blocks=[1,1]", "model.proj_hidden=32", "model.proj_dim=16"]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: a second OpenMP thread only adds barrier waits
    yield
    torch.set_num_threads(threads)


def smooth_images(n: int, side: int, seed: int, channels: int = 3) -> torch.Tensor:
    """(n, C, side, side) in [0, 1]: blurred noise, structure at several scales like a photo."""
    g = torch.Generator().manual_seed(seed)
    coarse = F.interpolate(torch.rand(n, channels, 4, 4, generator=g), size=(side, side), mode="bilinear")
    return (0.85 * coarse + 0.15 * torch.rand(n, channels, side, side, generator=g)).clamp(0, 1)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("simclr") / "photos"  # runs go beside it: the folder is read recursively
    root.mkdir()
    for i, image in enumerate(smooth_images(6, 40, seed=0)):
        array = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)  # (H, W, 3)
        Image.fromarray(array[:, : 32 + i]).save(root / f"p{i}.png")  # sizes differ: 40 x 32..37
    return root


# ----------------------------------------------------------------------------- the loss


def test_nt_xent_is_the_formula_by_hand():
    # Two images, identical orthogonal views, t = 1: for every view the partner has cosine 1 and the two
    # others 0, so every term is -log(e / (e + 1 + 1)).
    unit = torch.eye(2)
    assert nt_xent(unit, unit, 1.0).item() == pytest.approx(math.log(math.e + 2) - 1, abs=1e-6)

    g = torch.Generator().manual_seed(0)
    z1, z2, t = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g), 0.3
    z = [F.normalize(v, dim=0) for v in torch.cat([z1, z2])]  # views 0..2 of images 0..2, then 3..5
    n = 3

    def term(i: int, j: int) -> float:
        others = sum(math.exp(float(z[i] @ z[k]) / t) for k in range(2 * n) if k != i)
        return -math.log(math.exp(float(z[i] @ z[j]) / t) / others)

    by_hand = sum(term(k, k + n) + term(k + n, k) for k in range(n)) / (2 * n)
    assert nt_xent(z1, z2, t).item() == pytest.approx(by_hand, rel=1e-5)
    assert nt_xent(z1 * 7.0, z2, t).item() == pytest.approx(by_hand, rel=1e-5)  # the projections are normalised


# ----------------------------------------------------------------------------- the views


def test_views_are_random_reproducible_and_in_range():
    images = smooth_images(4, 24, seed=1)
    config = ViewConfig(jitter_p=1.0, blur_p=0.5, resize_p=0.5, jpeg_p=0.5)
    a, b = make_views(images, config, torch.Generator().manual_seed(5))
    again, _ = make_views(images, config, torch.Generator().manual_seed(5))
    assert a.shape == b.shape == images.shape and torch.equal(a, again)
    assert 0 <= float(a.min()) and float(a.max()) <= 1
    assert (a - b).abs().mean() > 0.02  # two views of an image differ
    grey = random_view(smooth_images(3, 16, seed=2, channels=1), config)
    assert grey.shape == (3, 1, 16, 16) and torch.isfinite(grey).all()
    # everything switched off: the whole image, unchanged
    still = ViewConfig(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip=False, jitter_p=0, grey_p=0, blur_p=0,
                       resize_p=0, jpeg_p=0)
    assert torch.allclose(random_view(images, still), images, atol=1e-5)
    with pytest.raises(ConfigError, match="square"):
        random_view(torch.rand(1, 3, 8, 12), config)


def test_jpeg_like_loses_what_libjpeg_loses():
    image = smooth_images(1, 32, seed=3)
    array = (image[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    image = torch.from_numpy(array).permute(2, 0, 1)[None].float() / 255  # exactly the 8-bit image PIL sees
    for quality in (90, 50, 15):
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, "JPEG", quality=quality)
        pil_error = np.abs(np.asarray(Image.open(buffer), dtype=np.float32) / 255 - array / 255).mean()
        ours = (jpeg_like(image, torch.tensor([float(quality)])) - image).abs().mean().item()
        assert 0.5 * pil_error < ours < 2 * pil_error, (quality, ours, pil_error)
    grey = image[:, :1]
    assert (jpeg_like(grey, torch.tensor([100.0])) - grey).abs().max() < 0.01  # q100: only rounding


# ----------------------------------------------------------------------------- the network


def test_embed_is_normalised_takes_0_1_images_of_any_size_and_refuses_wrong_channels():
    torch.manual_seed(0)
    model = create_model("embednet", {"width": 8, "blocks": [1, 1], "image_size": 16}).eval()
    with torch.no_grad():
        vectors = model.embed(torch.rand(3, 3, 16, 16))
        assert vectors.shape == (3, model.dim) == (3, 16)
        assert torch.allclose(vectors.norm(dim=1), torch.ones(3), atol=1e-5)
        assert model.embed(torch.rand(2, 3, 23, 37)).shape == (2, 16)
        x = torch.rand(2, 3, 16, 16)
        assert torch.equal(model(x), model.embed(x))
        assert model.project(model.forward_features(x)).shape == (2, model.config.proj_dim)
    with pytest.raises(InputShapeError, match=r"embednet takes images of shape \(B, 3, H, W\)"):
        model.embed(torch.rand(2, 1, 16, 16))


def _view_cosines(model, images, views) -> tuple[float, float, float]:
    """Mean cosine of two views of one image, of views of different images, and the share of view-a
    queries whose nearest view-b is their own image's."""
    model.eval()
    with torch.no_grad():
        a, b = (model.embed(v) for v in make_views(images, views, torch.Generator().manual_seed(1)))
    model.train()
    cosine = a @ b.T  # (N, N): row i = view a of image i against view b of every image
    n = images.shape[0]
    same = cosine.diagonal().mean().item()
    different = ((cosine.sum() - cosine.diagonal().sum()) / (n * (n - 1))).item()
    return same, different, (cosine.argmax(dim=1) == torch.arange(n)).float().mean().item()


def test_the_net_overfits_a_tiny_set():
    torch.manual_seed(0)
    images = smooth_images(8, 16, seed=4)
    model = create_model("embednet", {"width": 8, "blocks": [1, 1], "image_size": 16, "proj_hidden": 32,
                                      "proj_dim": 16})
    # milder views than the photo defaults: 40 steps of a 2k-parameter net on 8 images
    views = ViewConfig(crop_scale=(0.6, 1.0), jitter=0.2, hue=0.02, grey_p=0.0, blur_sigma=(0.1, 0.8),
                       jpeg_quality=(50, 90))
    objective = SimCLRObjective(model, SimCLRObjectiveConfig(lr=3e-3, temperature=0.2, warmup_steps=0), views,
                                DataInfo(channels=3, image_size=16, num_classes=0), total_steps=40)
    same_before, different_before, _ = _view_cosines(model, images, views)
    optimizer = objective.optimizers()["model"]
    losses = []
    for _ in range(40):
        loss = objective.losses(images)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:5]), losses
    same, different, top1 = _view_cosines(model, images, views)
    # a random ResNet already ranks views by their pixels; training widens the gap
    assert same > different + 0.1 and same - different > same_before - different_before, \
        (same, different, same_before, different_before)
    assert top1 >= 0.5  # retrieval: the other view of the query's image first, 4x chance


# ----------------------------------------------------------------------------- the family


def _train(photos, name, extra=()):
    return train("simclr", progress=False, overrides=[
        f"data.name=folder:{photos}", f"train.out_dir={photos.parent / 'runs'}", f"train.name={name}",
        "data.image_size=16", "data.load_size=24", "batch_size=4", "tensorboard=false", "log_every=1", *TINY_NET,
        *extra])


def test_the_family_saves_loads_and_resumes_exactly(photos):
    from safetensors.torch import load_file

    # a constant lr: a cosine's length is train.steps, which the split run changes when it resumes
    common = ["sample_every=2", "ckpt_every=2", "objective.schedule=constant", "objective.warmup_steps=0"]
    straight = _train(photos, "straight", [*common, "steps=4"])
    _train(photos, "split", [*common, "steps=2"])
    resumed = train("simclr", resume=photos.parent / "runs" / "split", overrides=["steps=4"], progress=False)
    a = load_file(str(straight.checkpoint / "model.safetensors"))
    b = load_file(str(resumed.checkpoint / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows = [json.loads(line) for line in (straight.run_dir / "metrics.jsonl").read_text().splitlines()]
    resumed_rows = [json.loads(line) for line in (resumed.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in rows] == [r["loss"] for r in resumed_rows]  # the same views, step by step
    assert {"loss", "top1", "positive", "negative"} <= set(rows[-1])
    grid_a = Image.open(straight.run_dir / "samples" / "step_00000004.png")
    grid_b = Image.open(resumed.run_dir / "samples" / "step_00000004.png")
    assert np.array_equal(np.asarray(grid_a), np.asarray(grid_b))  # the grid's images were resumed too
    model = load_pretrained(straight.run_dir, kind="embed")
    assert model.registry_name == "embednet" and model.config.channels == 3 and model.config.image_size == 16
    with torch.no_grad():
        assert model.embed(torch.rand(2, 3, 16, 16)).shape == (2, 16)


def test_recipe_errors_name_their_key():
    recipe_cls = get_family("simclr").recipe_cls
    for bad, key in (("objective.temperature=0", "objective.temperature"),
                     ("views.crop_scale=[0.9,0.1]", "views.crop_scale"),
                     ("views.jpeg_quality=[0,50]", "views.jpeg_quality"),
                     ("views.grey_p=2", "views.grey_p"),
                     ("train.batch_size=1", "train.batch_size"),
                     ("data.load_size=32", "data.load_size"),
                     ("model.stem_stride=3", "stem_stride"),
                     ("model.width=100000", "width")):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as info:
            load_recipe(recipe_cls, None, [bad])
        assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match=r"model\.channels=3 contradicts the data's 1 channels"):
        load_recipe(recipe_cls, None, ["data.channels=1", "model.channels=3"])
    recipe = load_recipe(recipe_cls, None, ["model.channels=3"])  # parses: the data decides when it is loaded
    with pytest.raises(ConfigError, match=r"model\.channels=3 contradicts the data's 1 channels"):
        get_family("simclr").build(recipe, DataInfo(channels=1, image_size=28, num_classes=0))


def test_cli_trains_on_a_tiny_folder_and_on_mnist_mini(photos, capsys):
    out = photos.parent / "cli-runs"
    common = [f"train.out_dir={out}", "steps=2", "batch_size=4", "tensorboard=false", "sample_every=0", *TINY_NET]
    assert main(["train", "simclr", "--data", f"folder:{photos}", "train.name=photos", "data.image_size=16",
                 "data.load_size=24", *common]) == 0
    assert "finished at step 2" in capsys.readouterr().out
    assert (out / "photos" / "checkpoints" / "latest").read_text().strip() == "step_00000002"
    assert main(["train", "simclr", "--data", "mnist-mini", "train.name=digits", "data.limit=16",
                 "data.image_size=16", "views.flip=false", *common]) == 0
    digits = load_pretrained(out / "digits", kind="embed")
    assert digits.config.channels == 1 and digits.config.image_size == 16
    capsys.readouterr()
    assert main(["train", "simclr", "--data", f"folder:{photos / 'absent'}", "train.name=bad", *common]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "absent" in err and len(err.splitlines()) == 1
    assert not (out / "bad").exists()
