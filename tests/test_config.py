from dataclasses import dataclass, field

import pytest

from genvision.config import DataConfig, TrainConfig, load_recipe, parse_overrides, save_resolved
from genvision.errors import ConfigError


@dataclass
class ModelCfg:
    width: int = 64  # channels
    kind: str = "a"
    scales: tuple[int, ...] = (2, 3)


@dataclass
class Recipe:
    model: ModelCfg = field(default_factory=ModelCfg)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    conditional: bool = False


def test_defaults_yaml_then_overrides(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("train:\n  steps: 200\nmodel:\n  width: 32\n")
    recipe = load_recipe(Recipe, path, ["steps=300", "model.kind=b", "conditional=true", "scales=[4]"])
    assert recipe.train.steps == 300  # CLI beats YAML
    assert recipe.model.width == 32  # YAML beats defaults
    assert recipe.model.kind == "b"
    assert recipe.conditional is True
    assert recipe.model.scales == (4,)
    assert recipe.train.batch_size == TrainConfig().batch_size


def test_override_parsing_and_types():
    assert parse_overrides(Recipe, ["train.seed=3"]) == {"train": {"seed": 3}}
    recipe = load_recipe(Recipe, None, ["ema_decay=0.9", "root=null", "steps=1e3"])
    assert recipe.train.ema_decay == 0.9 and recipe.data.root is None and recipe.train.steps == 1000


@pytest.mark.parametrize("override, message", [
    ("steps=fast", "train.steps must be an integer"),
    ("stepz=3", "did you mean"),
    ("steps", "must look like key=value"),
    ("train.ema=maybe", "must be true or false"),
    ("model.nope=1", "unknown config key 'model.nope'"),
])
def test_bad_overrides_are_one_line_errors(override, message):
    with pytest.raises(ConfigError) as info:
        load_recipe(Recipe, None, [override])
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_recipe(Recipe, tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_recipe(Recipe, bad)


def test_resolved_config_round_trips(tmp_path):
    recipe = load_recipe(Recipe, None, ["model.width=16"])
    save_resolved(recipe, tmp_path)
    again = load_recipe(Recipe, tmp_path / "config.yaml")
    assert again == recipe
