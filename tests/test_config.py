from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import pytest

from genvision.apps import families
from genvision.config import DataConfig, TrainConfig, load_recipe, parse_overrides, save_resolved
from genvision.errors import ConfigError, GenvisionError
from genvision.training.batches import StepBatchSampler
from genvision.workflows.train import get_family


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


# --------------------------------------------------------------------------------------
# Ranges (issue 11, defect 5): every number has a type and a range, checked when parsed


CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _one_line_error(recipe_cls, overrides) -> str:
    with pytest.raises(ConfigError) as info:
        load_recipe(recipe_cls, None, overrides)
    message = str(info.value)
    assert len(message.splitlines()) == 1, message
    return message


@pytest.mark.parametrize("override, message", [
    ("train.batch_size=0", "train.batch_size must be in [1, 65536], got 0"),
    ("objective.lr_g=nan", "objective.lr_g must be a finite number, got 'nan'"),
    ("objective.lr_g=.nan", "objective.lr_g must be a finite number, got nan"),
    ("objective.lr_d=-.inf", "objective.lr_d must be a finite number"),
    ("objective.lr_g=1e400", "objective.lr_g must be a finite number"),
    ("ema_decay=2", "train.ema_decay must be in [0, 1), got 2.0"),
    ("ema_decay=.nan", "train.ema_decay must be a finite number"),
    ("steps=-5", "train.steps must be >= 1, got -5"),
    ("steps=0", "train.steps must be >= 1, got 0"),
    ("steps=1.5", "train.steps must be an integer, got 1.5"),
    ("seed=1180591620717411303424", "train.seed must be an integer that fits in 64 bits"),
    ("seed=-1", "train.seed must be in [0, 4294967295], got -1"),
    ("steps=" + "9" * 5000, "cannot parse the value of override"),
    ("log_every=0", "train.log_every must be >= 1"),
    ("ckpt_every=0", "train.ckpt_every must be >= 1"),
    ("keep_last=0", "train.keep_last must be >= 1"),
    ("max_nonfinite=0", "train.max_nonfinite must be >= 1"),
    ("max_minutes=0", "train.max_minutes must be > 0"),
    ("grad_clip=-1", "train.grad_clip must be > 0"),
    ("eval_samples=1", "train.eval_samples must be in [2, 100000]"),
    ("sample_every=-1", "train.sample_every must be >= 0"),
    ("device=gpu", "train.device must be auto, cpu, cuda, cuda:N or mps, got 'gpu'"),
    ("precision=fp16", "train.precision must be one of auto, bf16, fp32"),
    ("train.name=../escape", "train.name must be a single folder name"),
    ("train.name=a/b", "train.name must be a single folder name"),
    ("train.name=.hidden", "train.name must be a single folder name"),
    ("data.image_size=4", "data.image_size must be in [8, 4096], got 4"),
    ("data.image_size=100000", "data.image_size must be in [8, 4096]"),
    ("data.channels=2", "data.channels must be 1, 3 or null"),
    ("data.workers=-1", "data.workers must be in [0, 256]"),
    ("data.limit=0", "data.limit must be >= 1"),
    ("data.root=~no-such-user-here/data", "data.root is not a usable path"),
    ("objective.betas=[0.5]", "objective.betas must be a list of 2 values"),
    ("objective.d_steps=1000000", "objective.d_steps must be in [1, 100]"),
])
def test_out_of_range_recipe_values_are_one_line_errors_naming_the_key(override, message):
    from genvision.apps.gan.objective import GANRecipe

    assert message in _one_line_error(GANRecipe, [override])


def test_steps_in_scientific_notation_is_an_integer():
    # The module docstring's promise: 1e3 is read as 1000; only a non-integral value is refused.
    assert load_recipe(Recipe, None, ["steps=1e3"]).train.steps == 1000


def test_a_dataset_smaller_than_the_batch_is_a_one_line_config_error():
    with pytest.raises(ConfigError, match=r"train.batch_size=64 is larger than the training data \(10 examples\)"):
        StepBatchSampler(10, 64, seed=0)


@pytest.mark.parametrize("family", sorted(families()))
def test_every_family_default_recipe_is_inside_its_ranges_and_validated_as_a_whole(family):
    recipe_cls = get_family(family).recipe_cls
    # Sections validate themselves when built; the recipe's own validate() (cross-section
    # checks) must run too, once, at parse time.
    original = recipe_cls.validate
    with mock.patch.object(recipe_cls, "validate", autospec=True, side_effect=original) as validate:
        load_recipe(recipe_cls)
    validate.assert_called_once()


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_committed_recipe_still_loads(path):
    # Each recipe names its family in its usage comment: "genvision train <family> --config configs/x.yaml".
    families = {line.split("genvision train ", 1)[1].split()[0] for line in path.read_text().splitlines()
                if "genvision train " in line and f"configs/{path.name}" in line}
    assert len(families) == 1, f"{path.name} should say which family it trains"
    load_recipe(get_family(families.pop()).recipe_cls, path)


@pytest.mark.parametrize("family, override, message", [
    ("vae", "objective.betas=[0.9, 1.5]", "objective.betas must be two numbers in [0, 1)"),
    ("vae", "objective.kl_warmup_steps=-1", "objective.kl_warmup_steps must be >= 0"),
    ("vae", "objective.beta=1e300", "objective.beta must be in [0, 1e+06]"),
    ("vqvae", "objective.lr_warmup_steps=-1", "objective.lr_warmup_steps must be >= 0"),
    ("dit", "objective.weight_decay=5", "objective.weight_decay must be in [0, 1]"),
    ("classifier", "objective.lr=100", "objective.lr must be in (0, 10]"),
    ("classifier", "objective.randaugment_ops=100", "objective.randaugment_ops must be in [0, 16]"),
    ("sr", "objective.betas=[0.9]", "objective.betas must be a list of 2 values"),
    ("sr", "data.repeat=1000000000", "data.repeat must be in [1, 10000]"),
    ("sr", "data.patch_size=0", "data.patch_size must be in [8, 4096]"),
    ("srgan", "objective.min_lr_ratio=2", "objective.min_lr_ratio must be in [0, 1]"),
    ("srgan", "objective.adversarial_weight=-1", "objective.adversarial_weight must be in [0, 1e+06]"),
    ("srgan", "d_blocks=1000000000", "d_blocks must be in [1, 16]"),
    ("srgan", "model.depth=-1", "depth"),  # the generator section is checked at parse time too
])
def test_objective_and_family_ranges_are_checked_at_parse_time(family, override, message):
    assert message in _one_line_error(get_family(family).recipe_cls, [override])


def test_srgan_init_and_vgg_weights_errors_name_their_key(tmp_path):
    from genvision.training.objective import DataInfo

    family = get_family("srgan")
    recipe = load_recipe(family.recipe_cls, None, [f"init={tmp_path / 'absent'}"])
    with pytest.raises(GenvisionError, match=r"^init: model not found"):
        family.build(recipe, DataInfo(channels=3, image_size=96, num_classes=0))
    garbage = tmp_path / "vgg19.pth"
    garbage.write_bytes(b"\x00not a checkpoint" * 10)
    recipe = load_recipe(family.recipe_cls, None, [f"objective.vgg_weights={garbage}"])
    with pytest.raises(ConfigError, match="objective.vgg_weights: .* is not a readable state dict"):
        family.build(recipe, DataInfo(channels=3, image_size=96, num_classes=0))
