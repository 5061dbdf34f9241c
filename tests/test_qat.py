"""Quantization-aware training: fake-quantized convolutions round like ONNX Runtime's int8 (per-channel
symmetric weights, uint8 activations), pass gradients straight through, keep the model's state dict, and
a QAT fine-tune (objective.qat=true) saves an ordinary model, resumes exactly, and converts with
genvision quantize --method qat; a model that was not QAT-trained is refused in one line."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from genvision.checkpoints import load_pretrained, save_pretrained
from genvision.cli import main
from genvision.nn.fake_quant import (
    FakeQuantConv2d,
    fake_quantize_activation,
    fake_quantize_weight,
    prepare_qat,
    weight_range,
)
from genvision.registry import create_model
from genvision.workflows.train import train


@pytest.mark.parametrize("reduce_range", [True, False])
def test_weights_round_per_channel_to_the_symmetric_grid(reduce_range):
    torch.manual_seed(0)
    weight = torch.randn(5, 3, 3, 3) * torch.tensor([0.01, 0.1, 1.0, 10.0, 3.0]).view(5, 1, 1, 1)
    rounded = fake_quantize_weight(weight, reduce_range)
    _, high = weight_range(reduce_range)
    for channel in range(5):
        step = weight[channel].abs().max() / high
        levels = rounded[channel] / step  # integers within [-high, high]
        torch.testing.assert_close(levels, levels.round(), atol=1e-3, rtol=0)
        assert levels.abs().max() <= high + 1e-3
        assert (rounded[channel] - weight[channel]).abs().max() <= step / 2 + 1e-6


def test_activations_round_to_256_levels_and_gradients_pass_through():
    x = torch.linspace(-1.0, 3.0, 1000, requires_grad=True)
    y = fake_quantize_activation(x)
    assert torch.unique(y.detach()).numel() <= 256
    assert (y - x).abs().max() <= 4.0 / 255 / 2 + 1e-6
    assert 0.0 in y.detach()  # zero is exact (padding stays zero)
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))  # straight-through inside the range


def test_prepare_keeps_the_state_dict_and_the_ends_in_float():
    torch.manual_seed(0)
    model = create_model("edsr", {"scale": 2, "width": 8, "depth": 2}).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    lr = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        float_out = model(lr)
    names = prepare_qat(model)
    assert "head" not in names and "tail" not in names and "body.0.conv1" in names
    assert isinstance(model.body[0].conv1, FakeQuantConv2d) and type(model.head) is torch.nn.Conv2d
    assert list(model.state_dict()) == list(before)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    with torch.no_grad():
        qat_out = model(lr)
    assert 0 < (qat_out - float_out).abs().max() < 0.05  # rounded, not broken


@pytest.fixture
def setup(tmp_path, hr_folder):
    folder = hr_folder
    torch.manual_seed(0)
    save_pretrained(create_model("edsr", {"scale": 2, "width": 8, "depth": 1}), tmp_path / "edsr",
                    extra={"run": {"recipe": {"data": {"name": f"folder:{folder}"}}}})
    return folder, tmp_path / "edsr"


def _qat(folder, model_dir, out_dir, name, steps, resume=None):
    overrides = [f"data.name=folder:{folder}", f"teacher={model_dir}", f"init={model_dir}", f"train.out_dir={out_dir}",
                 f"train.name={name}", "data.patch_size=24", "batch_size=2", f"steps={steps}", "tensorboard=false",
                 "sample_every=0", "ckpt_every=2", "objective.qat=true", "objective.warmup_steps=0",
                 "objective.schedule=constant"]  # a schedule that does not depend on steps, so a run can be extended
    if resume is not None:
        return train("sr-distill", progress=False, resume=resume, overrides=[f"steps={steps}"])
    return train("sr-distill", progress=False, overrides=overrides)


def test_a_qat_run_saves_an_ordinary_model_and_resumes_exactly(setup, tmp_path):
    folder, model_dir = setup
    straight = _qat(folder, model_dir, tmp_path, "straight", 4)
    _qat(folder, model_dir, tmp_path, "split", 2)
    split = _qat(folder, model_dir, tmp_path, "split", 4, resume=tmp_path / "split")
    a = load_file(str(straight.checkpoint / "model.safetensors"))
    b = load_file(str(split.checkpoint / "model.safetensors"))
    assert set(a) == set(create_model("edsr", {"scale": 2, "width": 8, "depth": 1}).state_dict())
    assert all(torch.equal(a[k], b[k]) for k in a)
    start = load_file(str(model_dir / "model.safetensors"))
    assert not all(torch.equal(a[k], start[k]) for k in a)  # it trained
    model = load_pretrained(straight.run_dir, kind="sr")
    assert not any(isinstance(m, FakeQuantConv2d) for m in model.modules())  # loads as the float model


def test_quantize_qat_converts_a_qat_run_and_refuses_others(setup, tmp_path, capsys):
    folder, model_dir = setup
    run = _qat(folder, model_dir, tmp_path, "qat", 2).run_dir
    out = tmp_path / "qat.onnx"
    assert main(["quantize", "--model", str(run), "--method", "qat", "--calibration-images", "2", "--evaluate",
                 f"folder:{folder}", "-o", str(out)]) == 0
    assert "the float model before QAT" in capsys.readouterr().out
    report = json.loads((tmp_path / "qat.onnx.json").read_text())
    assert report["method"] == "qat" and report["keep_ends"] is True and report["reduce_range"] is True
    assert report["quality_before_qat"]["model"] == str(model_dir)
    assert abs(report["quality"]["delta"]) < 0.5  # dB
    assert main(["quantize", "--model", str(model_dir), "--method", "qat", "-o", str(tmp_path / "x.onnx")]) != 0
    err = capsys.readouterr().err
    assert "not trained with quantization-aware training" in err and "objective.qat=true" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "x.onnx").exists()
    assert main(["quantize", "--model", str(run), "--method", "qat", "--full-range", "-o", str(tmp_path / "y.onnx")]) != 0
    assert "takes neither --full-range nor --quantize-ends" in capsys.readouterr().err
