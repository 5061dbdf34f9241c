"""A model directory is checked before anything is allocated: the card's fields, config.json's
types and ranges (the model's config dataclass), the model's size (built on the meta device),
and every tensor's shape in the safetensors headers. Each failure is one line naming the key."""

from __future__ import annotations

import json
import time

import pytest
import torch
from alloc_guard import AllocationGuard
from safetensors.torch import load_file, save_file
from tiny_configs import TINY

from genvision import registry
from genvision.checkpoints import CONFIG_FILE, EMA_FILE, WEIGHTS_FILE, load_pretrained, save_pretrained
from genvision.errors import CheckpointError, ConfigError
from genvision.registry import create_model, list_models

MODEL_NAMES = [e.name for e in list_models()]


def tiny_model(name: str):
    torch.manual_seed(0)
    return create_model(name, dict(TINY[name])).eval()


def edit_card(model_dir, **changes):
    path = model_dir / CONFIG_FILE
    card = json.loads(path.read_text())
    card.update(changes)
    path.write_text(json.dumps(card))


def edit_config(model_dir, **changes):
    card = json.loads((model_dir / CONFIG_FILE).read_text())
    edit_card(model_dir, config={**card["config"], **changes})


def load_error(model_dir, **kwargs) -> str:
    with pytest.raises(CheckpointError) as info:
        load_pretrained(model_dir, **kwargs)
    message = str(info.value)
    assert len(message.splitlines()) == 1, message
    return message


def test_every_registered_model_has_a_tiny_config():
    assert sorted(TINY) == sorted(MODEL_NAMES)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_the_meta_build_has_the_real_models_shapes(name):
    """load_pretrained compares the weights with a meta-device build: it must be exact for every
    registered model (with its defaults and with the tiny config)."""
    configs = [registry.model_config(name, TINY[name])]
    if name != "cvae":  # cvae's defaults are unconditional, which it refuses
        configs.append(registry.model_config(name))
    for config in configs:
        meta = registry.meta_model(name, config).state_dict()
        real = registry.get_entry(name).cls(config).state_dict()
        assert list(meta) == list(real)
        for key, tensor in real.items():
            assert meta[key].device.type == "meta"
            assert (meta[key].shape, meta[key].dtype) == (tensor.shape, tensor.dtype), key


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_round_trip_through_the_checks(tmp_path, name):
    model = tiny_model(name)
    loaded = load_pretrained(save_pretrained(model, tmp_path / name))
    for (key, a), (key2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert key == key2 and torch.equal(a, b), key


def test_an_absurd_latent_dim_is_refused_before_any_allocation(tmp_path):
    model_dir = save_pretrained(tiny_model("dcgan"), tmp_path / "m")
    edit_config(model_dir, latent_dim=10**12)
    start = time.perf_counter()
    with AllocationGuard(max_bytes=2**20):
        message = load_error(model_dir)
    assert time.perf_counter() - start < 5
    assert "latent_dim=1000000000000" in message and f"{registry.MAX_PARAMETERS:,}" in message
    assert CONFIG_FILE in message


def test_create_model_refuses_an_absurd_size_before_any_allocation():
    # Training recipes build through create_model, so they get the same bound.
    with AllocationGuard(max_bytes=2**20), pytest.raises(ConfigError, match="width=1099511627776"):
        create_model("dcgan", {"image_size": 28, "width": 2**40})
    with AllocationGuard(max_bytes=2**20), pytest.raises(ConfigError, match="parameters and buffers"):
        create_model("vit", {"dim": 2**20, "heads": 1})


def test_the_parameter_bound_is_far_above_every_default():
    for entry in list_models():
        config = registry.model_config(entry.name, {"num_classes": 10} if entry.name == "cvae" else {})
        meta = registry.meta_model(entry.name, config)
        count = sum(t.numel() for t in (*meta.parameters(), *meta.buffers()))
        assert count < registry.MAX_PARAMETERS / 100, entry.name


@pytest.mark.parametrize("field, value, expected", [
    ("latent_dim", "big", "config.latent_dim must be an integer, got 'big'"),
    ("latent_dim", 2.5, "config.latent_dim must be an integer"),
    ("latent_dim", 0, "latent_dim must be >= 1"),
    ("latent_dim", True, "config.latent_dim must be an integer"),
    ("latent_dim", 2**70, "config.latent_dim must be an integer that fits in 64 bits"),
    ("spectral_norm", "yes", "config.spectral_norm must be true or false"),
    ("d_norm", 3, "d_norm must be one of"),
    ("lattent_dim", 8, "unknown config key 'config.lattent_dim' (did you mean 'latent_dim'?)"),
])
def test_a_wrong_config_value_names_its_key(tmp_path, field, value, expected):
    model_dir = save_pretrained(tiny_model("dcgan"), tmp_path / "m")
    edit_config(model_dir, **{field: value})
    message = load_error(model_dir)
    assert expected in message and CONFIG_FILE in message


def test_nan_in_config_json_is_refused(tmp_path):
    model_dir = save_pretrained(tiny_model("edsr"), tmp_path / "m")
    text = (model_dir / CONFIG_FILE).read_text().replace('"res_scale": 1.0', '"res_scale": NaN')
    (model_dir / CONFIG_FILE).write_text(text)
    assert "config.res_scale must be a finite number" in load_error(model_dir)


def test_a_weight_of_the_wrong_shape_names_the_tensor_and_the_config_key(tmp_path):
    model_dir = save_pretrained(tiny_model("dcgan"), tmp_path / "m")
    edit_config(model_dir, latent_dim=16)  # the weights were made for latent_dim=8
    message = load_error(model_dir)
    expected_shape = tuple(registry.meta_model("dcgan", registry.model_config(
        "dcgan", {**TINY["dcgan"], "latent_dim": 16})).state_dict()["generator.project.weight"].shape)
    assert (f"{WEIGHTS_FILE}: generator.project.weight has shape ({expected_shape[0]}, 8), config.json's "
            f"latent_dim=16 expects {expected_shape}") in message


def test_missing_and_extra_tensors_are_named(tmp_path):
    model_dir = save_pretrained(tiny_model("espcn"), tmp_path / "m")
    weights = load_file(str(model_dir / WEIGHTS_FILE))
    removed = sorted(weights)[0]
    del weights[removed]
    weights["surplus.weight"] = torch.zeros(2)
    save_file(weights, str(model_dir / WEIGHTS_FILE))
    message = load_error(model_dir)
    assert f"missing {removed}" in message and "unexpected surplus.weight" in message


def test_an_ema_file_is_checked_too(tmp_path):
    model = tiny_model("dcgan")
    ema = {k: v for k, v in model.state_dict().items() if k.startswith("generator.")}
    ema["generator.project.weight"] = torch.zeros(3, 3)
    model_dir = save_pretrained(model, tmp_path / "m", ema_state=ema)
    assert f"{EMA_FILE}: generator.project.weight has shape (3, 3)" in load_error(model_dir)
    load_pretrained(model_dir, use_ema=False)  # the raw weights alone are fine


def test_float_weights_stored_as_integers_are_refused(tmp_path):
    model_dir = save_pretrained(tiny_model("espcn"), tmp_path / "m")
    weights = load_file(str(model_dir / WEIGHTS_FILE))
    key = sorted(weights)[0]
    weights[key] = weights[key].to(torch.int32)
    save_file(weights, str(model_dir / WEIGHTS_FILE))
    assert f"{key} is stored as I32" in load_error(model_dir)


@pytest.mark.parametrize("changes, expected", [
    ({"model": None}, "'model' must be a string"),
    ({"model": 3}, "'model' must be a string, got 3"),
    ({"model": "nope"}, "unknown model 'nope'"),
    ({"kind": ["gan"]}, "'kind' must be a string"),
    ({"kind": "vae"}, "says kind 'vae', but model dcgan is a gan model"),
    ({"config": [1, 2]}, "'config' must be a mapping of the model's config fields"),
    ({"config": "latent_dim=8"}, "'config' must be a mapping"),
])
def test_card_fields_are_checked(tmp_path, changes, expected):
    model_dir = save_pretrained(tiny_model("dcgan"), tmp_path / "m")
    edit_card(model_dir, **changes)
    assert expected in load_error(model_dir)


@pytest.mark.parametrize("field", ["model", "kind", "config"])
def test_a_card_without_a_required_field_is_refused(tmp_path, field):
    model_dir = save_pretrained(tiny_model("dcgan"), tmp_path / "m")
    card = json.loads((model_dir / CONFIG_FILE).read_text())
    del card[field]
    (model_dir / CONFIG_FILE).write_text(json.dumps(card))
    assert f"has no {field!r} field" in load_error(model_dir)


def test_unparseable_numbers_in_config_json_are_one_line(tmp_path):
    model_dir = save_pretrained(tiny_model("dcgan"), tmp_path / "m")
    text = (model_dir / CONFIG_FILE).read_text().replace('"latent_dim": 8', '"latent_dim": ' + "9" * 5000)
    (model_dir / CONFIG_FILE).write_text(text)
    assert "is not valid JSON" in load_error(model_dir)


@pytest.mark.parametrize("name, field, value", [
    ("cnn", "stages", 10**12),  # 2 ** stages was computed before any bound
    ("vqvae", "downs", 10**12),
    ("vit", "depth", 10**9),  # depths and block counts are Python loops, even on the meta device
    ("dit", "depth", 10**9),
    ("edsr", "depth", 10**9),
    ("vae", "layers", 10**9),
    ("vae", "blocks", 10**9),
    ("resnet", "blocks", [1] * 100),
    ("srgan", "d_blocks", 10**9),
    ("vit", "mlp_ratio", 1e300),
    ("dit", "sample_steps", 10**12),
    ("dit", "cfg_scale", 1e300),
    ("vae", "sigma", 1e-300),
])
def test_counts_and_factors_are_bounded_before_building(name, field, value):
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=field):
        registry.create_model(name, {**TINY[name], field: value})
    assert time.perf_counter() - start < 2
