"""The learned image codec (genvision.models.codec, apps/codec): the bitstream round trip is exact
(decode(encode(x)) equals the model's own rounded-latent reconstruction) at any image size, through the
Python API and through `genvision compress / decompress`; the coder's tables travel with the weights;
a damaged, truncated or foreign .gvc file is refused on one line; training lowers the rate-distortion
loss and resumes exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from genvision.apps.codec.bitstream import decode_file, encode_file, weights_fingerprint
from genvision.apps.codec.jpeg import encode_jpeg, jpeg_within
from genvision.checkpoints import load_pretrained, save_pretrained
from genvision.cli import main
from genvision.config import load_recipe
from genvision.errors import ConfigError, DataError
from genvision.models.codec import TABLE_WIDTH
from genvision.registry import create_model
from genvision.workflows.train import get_family, train

NAMES = ("codec-factorized", "codec-hyperprior")


def _scene(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth photo stand-in: gradients and soft blobs, uint8 (H, W, 3)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    image = np.stack([x, y, 1 - x * y], axis=-1)
    for _ in range(3):
        cy, cx, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.1, 0.3)
        image += rng.uniform(-0.5, 0.5, 3) * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / r**2)[..., None]
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def _trained(name: str) -> torch.nn.Module:
    """A small codec after a few updates (densities no longer at their initial values)."""
    torch.manual_seed(0)
    model = create_model(name, {"width": 8, "latent_channels": 8})
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    images = torch.from_numpy(_scene(64, 64, 0)).permute(2, 0, 1)[None].float() / 255  # (1, 3, 64, 64)
    for _ in range(5):
        optimizer.zero_grad()
        (model(images).loss.mean() + model.aux_loss()).backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module", params=NAMES)
def codec_dir(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp(request.param)
    model = _trained(request.param).train()  # saved as the trainer saves: tables made from these densities
    save_pretrained(model, directory)
    image = tmp_path_factory.mktemp("images") / "scene.png"
    Image.fromarray(_scene(45, 71, 1)).save(image)
    return directory, image


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [(1, 1), (16, 16), (37, 53), (70, 130)])
def test_the_bitstream_round_trip_is_exact_at_any_size(name, size):
    model = _trained(name)
    torch.manual_seed(1)
    images = torch.rand(2, 3, *size)
    coded = model.compress(images)
    assert len(coded.strings) == 2 and len(coded.strings[0]) == (2 if name == "codec-hyperprior" else 1)
    decoded = model.decompress(coded)
    assert decoded.shape == images.shape
    assert torch.equal(decoded, model.reconstruct(images))
    # through the file format too, image by image (against a batch of one: convolution kernels may
    # sum in another order for another batch size)
    for i in range(2):
        one = images[i:i + 1]
        data = encode_file(name, weights_fingerprint(model), model.compress(one))
        assert torch.equal(model.decompress(_parse(data).coded), model.reconstruct(one))


def _parse(data: bytes):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.gvc"
        path.write_bytes(data)
        return decode_file(path)


def test_the_rate_is_what_the_entropy_model_predicts():
    # The coded size is within a few percent (plus a few bytes of coder overhead) of the model's own
    # estimate -log2 p of the rounded latents: the coder really uses the learned densities.
    model = _trained("codec-factorized")
    images = torch.from_numpy(_scene(128, 128, 3)).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        estimate = float(model(images).bpp) * 128 * 128 / 8  # bytes
    coded_bytes = len(model.compress(images).strings[0][0])
    assert abs(coded_bytes - estimate) <= 0.05 * estimate + 16, (coded_bytes, estimate)


def test_tables_travel_with_the_weights_and_loading_keeps_them(codec_dir):
    directory, _ = codec_dir
    loaded = load_pretrained(directory, kind="codec")
    from safetensors.torch import load_file

    saved = load_file(str(directory / "model.safetensors"))
    assert saved["bottleneck._quantized_cdf"].shape[1] == TABLE_WIDTH
    assert int(saved["bottleneck._cdf_length"].min()) > 2  # filled, not the empty placeholder
    assert torch.equal(loaded.state_dict()["bottleneck._quantized_cdf"], saved["bottleneck._quantized_cdf"])


def test_the_commands_round_trip_a_real_file_exactly(codec_dir, tmp_path, capsys):
    directory, image = codec_dir
    gvc, out = tmp_path / "scene.gvc", tmp_path / "scene.png"
    assert main(["compress", str(image), "--model", str(directory), "-o", str(gvc)]) == 0
    assert "bpp for 71x45" in capsys.readouterr().out
    assert main(["decompress", str(gvc), "--model", str(directory), "-o", str(out)]) == 0
    model = load_pretrained(directory, kind="codec")
    pixels = torch.from_numpy(np.array(Image.open(image))).permute(2, 0, 1)[None].float() / 255
    expected = (model.reconstruct(pixels)[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    assert np.array_equal(np.array(Image.open(out)), expected)
    # the default output name, and no overwrite without --overwrite
    assert main(["compress", str(image), "--model", str(directory)]) == 0
    assert image.with_suffix(".gvc").is_file()
    assert main(["compress", str(image), "--model", str(directory)]) != 0
    assert "already exists" in capsys.readouterr().err


def _one_line_error(capsys, args) -> str:
    assert main(args) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_damaged_truncated_and_foreign_files_are_refused_on_one_line(codec_dir, tmp_path, capsys):
    directory, image = codec_dir
    gvc = tmp_path / "scene.gvc"
    assert main(["compress", str(image), "--model", str(directory), "-o", str(gvc)]) == 0
    data = gvc.read_bytes()
    out = str(tmp_path / "out.png")
    cases = {
        "flipped.gvc": (data[:40] + bytes([data[40] ^ 0x10]) + data[41:], "checksum"),
        "short.gvc": (data[:-7], "checksum"),
        "tiny.gvc": (data[:6], "truncated"),
        "other.gvc": (b"\x89PNG\r\n" + data[6:], "not a genvision codec file"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        err = _one_line_error(capsys, ["decompress", str(tmp_path / name), "--model", str(directory), "-o", out])
        assert message in err, err
    # a valid file, but written by other weights
    other = tmp_path / "other-model"
    model = load_pretrained(directory, kind="codec").train()
    with torch.no_grad():
        model.synthesis[0].bias.add_(0.01)
    save_pretrained(model, other)
    err = _one_line_error(capsys, ["decompress", str(gvc), "--model", str(other), "-o", out])
    assert "was written by" in err and "weights" in err
    assert not (tmp_path / "out.png").exists()


def test_a_model_of_another_kind_and_a_bad_image_are_one_line(codec_dir, tmp_path, capsys):
    directory, image = codec_dir
    sr = tmp_path / "sr"
    save_pretrained(create_model("espcn", {"scale": 2, "width": 4}), sr)
    err = _one_line_error(capsys, ["compress", str(image), "--model", str(sr), "-o", str(tmp_path / "x.gvc")])
    assert "codec model" in err
    (tmp_path / "broken.png").write_bytes(b"not an image")
    _one_line_error(capsys, ["compress", str(tmp_path / "broken.png"), "--model", str(directory),
                             "-o", str(tmp_path / "y.gvc")])


def _train(folder, out_dir, name, extra=()):
    return train("codec", progress=False, overrides=[
        f"data.name=folder:{folder}", f"train.out_dir={out_dir}", f"train.name={name}", "data.patch_size=64",
        "batch_size=2", "tensorboard=false", "log_every=1", "model.width=8", "model.latent_channels=8",
        "objective.lr=1e-3", "objective.warmup_steps=0", "objective.schedule=constant", *extra])


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for s in range(3):
        Image.fromarray(_scene(80, 96, s)).save(folder / f"{s}.png")
    return folder


def test_the_family_learns_saves_and_resumes_exactly(photos, tmp_path):
    from safetensors.torch import load_file

    common = ["sample_every=4", "ckpt_every=4"]
    straight = _train(photos, tmp_path, "straight", [*common, "steps=8"])
    _train(photos, tmp_path, "split", [*common, "steps=4"])
    resumed = train("codec", resume=tmp_path / "split", overrides=["steps=8"], progress=False)
    a = load_file(str(straight.checkpoint / "model.safetensors"))
    b = load_file(str(resumed.checkpoint / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows = [json.loads(line) for line in (straight.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {"loss", "bpp", "psnr", "aux"} <= set(rows[-1])
    assert rows[-1]["loss"] < rows[0]["loss"]
    assert any((straight.run_dir / "samples").iterdir())
    model = load_pretrained(straight.run_dir, kind="codec")
    assert model.registry_name == "codec-hyperprior" and model.config.width == 8


def test_recipe_errors_name_their_key():
    for bad, key in (("objective.lmbda=0", "lmbda"), ("arch=jpeg", "arch"), ("model.width=0", "width"),
                     ("objective.schedule=step", "schedule")):
        with pytest.raises(ConfigError, match=key):
            load_recipe(get_family("codec").recipe_cls, None, [bad]).validate()


def test_a_missing_file_is_one_line(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        decode_file(tmp_path / "absent.gvc")


def test_a_density_too_wide_for_the_tables_keeps_the_last_tables_when_saving():
    model = _trained("codec-factorized").train()
    saved = model.state_dict()["bottleneck._quantized_cdf"].clone()
    with torch.no_grad():
        model.bottleneck.quantiles[:, 0, 2] += 5000.0  # an upper tail far beyond TABLE_WIDTH integers
    state = model.state_dict()  # what a training checkpoint does: no error, the previous tables
    assert torch.equal(state["bottleneck._quantized_cdf"], saved)
    with pytest.raises(ConfigError, match="tables hold"):
        model.refresh_tables()


def test_jpeg_within_a_budget_is_the_best_quality_that_fits():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8))
    budget = len(encode_jpeg(image, 50)) + 10
    data, quality = jpeg_within(image, budget)
    assert len(data) <= budget and data == encode_jpeg(image, quality)
    assert quality >= 50 and len(encode_jpeg(image, quality + 1)) > budget
    tiny, lowest = jpeg_within(image, 10)  # no JPEG is that small: the smallest one, reported as quality 1
    assert lowest == 1 and tiny == encode_jpeg(image, 1)
