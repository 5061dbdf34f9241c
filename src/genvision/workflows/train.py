"""``train(family, ...)``: resolve a recipe, build data, model and objective, run the trainer.

The family comes from the application manifest (``genvision.apps``): its module exposes ``RECIPE``
(the recipe dataclass), ``DESCRIPTION``, ``build(recipe, data_info) -> (model, objective)`` and,
when it makes its own training data (super-resolution patches), ``build_dataset(recipe)``.
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from .. import apps, atomic
from .. import checkpoints as ckpt
from .. import data as datasets
from ..config import load_recipe, save_resolved, to_dict
from ..errors import ConfigError
from ..metrics.reference import reference_stats
from ..metrics.samples import sample_metrics
from ..runtime import seed_everything
from ..training.distributed import DistContext
from ..training.launch import broadcast_text, join_process_group, leave_process_group
from ..training.objective import DataInfo
from ..training.sync_batchnorm import convert_batchnorm
from ..training.trainer import RunResult, Trainer
from .extractors import resolve_extractor


@dataclass(frozen=True)
class Family:
    name: str
    recipe_cls: type
    build: Callable
    description: str
    build_dataset: Callable | None  # the family's own training data, else the recipe's named dataset
    samples_images: bool  # its objective draws images: training-time FID can watch it


def get_family(name: str) -> Family:
    ref = apps.family(name)
    module = importlib.import_module(ref.module)
    return Family(name, module.RECIPE, module.build, module.DESCRIPTION, getattr(module, "build_dataset", None),
                  ref.samples_images)


def _default_run_name(family: str, data_name: str) -> str:
    data = re.sub(r"[^A-Za-z0-9]+", "-", Path(data_name.split(":", 1)[-1]).name or data_name).strip("-")
    return f"{family}-{data}-{time.strftime('%Y%m%d-%H%M%S')}"


def data_info(dataset) -> DataInfo:
    return DataInfo(channels=dataset.channels, image_size=dataset.image_size, num_classes=dataset.num_classes)


# Recipe keys a resumed run may change: they steer how long and how verbosely it runs and where
# its files are, not what it learns. Any other change would make the checkpoint meaningless (another
# network, other data, another objective) or break exact resume (batch size, seed), so it is refused.
RESUMABLE_KEYS = frozenset({
    "train.steps", "train.max_minutes", "train.log_every", "train.sample_every", "train.ckpt_every",
    "train.keep_last", "train.eval_every", "train.eval_samples", "train.tensorboard", "train.max_nonfinite",
    "train.device", "train.compile", "data.root", "data.download", "data.workers", "train.reshard",
    "train.grad_accum",  # micro-batches change memory, not the update
})
RESUME_LOG = "resume_log.jsonl"
METRICS_FILE = "metrics.jsonl"
_RUN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def recipe_changes(before: Any, after: Any) -> dict[str, tuple[Any, Any]]:
    """``{"train.steps": (3000, 5000), ...}``: the keys whose resolved values differ."""
    old, new = _flatten(to_dict(before)), _flatten(to_dict(after))
    return {key: (old.get(key), new.get(key)) for key in sorted(old.keys() | new.keys()) if old.get(key) != new.get(key)}


def _check_run_name(name: str) -> None:
    if not _RUN_NAME.fullmatch(name) or name in (".", ".."):
        raise ConfigError(f"train.name must be a plain directory name (letters, digits, . _ -; no '/' or '..'), "
                          f"got {name!r}")


def _saved_family(checkpoint: Path | None) -> str | None:
    if checkpoint is None:
        return None
    return ckpt.read_model_card(checkpoint).get("run", {}).get("recipe", {}).get("family")


def _resumed_recipe(family: Family, run_dir: Path, overrides: list[str] | None) -> tuple[Any, dict]:
    """The saved recipe with ``overrides`` applied, and what they change; refuses changes that
    would alter what was trained. Reads only: nothing in the run directory changes here."""
    saved_path = run_dir / "config.json"
    if not saved_path.is_file():
        raise ConfigError(f"cannot resume: {saved_path} not found (give the run directory)")
    try:
        saved_values = json.loads(saved_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ConfigError(f"cannot resume: {saved_path} is not valid JSON") from None
    if not isinstance(saved_values, dict):
        raise ConfigError(f"cannot resume: {saved_path} is not a recipe")
    saved = load_recipe(family.recipe_cls, None, [], defaults=saved_values)
    recipe = load_recipe(family.recipe_cls, None, overrides, defaults=saved_values)
    changes = recipe_changes(saved, recipe)
    frozen = [key for key in changes if key not in RESUMABLE_KEYS]
    if frozen:
        key = frozen[0]
        was, asked = changes[key]
        raise ConfigError(f"cannot change {key} when resuming (the run was trained with {was!r}, asked {asked!r}); "
                          f"start a new run instead (another train.name=)")
    return recipe, changes


def _new_run_dir(recipe: Any, overwrite: bool) -> Path:
    run_dir = Path(recipe.train.out_dir) / recipe.train.name
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir} exists and is not a directory; choose another train.name=")
    # A kill while the first file was being written leaves only a hidden temporary: still a fresh run.
    if run_dir.exists() and any(not p.name.startswith(atomic.TMP_PREFIX) for p in run_dir.iterdir()):
        if not overwrite:
            raise ConfigError(f"run directory {run_dir} already exists: continue it with --resume {run_dir}, "
                              f"or start it over with --overwrite")
        if not (run_dir / "config.json").is_file():
            raise ConfigError(f"{run_dir} is not a genvision run directory (no config.json); --overwrite "
                              f"only replaces runs: choose another train.name=")
    return run_dir


def _clear_run_dir(run_dir: Path) -> None:
    """--overwrite: move the old run aside, then delete it (a crash in between leaves it hidden, whole)."""
    if run_dir.exists():
        aside = atomic.temporary_sibling(run_dir, kind="dir")
        run_dir.rename(aside)
        shutil.rmtree(aside, ignore_errors=True)


def _truncate_metrics(run_dir: Path, step: int) -> None:
    """Drop metrics rows past the checkpoint being resumed (the steps about to be redone), and a
    half-written last line left by a kill; the rest of the file is kept as it was."""
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return
    kept, changed = [], False
    for line in path.read_text().splitlines(keepends=True):
        try:
            row = json.loads(line)
            keep = line.endswith("\n") and int(row["step"]) <= step
        except (ValueError, KeyError, TypeError):
            keep = False
        if keep:
            kept.append(line)
        else:
            changed = True
    if changed:
        atomic.write_text(path, "".join(kept))


def _log_resume(run_dir: Path, step: int, checkpoint: Path | None, changes: dict) -> None:
    row = {"step": step, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "checkpoint": checkpoint.name if checkpoint is not None else None,
           "changes": {key: {"from": was, "to": now} for key, (was, now) in changes.items()}}
    with open(run_dir / RESUME_LOG, "a") as f:
        f.write(json.dumps(row) + "\n")


def train(family_name: str, *, config_file: str | Path | None = None, overrides: list[str] | None = None,
          resume: str | Path | None = None, overwrite: bool = False, progress: bool = True, evaluate=None,
          best_metric=None) -> RunResult:
    """Train ``family_name`` from a recipe, or continue the run in ``resume``.

    A resume may change only :data:`RESUMABLE_KEYS`; the run directory is left exactly as it was
    until the checkpoint has loaded, then the new recipe is saved and the change is recorded in
    ``resume_log.jsonl`` with the step it took effect. A run stopped before its first checkpoint
    resumes from step 0. ``overwrite`` replaces an existing run of the same name.
    """
    family = get_family(family_name)
    checkpoint, changes = None, {}
    if resume is not None:
        if config_file is not None:
            raise ConfigError("--resume takes the run's saved recipe; pass changes as key=value instead of --config")
        if overwrite:
            raise ConfigError("--resume continues a run and --overwrite starts it over: give one of them")
        run_dir = Path(resume)
        checkpoint = ckpt.latest_checkpoint(run_dir / ckpt.CHECKPOINTS_DIR)
        trained_family = _saved_family(checkpoint)
        if trained_family not in (None, family.name):
            raise ConfigError(f"{run_dir} is a {trained_family} run: resume it with "
                              f"genvision train {trained_family} --resume {run_dir}")
        recipe, changes = _resumed_recipe(family, run_dir, overrides)
        if checkpoint is None and progress:
            print(f"note: {run_dir} has no checkpoint yet; starting it from step 0 with its saved recipe",
                  file=sys.stderr)
    else:
        recipe = load_recipe(family.recipe_cls, config_file, overrides)
    context, device, joined = join_process_group(recipe.train.device)
    try:
        if resume is None:
            recipe.train.name = broadcast_text(context, recipe.train.name
                                               or _default_run_name(family.name, recipe.data.name))
            _check_run_name(recipe.train.name)
            run_dir = _new_run_dir(recipe, overwrite)
        return _train_in(family, recipe, run_dir, device, context, checkpoint=checkpoint, changes=changes,
                         resume=resume, overwrite=overwrite, progress=progress, evaluate=evaluate,
                         best_metric=best_metric)
    finally:
        leave_process_group(joined)


def _train_in(family: Family, recipe: Any, run_dir: Path, device: torch.device, context: DistContext, *,
              checkpoint: Path | None, changes: dict, resume, overwrite: bool, progress: bool, evaluate,
              best_metric) -> RunResult:
    seed_everything(recipe.train.seed)  # the same seed on every rank: see StepContext.draw
    if not context.is_main:
        context.barrier()  # rank 0 builds (and may download) the data first
    # A family may build its own training data from the recipe (SR: LR/HR patch pairs).
    if family.build_dataset is not None:
        dataset = family.build_dataset(recipe)
    else:
        dataset = datasets.dataset_from_config(recipe.data, split="train")
    if context.is_main:
        context.barrier()
    model, objective = family.build(recipe, data_info(dataset))
    model.to(device)
    if recipe.train.sync_batchnorm and context.is_distributed:
        convert_batchnorm(model, device)  # before the optimizers are built; the same parameter tensors
    if evaluate is None and recipe.train.eval_every > 0:
        if not family.samples_images:
            sampling = ", ".join(name for name, ref in apps.families().items() if ref.samples_images)
            raise ConfigError(f"train.eval_every is supported for families that sample images ({sampling})")
        evaluate, best_metric = training_evaluator(objective, recipe, device=str(device)), "fid"
    trainer = Trainer(model=model, objective=objective, dataset=dataset, train=recipe.train, run_dir=run_dir,
                      device=device, recipe_dict={"family": family.name, **to_dict(recipe)}, evaluate=evaluate,
                      best_metric=best_metric, progress=progress, workers=recipe.data.workers, dist=context)
    if checkpoint is not None:
        trainer.resume_from(checkpoint)
        if recipe.train.steps < trainer.step:
            raise ConfigError(f"train.steps={recipe.train.steps} is below the step this run already reached "
                              f"({trainer.step}); give a larger train.steps")
    # Only now, with everything built and the checkpoint loaded (on every rank), does the run directory
    # change, and only rank 0 changes it.
    context.barrier()
    if context.is_main:
        if resume is None and overwrite:
            _clear_run_dir(run_dir)
        if resume is None or changes:
            save_resolved(recipe, run_dir)
    if resume is not None:
        trainer.resumed_step = trainer.step  # from here on, logs and TensorBoard redo what follows
        if context.is_main:
            _truncate_metrics(run_dir, trainer.step)
            _log_resume(run_dir, trainer.step, checkpoint, changes)
    return trainer.fit()


def training_evaluator(objective, recipe, *, device: str, progress: bool = False):
    """The trainer's periodic evaluation for families that sample images: FID/KID on
    ``train.eval_samples`` samples of the objective's sample grid, in domain features."""
    extractor = resolve_extractor("domain", dataset_name=recipe.data.name, data_root=recipe.data.root,
                                  device=device, progress=progress, train_classifier=train)
    test = datasets.test_split(recipe.data.name, recipe.data.root, image_size=recipe.data.image_size,
                               channels=recipe.data.channels)  # at the size and channels the model trains on
    reference = reference_stats(extractor, test, keep=recipe.train.eval_samples, progress=progress)

    def run(network, step: int) -> dict:
        sampler = lambda n, seed: objective.sample_grid(network, n, seed)  # noqa: E731
        return sample_metrics(sampler, extractor, reference, n=recipe.train.eval_samples, seed=recipe.train.seed,
                              progress=False, full=False)

    return run
