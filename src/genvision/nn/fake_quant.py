"""Quantization-aware training: convolutions that compute with int8-rounded weights and activations.

The rounding mirrors what ``genvision quantize --method static|qat`` (ONNX Runtime, QDQ) does to a
convolution: weights per output channel, symmetric, 7-bit by default (``reduce_range``: the range that
keeps x86 CPUs without VNNI from saturating), and the input activation per tensor, asymmetric uint8.
The gradient passes straight through the rounding (torch's fake_quantize ops). Training under this
rounding moves the float weights to where int8 costs least; the conversion to int8 is then the usual
static quantization with calibration.

The activation range is the current batch's min/max, not a running average: nothing but the weights
is learned, so a run's checkpoints stay ordinary model files and a resumed run repeats itself exactly.

The convolutions change class in place (torch.ao swaps modules instead): the parameters, their names
and the state dict stay exactly those of the float model, which the trainer saves and loads as usual.
"""

from __future__ import annotations

import torch
from torch import nn

ACTIVATION_RANGE = (0, 255)  # uint8


def weight_range(reduce_range: bool) -> tuple[int, int]:
    """ONNX Runtime's symmetric int8 weight range (onnxruntime.quantization.quant_utils)."""
    return (-64, 64) if reduce_range else (-127, 127)


def fake_quantize_weight(weight: torch.Tensor, reduce_range: bool) -> torch.Tensor:
    """Per-output-channel symmetric rounding of ``weight`` (out, in, kh, kw)."""
    low, high = weight_range(reduce_range)
    scale = weight.detach().abs().flatten(1).amax(1).clamp_min(1e-8) / high  # (out,)
    zero = torch.zeros_like(scale, dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(weight, scale, zero, 0, low, high)


def fake_quantize_activation(x: torch.Tensor) -> torch.Tensor:
    """Per-tensor asymmetric uint8 rounding over the range of this batch (always including 0, as ORT's)."""
    low, high = ACTIVATION_RANGE
    lo, hi = x.detach().min().clamp(max=0.0), x.detach().max().clamp(min=0.0)
    scale = float((hi - lo).clamp_min(1e-8)) / (high - low)
    zero = round(low - float(lo) / scale)
    return torch.fake_quantize_per_tensor_affine(x, scale, min(max(zero, low), high), low, high)


class FakeQuantConv2d(nn.Conv2d):
    """A Conv2d whose forward sees int8-rounded weights and input (set by :func:`prepare_qat`)."""

    qat_reduce_range: bool = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = fake_quantize_weight(self.weight, self.qat_reduce_range)
        return self._conv_forward(fake_quantize_activation(x), weight, self.bias)


def prepare_qat(model: nn.Module, *, reduce_range: bool = True, keep_ends: bool = True) -> list[str]:
    """Make ``model``'s convolutions train under int8 rounding, in place; ``keep_ends`` leaves the first and
    the last in float (as the static quantization of an image-output model does). Returns their names."""
    convs = [(name, module) for name, module in model.named_modules() if type(module) is nn.Conv2d]
    if keep_ends:
        convs = convs[1:-1]
    for _, module in convs:
        module.__class__ = FakeQuantConv2d
        module.qat_reduce_range = reduce_range
    return [name for name, _ in convs]


def is_prepared(model: nn.Module) -> bool:
    return any(isinstance(module, FakeQuantConv2d) for module in model.modules())


__all__ = ["FakeQuantConv2d", "fake_quantize_activation", "fake_quantize_weight", "is_prepared", "prepare_qat"]
