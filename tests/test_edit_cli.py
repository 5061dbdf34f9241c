"""``genvision edit``: the CLI gives what the Python Chain gives, keeps bit depth, alpha, EXIF and ICC,
replays a sidecar bit for bit, and refuses bad input with one line and nothing written."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms

from genvision.apps.edit.imagefile import EditableImage, read_editable, write_edited
from genvision.cli import main
from genvision.jobs import MANIFEST_DIR
from genvision.ops.chain import Chain

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(err: str) -> str:
    lines = [line for line in re.split(r"[\r\n]", err) if line.startswith("error:")]  # \r: progress bars
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` (hidden ones too) -> its sha256."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def noise(shape, dtype=np.uint8, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)


def save_png(path: Path, pixels: np.ndarray, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if pixels.dtype == np.uint16 and pixels.ndim == 3:  # Pillow cannot hold 16-bit colour
        ok, data = cv2.imencode(".png", pixels[..., [2, 1, 0, 3][:pixels.shape[2]]])
        assert ok
        path.write_bytes(data.tobytes())
    else:
        Image.fromarray(pixels).save(path, **options)
    return path


def pixels_of(path: Path) -> np.ndarray:
    return read_editable(path).pixels


# ----------------------------------------------------------------------------- the CLI is the Chain


@pytest.mark.parametrize("ops, interpolation", [
    (["flip=h"], "bilinear"),
    (["rotate=12"], "bilinear"),
    (["crop=center:0.8"], "bilinear"),
    (["rotate=12", "crop=center:0.8", "flip=v"], "bicubic"),
    (["crop=center:0.5", "rotate=90", "contrast=1.3"], "bilinear"),
])
def test_cli_ops_equal_the_python_chain(tmp_path, capsys, ops, interpolation):
    source = save_png(tmp_path / "in.png", noise((21, 30, 3)))
    out = tmp_path / "out.png"
    argv = ["edit", source, "-o", out, "--interpolation", interpolation]
    code, stdout, err = run_cli(capsys, *argv, *[a for op in ops for a in ("--op", op)])
    assert code == 0, err
    assert stdout.strip() == f"wrote {out}"
    expected = Chain.parse(ops).apply_array(np.asarray(Image.open(source)), interpolation=interpolation, fill=0)
    assert np.array_equal(np.asarray(Image.open(out)), expected)
    sidecar = json.loads((tmp_path / "out.png.json").read_text())
    assert sidecar["chain"] == Chain.parse(ops).to_json() and sidecar["interpolation"] == interpolation
    assert sidecar["source_size"] == [30, 21] and sidecar["size"] == [expected.shape[1], expected.shape[0]]


def test_pipeline_file_ops_come_before_op_flags(tmp_path, capsys):
    source = save_png(tmp_path / "in.png", noise((16, 24, 3)))
    (tmp_path / "steps.yaml").write_text("- crop=center:0.5\n")
    code, _, err = run_cli(capsys, "edit", source, "-o", tmp_path / "out.png", "--pipeline", tmp_path / "steps.yaml",
                           "--op", "rotate=90")
    assert code == 0, err
    expected = Chain.parse(["crop=center:0.5", "rotate=90"]).apply_array(np.asarray(Image.open(source)))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png")), expected)


# ----------------------------------------------------------------------------- what files keep


@pytest.mark.parametrize("shape", [(9, 14), (9, 14, 3), (9, 14, 4)])
def test_16_bit_png_stays_16_bit(tmp_path, capsys, shape):
    pixels = noise(shape, np.uint16, seed=1)
    source = save_png(tmp_path / "in.png", pixels)
    code, _, err = run_cli(capsys, "edit", source, "-o", tmp_path / "out.png", "--op", "flip=h")
    assert code == 0, err
    out = pixels_of(tmp_path / "out.png")
    assert out.dtype == np.uint16 and np.array_equal(out, pixels[:, ::-1])
    assert json.loads((tmp_path / "out.png.json").read_text())["bit_depth"] == 16


def test_alpha_goes_through_the_geometry(tmp_path, capsys):
    rgba = noise((12, 17, 4), seed=2)
    rgba[..., 3] = 0
    rgba[2:6, 3:9, 3] = 255  # an opaque box whose place the edit must move
    source = save_png(tmp_path / "in.png", rgba)
    code, _, err = run_cli(capsys, "edit", source, "-o", tmp_path / "out.png", "--op", "rotate=90:expand", "--op", "flip=v")
    assert code == 0, err
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert out.shape == (17, 12, 4) and np.array_equal(out, np.rot90(rgba)[::-1])
    code, _, err = run_cli(capsys, "edit", source, "-o", tmp_path / "turned.png", "--op", "rotate=30")
    assert code == 0, err
    turned = np.asarray(Image.open(tmp_path / "turned.png"))
    assert np.array_equal(turned, Chain.parse(["rotate=30"]).apply_array(rgba, fill=0))
    assert turned[0, 0, 3] == 0  # --fill 0 outside the source: transparent


def test_exif_rotated_jpeg_comes_out_upright(tmp_path, capsys):
    stored = np.zeros((32, 48, 3), np.uint8)  # as stored: wide; orientation 6 shows it turned 90 clockwise
    stored[:16, :24] = (255, 0, 0)  # top-left red block
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "genvision test camera"
    source = tmp_path / "photo.jpg"
    Image.fromarray(stored).save(source, exif=exif.tobytes(), quality=98)
    for name in ("upright.png", "upright.jpg"):
        code, _, err = run_cli(capsys, "edit", source, "-o", tmp_path / name, "--op", "flip=h")
        assert code == 0, err
        with Image.open(tmp_path / name) as out:
            assert out.size == (32, 48)  # (width, height): upright is tall
            kept = out.getexif()
            assert kept[0x0112] == 1 and kept[0x010F] == "genvision test camera"
            pixels = np.asarray(out.convert("RGB")).astype(int)
    expected = np.rot90(stored, -1)[:, ::-1].astype(int)  # upright (90 clockwise), then mirrored
    assert np.abs(pixels - expected).mean() < 4


@pytest.mark.parametrize("name, pixels", [("out.png", noise((10, 12, 3))), ("out.jpg", noise((10, 12, 3))),
                                          ("out.tif", noise((10, 12, 4))), ("out.webp", noise((10, 12, 3))),
                                          ("out16.png", noise((10, 12, 3), np.uint16))])
def test_icc_profile_and_dpi_are_kept(tmp_path, capsys, name, pixels):
    source = tmp_path / "in.png"
    write_edited(EditableImage(pixels, icc_profile=SRGB, dpi=(300.0, 300.0)), source)
    code, _, err = run_cli(capsys, "edit", source, "-o", tmp_path / name, "--op", "crop=center:0.5")
    assert code == 0, err
    with Image.open(tmp_path / name) as out:
        assert out.info.get("icc_profile") == SRGB
        if not name.endswith(".webp"):  # WebP stores no resolution
            assert round(out.info["dpi"][0]) == 300


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("shape, dtype", [((5, 7), np.uint8), ((5, 7, 2), np.uint8), ((5, 7, 3), np.uint8),
                                          ((5, 7, 4), np.uint8), ((5, 7), np.uint16), ((5, 7, 2), np.uint16),
                                          ((5, 7, 3), np.uint16), ((5, 7, 4), np.uint16)])
def test_lossless_formats_round_trip_every_mode(tmp_path, suffix, shape, dtype):
    pixels = noise(shape, dtype, seed=3)
    write_edited(EditableImage(pixels), tmp_path / f"x{suffix}")
    back = read_editable(tmp_path / f"x{suffix}").pixels
    if suffix == ".tif" and shape == (5, 7, 2) and dtype == np.uint16:  # OpenCV writes grey+alpha TIFFs as RGBA
        back = back[..., [0, 3]]
    assert back.dtype == dtype and np.array_equal(back, pixels)
    assert not list(tmp_path.glob(".*"))  # written atomically: no temporary file left


@pytest.mark.parametrize("shape", [(6, 9, 3), (6, 9)])
def test_16_bit_exif_orientation_is_applied(tmp_path, shape):
    """16-bit colour is decoded by OpenCV, which ignores EXIF: the orientation is applied here too."""
    pixels = noise(shape, np.uint16, seed=10)
    exif = Image.Exif()
    exif[0x0112] = 6
    write_edited(EditableImage(pixels, exif=exif.tobytes()), tmp_path / "x.png")
    image = read_editable(tmp_path / "x.png")
    assert np.array_equal(image.pixels, np.rot90(pixels, -1))
    kept = Image.Exif()
    kept.load(image.exif)
    assert kept[0x0112] == 1


def test_jpeg_flattens_alpha_on_white(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)  # transparent black
    write_edited(EditableImage(rgba), tmp_path / "x.jpg")
    assert np.asarray(Image.open(tmp_path / "x.jpg")).min() >= 250


# ----------------------------------------------------------------------------- folders and replay


def test_folder_in_folder_out_with_sidecars_and_bit_exact_replay(tmp_path, capsys):
    src = tmp_path / "in"
    save_png(src / "a.png", noise((20, 26, 3), seed=4))
    save_png(src / "sub" / "b.png", noise((18, 22, 4), seed=5))
    Image.fromarray(noise((16, 16, 3), seed=6)).save(src / "c.jpg", quality=90)
    save_png(src / "x.png", noise((10, 10, 3), seed=7))
    Image.fromarray(noise((10, 10, 3), seed=8)).save(src / "x.bmp")  # keep: BMP is written as PNG: x.png twice
    before = tree(src)
    out = tmp_path / "out"
    ops = ["--op", "rotate=7", "--op", "crop=center:0.9", "--op", "brightness=1.1"]
    code, stdout, err = run_cli(capsys, "edit", src, "-o", out, *ops, "--interpolation", "bicubic", "--fill", "#336699")
    assert code == 0, err
    assert stdout.strip() == f"wrote 5 images to {out}"
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                     if p.is_file() and p.suffix != ".json" and MANIFEST_DIR not in p.parts)
    assert written == ["a.png", "c.jpg", "sub/b.png", "x_bmp.png", "x_png.png"]
    assert all((out / f"{name}.json").is_file() for name in written)
    assert tree(src) == before and not [p for p in out.rglob(".*") if MANIFEST_DIR not in p.parts]  # no temporaries

    sidecar = out / "sub" / "b.png.json"
    record = json.loads(sidecar.read_text())
    assert record["source"] == str(src / "sub" / "b.png") and record["fill"] == "#336699"
    assert record["interpolation"] == "bicubic" and len(record["chain"]) == 3
    for name, source in (("sub/b.png", "sub/b.png"), ("c.jpg", "c.jpg")):
        replayed = tmp_path / ("replay" + Path(name).suffix)
        code, _, err = run_cli(capsys, "edit", src / source, "-o", replayed, "--replay", out / f"{name}.json",
                               "--overwrite")
        assert code == 0, err
        assert replayed.read_bytes() == (out / name).read_bytes()

    code, _, err = run_cli(capsys, "edit", src, "-o", out, *ops)  # again: everything exists
    assert code != 0 and "already exists (and 4 more of the 5 outputs); pass --overwrite to replace them" in \
        one_line_error(err)
    code, _, err = run_cli(capsys, "edit", src, "-o", tmp_path / "jpgs", "--format", "jpg", *ops)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "jpgs").glob("*.jpg")) == ["a.jpg", "c.jpg", "x_bmp.jpg", "x_png.jpg"]


def test_one_file_into_a_folder_keeps_its_name(tmp_path, capsys):
    source = tmp_path / "scan.bmp"
    Image.fromarray(noise((6, 9, 3))).save(source)
    code, stdout, err = run_cli(capsys, "edit", source, "-o", f"{tmp_path / 'out'}/", "--op", "transpose")
    assert code == 0, err
    assert stdout.strip() == f"wrote {tmp_path / 'out' / 'scan.png'}"  # BMP is not written: PNG
    assert np.array_equal(pixels_of(tmp_path / "out" / "scan.png"), np.asarray(Image.open(source)).swapaxes(0, 1))
    code, _, err = run_cli(capsys, "edit", source, "-o", tmp_path / "out", "--op", "transpose", "--format", "webp")
    assert code == 0 and (tmp_path / "out" / "scan.webp").is_file() and (tmp_path / "out" / "scan.webp.json").is_file()


def test_list_ops_needs_no_arguments(capsys):
    code, stdout, _ = run_cli(capsys, "edit", "--list-ops")
    assert code == 0 and "rotate" in stdout and "crop" in stdout and "contrast" in stdout


# ----------------------------------------------------------------------------- refusals


@pytest.fixture
def photo(tmp_path) -> Path:
    return save_png(tmp_path / "in" / "photo.png", noise((12, 16, 3), seed=9))


@pytest.mark.parametrize("argv, message", [
    (["--op", "rotat=12"], "rotat"),
    (["--op", "rotate=abc"], "rotate"),
    (["--op", "contrast=-3"], "contrast"),
    ([], "no edit ops given"),
    (["--op", "flip=h", "--fill", "#12345"], "--fill"),
    (["--op", "flip=h", "--format", "jpg"], "--format jpg does not match"),
])
def test_bad_ops_and_arguments_are_one_line_and_write_nothing(tmp_path, capsys, photo, argv, message):
    before = tree(tmp_path)
    code, _, err = run_cli(capsys, "edit", photo, "-o", tmp_path / "out" / "x.png", *argv)
    assert code != 0 and message in one_line_error(err)
    assert tree(tmp_path) == before and not (tmp_path / "out").exists()


def test_unreadable_files_and_bad_sidecars_are_one_line(tmp_path, capsys):
    (tmp_path / "junk.png").write_bytes(b"\x89PNG not really")
    code, _, err = run_cli(capsys, "edit", tmp_path / "junk.png", "-o", tmp_path / "out.png", "--op", "flip=h")
    assert code != 0 and "junk.png" in one_line_error(err) and not (tmp_path / "out.png").exists()
    code, _, err = run_cli(capsys, "edit", tmp_path / "missing.png", "-o", tmp_path / "out.png", "--op", "flip=h")
    assert code != 0 and "missing.png" in one_line_error(err)
    (tmp_path / "bad.json").write_text('{"not": "a sidecar"}')
    good = save_png(tmp_path / "good.png", noise((8, 8, 3)))
    code, _, err = run_cli(capsys, "edit", good, "-o", tmp_path / "out.png", "--replay", tmp_path / "bad.json")
    assert code != 0 and "not an edit sidecar" in one_line_error(err) and not (tmp_path / "out.png").exists()


def test_outputs_never_replace_inputs(tmp_path, capsys, photo):
    folder = photo.parent
    code, _, err = run_cli(capsys, "edit", photo, "-o", tmp_path / "out.png", "--op", "flip=h")
    assert code == 0, err
    before = tree(tmp_path)
    for target, reason in ((photo, "it is the input"), (folder, "input folder"), (folder / "deeper", "input folder"),
                           (tmp_path / "out.png", "it is the input")):  # its sidecar is the --replay input
        source = folder if reason == "input folder" else photo
        code, _, err = run_cli(capsys, "edit", source, "-o", target, "--replay", tmp_path / "out.png.json",
                               "--overwrite")
        assert code != 0 and reason in one_line_error(err), (target, err)
    assert tree(tmp_path) == before
    code, _, err = run_cli(capsys, "edit", photo, "-o", tmp_path / "out.png", "--op", "crop=100,100,5,5", "--overwrite")
    assert code != 0 and "photo.png: crop box" in one_line_error(err) and (tmp_path / "out.png").read_bytes()
    assert tree(tmp_path) == before
    existing = tmp_path / "existing.png"
    existing.write_bytes(b"mine")
    code, _, err = run_cli(capsys, "edit", photo, "-o", existing, "--op", "flip=h")
    assert code != 0 and "already exists; pass --overwrite" in one_line_error(err)
    assert existing.read_bytes() == b"mine"


def test_a_bad_file_in_a_folder_is_reported_and_the_rest_go_on(tmp_path, capsys, photo):
    (photo.parent / "broken.png").write_bytes(b"\x89PNG broken")
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "edit", photo.parent, "-o", out, "--op", "flip=h")
    errors = [line for line in re.split(r"[\r\n]", err) if line.startswith("error:")]
    assert code != 0 and len(errors) == 2 and "broken.png" in errors[0]
    assert errors[1] == f"error: wrote 1 of 2 images to {out}; 1 failed"
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_DIR, "photo.png", "photo.png.json"]  # the job's record
