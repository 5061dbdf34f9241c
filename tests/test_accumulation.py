"""Gradient accumulation (``train.grad_accum=K``): K micro-batches make the full batch's update, for a
one-optimizer objective end to end (with resume) and for a two-update game whose second update must see the
first; under two gloo ranks the gradients are reduced once per update; what cannot be reproduced is refused."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file

from genvision.cli import main
from genvision.errors import ConfigError
from genvision.training.accumulation import accumulated_step
from genvision.training.distributed import SINGLE_PROCESS, DistContext
from genvision.training.objective import DataInfo, Objective, StepContext
from genvision.workflows.train import train


class ToyGame(Objective):
    """A GAN-shaped step without BatchNorm: D steps on real and fake rows, then G's loss goes through the new D."""
    name = "toy-game"

    def __init__(self):
        torch.manual_seed(0)
        model = torch.nn.ModuleDict({"g": torch.nn.Linear(3, 4), "d": torch.nn.Linear(4, 1)})
        super().__init__(model, None, DataInfo(channels=1, image_size=2, num_classes=0))
        self.calls = 0

    def build_optimizers(self):
        return {"d": torch.optim.SGD(self.model["d"].parameters(), lr=0.5),
                "g": torch.optim.SGD(self.model["g"].parameters(), lr=0.5)}

    def train_step(self, batch, ctx):
        self.calls += 1
        real = batch[0].flatten(1)  # (B, 4)
        z = ctx.draw(lambda n: torch.randn(n, 3), real.shape[0])  # (B, 3)
        g, d = self.model["g"], self.model["d"]
        loss_d = F.softplus(d(g(z).detach())).mean() + F.softplus(-d(real)).mean()
        ctx.update(loss_d, "d")
        loss_g = F.softplus(-d(g(z))).mean()
        ctx.update(loss_g, "g")
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach()}


def _context(game: ToyGame, micro=None, dist: DistContext = SINGLE_PROCESS) -> StepContext:
    return StepContext(step=0, device=torch.device("cpu"), precision="fp32", grad_clip=None,
                       optimizers=game.optimizers(), dist=dist, micro=micro)


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(8, 1, 2, 2, generator=generator), torch.full((8,), -1)


def _two_steps(count: int, batch, dist: DistContext = SINGLE_PROCESS) -> tuple[ToyGame, list[dict], list[list[str]]]:
    game, logged, skipped = ToyGame(), [], []
    torch.manual_seed(5)
    for _ in range(2):
        if count == 1:
            ctx = _context(game)
            logged.append(game.train_step(batch, ctx))
            skipped.append(ctx.skipped)
        else:
            values, refused = accumulated_step(game, batch, count, lambda micro: _context(game, micro, dist))
            logged.append(values)
            skipped.append(refused)
    return game, logged, skipped


@pytest.mark.parametrize("count", [2, 4])
def test_micro_batches_make_the_full_batch_update_phase_by_phase(count):
    whole, whole_logged, _ = _two_steps(1, _batch())
    parts, parts_logged, _ = _two_steps(count, _batch())
    for name, param in whole.model.named_parameters():
        torch.testing.assert_close(dict(parts.model.named_parameters())[name], param, rtol=1e-6, atol=1e-7)
    # Each phase is one pass over the micro-batches: D's pass stops at G's update, G's pass completes.
    assert parts.calls == 2 * 2 * count
    # The logged D loss is the one G's pass recomputes after D's step; G's loss is the full batch's.
    for a, b in zip(whole_logged, parts_logged):
        assert float(b["loss_g"]) == pytest.approx(float(a["loss_g"]), rel=1e-6)


def test_micro_batches_stepping_every_update_at_the_end_would_differ():
    """The check above can fail: G's update through the *old* D (simultaneous updates) is measurably different."""
    whole, _, _ = _two_steps(1, _batch())
    game = ToyGame()
    torch.manual_seed(5)
    for _ in range(2):
        ctx = _context(game)
        real = _batch()[0].flatten(1)
        z = ctx.draw(lambda n: torch.randn(n, 3), 8)
        g, d = game.model["g"], game.model["d"]
        for opt in game.optimizers().values():
            opt.zero_grad()
        (F.softplus(d(g(z).detach())).mean() + F.softplus(-d(real)).mean()).backward()
        d.requires_grad_(False)
        F.softplus(-d(g(z))).mean().backward()
        d.requires_grad_(True)
        for opt in game.optimizers().values():
            opt.step()
    gap = (game.model["g"].weight - whole.model["g"].weight).abs().max()
    assert gap > 1e-3


def _two_ranks_accumulate(rank: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        images, labels = _batch()
        shard = slice(4 * rank, 4 * rank + 4)  # rank r's rows of the global batch of 8
        game, _, _ = _two_steps(2, (images[shard], labels[shard]), DistContext(rank=rank, world_size=2))
        save_file({k: v.detach() for k, v in game.model.state_dict().items()}, f"{out}/rank{rank}.safetensors")
    finally:
        dist.destroy_process_group()


def test_two_ranks_accumulating_two_micro_batches_each_make_the_global_batch_update(tmp_path):
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    mp.spawn(_two_ranks_accumulate, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    whole, _, _ = _two_steps(1, _batch())
    for rank in (0, 1):
        got = load_file(tmp_path / f"rank{rank}.safetensors")
        for name, value in whole.model.state_dict().items():
            torch.testing.assert_close(got[name], value, rtol=1e-6, atol=1e-7)


def test_a_nonfinite_micro_batch_refuses_that_update_for_the_whole_batch():
    images, labels = _batch()
    images[5] = float("nan")  # a real row of the second half: D's loss there is NaN, G's is finite
    whole, _, whole_skipped = _two_steps(1, (images, labels))
    parts, _, parts_skipped = _two_steps(2, (images, labels))
    assert whole_skipped == parts_skipped == [["d"], ["d"]]
    untouched = ToyGame().model["d"].weight
    assert torch.equal(parts.model["d"].weight, untouched)
    torch.testing.assert_close(parts.model["g"].weight, whole.model["g"].weight, rtol=1e-6, atol=1e-7)


TINY_DIT = ["data.name=mnist-mini", "data.limit=64", "model.dim=16", "model.depth=1", "model.heads=2",
            "model.patch_size=7", "train.batch_size=8", "train.log_every=1", "train.tensorboard=false",
            "train.sample_every=0", "train.ckpt_every=1", "objective.warmup_steps=2", "train.precision=fp32",
            "train.ema=false"]


def test_a_dit_trained_with_accumulation_and_resumed_with_other_micro_batches_equals_the_full_batch_run(tmp_path):
    common = [*TINY_DIT, f"train.out_dir={tmp_path}"]
    whole = train("dit", overrides=[*common, "train.name=whole", "train.steps=3"], progress=False)
    train("dit", overrides=[*common, "train.name=parts", "train.steps=2", "train.grad_accum=4"], progress=False)
    parts = train("dit", resume=tmp_path / "parts", overrides=["train.steps=3", "train.grad_accum=2"], progress=False)
    weights = [load_file(run.run_dir / "checkpoints" / "step_00000003" / "model.safetensors") for run in (whole, parts)]
    for name, value in weights[0].items():
        torch.testing.assert_close(weights[1][name], value, rtol=1e-5, atol=1e-6)
    assert parts.last_metrics["loss"] == pytest.approx(whole.last_metrics["loss"], rel=1e-5)


def test_accumulation_that_cannot_reproduce_the_step_is_refused_in_one_line(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"train.batch_size=10 must be a multiple of train.grad_accum=4"):
        train("dit", overrides=[*TINY_DIT, f"train.out_dir={tmp_path}", "train.batch_size=10", "train.grad_accum=4"],
              progress=False)
    for domain in ("a", "b"):
        (tmp_path / domain).mkdir()
        for i in range(2):
            Image.fromarray(np.full((20, 20, 3), 60 * i, np.uint8)).save(tmp_path / domain / f"{i}.png")
    code = main(["train", "cyclegan", f"data_a.name=folder:{tmp_path / 'a'}", f"data_b.name=folder:{tmp_path / 'b'}",
                 "data.patch_size=16", "data.load_size=20", "model.width=4", "model.blocks=1", "train.batch_size=2",
                 "train.grad_accum=2", "train.steps=1", f"train.out_dir={tmp_path}"])
    err = capsys.readouterr().err
    assert code != 0 and "train.grad_accum=2 does not fit cyclegan: its history pools" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
