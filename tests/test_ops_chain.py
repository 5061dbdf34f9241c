"""Edit chains: parsing and its one-line errors, replay from JSON and files, one resampling for a run
of geometric ops (closer to the truth than one per op), alpha and masks following the geometry."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from genvision.errors import ConfigError
from genvision.ops import chain as chain_module
from genvision.ops import geometry as g
from genvision.ops.chain import OPS, Chain, EditChain, describe_ops, parse_op
from genvision.ops.tone import ToneOp

RNG = np.random.default_rng(7)


def texture(height: int, width: int, pixel_size: float = 1.0, points: np.ndarray | None = None) -> np.ndarray:
    """Two oblique sinusoids (below a 0.7x shrink's Nyquist), rendered at pixel centres or at
    ``points`` (N, 2), averaged over square pixels of side ``pixel_size`` (a sinc per axis)."""
    if points is None:
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
        x, y = xx.ravel(), yy.ravel()
    else:
        x, y = points[:, 0], points[:, 1]
    value = np.full(x.shape, 0.5)
    for amplitude, fx, fy in ((0.25, 1 / 6.3, 1 / 9.1), (0.2, 1 / 11, -1 / 5.7)):
        value += amplitude * np.sinc(fx * pixel_size) * np.sinc(fy * pixel_size) * np.sin(2 * np.pi * (fx * x + fy * y))
    return value.reshape(height, width).astype(np.float32)


def smooth(height=60, width=80, channels=3) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    planes = [0.5 + 0.35 * np.sin(xx / 17 + c + yy / 23) for c in range(channels)]
    return np.stack(planes, axis=-1).astype(np.float32)  # (H, W, C)


def test_parse_covers_every_syntax():
    def sides(top, right, bottom, left):
        return {"top": top, "right": right, "bottom": bottom, "left": left}

    expected = {
        "rotate=12": {"angle": 12.0, "expand": False}, "rotate=-5:expand": {"angle": -5.0, "expand": True},
        "crop=center:0.8": {"center": 0.8}, "crop=10,20,100,80": {"box": [10, 20, 100, 80]},
        "crop=aspect:16:9": {"aspect": [16.0, 9.0]}, "crop=auto": {"auto": 0.03},
        "resize=512x384": {"width": 512, "height": 384}, "resize=512x": {"width": 512, "height": None},
        "resize=0.5": {"factor": 0.5}, "flip=h": {"direction": "h"}, "flip=vertical": {"direction": "v"},
        "transpose": {}, "pad=8": sides(8, 8, 8, 8),
        "pad=1,2": sides(1, 2, 1, 2), "pad=1,2,3,4": sides(1, 2, 3, 4),
        "affine=1,0.5,3,0,1,-2": {"matrix": [[1, 0.5, 3], [0, 1, -2]]},
        "perspective=" + ",".join(map(str, range(16))): {"source": [[0, 1], [2, 3], [4, 5], [6, 7]],
                                                          "target": [[8, 9], [10, 11], [12, 13], [14, 15]]},
        " Contrast = 1.2 ": {"factor": 1.2}, "auto": {},
    }
    for text, params in expected.items():
        assert parse_op(text).params == params, text
    assert type(parse_op("crop=auto")).__name__ == "AutoCropOp"
    assert set(OPS) >= {"rotate", "crop", "resize", "flip", "transpose", "pad", "affine", "perspective", "contrast"}
    lines = describe_ops()
    assert len(lines) == len(OPS) and all(any(line.startswith(name) for line in lines) for name in OPS)


@pytest.mark.parametrize("text, message", [
    ("rotat=12", "unknown edit op 'rotat'; did you mean rotate? (genvision edit --list-ops)"),
    ("rotate=abc", "rotate=abc: expected"), ("rotate=nan", "expected"), ("rotate=12:sideways", "expected"),
    ("crop=1,2,3", "X,Y,WIDTH,HEIGHT"), ("crop=1,2,0,5", "at least 1x1"), ("crop=center:1.5", "0 < FRACTION"),
    ("resize=0", "FACTOR"), ("resize=x", "expected"), ("resize=10x2.5", "expected"), ("flip=d", "h (left-right)"),
    ("pad=-1", "0..10000"), ("pad=1,2,3", "TOP,RIGHT"), ("affine=1,2", "6 numbers"), ("transpose=1", "no value"),
    ("perspective=1,2", "16 numbers"), ("contrast=abc", "contrast"), ("bogus\nop", "unknown edit op"), ("", "empty"),
])
def test_parse_errors_are_one_line_config_errors(text, message):
    with pytest.raises(ConfigError) as caught:
        parse_op(text)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_json_replay_gives_an_identical_result(tmp_path):
    chain = Chain.parse(["rotate=12:expand", "crop=center:0.8", "resize=0.7", "contrast=1.3", "flip=h", "pad=3"])
    data = json.loads(json.dumps(chain.to_json()))  # what a sidecar holds
    assert data[0] == {"op": "rotate", "args": "12:expand", "params": {"angle": 12.0, "expand": True}}
    image = (RNG.random((40, 50, 3)) * 255).astype(np.uint8)
    assert np.array_equal(Chain.from_json(data).apply_array(image), chain.apply_array(image))
    data[0]["params"]["angle"] = 13.0
    with pytest.raises(ConfigError, match="not what its args mean"):
        Chain.from_json(data)


def test_chain_files_yaml_and_json(tmp_path):
    yaml_file = tmp_path / "edit.yaml"
    # "clahe: 2:8" is the base-60 integer 128 to a YAML 1.1 loader; the chain must read it as text
    yaml_file.write_text("- rotate=12\n- crop: center:0.8\n- clahe: 2:8\n- pad: [1, 2, 3, 4]\n- transpose:\n"
                         "- {op: flip, args: h}\n")
    ops = Chain.from_file(yaml_file).ops
    assert [op.text for op in ops] == ["rotate=12", "crop=center:0.8", "clahe=2:8", "pad=1,2,3,4", "transpose", "flip=h"]
    assert ops[2].params == {"clip": 2.0, "grid": 8}
    json_file = tmp_path / "edit.json"
    json_file.write_text(json.dumps({"ops": ["flip=v", {"resize": 0.5}, {"levels": [0.1, 0.9]}]}))
    assert [op.text for op in Chain.from_file(json_file).ops] == ["flip=v", "resize=0.5", "levels=0.1:0.9"]
    (tmp_path / "bad.yaml").write_text("- rotate=12\n- rotat: 3\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: op 2: unknown edit op 'rotat'; did you mean rotate"):
        Chain.from_file(tmp_path / "bad.yaml")
    (tmp_path / "broken.json").write_text("[1, ")
    with pytest.raises(ConfigError, match="cannot read the edit chain"):
        Chain.from_file(tmp_path / "broken.json")


def test_fused_chain_matches_sequential_on_a_smooth_image():
    image = smooth()
    chain = Chain.parse(["rotate=15", "crop=center:0.6", "resize=0.8", "flip=h"])  # no fill comes into view
    fused, sequential = chain.apply_array(image), chain.apply_array_sequential(image)
    assert fused.shape == sequential.shape == chain.output_size(image.shape[:2]) + (3,)
    assert np.abs(fused - sequential).max() < 0.01


def test_fused_chain_is_closer_to_the_truth_than_one_resampling_per_op():
    image = texture(120, 160)
    chain = Chain.parse(["rotate=10", "resize=0.7", "rotate=-10"])
    fused, sequential = chain.apply_array(image), chain.apply_array_sequential(image)
    # the truth: the analytic texture where each output pixel lands, averaged over its 1/0.7 px footprint
    warp = g.rotate((120, 160), 10)
    warp = warp.then(g.resize_factor(warp.size, 0.7))
    warp = warp.then(g.rotate(warp.size, -10))
    oy, ox = np.mgrid[0:warp.size[0], 0:warp.size[1]]
    truth = texture(*warp.size, pixel_size=1 / 0.7, points=warp.map(np.stack([ox.ravel(), oy.ravel()], axis=1)))
    inner = (slice(12, -12), slice(16, -16))  # the sequential run loses the corners to its first rotation
    fused_error, sequential_error = (np.abs(out - truth)[inner].mean() for out in (fused, sequential))
    assert fused_error < 0.03 and fused_error < 0.5 * sequential_error


def test_whole_pixel_chains_round_trip_uint16_exactly():
    image = (RNG.random((9, 13, 3)) * 65535).astype(np.uint16)
    for texts in (["rotate=90:expand", "rotate=-90:expand"], ["flip=h", "transpose", "flip=v", "transpose"],
                  ["pad=2,3", "crop=3,2,13,9"]):
        out = Chain.parse(texts).apply_array(image)
        assert out.dtype == np.uint16 and np.array_equal(out, image), texts
    grown = Chain.parse(["resize=2", "resize=0.5"]).apply_array(image)  # fused: one identity warp
    assert np.array_equal(grown, image)


def test_alpha_follows_the_geometry_and_tone_ops_see_only_colour(monkeypatch):
    seen = []

    def invert(image):
        seen.append(image.shape)
        return (255 - image) if image.dtype == np.uint8 else 1 - image

    monkeypatch.setitem(chain_module.TONE_OPS, "test_invert",
                        ToneOp("test_invert", invert, invert, lambda args: {}, "test_invert  for tests"))
    rgba = (RNG.random((20, 30, 4)) * 255).astype(np.uint8)
    out = Chain.parse(["flip=h", "test_invert"]).apply_array(rgba)
    assert np.array_equal(out[..., 3], rgba[:, ::-1, 3]) and np.array_equal(out[..., :3], 255 - rgba[:, ::-1, :3])
    grey_alpha = out[..., 2:]  # (H, W, 2): grey + alpha
    assert Chain.parse(["test_invert"]).apply_array(grey_alpha)[..., 1].tolist() == grey_alpha[..., 1].tolist()
    assert seen == [(20, 30, 3), (20, 30, 1)]


def test_rgba_resampling_is_premultiplied():
    # an opaque red square on transparent GREEN: no green may bleed into the square's edges
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 1] = 255
    rgba[10:30, 10:30] = (255, 0, 0, 255)
    out = Chain.parse(["rotate=17", "resize=0.6"]).apply_array(rgba)
    visible = out[..., 3] > 0
    assert visible.sum() > 100 and out[..., 1][visible].max() <= 1
    assert ((out[..., 3] > 0) & (out[..., 3] < 255)).sum() > 40  # antialiased, partly transparent edges
    warp = g.rotate((40, 40), 17).then(g.resize((40, 40), 24, 24))
    assert g.warp_array(rgba, warp)[..., 1][visible].max() > 200  # what resampling straight alpha gives
    alpha_alone = g.warp_array(rgba[..., 3], warp)
    assert np.abs(out[..., 3].astype(int) - alpha_alone).max() <= 1


def test_apply_pair_keeps_the_mask_binary_and_aligned():
    mask = np.zeros((60, 80), bool)
    mask[15:45, 20:50] = True
    mask[5:10, 60:75] = True
    image = np.where(mask, 230, 20).astype(np.uint8)[..., None].repeat(3, axis=2)  # (H, W, 3)
    chain = Chain.parse(["rotate=17:expand", "resize=0.8", "crop=center:0.9", "contrast=1.1"])
    out_image, out_mask = chain.apply_pair(image, mask)
    assert out_mask.dtype == bool and out_mask.shape == out_image.shape[:2]
    agree = (out_image[..., 0] > 125) == out_mask
    assert agree.mean() > 0.98
    with pytest.raises(ConfigError, match="mask"):
        chain.apply_pair(image, mask[:-1])


def test_auto_crop_finds_the_content():
    image = np.full((50, 70, 3), 240, np.uint8)
    image[10:20, 30:45] = (10, 200, 30)
    assert np.array_equal(Chain.parse(["crop=auto"]).apply_array(image), image[10:20, 30:45])
    turned = Chain.parse(["rotate=30:expand", "crop=auto"]).apply_array(image[8:22, 28:47], fill=240 / 255)
    # the 15x10 box turned by 30 degrees spans 18.0 x 16.2 pixels; the crop is tight on all four sides
    assert 18 <= turned.shape[1] <= 19 and 16 <= turned.shape[0] <= 17
    content = np.abs(turned.astype(int) - 240).max(axis=2) > 0.03 * 255
    assert content[0].any() and content[-1].any() and content[:, 0].any() and content[:, -1].any()
    assert Chain.parse(["crop=auto"]).apply_array(np.zeros((5, 6), np.uint8)).shape == (5, 6)
    assert Chain.parse(["crop=auto"]).output_size((5, 6)) is None


def test_apply_tensor_matches_apply_array_and_is_differentiable():
    image = smooth(channels=4)
    image[..., 3] = np.clip(image[..., 3] + 0.3, 0, 1)
    chain = Chain.parse(["rotate=20:expand", "resize=0.75", "flip=v", "brightness=0.9"])
    expected = chain.apply_array(image)
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None].repeat(2, 1, 1, 1).requires_grad_(True)  # (2, 4, H, W)
    module = EditChain(["rotate=20:expand", "resize=0.75", "flip=v", "brightness=0.9"])
    out = module(tensor)
    np.testing.assert_allclose(out[1].detach().permute(1, 2, 0).numpy(), expected, atol=2e-3)
    out.sum().backward()
    assert tensor.grad.abs().sum() > 0 and torch.isfinite(tensor.grad).all()
    assert "rotate=20:expand" in repr(module)
    single = chain.apply_tensor(tensor[0].detach())
    assert single.shape == out.shape[1:]


def test_matlab_interpolation_in_a_chain():
    image = (RNG.random((12, 16, 3)) * 255).astype(np.uint8)
    out = Chain.parse(["resize=0.5", "flip=h"]).apply_array(image, interpolation="matlab")
    assert out.shape == (6, 8, 3)
    with pytest.raises(ConfigError, match="only for resizes"):
        Chain.parse(["rotate=5", "resize=0.5"]).apply_array(image, interpolation="matlab")
