"""Tiled upscaling: tiled == untiled, no seams, bounded memory, modes, 16-bit, EXIF, folders, PNG streaming."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from genvision.apps.sr.pipeline import (
    PNGStreamWriter,
    axis_weights,
    tile_starts,
    upscale,
    upscale_file,
    upscale_path,
    upscale_tensor,
)
from genvision.cli import main
from genvision.models.sr import EDSR, EDSRConfig, ESPCNConfig, bicubic_model
from genvision.nn.resize import imresize


class SmallRF(nn.Module):
    """Three 3x3 convolutions at LR resolution + pixel shuffle: receptive-field radius 3 px."""

    def __init__(self, scale: int = 2):
        super().__init__()
        self.config = ESPCNConfig(scale=scale)
        self.scale = scale  # the image-to-image protocol
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, 8, 3, padding=1), nn.Tanh(),
                                 nn.Conv2d(8, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale))

    def forward(self, x):
        return self.net(x)


def _gradient(h: int, w: int) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return torch.stack([xx, yy, (xx + yy) / 2])  # (3, h, w)


@pytest.mark.parametrize(("length", "tile", "overlap", "scale"), [(100, 32, 8, 2), (130, 32, 8, 2), (37, 16, 4, 3),
                                                                  (200, 48, 16, 4), (20, 64, 16, 2)])
def test_blend_weights_partition_unity(length, tile, overlap, scale):
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0 and starts[-1] + min(tile, length) == length
    weights = axis_weights(starts, min(tile, length), overlap, scale)
    total = torch.zeros(length * scale)
    for p, w in zip(starts, weights):
        assert (w >= 0).all()
        total[p * scale:p * scale + w.numel()] += w
    assert torch.allclose(total, torch.ones_like(total), atol=1e-6)


def test_tiled_equals_untiled_when_the_receptive_field_fits_the_overlap():
    torch.manual_seed(0)
    x = torch.rand(3, 70, 93)
    for model in (SmallRF(2).eval(), bicubic_model(3)):
        whole = upscale_tensor(model, x)
        for tile, overlap in ((32, 16), (40, 16), (24, 12)):
            tiled = upscale_tensor(model, x, tile=tile, overlap=overlap, batch=3)
            assert (tiled - whole).abs().max() < 1e-5, (type(model).__name__, tile, overlap)
    smooth = _gradient(60, 80)
    assert (upscale_tensor(bicubic_model(2), smooth, tile=32) - imresize(smooth, 2)).abs().max() < 1e-3


def test_no_seams_on_a_smooth_gradient_with_a_deep_model():
    torch.manual_seed(0)
    model = EDSR(EDSRConfig(scale=2, width=16, depth=4)).eval()  # receptive field far wider than overlap // 4
    x = _gradient(96, 120)
    whole = upscale_tensor(model, x)
    tiled = upscale_tensor(model, x, tile=40, overlap=16)
    err = tiled - whole
    assert err.abs().max() < 1e-3
    # no step at tile borders: the error changes smoothly from pixel to pixel
    assert err.diff(dim=-1).abs().max() < 1e-3 and err.diff(dim=-2).abs().max() < 1e-3
    # and the output's own pixel-to-pixel change is as small at tile borders as elsewhere
    step = tiled.diff(dim=-1).abs().amax(dim=(0, 1))  # (W - 1,)
    assert step.max() <= whole.diff(dim=-1).abs().amax(dim=(0, 1)).max() + 1e-3


def test_png_stream_writer_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    for channels, mode in ((1, "L"), (2, "LA"), (3, "RGB"), (4, "RGBA")):
        arr = rng.integers(0, 256, (23, 17, channels), dtype=np.uint8)
        writer = PNGStreamWriter(tmp_path / f"{mode}.png", 17, 23, channels, 8)
        for start in range(0, 23, 5):
            writer.write_rows(arr[start:start + 5])
        writer.close()
        back = np.array(Image.open(tmp_path / f"{mode}.png"))
        assert np.array_equal(back.reshape(arr.shape), arr), mode
    arr16 = rng.integers(0, 65536, (9, 11, 1), dtype=np.uint16)
    writer = PNGStreamWriter(tmp_path / "g16.png", 11, 9, 1, 16)
    writer.write_rows(arr16[:4])
    writer.write_rows(arr16[4:])
    writer.close()
    img = Image.open(tmp_path / "g16.png")
    assert img.mode in ("I;16", "I") and np.array_equal(np.array(img).astype(np.uint16), arr16[..., 0])
    incomplete = PNGStreamWriter(tmp_path / "short.png", 4, 4, 1, 8)
    incomplete.write_rows(np.zeros((2, 4, 1), np.uint8))
    with pytest.raises(Exception, match="2 of 4 rows"):
        incomplete.close()
    assert not (tmp_path / "short.png").exists() and not list(tmp_path.glob(".short.png*"))


def test_file_modes_alpha_grey_and_16_bit(tmp_path):
    rng = np.random.default_rng(1)
    model = SmallRF(2).eval()
    rgba = rng.integers(0, 256, (30, 40, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    out = upscale_file(model, tmp_path / "rgba.png", tmp_path / "out" / "rgba.png", tile=16, overlap=8)
    img = Image.open(out)
    assert img.mode == "RGBA" and img.size == (80, 60)
    alpha = torch.from_numpy(rgba[..., 3]).float()[None] / 255
    expected_alpha = (imresize(alpha, 2).clamp(0, 1) * 255).round()
    assert (torch.from_numpy(np.array(img)[..., 3]).float() - expected_alpha[0]).abs().max() <= 1  # bicubic alpha

    grey = rng.integers(0, 256, (30, 40), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    img = Image.open(upscale_file(model, tmp_path / "grey.png", tmp_path / "out" / "grey.png"))
    assert img.mode == "L" and img.size == (80, 60)

    g16 = (np.linspace(0, 65535, 30 * 40).reshape(30, 40)).astype(np.uint16)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    out = upscale_file(bicubic_model(2), tmp_path / "g16.png", tmp_path / "out" / "g16.png")
    img = Image.open(out)
    values = np.array(img).astype(np.int64)
    assert img.mode in ("I;16", "I") and img.size == (80, 60)
    assert (values % 257 != 0).mean() > 0.5  # 16-bit precision survived (not 8-bit levels scaled up)
    ref = imresize(torch.from_numpy(g16.astype(np.float64) / 65535)[None], 2)[0].clamp(0, 1) * 65535
    assert np.abs(values - ref.round().numpy()).max() <= 1
    out8 = upscale_file(bicubic_model(2), tmp_path / "g16.png", tmp_path / "out" / "g8.png", bit_depth=8)
    assert Image.open(out8).mode == "L"
    jpg = upscale_file(bicubic_model(2), tmp_path / "grey.png", tmp_path / "out" / "grey.jpg")
    assert Image.open(jpg).size == (80, 60)


def test_exif_orientation_and_folders(tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(np.zeros((20, 40, 3), np.uint8)).save(src / "rotated.jpg", exif=exif)
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(src / "sub" / "b.png")
    (src / ".hidden.png").write_bytes(b"ignored")
    report = upscale_path(bicubic_model(2), src, tmp_path / "out", progress=False, metadata={"model": "bicubic"})
    written = report.written
    assert report.ok and report.total == 2
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == ["rotated.png", "sub/b.png"]
    assert Image.open(tmp_path / "out" / "rotated.png").size == (40, 80)  # displayed 20 wide x 40 high, x2
    sidecar = json.loads((tmp_path / "out" / "sub" / "b.png.json").read_text())
    assert sidecar["scale"] == 2 and sidecar["size"] == [24, 20]


def test_python_api_on_tensors_and_pil():
    x8 = torch.randint(0, 256, (3, 12, 10), dtype=torch.uint8)
    out = upscale("bicubic", x8, scale=3)
    assert out.dtype == torch.uint8 and out.shape == (3, 36, 30)
    batch = upscale(bicubic_model(2), torch.rand(2, 3, 8, 8), tile=None)
    assert batch.shape == (2, 3, 16, 16)
    pil = upscale("bicubic", Image.new("RGB", (10, 7), (10, 200, 30)), scale=2)
    assert pil.size == (20, 14) and pil.getpixel((5, 5)) == (10, 200, 30)  # constant stays constant


def test_cli_upscale_file(tmp_path, capsys):
    Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(tmp_path / "a.png")
    assert main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "b.png"), "--model", "bicubic",
                 "--scale", "4", "--tile", "16", "--overlap", "8"]) == 0
    assert Image.open(tmp_path / "b.png").size == (120, 80)
    assert main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "c.png"), "--model", "bicubic",
                 "--scale", "2", "--tile", "16", "--overlap", "9"]) != 0
    assert "at most half" in capsys.readouterr().err


def test_memory_stays_bounded_on_a_large_image(tmp_path):
    """2000x1500 -> 4000x3000 RGB: the 8-bit output alone is 34 MiB and a float32 output 137 MiB;
    the streamed upscale must grow the process by less than 1.5x the 8-bit output."""
    h, w = 1500, 2000
    yy, xx = np.mgrid[0:h, 0:w]
    img = ((np.sin(xx / 37.0) + np.cos(yy / 23.0)) * 60 + 128).astype(np.uint8)
    Image.fromarray(np.stack([img, img[::-1], img[:, ::-1]], -1)).save(tmp_path / "big.png", compress_level=1)
    Image.fromarray(img[:64, :64]).convert("RGB").save(tmp_path / "small.png")
    del img, yy, xx
    script = textwrap.dedent(f"""
        import resource
        import torch
        torch.set_num_threads(2)
        from genvision.models.sr import bicubic_model
        from genvision.apps.sr.pipeline import upscale_file
        m = bicubic_model(2)
        upscale_file(m, {str(tmp_path / 'small.png')!r}, {str(tmp_path / 'small_out.png')!r}, tile=256)
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        upscale_file(m, {str(tmp_path / 'big.png')!r}, {str(tmp_path / 'big_out.png')!r}, tile=256,
                     compress_level=1)
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    growth = int(result.stdout.strip().splitlines()[-1])
    output_bytes = 2 * h * 2 * w * 3
    assert growth < 1.5 * output_bytes, (growth / 2**20, output_bytes / 2**20)
    with Image.open(tmp_path / "big_out.png") as out:
        assert out.size == (2 * w, 2 * h)
