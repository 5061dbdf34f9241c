"""The trainer's distributed seam: sharded batches that keep exact resume, rank 0 alone writes,
logged numbers are averaged over ranks. One process behaves exactly as before (world size 1)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from genvision.errors import ConfigError
from genvision.training.batches import StepBatchSampler
from genvision.training.distributed import DistContext


def _take(sampler: StepBatchSampler, n: int) -> list[list[int]]:
    it = iter(sampler)
    return [next(it) for _ in range(n)]


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_share_each_global_batch_and_see_every_example_once_per_epoch(world):
    num_items, batch, seed = 60, 4, 7
    ranks = [_take(StepBatchSampler(num_items, batch, seed, rank=r, world_size=world), 12) for r in range(world)]
    single = _take(StepBatchSampler(num_items, batch * world, seed), 12)
    steps_per_epoch = num_items // (batch * world)
    for step in range(12):
        # the global batch of step s is the single-process batch of size batch * world, cut in rank order
        assert sum((ranks[r][step] for r in range(world)), []) == single[step]
    first_epoch = [i for r in range(world) for b in ranks[r][:steps_per_epoch] for i in b]
    assert len(first_epoch) == len(set(first_epoch)) == steps_per_epoch * batch * world


def test_a_sharded_stream_resumes_mid_epoch_on_the_same_batches():
    full = _take(StepBatchSampler(50, 5, 3, rank=1, world_size=2), 9)
    resumed = _take(StepBatchSampler(50, 5, 3, start_step=4, rank=1, world_size=2), 5)
    assert resumed == full[4:]


def test_contexts_refuse_impossible_ranks_and_one_process_needs_no_group():
    with pytest.raises(ConfigError, match="rank 2 does not fit world size 2"):
        DistContext(rank=2, world_size=2)
    single = DistContext.from_environment()
    assert single.is_main and not single.is_distributed
    assert single.mean({"loss": 3.0}) == {"loss": 3.0}


def _two_rank_training(rank: int, store: str, out: str) -> None:
    from genvision.config import load_recipe
    from genvision.data import dataset_from_config
    from genvision.training.trainer import Trainer
    from genvision.workflows.train import data_info, get_family

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    torch.manual_seed(0)
    try:
        context = DistContext(rank=rank, world_size=2)
        assert context.mean({"x": float(rank)}) == {"x": 0.5}
        family = get_family("gan")
        recipe = load_recipe(family.recipe_cls, None, [
            "data.name=mnist-mini", "data.limit=64", "model.width=8", "train.batch_size=8", "train.steps=3",
            "train.log_every=1", "train.sample_every=0", "train.tensorboard=false", "train.ckpt_every=2"])
        dataset = dataset_from_config(recipe.data)
        model, objective = family.build(recipe, data_info(dataset))
        trainer = Trainer(model=model, objective=objective, dataset=dataset, train=recipe.train,
                          run_dir=Path(out) / "run", device=torch.device("cpu"), recipe_dict={}, progress=False,
                          dist=context)
        result = trainer.fit()
        assert result.step == 3
    finally:
        dist.destroy_process_group()


def test_with_two_ranks_only_rank_zero_writes_and_rows_cover_both(tmp_path):
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    mp.spawn(_two_rank_training, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    run = tmp_path / "run"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]  # one row per step: rank 1 wrote none
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest", "step_00000002", "step_00000003"]
    assert all(r["images_per_s"] == pytest.approx(r["steps_per_s"] * 16) for r in rows)  # global batch 8 x 2
