"""Masks (file, box, random) and classical inpainting: quality on a real photo, known pixels never
change, and ``genvision inpaint`` writes what it should and nothing it shouldn't."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from genvision import cli
from genvision.apps.edit.inpaint import (
    METHODS,
    InpaintMethod,
    inpaint_array,
    inpaint_classical,
)
from genvision.errors import ConfigError
from genvision.ops.masks import box_mask, load_mask, mask_area, parse_box, random_mask

SET5 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sr-benchmarks" / "Set5"


@pytest.fixture
def photo_path() -> Path:
    path = SET5 / "bird.png"
    if not path.is_file():
        pytest.skip("shared SR benchmark images not available (../shared/data/sr-benchmarks)")
    return path


@pytest.fixture
def photo(photo_path) -> np.ndarray:
    return np.asarray(Image.open(photo_path).convert("RGB"))  # (288, 288, 3) uint8


def _run(argv, capsys) -> tuple[int, str, str]:
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def _one_error_line(err: str) -> str:
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1, err
    return err


# ----------------------------------------------------------------------------- masks


def test_parse_box_and_box_mask_clip_to_the_image():
    assert parse_box(" 10, 20,64 ,48") == (10, 20, 64, 48)
    for bad in ("10,20,64", "a,b,c,d", "1,2,0,4", "1,2,3,4,5", ""):
        with pytest.raises(ConfigError, match="x,y,w,h|at least 1 pixel"):
            parse_box(bad)
    mask = box_mask((20, 30), (-5, 15, 10, 10))  # (H, W) = (20, 30): rows 15..19, columns 0..4
    assert mask.shape == (20, 30) and mask.dtype == bool
    assert mask.sum() == 5 * 5 and mask[15:, :5].all()
    assert box_mask((20, 30), (0, 0, 100, 100)).all()
    with pytest.raises(ConfigError, match="outside the 30x20 image"):
        box_mask((20, 30), (30, 0, 5, 5))
    assert mask_area(box_mask((10, 10), (0, 0, 5, 2))) == pytest.approx(0.1)


def test_load_mask_reads_grey_colour_and_alpha_masks(tmp_path):
    hole = np.zeros((20, 30), bool)
    hole[5:12, 8:20] = True
    grey = np.where(hole, 200, 100).astype(np.uint8)  # 100 is below the threshold, 200 above
    Image.fromarray(grey).save(tmp_path / "grey.png")
    assert np.array_equal(load_mask(tmp_path / "grey.png", (20, 30)), hole)
    assert np.array_equal(load_mask(tmp_path / "grey.png", (20, 30), invert=True), ~hole)
    Image.fromarray(np.dstack([grey] * 3)).save(tmp_path / "rgb.jpg", quality=100)
    assert np.array_equal(load_mask(tmp_path / "rgb.jpg", (20, 30)), hole)
    Image.fromarray((hole * 65535).astype(np.uint16)).save(tmp_path / "g16.png")
    assert np.array_equal(load_mask(tmp_path / "g16.png", (20, 30)), hole)
    # a one-colour layer: the shape is in alpha alone (black strokes count, too)
    layer = np.zeros((20, 30, 4), np.uint8)
    layer[..., 3] = hole * 255
    Image.fromarray(layer, "RGBA").save(tmp_path / "alpha.png")
    assert np.array_equal(load_mask(tmp_path / "alpha.png", (20, 30)), hole)
    # varied colours with alpha: light and opaque is the hole; light but transparent is not
    mixed = np.zeros((20, 30, 4), np.uint8)
    mixed[..., :3] = np.where(hole, 255, 0)[..., None]
    mixed[..., 3] = 255
    mixed[0:3, 0:3] = (255, 255, 255, 0)
    Image.fromarray(mixed, "RGBA").save(tmp_path / "mixed.png")
    assert np.array_equal(load_mask(tmp_path / "mixed.png", (20, 30)), hole)


def test_load_mask_refuses_another_size_on_one_line(tmp_path):
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(tmp_path / "m.png")
    with pytest.raises(ConfigError) as info:
        load_mask(tmp_path / "m.png", (24, 40))
    assert str(info.value).endswith("m.png: mask is 30x20 but the image is 40x24") and "\n" not in str(info.value)


@pytest.mark.parametrize(("size", "area"), [((256, 256), (0.1, 0.2)), ((96, 160), (0.3, 0.4)),
                                            ((64, 48), (0.01, 0.02)), ((17, 9), (0.5, 0.6)), ((3, 3), (0.4, 0.5))])
def test_random_mask_lands_in_the_range_and_depends_only_on_the_seed(size, area):
    masks = [random_mask(size, area=area, seed=seed) for seed in range(6)]
    for mask in masks:
        assert mask.shape == size and mask.dtype == bool
        assert area[0] <= mask_area(mask) <= area[1]
    assert np.array_equal(masks[0], random_mask(size, area=area, seed=0))
    if size[0] * size[1] > 100:
        assert len({m.tobytes() for m in masks}) == len(masks)  # seeds give different masks


def test_random_mask_refuses_impossible_ranges():
    with pytest.raises(ConfigError, match="widen the range"):
        random_mask((3, 3), area=(0.5, 0.52), seed=0)  # 4/9 < 0.5 and 5/9 > 0.52
    for bad in ((0.0, 0.1), (0.3, 0.2), (0.5, 1.0), (float("nan"), 0.2)):
        with pytest.raises(ConfigError, match="0 < lo <= hi < 1"):
            random_mask((10, 10), area=bad, seed=0)


# ----------------------------------------------------------------------------- classical inpainting


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / mse)


def _scratches(size: tuple[int, int]) -> np.ndarray:
    """bool (H, W): eight 4-pixel lines across the image, like scratches on a scanned print."""
    canvas = np.zeros(size, np.uint8)
    for i in range(8):
        cv2.line(canvas, (0, 20 + 30 * i), (size[1] - 1, 40 + 25 * i), 1, 4)
    return canvas.astype(bool)


@pytest.mark.parametrize("method", ["telea", "ns"])
def test_classical_inpainting_fills_a_photo_better_than_its_mean(photo, method):
    for hole in (_scratches(photo.shape[:2]), random_mask(photo.shape[:2], area=(0.03, 0.06), seed=0)):
        damaged = photo.copy()
        damaged[hole] = 0
        filled = inpaint_classical(damaged, hole, method=method, radius=3)
        mean_fill = damaged.copy()
        mean_fill[hole] = photo[~hole].mean(axis=0).round().astype(np.uint8)
        ours, baseline = _psnr(filled[hole], photo[hole]), _psnr(mean_fill[hole], photo[hole])
        # measured on bird.png: scratches 25.1 vs 13.6 dB, the random mask 21.1 vs 12.5 dB
        assert ours > baseline + 5, (ours, baseline)
        assert np.array_equal(filled[~hole], photo[~hole])


def _known_pixels_cases(photo: np.ndarray):
    rgb8 = photo[:96, :128]
    grey8 = rgb8[..., 1]
    rgba8 = np.dstack([rgb8, np.linspace(0, 255, 128, dtype=np.uint8)[None].repeat(96, 0)])  # (96, 128, 4)
    rng = np.random.default_rng(0)
    rgb16 = rgb8.astype(np.uint16) * 257 + rng.integers(0, 257, rgb8.shape).astype(np.uint16)  # full 16 bits
    return {"rgb8": rgb8, "grey8": grey8, "grey8_hw1": grey8[..., None], "la8": rgba8[..., 2:], "rgba8": rgba8,
            "grey16": rgb16[..., 0], "rgb16": rgb16, "rgba16": np.dstack([rgb16, rgb16[..., :1]]),
            "float32": (rgb8 / 255.0).astype(np.float32)}


@pytest.mark.parametrize("method", ["telea", "ns"])
def test_known_pixels_are_bit_identical_for_every_layout(photo, method):
    hole = random_mask((96, 128), area=(0.15, 0.25), seed=2)
    for name, image in _known_pixels_cases(photo).items():
        before = image.copy()
        filled = inpaint_array(image, hole, method=method, radius=3)
        assert filled.shape == image.shape and filled.dtype == image.dtype, name
        assert np.array_equal(filled[~hole], image[~hole]), name
        assert not np.array_equal(filled[hole], np.zeros_like(filled[hole])), name
        assert np.array_equal(image, before), name  # the input is not modified


@pytest.mark.parametrize("method", ["telea", "ns"])
def test_sixteen_bit_fill_keeps_its_precision(method):
    ramp = np.linspace(1000, 60000, 64 * 80).reshape(64, 80).astype(np.uint16)  # (H, W) smooth 16-bit
    hole = box_mask(ramp.shape, (30, 20, 12, 12))
    colour = np.dstack([ramp, ramp[::-1], ramp[:, ::-1]])  # (H, W, 3) uint16
    for image in (ramp, colour):
        filled = inpaint_classical(image, hole, method=method).astype(np.int64)
        assert (filled[hole] % 257 != 0).mean() > 0.5  # not 8-bit levels scaled up
        # the same fill as in 8 bits, to within a few 8-bit levels (measured: at most 4)
        eight = inpaint_classical(np.rint(image / 257).astype(np.uint8), hole, method=method).astype(np.int64) * 257
        assert np.abs(filled - eight)[hole].max() <= 6 * 257


def test_every_method_keeps_known_pixels_even_when_it_changes_them(monkeypatch, photo):
    def careless(image, mask):
        return np.full_like(image, 7)  # writes everywhere, and returns a new array

    monkeypatch.setitem(METHODS, "careless", InpaintMethod("careless", careless, "test"))
    image, hole = photo[:32, :32], box_mask((32, 32), (4, 4, 8, 8))
    filled = inpaint_array(image, hole, method="careless")
    assert np.array_equal(filled[~hole], image[~hole]) and (filled[hole] == 7).all()


def test_inpainting_refuses_bad_inputs_on_one_line(photo):
    image = photo[:16, :16]
    cases = [(lambda: inpaint_array(image, np.ones((16, 16), bool)), "covers the whole image"),
             (lambda: inpaint_array(image, np.zeros((16, 8), bool)), "mask is 8x16 but the image is 16x16"),
             (lambda: inpaint_array(image.astype(np.int32), np.zeros((16, 16), bool)), "uint8, uint16 or float32"),
             (lambda: inpaint_array(image, np.zeros((16, 16), bool), method="lama"), "choose from telea, ns"),
             (lambda: inpaint_classical(image, np.zeros((16, 16), bool), radius=0), "at least 1 pixel")]
    for call, message in cases:
        with pytest.raises(ConfigError, match=message) as info:
            call()
        assert "\n" not in str(info.value)
    empty = np.zeros((16, 16), bool)
    assert np.array_equal(inpaint_array(image, empty), image)


# ----------------------------------------------------------------------------- the command


def test_cli_writes_the_filled_image_its_sidecar_and_the_mask(photo_path, photo, tmp_path, capsys):
    out, mask_out = tmp_path / "out" / "bird.png", tmp_path / "mask.png"
    status, stdout, err = _run(["inpaint", photo_path, "-o", out, "--random-mask", "0.05:0.1", "--seed", 5,
                                "--method", "ns", "--radius", 4, "--save-mask", mask_out], capsys)
    assert status == 0 and stdout == f"wrote {out}\n" and err == ""
    hole = np.asarray(Image.open(mask_out)) > 127
    assert np.array_equal(hole, random_mask(photo.shape[:2], area=(0.05, 0.1), seed=5))
    filled = np.asarray(Image.open(out))
    assert filled.shape == photo.shape and np.array_equal(filled[~hole], photo[~hole])
    meta = json.loads((tmp_path / "out" / "bird.png.json").read_text())
    assert meta["method"] == "ns" and meta["options"] == {"radius": 4}
    assert meta["mask"] == {"kind": "random", "area": [0.05, 0.1], "seed": 5, "invert": False}
    assert meta["hole_fraction"] == pytest.approx(hole.mean()) and meta["size"] == [288, 288]

    # the saved mask, given back with --mask, reproduces the same image
    again = tmp_path / "again.png"
    assert _run(["inpaint", photo_path, "-o", again, "--mask", mask_out, "--method", "ns", "--radius", 4], capsys)[0] == 0
    assert np.array_equal(np.asarray(Image.open(again)), filled)
    assert json.loads((tmp_path / "again.png.json").read_text())["mask"]["kind"] == "file"


def test_cli_refuses_to_write_over_its_inputs_and_writes_nothing(photo_path, tmp_path, capsys):
    source = tmp_path / "photo.png"
    source.write_bytes(photo_path.read_bytes())
    Image.fromarray(box_mask((288, 288), (100, 100, 20, 20)).astype(np.uint8) * 255).save(tmp_path / "m.png")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    for argv in (["-o", source, "--box", "1,1,5,5"], ["-o", source, "--box", "1,1,5,5", "--overwrite"],
                 ["-o", tmp_path / "m.png", "--mask", tmp_path / "m.png", "--overwrite"],
                 ["-o", tmp_path / "x.png", "--box", "1,1,5,5", "--save-mask", source, "--overwrite"]):
        status, stdout, err = _run(["inpaint", source, *argv], capsys)
        assert status == 1 and stdout == "" and "refusing to write" in _one_error_line(err), argv
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before

    (tmp_path / "out.png").write_bytes(b"old")
    status, _, err = _run(["inpaint", source, "-o", tmp_path / "out.png", "--box", "1,1,5,5"], capsys)
    assert status == 1 and "already exists; pass --overwrite" in _one_error_line(err)
    assert (tmp_path / "out.png").read_bytes() == b"old" and not (tmp_path / "out.png.json").exists()
    assert _run(["inpaint", source, "-o", tmp_path / "out.png", "--box", "1,1,5,5", "--overwrite"], capsys)[0] == 0


def test_cli_one_line_errors_for_bad_masks_images_and_methods(photo_path, tmp_path, capsys):
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(tmp_path / "small.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "out.png"
    cases = [([photo_path, "--mask", tmp_path / "small.png"], 1, "small.png: mask is 30x20 but the image is 288x288"),
             ([tmp_path / "broken.png", "--box", "1,1,5,5"], 1, "broken.png: not a supported image"),
             ([tmp_path / "missing.png", "--box", "1,1,5,5"], 1, "missing.png: no such file or folder"),
             ([photo_path, "--box", "1,1,5,5", "--method", "lama"], 1, "unknown inpainting method 'lama'; choose from"),
             ([photo_path, "--box", "1,1,5,5", "--random-mask", "0.1:0.2"], 2, "give exactly one of --mask"),
             ([photo_path, "--box", "1,1,5"], 2, "Invalid value for '--box'"),
             ([photo_path, "--random-mask", "0.3:0.1"], 2, "Invalid value for '--random-mask'"),
             ([photo_path, "--box", "400,0,5,5"], 1, "lies outside the 288x288 image"),
             ([photo_path, "--mask", tmp_path / "small.png", "--invert-mask"], 1, "mask is 30x20")]
    for argv, expected_status, message in cases:
        status, stdout, err = _run(["inpaint", *argv, "-o", out], capsys)
        assert status == expected_status and stdout == "" and message in _one_error_line(err), (argv, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.png", "small.png"]


def test_cli_folder_job_seeds_each_image_and_keeps_16_bit(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(src / "a.png")
    ramp = np.linspace(0, 65535, 40 * 50).reshape(40, 50).astype(np.uint16)
    Image.fromarray(ramp).save(src / "b.png")
    (src / "c.png").write_bytes(b"not an image")
    status, _, err = _run(["inpaint", src, "-o", tmp_path / "out", "--random-mask", "0.1:0.2", "--seed", 9], capsys)
    assert status == 1 and "c.png: not a supported image" in err and "wrote 2 of 3 images" in err
    seeds = {json.loads((tmp_path / "out" / f"{n}.png.json").read_text())["mask"]["seed"] for n in "ab"}
    assert len(seeds) == 2 and 9 in seeds
    b = Image.open(tmp_path / "out" / "b.png")
    assert b.mode in ("I;16", "I") and (np.asarray(b).astype(np.int64) % 257 != 0).mean() > 0.5

    # a mask kept in the input folder is used, not inpainted itself
    Image.fromarray(box_mask((40, 50), (5, 5, 10, 10)).astype(np.uint8) * 255).save(src / "mask.png")
    (src / "c.png").unlink()
    status, stdout, _ = _run(["inpaint", src, "-o", tmp_path / "out2", "--mask", src / "mask.png"], capsys)
    assert status == 0 and "wrote 2 images" in stdout
    assert sorted(p.name for p in (tmp_path / "out2").iterdir()) == ["a.png", "a.png.json", "b.png", "b.png.json"]


def test_cli_keeps_16_bit_colour_and_alpha(tmp_path, capsys):
    rng = np.random.default_rng(3)
    ramp = np.linspace(0, 65535, 48 * 64).reshape(48, 64)
    rgba16 = np.dstack([ramp, ramp[::-1], ramp[:, ::-1], np.full_like(ramp, 65535)]).astype(np.uint16)  # (48, 64, 4)
    rgba16[..., :3] += rng.integers(0, 200, (48, 64, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "in.png"), rgba16[..., [2, 1, 0, 3]])  # OpenCV writes BGRA
    assert _run(["inpaint", tmp_path / "in.png", "-o", tmp_path / "out.png", "--box", "20,10,16,12"], capsys)[0] == 0
    out = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)[..., [2, 1, 0, 3]]  # (48, 64, 4) RGBA
    hole = box_mask((48, 64), (20, 10, 16, 12))
    assert out.dtype == np.uint16 and np.array_equal(out[~hole], rgba16[~hole])
    assert (out[hole][:, :3] % 257 != 0).mean() > 0.5 and (out[hole][:, 3] > 60000).all()  # opaque stays opaque
