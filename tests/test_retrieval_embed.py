"""Retrieval embeddings (genvision.apps.retrieval.embed): every spec's rows (shape, dtype, L2 norm or packed
bits) and what they are made of (the same numbers as the model's own feature function on the same pixels);
edited copies nearer than other images (phash on synthetic pictures; the shipped MNIST extractor on real digits;
real EfficientNet-Lite0 features on real photos); torchvision state dicts from synthetic files; one-line errors.

The real EfficientNet-Lite0 weights are used where `genvision weights get efficientnet-lite0` has put them
(CI fetches them in .ci/run) and the photos are Debian darknet's: each skip names the command that makes it
run. Every other test builds tiny genvision models here and saves them as a user's run would."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import imagehash
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageEnhance
from real_weights import photo, real
from safetensors.torch import save_file

from genvision import pretrained
from genvision.apps.retrieval import embed as E
from genvision.apps.retrieval import embed_models
from genvision.checkpoints import save_pretrained
from genvision.data import load_dataset
from genvision.errors import CheckpointError, ConfigError, GenvisionError, ImageLoadError
from genvision.pretrained.efficientnet import EfficientNetLite0, center_crop_resize
from genvision.registry import create_model

LITE0 = "efficientnet-lite0"


# --- helpers -------------------------------------------------------------------------------------


def picture(seed: int, size: tuple[int, int] = (96, 72)) -> Image.Image:
    """A random RGB picture with structure at the scales perceptual hashes see: 6x5 and 24x18 noise, upsampled."""
    rng = np.random.default_rng(seed)
    layers = [np.asarray(Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).resize(
        size, Image.Resampling.BICUBIC), dtype=np.float32) for w, h in ((6, 5), (24, 18))]
    return Image.fromarray((0.6 * layers[0] + 0.4 * layers[1]).round().clip(0, 255).astype(np.uint8))


def edited(image: Image.Image) -> Image.Image:
    """A copy after typical innocuous edits: 0.75x resize, +8% brightness, JPEG at quality 70."""
    small = image.resize((round(image.width * 0.75), round(image.height * 0.75)), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    ImageEnhance.Brightness(small).enhance(1.08).save(buffer, "JPEG", quality=70)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Packed rows a (N, B) and b (M, B) -> bit distances (N, M)."""
    return np.unpackbits(a[:, None, :] ^ b[None, :, :], axis=2).sum(axis=2)  # (N, M, B) -> (N, M)


def assert_unit_rows(rows: np.ndarray, n: int, dim: int) -> None:
    assert rows.shape == (n, dim) and rows.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)


def saved(tmp_path: Path, name: str, config: dict, folder: str | None = None) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    model = create_model(name, config).eval()
    return save_pretrained(model, tmp_path / (folder or name)), model


# --- hashes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec,method,side", [("phash", "phash", 8), ("dhash", "dhash", 8), ("phash:16", "phash", 16),
                                              ("dhash:4", "dhash", 4), ("phash:8", "phash", 8)])
def test_hashes_are_imagehash_bits_packed_row_major(spec, method, side):
    images = [picture(1), picture(2).convert("L"), picture(3, (40, 130))]
    embedder = E.make_embedder(spec)
    assert embedder.binary and embedder.dim == side * side and embedder.spec == (method if side == 8 else spec)
    rows = embedder.embed(images)
    assert rows.shape == (3, side * side // 8) and rows.dtype == np.uint8
    for row, image in zip(rows, images):
        expected = getattr(imagehash, method)(image.convert("RGB"), hash_size=side).hash.reshape(-1)
        np.testing.assert_array_equal(np.unpackbits(row), expected)
    assert E.make_embedder(embedder.spec).spec == embedder.spec and "imagehash-4.3.2" in embedder.cache_key
    assert embedder.embed([]).shape == (0, side * side // 8) and embedder.empty().shape == (0, side * side // 8)


@pytest.mark.parametrize("spec", ["phash", "dhash", "phash:16"])
def test_an_edited_copy_is_nearer_by_hamming_than_any_other_picture(spec):
    originals = [picture(seed) for seed in range(8)]
    embedder = E.make_embedder(spec)
    database = embedder.embed(originals)
    queries = embedder.embed([edited(p) for p in originals])
    distances = hamming(queries, database)  # (8 queries, 8 originals)
    own = np.diag(distances)
    others = np.where(np.eye(8, dtype=bool), embedder.dim, distances).min(axis=1)
    assert (own < others).all(), distances
    assert own.max() <= embedder.dim // 8 < others.min(), distances  # measured: own <= 4 (6 of 256), others >= 20 (116)


# --- genvision models, by kind ---------------------------------------------------------------------


def test_a_classifier_gives_its_penultimate_features_of_grey_28px_input(tmp_path):
    path, model = saved(tmp_path, "cnn", {"image_size": 28, "channels": 1, "num_classes": 10, "width": 4,
                                          "stages": 2, "feature_dim": 12})
    digits = load_dataset("mnist-mini", split="test", download=False).images[:5]  # (5, 1, 28, 28) uint8
    images = [Image.fromarray(d[0].numpy()) for d in digits]
    embedder = E.make_embedder(f"model:{path}", device="cpu", batch_size=2)
    rows = embedder.embed(images + [picture(0)])  # a colour photo goes in grey, resized to 28 px
    assert_unit_rows(rows, 6, 12)
    assert embedder.spec == f"model:{path.resolve()}" and not embedder.binary
    with torch.no_grad():
        expected = F.normalize(model.forward_features(digits.float() / 255 * 2 - 1), dim=1)  # (5, 12)
    np.testing.assert_allclose(rows[:5], expected.numpy(), atol=1e-5)
    np.testing.assert_allclose(E.make_embedder(embedder.spec, batch_size=64).embed(images), rows[:5], atol=1e-6)


def test_a_resnet_classifier_takes_rgb_at_its_size(tmp_path):
    path, model = saved(tmp_path, "resnet", {"image_size": 16, "channels": 3, "num_classes": 3, "width": 4,
                                             "blocks": [1, 1]})
    image = picture(5, (40, 16))  # wider than tall: the centred 16x16 square of the 16 px high image
    rows = E.make_embedder(f"model:{path}", device="cpu").embed([image, image.convert("L")])
    assert_unit_rows(rows, 2, 8)
    square = torch.from_numpy(np.asarray(image)[:, 12:28].copy()).permute(2, 0, 1)[None]  # (1, 3, 16, 16)
    with torch.no_grad():
        expected = F.normalize(model.forward_features(square.float() / 255 * 2 - 1), dim=1)
    np.testing.assert_allclose(rows[0], expected[0].numpy(), atol=1e-5)
    assert_unit_rows(E.make_embedder(f"model:{path}", device="cpu").embed([Image.new("RGB", (1, 1), (9, 99, 199))]),
                     1, 8)  # a 1 px image is resized up, not refused


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_a_vit_gives_the_mean_of_its_final_patch_tokens(tmp_path, pool):
    path, model = saved(tmp_path, "vit", {"image_size": 8, "channels": 3, "patch_size": 4, "dim": 8, "depth": 1,
                                          "heads": 2, "num_classes": 3, "pool": pool})
    image = picture(6, (8, 8))
    rows = E.make_embedder(f"model:{path}", device="cpu").embed([image, picture(7, (8, 8))])
    assert_unit_rows(rows, 2, 8)
    x = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)[None].float() / 255 * 2 - 1  # (1, 3, 8, 8)
    with torch.no_grad():
        tokens = model._tokens(x)
        for block in model.blocks:
            tokens = block(tokens).tokens
        tokens = model.norm(tokens)  # (1, n_tokens, 8)
        patches = tokens[:, 1:] if pool == "cls" else tokens  # (1, 4, 8)
    np.testing.assert_allclose(rows[0], F.normalize(patches.mean(1), dim=1)[0].numpy(), atol=1e-5)


def test_a_vae_gives_its_posterior_mean_and_a_vqvae_its_latent_grid(tmp_path):
    vae_path, vae = saved(tmp_path, "vae", {"arch": "mlp", "hidden": 8, "layers": 1, "latent_dim": 4})
    digit = Image.fromarray(load_dataset("mnist-mini", split="test", download=False).images[0, 0].numpy())
    rows = E.make_embedder(f"model:{vae_path}", device="cpu").embed([digit, picture(1)])
    assert_unit_rows(rows, 2, 4)
    x = torch.from_numpy(np.asarray(digit).copy())[None, None].float() / 255 * 2 - 1  # (1, 1, 28, 28)
    np.testing.assert_allclose(rows[0], F.normalize(vae.image_latents(x), dim=1)[0].numpy(), atol=1e-5)
    vq_path, _ = saved(tmp_path, "vqvae", {"width": 4, "blocks": 0, "codebook_size": 8, "code_dim": 4})
    assert_unit_rows(E.make_embedder(f"model:{vq_path}", device="cpu").embed([digit]), 1, 4 * 7 * 7)


def test_a_simclr_net_gives_its_embedding_of_unit_range_input(tmp_path):
    path, model = saved(tmp_path, "embednet", {"image_size": 16, "channels": 3, "width": 4, "blocks": [1, 1],
                                               "proj_hidden": 8, "proj_dim": 4})
    image = picture(8, (16, 16))
    embedder = E.make_embedder(f"simclr:{path}", device="cpu")
    assert embedder.spec == f"simclr:{path.resolve()}" and embedder.dim == model.dim == 8
    rows = embedder.embed([image, picture(9, (48, 32))])
    assert_unit_rows(rows, 2, 8)
    x = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)[None].float() / 255  # (1, 3, 16, 16) in [0, 1]
    with torch.no_grad():
        np.testing.assert_allclose(rows[0], model.embed(x)[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(E.make_embedder(f"model:{path}", device="cpu").embed([image])[0], rows[0], atol=1e-6)


def test_models_without_an_image_embedding_are_refused_in_one_line(tmp_path):
    cvae, _ = saved(tmp_path, "cvae", {"arch": "mlp", "hidden": 8, "layers": 1, "latent_dim": 4, "num_classes": 10})
    gan, _ = saved(tmp_path, "dcgan", {"image_size": 28, "width": 8})
    with pytest.raises(ConfigError, match="conditional VAE") as info:
        E.make_embedder(f"model:{cvae}", device="cpu")
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="holds a gan model .dcgan.; embeddings come from classifier, vae"):
        E.make_embedder(f"model:{gan}", device="cpu")
    with pytest.raises(CheckpointError, match="needs a embed model"):  # simclr: only self-supervised nets
        E.make_embedder(f"simclr:{gan}", device="cpu")


def test_the_shipped_mnist_extractor_finds_digits_of_the_same_class():
    data = load_dataset("mnist-mini", split="test", download=False)
    images = [Image.fromarray(d[0].numpy()) for d in data.images[:100]]
    labels = data.labels[:100].numpy()
    embedder = E.make_embedder("extractor:mnist-cnn", device="cpu")
    assert embedder.spec == "extractor:mnist-cnn" and embedder.dim == 256
    rows = embedder.embed(images)
    assert_unit_rows(rows, 100, 256)
    similarity = rows @ rows.T  # (100, 100) cosine
    np.fill_diagonal(similarity, -2)
    precision_at_1 = (labels[similarity.argmax(axis=1)] == labels).mean()
    assert precision_at_1 >= 0.9, precision_at_1  # measured: 0.99
    shifted = [Image.fromarray(np.roll(np.asarray(im), 1, axis=1)) for im in images[:20]]
    own = (embedder.embed(shifted) * rows[:20]).sum(axis=1)
    assert (own > similarity[:20].max(axis=1) - 0.05).mean() >= 0.9  # a 1 px shift stays (almost) the nearest


# --- torchvision state dicts ---------------------------------------------------------------------


def test_torchvision_resnet18_from_a_safetensors_file(tmp_path):
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None).eval()
    weights = tmp_path / "r18.safetensors"
    save_file(net.state_dict(), str(weights))
    embedder = E.make_embedder(f"torchvision:resnet18={weights}", device="cpu")
    assert embedder.dim == 512 and embedder.spec == f"torchvision:resnet18={weights.resolve()}"
    images = [picture(1, (300, 260)), picture(2, (260, 300))]
    rows = embedder.embed(images)
    assert_unit_rows(rows, 2, 512)
    # torchvision's own evaluation transform (resize 256, crop 224, ImageNet mean/std) on the same images
    transform = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.transforms()
    net.fc = torch.nn.Identity()
    with torch.no_grad():
        expected = F.normalize(net(torch.stack([transform(im) for im in images])), dim=1).numpy()
    assert ((rows * expected).sum(axis=1) > 0.999).all()
    with pytest.raises(ConfigError, match="does not hold torchvision resnet50 weights") as info:
        E.make_embedder(f"torchvision:resnet50={weights}", device="cpu")
    assert "\n" not in str(info.value)


def tiny_vit(monkeypatch) -> torch.nn.Module:
    import torchvision

    def build(tv):
        return tv.VisionTransformer(image_size=224, patch_size=32, num_layers=1, num_heads=2, hidden_dim=16,
                                    mlp_dim=32)

    monkeypatch.setitem(embed_models.TORCHVISION_ARCHS, "vit_tiny", embed_models.TorchvisionArch(build, "heads"))
    torch.manual_seed(0)
    return build(torchvision.models)


def test_torchvision_vit_from_a_pth_read_with_weights_only(tmp_path, monkeypatch):
    weights = tmp_path / "vit.pth"
    torch.save(tiny_vit(monkeypatch).state_dict(), weights)
    rows = E.make_embedder(f"torchvision:vit_tiny={weights}", device="cpu", batch_size=1).embed(
        [picture(i, (224, 224)) for i in range(3)])
    assert_unit_rows(rows, 3, 16)  # the class token's 16 features, the head replaced
    assert not np.allclose(rows[0], rows[1])


def test_a_pth_that_would_run_code_is_refused_and_runs_nothing(tmp_path, monkeypatch):
    tiny_vit(monkeypatch)
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    weights = tmp_path / "evil.pth"
    weights.write_bytes(pickle.dumps({"w": Exploit()}, protocol=2))  # torch.save's protocol
    with pytest.raises(ConfigError, match="is not a readable state dict") as info:
        E.make_embedder(f"torchvision:vit_tiny={weights}", device="cpu")
    assert not marker.exists() and "\n" not in str(info.value)


# --- real weights, real photos ---------------------------------------------------------------------


def test_real_efficientnet_lite0_finds_the_edited_photo():
    real(LITE0)
    names = ["dog", "eagle", "giraffe", "horses"]
    photos = [E.load_rgb(photo(name)) for name in names]
    embedder = E.make_embedder(device="cpu")  # the default spec
    assert embedder.spec == E.DEFAULT_SPEC == LITE0 and embedder.dim == 1280
    assert pretrained.cached(LITE0).card["safetensors_sha256"][:16] in embedder.cache_key
    database = embedder.embed(photos)
    assert_unit_rows(database, 4, 1280)
    # the classify pipeline's own input for the same photo (768x576: no pre-shrink happens)
    x = center_crop_resize(torch.from_numpy(np.asarray(photos[0]).copy()).permute(2, 0, 1).float() / 255, 224)
    with torch.no_grad():
        features = embedder.network.forward(x[None])  # (1, 1280)
    assert isinstance(embedder.network.forward.__self__, EfficientNetLite0)  # its .features
    np.testing.assert_allclose(database[0], F.normalize(features, dim=1)[0].numpy(), atol=1e-4)
    dog = photos[0]
    cropped = dog.crop((30, 20, dog.width - 40, dog.height - 25))  # ~ 90% of each side, off centre
    big = dog.resize((dog.width * 2, dog.height * 2), Image.Resampling.BICUBIC)  # pre-shrunk by 2 in PIL first
    queries = embedder.embed([edited(dog), edited(cropped), dog.transpose(Image.Transpose.FLIP_LEFT_RIGHT), big])
    similarity = queries @ database.T  # (4, 4) cosine
    assert (similarity.argmax(axis=1) == 0).all(), similarity
    # measured: 0.93 to 1.0 for the dog's copies, at most 0.28 for the other photos
    assert (similarity[:, 0] > 0.85).all() and (similarity[:, 1:] < 0.4).all(), similarity


def test_missing_efficientnet_weights_name_the_command_and_the_offline_specs(empty_caches):
    with pytest.raises(ConfigError) as info:
        E.make_embedder(LITE0, device="cpu")
    message = str(info.value)
    assert "run `genvision weights get efficientnet-lite0`" in message and "\n" not in message
    assert "phash" in message and "extractor:mnist-cnn" in message and "torchvision:ARCH=WEIGHTS" in message


# --- input and spec errors -------------------------------------------------------------------------


@pytest.mark.parametrize("spec,match", [
    ("clip", "unknown embedding 'clip'; choose from phash"),
    ("efficientnet-lite0:x", "unknown embedding"),
    ("phash:5", "hash size must be one of 4, 8, 12"),
    ("dhash:abc", "hash size must be one of"),
    ("model:", "names no path"),
    ("model:/no/such/run", "/no/such/run: no such model or run directory"),
    ("simclr:/no/such/net", "no such model or run directory"),
    ("extractor:imagenet", "no shipped extractor 'imagenet'; choose from mnist-cnn"),
    ("torchvision:resnet18", "write torchvision:ARCH=WEIGHTS_FILE"),
    ("torchvision:alexnet=/x.pth", "unknown architecture; choose from resnet18, resnet50, vit_b_16"),
    ("torchvision:resnet18=/no/such.pth", "no such file"),
    ("", "non-empty spec string"),
])
def test_bad_specs_are_one_line_config_errors(spec, match):
    with pytest.raises(ConfigError, match=match) as info:
        E.make_embedder(spec, device="cpu")
    assert "\n" not in str(info.value)


def test_bad_batch_sizes_and_inputs_are_one_line_config_errors():
    for bad in (0, -1, 10**6, 2.5, True):
        with pytest.raises(ConfigError, match="batch_size must be an integer in 1..4096"):
            E.make_embedder("phash", batch_size=bad)
    with pytest.raises(ConfigError, match="embed takes PIL images; item 1 is a ndarray"):
        E.make_embedder("dhash").embed([picture(0), np.zeros((8, 8, 3), np.uint8)])
    with pytest.raises(ConfigError, match="item 0 is an empty image .0x5."):
        E.make_embedder("phash").embed([Image.new("RGB", (0, 5))])
    one_pixel = Image.new("RGB", (1, 1), (10, 200, 30))  # tiny but real: every spec still gives a row
    assert E.make_embedder("phash").embed(one_pixel).shape == (1, 8)


def test_load_rgb_applies_exif_orientation_and_names_a_bad_file(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    Image.new("RGB", (40, 20), (200, 10, 10)).save(tmp_path / "rotated.jpg", exif=exif)
    Image.new("L", (5, 7), 128).save(tmp_path / "grey.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    rotated, grey = E.load_rgb(tmp_path / "rotated.jpg"), E.load_rgb(tmp_path / "grey.png")
    assert rotated.size == (20, 40) and rotated.mode == "RGB" and grey.mode == "RGB" and grey.size == (5, 7)
    with pytest.raises(ImageLoadError, match="broken.png") as info:
        E.load_rgb(tmp_path / "broken.png")
    assert isinstance(info.value, GenvisionError) and "\n" not in str(info.value)


def test_a_zoo_model_is_named_as_is_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a zoo name must not be resolved against the working directory
    embedder = E.make_embedder("simclr:zoo:simclr-photos")
    assert embedder.spec == "simclr:zoo:simclr-photos" and embedder.dim == 96
    image = Image.new("RGB", (48, 40), (200, 30, 30))
    rows = embedder.embed([image, image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)])
    assert rows.shape == (2, 96) and np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
