"""Every registered model gets the same tests, as timm's habit is: a new network joins by
registering (with its tiny config and ``example_inputs``), with no edit here.

Forward runs and has the right kind of output, backward reaches the weights, a save/load round trip
gives the same outputs, a seed gives the same model, a wrong input shape is one clear message, and
each kind of model keeps the protocol its callers dispatch on."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from genvision import checkpoints as ckpt
from genvision.errors import InputShapeError
from genvision.models.protocols import (
    Classifier,
    Denoiser,
    Embedding,
    Generator,
    ImageCodec,
    ImageToImage,
    Inpainter,
    LatentCodec,
    Stylizer,
    Translator,
)
from genvision.registry import create_model, list_models

ENTRIES = list_models()
PROTOCOLS = {"gan": (Generator,), "diffusion": (Generator,), "token-prior": (Generator,),
             "vae": (Generator, LatentCodec), "classifier": (Classifier,), "sr": (ImageToImage,),
             "denoise": (Denoiser,), "inpaint": (Inpainter,), "style": (Stylizer,),
             "translate": (Translator,), "embed": (Embedding,), "codec": (ImageCodec,)}


def _build(entry, seed: int = 0):
    torch.manual_seed(seed)
    return create_model(entry.name, entry.tiny)


def _run(model, inputs) -> torch.Tensor:
    """The forward pass's main tensor: the output itself, or the loss of a training output."""
    torch.manual_seed(1)  # VAEs sample in forward
    out = model(*inputs)
    if isinstance(out, torch.Tensor):
        return out
    if dataclasses.is_dataclass(out) and isinstance(getattr(out, "loss", None), torch.Tensor):
        return out.loss
    raise AssertionError(f"{type(out).__name__} is neither a tensor nor an output with a loss")


@pytest.fixture(params=ENTRIES, ids=[e.name for e in ENTRIES])
def entry(request):
    return request.param


def test_every_kind_has_its_protocol(entry):
    assert entry.kind in PROTOCOLS, f"say which protocol {entry.kind} models keep"
    model = _build(entry)
    for protocol in PROTOCOLS[entry.kind]:
        assert isinstance(model, protocol), f"{entry.name} does not keep {protocol.__name__}"
    assert model.registry_name == entry.name and model.model_kind == entry.kind


def test_forward_and_backward(entry):
    model = _build(entry).train()
    inputs = model.example_inputs(2)
    out = _run(model, inputs)
    assert torch.isfinite(out).all()
    if out.ndim:
        assert out.shape[0] == 2
    params = [p for p in model.parameters() if p.requires_grad]
    if entry.weightless:
        assert not params
        return
    out.float().sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)


def test_a_seed_gives_the_same_model(entry):
    a, b = _build(entry, seed=3).eval(), _build(entry, seed=3).eval()
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    torch.manual_seed(2)
    inputs = a.example_inputs(2)
    with torch.no_grad():
        assert torch.equal(_run(a, inputs), _run(b, inputs))


def test_save_and_load_give_the_same_outputs(entry, tmp_path):
    model = _build(entry).eval()
    directory = ckpt.save_pretrained(model, tmp_path / entry.name)
    loaded = ckpt.load_pretrained(directory)
    assert type(loaded) is type(model) and loaded.config == model.config
    torch.manual_seed(2)
    inputs = model.example_inputs(3)
    with torch.no_grad():
        assert torch.equal(_run(model, inputs), _run(loaded, inputs))


def test_a_wrong_input_shape_is_one_clear_message(entry):
    model = _build(entry).eval()
    first, *rest = model.example_inputs(2)
    if first.ndim == 4 and not getattr(model, "any_channels", False):
        wrong = torch.zeros(2, first.shape[1] + 1, *first.shape[2:])  # one channel too many
    elif first.ndim == 4:
        wrong = first[0]  # no batch dimension
    else:
        wrong = torch.zeros(2, first.shape[1] + 1)  # a latent of the wrong size
    with pytest.raises(InputShapeError, match=r"takes .* of shape \(B, .*; got \(") as info:
        model(wrong, *rest)
    assert "\n" not in str(info.value)
