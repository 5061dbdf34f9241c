"""Property-based tests (Hypothesis) of the two places where user numbers enter genvision:
recipe overrides (``genvision train <family> key=value``) and a model directory's
``config.json`` + safetensors weights.

The property, for any input: a correct result, or a GenvisionError whose message is one line
and names the key that is wrong; never another exception type, and never a real tensor above
the stated size bound. The profile in conftest.py decides how many examples each test tries
("fast" in make test; "long" in benchmarks/reliability_fuzz_config.py).
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from contextlib import contextmanager
from unittest import mock

import pytest
import torch
import yaml
from alloc_guard import AllocationGuard
from hypothesis import given, note
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file
from tiny_configs import TINY

from genvision import registry
from genvision.apps import families
from genvision.checkpoints import CONFIG_FILE, WEIGHTS_FILE, load_pretrained, save_pretrained
from genvision.config import load_recipe, to_dict
from genvision.errors import CheckpointError, ConfigError, GenvisionError
from genvision.training.objective import DataInfo
from genvision.workflows.train import get_family

# The fuzz builds every model it is handed: within these tests the bound is lowered so that a
# valid-but-large draw (width=5000) is refused on the meta device instead of allocating
# gigabytes on a shared machine. 2**23 elements is twice the largest registered default (dit).
TEST_MAX_PARAMETERS = 2**23
# No real tensor may exceed the bound in fp32 (plus slack for fp64 temporaries).
TEST_MAX_BYTES = TEST_MAX_PARAMETERS * 8

DATA = DataInfo(channels=1, image_size=28, num_classes=10)


@contextmanager
def bounded_allocation():
    with mock.patch.object(registry, "MAX_PARAMETERS", TEST_MAX_PARAMETERS), AllocationGuard(TEST_MAX_BYTES):
        yield


def assert_names_the_key(message: str, names: list[str]) -> None:
    """One line that names one of ``names`` (as is, or in its repr form for odd characters: '\x1f')."""
    assert len(message.splitlines()) == 1 and message.strip(), repr(message)
    spellings = [s.lower() for name in names for s in (name, repr(name)[1:-1]) if s]
    assert any(s in message.lower() for s in spellings), f"{message!r} names none of {names}"


# --------------------------------------------------------------------------------------
# Recipe keys: every field of every section of every family (dict sections: the default
# arch's config fields)


def _recipe_keys(recipe_cls: type) -> list[str]:
    recipe = recipe_cls()
    keys = []
    for name, tp in typing.get_type_hints(recipe_cls).items():
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            keys += [f"{name}.{f.name}" for f in dataclasses.fields(tp)]
        elif typing.get_origin(tp) is dict and name == "model":
            arch = getattr(recipe, "arch")
            keys += [f"model.{f.name}" for f in dataclasses.fields(registry.get_entry(arch).config_cls)]
        else:
            keys.append(name)
    return keys


RECIPE_KEYS = {family: _recipe_keys(get_family(family).recipe_cls) for family in families()}


def _base_inputs() -> dict[str, list[str]]:
    """What some families need before any fuzzed key: for the style families a painting (a tiny generated
    one, so the test needs no shared data) and untrained loss networks (no weights download, fast builds);
    for distillation a tiny teacher (SR or DiT); for the token prior a tiny VQ-VAE."""
    import tempfile
    from pathlib import Path

    from PIL import Image

    from genvision.checkpoints import save_pretrained

    folder = Path(tempfile.mkdtemp(prefix="genvision-fuzz-styles-"))
    Image.new("RGB", (24, 24), (200, 120, 40)).save(folder / "painting.png")
    teacher = Path(tempfile.mkdtemp(prefix="genvision-fuzz-teacher-")) / "edsr"
    save_pretrained(registry.create_model("edsr", {"scale": 2, "width": 4, "depth": 1}), teacher)
    vqvae = Path(tempfile.mkdtemp(prefix="genvision-fuzz-vqvae-")) / "vqvae"
    save_pretrained(registry.create_model("vqvae", TINY["vqvae"]), vqvae)
    dit = Path(tempfile.mkdtemp(prefix="genvision-fuzz-dit-")) / "dit"  # 28 px, 10 classes: DATA's
    save_pretrained(registry.create_model("dit", {**TINY["dit"], "image_size": 28, "patch_size": 7,
                                                  "num_classes": 10}), dit)
    return {"style": [f"style={folder / 'painting.png'}", "objective.backbone=random"],
            "adain": [f"style_data=folder:{folder}", "model.encoder=random"],
            "sr-distill": [f"teacher={teacher}"],
            "maskgit": [f"init={vqvae}"],
            "dit-distill": [f"init={dit}"]}


BASE_OVERRIDES = _base_inputs()


def test_the_key_walk_covers_every_section():
    for family, keys in RECIPE_KEYS.items():
        sections = {k.split(".")[0] for k in keys}
        assert {"train", "data", "model", "objective"} <= sections, family
        assert "train.batch_size" in keys and ("data.image_size" in keys or "data.patch_size" in keys), family


# --------------------------------------------------------------------------------------
# Values: wrong types, NaN/inf, zero, negatives, huge, odd strings and odd YAML


EDGE_VALUES = [
    math.nan, math.inf, -math.inf, 0, -1, -5, 1, 2, 3, 0.5, 1.5, -0.0, 1e-320, 1e308, 10**12, 2**31, 2**63 - 1,
    2**63, 2**70, -(2**70), "", "x", "nan", "1e3", "../x", "a/b", ".hidden", "~nobody-here/x", "folder:", "a\nb",
    [], [1], [1, 2], [0.5, 2.0], [-1, 0.5], ["a"], {}, {"a": 1}, None, True, False,
]
# Raw override text (parsed as YAML by the recipe loader): broken or surprising YAML.
RAW_TEXTS = ["[", "{", "]", "!!python/object:os.system", "&a [*a]", "- 1", "'unclosed", "1" * 5000, "[" * 3000,
             "2024-05-01", "0x10", "1_000", ".nan", "-.inf", "~", "null", "yes", "on", "1:2"]

scalars = st.one_of(
    st.sampled_from(EDGE_VALUES),
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
    st.booleans(),
    st.none(),
)
values = st.one_of(scalars, st.lists(scalars, max_size=4), st.dictionaries(st.text(max_size=6), scalars, max_size=2))


def as_override_text(value) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=math.inf, allow_unicode=True)


override_texts = st.one_of(values.map(as_override_text), st.sampled_from(RAW_TEXTS),
                           st.text(st.characters(blacklist_categories=("Cs",)), max_size=20))


@pytest.mark.parametrize("family", sorted(families()))
@given(data=st.data())
def test_recipe_overrides_end_in_a_result_or_one_line_naming_the_key(family, data):
    keys = data.draw(st.lists(st.sampled_from(RECIPE_KEYS[family]), min_size=1, max_size=2, unique=True), "keys")
    overrides = [*BASE_OVERRIDES.get(family, []), *(f"{key}={data.draw(override_texts, key)}" for key in keys)]
    fam = get_family(family)
    try:
        with bounded_allocation():
            recipe = load_recipe(fam.recipe_cls, None, overrides)
            # the data's channels are what the recipe's data section asks for, as a real dataset's would be
            channels = getattr(recipe.data, "channels", None)
            info = DATA if not isinstance(channels, int) else dataclasses.replace(DATA, channels=channels)
            model, objective = fam.build(recipe, info)
    except GenvisionError as exc:
        note(f"{type(exc).__name__}: {exc}")
        assert_names_the_key(str(exc), [key.rsplit(".", 1)[-1] for key in keys])  # train.steps -> steps
        return
    # A correct result: a model within the bound, a recipe that still validates and saves.
    count = sum(t.numel() for t in (*model.parameters(), *model.buffers()))
    assert count <= TEST_MAX_PARAMETERS
    assert objective.model is model
    json.dumps(to_dict(recipe))


# --------------------------------------------------------------------------------------
# Model directories: config.json fields and the weights


MODEL_NAMES = [e.name for e in registry.list_models()]
_SAVED: dict[str, tuple[dict, dict[str, torch.Tensor]]] = {}


def saved_tiny_model(name: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """The card and weights of a tiny valid model (made once per name, copied per example)."""
    if name not in _SAVED:
        import tempfile
        from pathlib import Path

        torch.manual_seed(0)
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = save_pretrained(registry.create_model(name, dict(TINY[name])), Path(tmp) / name)
            _SAVED[name] = (json.loads((model_dir / CONFIG_FILE).read_text()),
                            load_file(str(model_dir / WEIGHTS_FILE)))
    card, weights = _SAVED[name]
    return json.loads(json.dumps(card)), dict(weights)


class Mutation:
    def __init__(self, what: str, keys: list[str], card: dict, weights: dict[str, torch.Tensor]):
        self.what, self.keys, self.card, self.weights = what, keys, card, weights  # keys: what a message may name

    def __repr__(self) -> str:  # what Hypothesis shows for a failing example (the weights would flood it)
        return f"Mutation({self.what})"


@st.composite
def model_mutations(draw, name: str) -> Mutation:
    """One change to a tiny valid model directory: a config.json value, a card field, a tensor."""
    card, weights = saved_tiny_model(name)
    config = card["config"]
    kind = draw(st.sampled_from(["value", "value", "value", "missing", "extra", "card", "tensor-shape",
                                 "tensor-missing", "tensor-extra"]))
    if kind == "value":
        field = draw(st.sampled_from(sorted(config)))
        config[field] = draw(values)
        return Mutation(f"config.{field}={config[field]!r}", [field], card, weights)
    if kind == "missing":
        field = draw(st.sampled_from(sorted(config)))
        del config[field]
        # Older cards may lack newer fields (defaults fill them); a default that does not fit
        # the weights is then reported by the tensor it changes.
        return Mutation(f"no config.{field}", [field, *weights], card, weights)
    if kind == "extra":
        field = draw(st.text(min_size=1, max_size=8))
        config[field] = draw(values)
        return Mutation(f"extra config.{field}", [field], card, weights)
    if kind == "card":
        field = draw(st.sampled_from(["model", "kind", "config"]))
        if draw(st.booleans()):
            del card[field]
        else:
            card[field] = draw(values)
        return Mutation(f"card {field}", [field], card, weights)
    if not weights:  # bicubic has no tensors: add one it does not expect
        kind = "tensor-extra"
    if kind == "tensor-extra":
        key = draw(st.text(min_size=1, max_size=10))
        weights[key] = torch.zeros(draw(st.lists(st.integers(0, 4), max_size=3)))
        return Mutation(f"extra tensor {key!r}", [key], card, weights)
    key = draw(st.sampled_from(sorted(weights)))
    if kind == "tensor-missing":
        del weights[key]
        return Mutation(f"no tensor {key}", [key], card, weights)
    shape = draw(st.lists(st.integers(0, 6), max_size=4))
    weights[key] = torch.zeros(shape, dtype=weights[key].dtype)
    return Mutation(f"tensor {key} of shape {shape}", [key], card, weights)


def write_model_dir(directory, card, weights) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_FILE).write_text(json.dumps(card))
    save_file(weights, str(directory / WEIGHTS_FILE))


@pytest.mark.parametrize("name", MODEL_NAMES)
@given(data=st.data())
def test_mutated_model_dirs_load_or_fail_in_one_line_naming_the_key(tmp_path_factory, name, data):
    mutation = data.draw(model_mutations(name), "mutation")
    keys, card, weights = mutation.keys, mutation.card, mutation.weights
    directory = tmp_path_factory.mktemp(name)
    try:
        write_model_dir(directory, card, weights)
    except ValueError:  # json cannot write some drawn values (e.g. a recursive list): nothing to load
        return
    try:
        with bounded_allocation():
            model = load_pretrained(directory)
    except (CheckpointError, ConfigError) as exc:
        note(f"{type(exc).__name__}: {exc}")
        assert_names_the_key(str(exc), keys)
        return
    # Loaded: it is the saved model with exactly the stored weights.
    assert model.registry_name == name
    state = model.state_dict()
    assert set(state) == set(weights)
    for key, tensor in weights.items():
        assert torch.equal(state[key].to(tensor.dtype), tensor), key
