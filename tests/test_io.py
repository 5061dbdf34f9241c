"""genvision.io: the safe loader (limits, formats, modes, EXIF, errors) and the atomic savers.

Every fixture is generated in tmp_path; nothing here is large or touches the network.
"""

from __future__ import annotations

import json
import random
import resource
import struct
import time
import warnings
import zlib
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import genvision
from genvision import io as gio
from genvision.errors import ConfigError, GenvisionError, ImageLoadError


def _rgb(h: int = 16, w: int = 24, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _png_bytes(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    import io

    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _stored(path: Path) -> Image.Image:
    """The file as Pillow itself decodes it (closed afterwards)."""
    with Image.open(path) as img:
        img.load()
        return img


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_declaring(width: int, height: int) -> bytes:
    """A ~60-byte, valid-looking RGB PNG whose IHDR claims width x height."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + _chunk(b"IEND", b""))


def _refused(path: Path, match: str, **kw) -> str:
    """Load must fail with ImageLoadError: one line, naming the file, containing ``match``."""
    with pytest.raises(ImageLoadError) as info:
        gio.load_image(path, **kw)
    msg = str(info.value)
    assert "\n" not in msg and "\r" not in msg
    assert path.name in msg or repr(path.name)[1:-1] in msg
    assert match in msg, msg
    return msg


# ----------------------------------------------------------------------------- refused inputs

def test_missing_directory_and_empty_file(tmp_path):
    _refused(tmp_path / "nope.png", "no such file")
    (tmp_path / "dir.png").mkdir()
    _refused(tmp_path / "dir.png", "not a regular file")
    (tmp_path / "empty.png").write_bytes(b"")
    _refused(tmp_path / "empty.png", "empty file")


@pytest.mark.parametrize("fmt,suffix", [("PNG", ".png"), ("JPEG", ".jpg")])
def test_truncated_file(tmp_path, fmt, suffix):
    data = _png_bytes(Image.fromarray(_rgb(64, 64)), fmt)
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(data[: len(data) // 2])
    msg = _refused(path, ":")
    assert "truncated" in msg or "corrupt" in msg


def test_random_bytes_and_text_named_png(tmp_path):
    (tmp_path / "noise.png").write_bytes(random.Random(0).randbytes(4096))
    _refused(tmp_path / "noise.png", "not a supported image")
    (tmp_path / "notes.png").write_text("hello, I am not a picture\n")
    _refused(tmp_path / "notes.png", "not a supported image")


@pytest.mark.parametrize("fmt", ["ICO", "TGA", "PDF"])
def test_format_outside_allowlist_refused(tmp_path, fmt):
    path = tmp_path / f"image.{fmt.lower()}"
    path.write_bytes(_png_bytes(Image.fromarray(_rgb(16, 16)), fmt))
    _refused(path, "not a supported image")
    disguised = tmp_path / f"{fmt.lower()}_in_disguise.png"
    disguised.write_bytes(path.read_bytes())
    _refused(disguised, "not a supported image")


def test_pixel_bomb_refused_fast_without_allocating(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_declaring(30000, 30000))  # 2.7 GB of RGB if decoded
    assert path.stat().st_size < 100
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    start = time.perf_counter()
    msg = _refused(path, "decompression bomb")
    assert time.perf_counter() - start < 1.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 100 * 1024
    assert "900000000" in msg  # says how big it claimed to be
    with pytest.raises(ImageLoadError):
        gio.load_image_tensor(path)


def test_pixel_bomb_in_pillow_warning_band_is_an_error(tmp_path):
    # 100M pixels: above Pillow's limit but below 2x, where Pillow only warns
    path = tmp_path / "warn.png"
    path.write_bytes(_png_declaring(10000, 10000))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and nothing leaks out as a warning
        _refused(path, "decompression bomb")


def test_max_pixels_and_max_bytes_caller_limits(tmp_path):
    path = tmp_path / "small.png"
    Image.fromarray(_rgb(100, 100)).save(path)
    msg = _refused(path, "100x100", max_pixels=5000)
    assert "5000" in msg and "decompression bomb" in msg
    msg = _refused(path, "over the limit of 100 bytes", max_bytes=100)
    assert str(path.stat().st_size) in msg
    assert gio.load_image(path).size == (100, 100)


def test_error_message_one_line_even_for_newline_in_name(tmp_path):
    path = tmp_path / "bad\nname.png"
    path.write_bytes(b"garbage" * 10)
    msg = _refused(path, "bad\\nname.png")
    assert isinstance(ImageLoadError(msg), GenvisionError)


def test_bad_arguments_are_value_errors(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(_rgb()).save(path)
    with pytest.raises(ValueError):
        gio.load_image(path, mode="CMYK")
    with pytest.raises(ValueError):
        gio.load_image_tensor(path, channels=2)


# ----------------------------------------------------------------------------- formats and modes

@pytest.mark.parametrize("fmt,suffix", [("PNG", ".png"), ("BMP", ".bmp"), ("TIFF", ".tiff"),
                                        ("PPM", ".ppm"), ("WEBP", ".webp"), ("GIF", ".gif"),
                                        ("JPEG", ".jpg")])
def test_each_allowed_format_loads(tmp_path, fmt, suffix):
    assert fmt in gio.ALLOWED_FORMATS and suffix in gio.IMAGE_SUFFIXES
    arr = np.zeros((12, 20, 3), np.uint8)
    arr[:, :10] = (200, 40, 40)
    path = tmp_path / f"img{suffix}"
    Image.fromarray(arr).save(path, format=fmt)
    img = gio.load_image(path)
    assert img.mode == "RGB" and img.size == (20, 12)
    got = np.asarray(img).astype(int)
    assert np.abs(got[6, 2] - (200, 40, 40)).max() <= 12 and got[6, 17].max() <= 12


def test_16bit_grey_scaled_and_tensor_keeps_precision(tmp_path):
    values = np.array([[0, 1, 128, 129], [257, 32768, 65534, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    l8 = np.asarray(gio.load_image(path, "L"))
    np.testing.assert_array_equal(l8, (values.astype(int) + 128) // 257)  # round(v / 257)
    np.testing.assert_array_equal(np.asarray(gio.load_image(path, "RGB"))[..., 1], l8)
    t = gio.load_image_tensor(path, channels=1)
    assert t.dtype == torch.float32 and t.shape == (1, 2, 4)
    torch.testing.assert_close(t[0], torch.from_numpy(values.astype(np.float32) / 65535))
    assert t[0, 0, 1] > 0  # 1/65535 survives; an 8-bit detour would make it 0
    t3 = gio.load_image_tensor(path, channels=3)
    assert t3.shape == (3, 2, 4) and torch.equal(t3[2], t[0])
    t4 = gio.load_image_tensor(path, channels=4)
    assert torch.equal(t4[3], torch.ones(2, 4))
    assert gio.load_image(path, "keep").mode == "I;16"


def test_big_endian_16bit_tiff_normalised_to_i16(tmp_path):
    values = np.array([[0, 300, 65535]], dtype=np.uint16)
    path = tmp_path / "be.tiff"
    Image.frombytes("I;16B", (3, 1), values.astype(">u2").tobytes()).save(path)
    assert _stored(path).mode == "I;16B"
    img = gio.load_image(path, "keep")
    assert img.mode == "I;16"
    np.testing.assert_array_equal(np.asarray(img), values)
    np.testing.assert_array_equal(np.asarray(gio.load_image(path, "L")), [[0, 1, 255]])


def test_palette_with_transparency(tmp_path):
    img = Image.new("P", (2, 1))
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.putdata([0, 1])
    path = tmp_path / "pal.png"
    img.save(path, transparency=0)  # palette index 0 (red) is fully transparent
    rgba = np.asarray(gio.load_image(path, "RGBA"))
    assert tuple(rgba[0, 0]) == (255, 0, 0, 0) and tuple(rgba[0, 1]) == (0, 0, 255, 255)
    rgb = np.asarray(gio.load_image(path, "RGB"))
    assert tuple(rgb[0, 0]) == (255, 255, 255) and tuple(rgb[0, 1]) == (0, 0, 255)  # white behind
    assert gio.load_image(path, "keep").mode == "P"
    opaque = tmp_path / "opaque.png"
    img.save(opaque)
    assert tuple(np.asarray(gio.load_image(opaque, "RGB"))[0, 0]) == (255, 0, 0)


def test_cmyk_jpeg_to_rgb(tmp_path):
    img = Image.new("CMYK", (16, 8), (0, 0, 0, 0))  # white
    img.paste((0, 255, 255, 0), (0, 0, 8, 8))  # red
    path = tmp_path / "print.jpg"
    img.save(path, quality=95)
    assert _stored(path).mode == "CMYK"
    rgb = np.asarray(gio.load_image(path)).astype(int)
    assert np.abs(rgb[4, 2] - (255, 0, 0)).max() <= 10
    assert np.abs(rgb[4, 13] - (255, 255, 255)).max() <= 10


def test_la_and_rgba_alpha_composited_on_white(tmp_path):
    la = np.array([[[0, 0], [0, 255], [0, 128]]], dtype=np.uint8)  # black at alpha 0, 255, 128
    path = tmp_path / "la.png"
    Image.fromarray(la, "LA").save(path)
    np.testing.assert_allclose(np.asarray(gio.load_image(path, "L"))[0], [255, 0, 127], atol=1)
    assert tuple(np.asarray(gio.load_image(path, "RGB"))[0, 0]) == (255, 255, 255)
    np.testing.assert_array_equal(np.asarray(gio.load_image(path, "LA")), la)
    assert tuple(np.asarray(gio.load_image(path, "RGBA"))[0, 1]) == (0, 0, 0, 255)
    rgba = tmp_path / "rgba.png"
    Image.fromarray(np.array([[[0, 0, 0, 0], [10, 20, 30, 255]]], np.uint8), "RGBA").save(rgba)
    np.testing.assert_array_equal(np.asarray(gio.load_image(rgba))[0], [[255, 255, 255], [10, 20, 30]])
    assert gio.load_image_tensor(rgba, channels=4).shape == (4, 1, 2)


def test_one_bit_image(tmp_path):
    path = tmp_path / "bits.png"
    Image.fromarray(np.array([[0, 255, 255, 0]], np.uint8)).convert("1").save(path)
    assert _stored(path).mode == "1"
    np.testing.assert_array_equal(np.asarray(gio.load_image(path, "L")), [[0, 255, 255, 0]])


def test_int32_image_clipped_to_16_bit(tmp_path):
    path = tmp_path / "int.tiff"
    Image.fromarray(np.array([[-5, 0, 257, 65535, 100000]], np.int32)).save(path)
    assert _stored(path).mode == "I"
    np.testing.assert_array_equal(np.asarray(gio.load_image(path, "L")), [[0, 0, 1, 255, 255]])
    torch.testing.assert_close(gio.load_image_tensor(path, 1)[0, 0],
                               torch.tensor([0, 0, 257 / 65535, 1, 1], dtype=torch.float32))


@pytest.mark.parametrize("values,expected", [
    ([0.0, 0.2, 1.0, -0.5], [0, 51, 255, 0]),  # max <= 1: taken as 0..1
    ([0.0, 2.0, 127.6, 300.0], [0, 2, 128, 255]),  # else 0..255, clipped
])
def test_float_image(tmp_path, values, expected):
    path = tmp_path / "float.tiff"
    Image.fromarray(np.array([values], np.float32)).save(path)
    assert _stored(path).mode == "F"
    np.testing.assert_array_equal(np.asarray(gio.load_image(path, "L")), [expected])


@pytest.mark.parametrize("orientation,corner", [(6, "top-right"), (8, "bottom-left")])
def test_exif_rotated_jpeg(tmp_path, orientation, corner):
    arr = np.full((20, 40, 3), (0, 0, 255), np.uint8)  # stored 40 wide, 20 high, blue
    arr[:8, :8] = (255, 0, 0)  # red block in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "phone.jpg"
    Image.fromarray(arr).save(path, quality=95, exif=exif.tobytes())
    img = gio.load_image(path)
    assert img.size == (20, 40)  # rotated: 20 wide, 40 high
    got = np.asarray(img).astype(int)
    y, x = {"top-right": (3, 16), "bottom-left": (36, 3)}[corner]
    assert got[y, x, 0] > 200 and got[y, x, 2] < 60  # red landed in the expected corner
    assert got[3, 3 if corner == "top-right" else 16, 2] > 200  # and not where it was stored


# ----------------------------------------------------------------------------- saving

@pytest.mark.parametrize("channels,mode", [(3, "RGB"), (1, "L")])
def test_png_round_trip_bit_exact(tmp_path, channels, mode):
    arr = _rgb(17, 23, seed=1) if channels == 3 else _rgb(17, 23, seed=1)[..., 0]
    path = gio.save_image(Image.fromarray(arr), tmp_path / "a" / "b" / "img.png")
    assert path.exists()
    np.testing.assert_array_equal(np.asarray(gio.load_image(path, mode)), arr)
    t = torch.from_numpy(arr).permute(2, 0, 1) if channels == 3 else torch.from_numpy(arr)
    path2 = gio.save_image(t.contiguous(), tmp_path / "from_tensor.png")  # uint8 tensor as is
    np.testing.assert_array_equal(np.asarray(gio.load_image(path2, mode)), arr)


def test_float_tensor_value_range(tmp_path):
    t = torch.tensor([[-1.0, 0.0, 1.0, -3.0, 2.0]]).expand(3, 1, 5)
    path = gio.save_image(t, tmp_path / "range.png")
    np.testing.assert_array_equal(np.asarray(gio.load_image(path))[0, :, 0], [0, 128, 255, 0, 255])
    img = gio.tensor_to_pil(torch.tensor([[0.0, 0.5, 1.0]]), value_range=(0.0, 1.0))
    assert img.mode == "L" and list(np.asarray(img)[0]) == [0, 128, 255]
    with pytest.raises(ValueError, match="NaN"):
        gio.tensor_to_pil(torch.tensor([[float("nan")]]))
    with pytest.raises(ValueError, match="shape"):
        gio.tensor_to_pil(torch.zeros(2, 4, 4))


def test_save_jpeg_webp_and_bad_suffix(tmp_path):
    rgba = Image.fromarray(np.full((8, 8, 4), (10, 200, 10, 255), np.uint8), "RGBA")
    for name in ("x.jpg", "x.jpeg", "x.webp"):
        path = gio.save_image(rgba, tmp_path / name)
        assert np.abs(np.asarray(gio.load_image(path)).astype(int) - (10, 200, 10)).max() <= 8
    with pytest.raises(ConfigError, match="cannot save as"):
        gio.save_image(rgba, tmp_path / "x.bmp")


@pytest.mark.parametrize("batch,channels,nrow,padding", [(5, 3, None, 2), (4, 1, 4, 0), (6, 3, 4, 3)])
def test_save_grid_size(tmp_path, batch, channels, nrow, padding):
    h, w = 8, 6
    images = torch.rand(batch, channels, h, w) * 2 - 1
    path = gio.save_grid(images, tmp_path / "grid.png", nrow=nrow, padding=padding)
    cols = min(nrow or int(np.ceil(np.sqrt(batch))), batch)
    rows = -(-batch // cols)
    img = _stored(path)
    assert img.size == (cols * (w + padding) + padding, rows * (h + padding) + padding)
    assert img.mode == ("L" if channels == 1 else "RGB")


def test_sidecar_content_and_metadata_wins(tmp_path):
    image = torch.zeros(3, 4, 4)
    path = gio.save_image(image, tmp_path / "s.png", metadata={"seed": 7, "model": Path("runs/x")})
    record = json.loads((tmp_path / "s.png.json").read_text())
    assert record["genvision_version"] == genvision.__version__
    assert isinstance(record["command"], str) and record["command"]
    assert datetime.fromisoformat(record["created"]).utcoffset().total_seconds() == 0
    assert record["seed"] == 7 and record["model"] == "runs/x"
    side = gio.write_sidecar(path, {"command": "custom", "step": torch.tensor(3)})
    assert side == tmp_path / "s.png.json"
    record = json.loads(side.read_text())
    assert record["command"] == "custom" and record["step"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.png", "s.png.json"]


def test_atomic_write_leaves_no_temp_files_and_keeps_old_file(tmp_path, monkeypatch):
    path = gio.save_grid(torch.zeros(4, 3, 4, 4), tmp_path / "g.png", metadata={"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.png", "g.png.json"]
    before = path.read_bytes()

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"half an image")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(RuntimeError):
        gio.save_image(torch.ones(3, 4, 4), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.png", "g.png.json"]


def test_save_unwritable_target_is_a_one_line_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(GenvisionError) as info:
        gio.save_image(torch.zeros(3, 2, 2), tmp_path / "file" / "sub" / "img.png")
    assert "\n" not in str(info.value) and "img.png" in str(info.value)


def test_save_gif(tmp_path):
    frames = torch.linspace(-1, 1, 5)[:, None, None, None].expand(5, 3, 8, 8)  # (T, C, H, W)
    path = gio.save_gif(frames, tmp_path / "walk.gif", duration_ms=50, metadata={"n": 5})
    with Image.open(path) as gif:
        assert gif.n_frames == 5 and gif.size == (8, 8) and gif.info.get("loop") == 0
        assert gif.info["duration"] == 50
    assert json.loads((tmp_path / "walk.gif.json").read_text())["n"] == 5
    assert gio.load_image(path).size == (8, 8)  # GIF is allowed: first frame
    pils = [Image.new("RGBA", (4, 4), (0, 0, 0, 0)), Image.new("L", (4, 4), 30)]
    assert gio.save_gif(pils, tmp_path / "pil.gif").exists()
    with pytest.raises(ConfigError):
        gio.save_gif(pils, tmp_path / "pil.png")


def test_to_uint8_array(tmp_path):
    path = tmp_path / "g.png"
    Image.fromarray(_rgb()[..., 0]).save(path)
    assert gio.to_uint8_array(path, "L").shape == (16, 24, 1)
    assert gio.to_uint8_array(path).shape == (16, 24, 3)
