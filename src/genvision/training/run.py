"""``train(family, ...)``: resolve a recipe, build data, model and objective, run the trainer.

Each family module (``genvision.training.objectives.<family>``) exposes ``RECIPE`` (its
recipe dataclass), ``DESCRIPTION`` and ``build(recipe, data_info) -> (model, objective)``.
"""

from __future__ import annotations

import importlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import load_recipe, save_resolved, to_dict
from ..errors import ConfigError
from ..runtime import seed_everything, select_device
from .objective import DataInfo
from .trainer import RunResult, Trainer

FAMILY_MODULES = {
    "gan": "genvision.training.objectives.gan",
    "classifier": "genvision.training.objectives.classify",
    "dit": "genvision.training.objectives.flow",
    "vae": "genvision.training.objectives.vae",
    "cvae": "genvision.training.objectives.cvae",
    "vqvae": "genvision.training.objectives.vqvae",
    "sr": "genvision.training.objectives.sr",
    "srgan": "genvision.training.objectives.srgan",
}


# Families whose objective samples images: they get FID/KID evaluation during training.
GENERATOR_FAMILIES = ("gan", "vae", "cvae", "vqvae", "dit")


@dataclass(frozen=True)
class Family:
    name: str
    recipe_cls: type
    build: Any
    description: str


def get_family(name: str) -> Family:
    if name not in FAMILY_MODULES:
        raise ConfigError(f"unknown model family {name!r}; choose from {', '.join(sorted(FAMILY_MODULES))}")
    module = importlib.import_module(FAMILY_MODULES[name])
    return Family(name, module.RECIPE, module.build, module.DESCRIPTION)


def _default_run_name(family: str, data_name: str) -> str:
    data = re.sub(r"[^A-Za-z0-9]+", "-", Path(data_name.split(":", 1)[-1]).name or data_name).strip("-")
    return f"{family}-{data}-{time.strftime('%Y%m%d-%H%M%S')}"


def data_info(dataset) -> DataInfo:
    return DataInfo(channels=dataset.channels, image_size=dataset.image_size, num_classes=dataset.num_classes)


def train(family_name: str, *, config_file: str | Path | None = None, overrides: list[str] | None = None,
          resume: str | Path | None = None, progress: bool = True, evaluate=None, best_metric=None) -> RunResult:
    from .. import checkpoints as ckpt
    from ..data import dataset_from_config

    family = get_family(family_name)
    checkpoint = None
    if resume is not None:
        run_dir = Path(resume)
        saved = run_dir / "config.json"
        if not saved.is_file():
            raise ConfigError(f"cannot resume: {saved} not found (give the run directory)")
        checkpoint = ckpt.latest_checkpoint(run_dir / ckpt.CHECKPOINTS_DIR)
        if checkpoint is None:
            raise ConfigError(f"cannot resume: {run_dir} has no checkpoints yet")
        defaults = json.loads(saved.read_text())
        if config_file is not None:
            raise ConfigError("--resume takes the run's saved recipe; pass changes as key=value instead of --config")
        recipe = load_recipe(family.recipe_cls, None, overrides, defaults=defaults)
    else:
        recipe = load_recipe(family.recipe_cls, config_file, overrides)
        if recipe.train.name is None:
            recipe.train.name = _default_run_name(family.name, recipe.data.name)
        run_dir = Path(recipe.train.out_dir) / recipe.train.name
        if run_dir.exists() and any(run_dir.iterdir()):
            raise ConfigError(f"run directory {run_dir} already exists; use --resume {run_dir} or another name=")

    device = select_device(recipe.train.device)
    seed_everything(recipe.train.seed)
    # A family module may build its own training data from the recipe (SR: LR/HR patch pairs).
    custom_data = getattr(importlib.import_module(FAMILY_MODULES[family.name]), "build_dataset", None)
    dataset = custom_data(recipe) if custom_data else dataset_from_config(recipe.data, split="train")
    model, objective = family.build(recipe, data_info(dataset))
    model.to(device)
    if evaluate is None and recipe.train.eval_every > 0:
        if family.name not in GENERATOR_FAMILIES:
            raise ConfigError(f"train.eval_every is supported for generator families ({', '.join(GENERATOR_FAMILIES)})")
        from ..tasks.evaluate import training_evaluator

        evaluate, best_metric = training_evaluator(objective, recipe, device=str(device)), "fid"
    save_resolved(recipe, run_dir)
    trainer = Trainer(model=model, objective=objective, dataset=dataset, train=recipe.train, run_dir=run_dir,
                      device=device, recipe_dict={"family": family.name, **to_dict(recipe)}, evaluate=evaluate,
                      best_metric=best_metric, progress=progress, workers=recipe.data.workers)
    if checkpoint is not None:
        trainer.resume_from(checkpoint)
    return trainer.fit()
