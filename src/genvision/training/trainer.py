"""The training loop shared by every family.

It owns everything that is not the objective's business: device and precision, EMA,
progress, metrics.jsonl and TensorBoard, sample grids, atomic checkpoints with a ``latest``
pointer, exact resume, clean exits on SIGINT/SIGTERM or a time budget, and the guard that
stops a run whose losses or gradients keep going non-finite (weights are never updated with,
nor saved with, NaNs).
"""

from __future__ import annotations

import copy
import json
import math
import signal
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn
from tqdm import tqdm

from .. import checkpoints as ckpt
from ..config import TrainConfig, to_dict
from ..errors import CheckpointError, ConfigError, TrainingError, reason
from ..io import save_grid
from ..runtime import channels_last_hazard, get_rng_state, resolve_precision, set_rng_state
from . import fsdp
from .accumulation import accumulated_step
from .batches import batch_stream
from .distributed import SINGLE_PROCESS, DistContext
from .ema import EMA, submodule_prefix
from .objective import MicroPass, Objective, StepContext, eval_mode

EvalFn = Callable[[nn.Module, int], dict[str, float]]


@dataclass
class RunResult:
    run_dir: Path
    step: int
    checkpoint: Path | None
    stopped_by: str  # "completed", "signal", "time"
    last_metrics: dict[str, float] = field(default_factory=dict)
    signal: str | None = None  # "SIGINT" / "SIGTERM" when stopped_by == "signal"


@contextmanager
def _stop_on_signals(flag: dict) -> Iterator[None]:
    """First SIGINT/SIGTERM asks the loop to checkpoint and exit; a second one aborts."""
    def handler(signum, frame):
        if flag.get("signal"):
            raise KeyboardInterrupt
        flag["signal"] = signal.Signals(signum).name

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread (e.g. inside a web worker): no handlers
            pass
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class Trainer:
    def __init__(self, *, model: nn.Module, objective: Objective, dataset, train: TrainConfig, run_dir: Path,
                 device: torch.device, recipe_dict: dict[str, Any], evaluate: EvalFn | None = None,
                 best_metric: str | None = None, progress: bool = True, workers: int = 0,
                 dist: DistContext = SINGLE_PROCESS):
        self.model, self.objective, self.dataset, self.cfg = model, objective, dataset, train
        self.dist = dist
        self.run_dir, self.device, self.recipe_dict = Path(run_dir), device, recipe_dict
        self.evaluate, self.best_metric = evaluate, best_metric
        self.best_value = math.inf
        self.progress = progress and dist.is_main
        self.workers = workers
        self.step = 0
        self.resumed_step: int | None = None  # set when continuing a run: TensorBoard purges past it
        self.precision = resolve_precision(train.precision, device)
        self.checkpoints = ckpt.CheckpointManager(self.run_dir / ckpt.CHECKPOINTS_DIR, train.keep_last)

        self.channels_last = train.channels_last
        hazard = channels_last_hazard(model) if device.type == "cpu" else None
        if self.channels_last and hazard is not None:
            warnings.warn(f"training in the default memory layout: channels_last would crash PyTorch's CPU "
                          f"backward of layer {hazard!r} (a 1x1 strided convolution with under 8 input channels)")
            self.channels_last = False
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if train.grad_accum > 1 and objective.accumulation_blocker:
            raise ConfigError(f"train.grad_accum={train.grad_accum} does not fit {objective.name}: "
                              f"{objective.accumulation_blocker}")
        target = objective.ema_target()
        self.ema = EMA(target, train.ema_decay, train.ema_start) if train.ema else None
        self.ema_prefix = submodule_prefix(model, target)
        self.sample_network = target
        self.fsdp = train.fsdp
        self._plain: nn.Module | None = None  # under FSDP: rank 0's unsharded CPU copy, for checkpoints and samples
        if self.fsdp:
            if not dist.is_distributed:
                raise ConfigError("train.fsdp=true shards the model over processes: launch it with --nproc N (N >= 2) "
                                  "or torchrun")
            dist.broadcast_module(model)  # identical full weights on every rank before they are cut into shards
            if self.ema is not None:
                dist.broadcast_module(self.ema.shadow)
            self._plain = copy.deepcopy(model).cpu() if dist.is_main else None
            fsdp.shard(model)
            if self.ema is not None:
                fsdp.shard(self.ema.shadow)
        self.optimizers = objective.optimizers()  # after sharding: optimizers hold the sharded parameters
        self.schedulers = objective.lr_schedulers()
        self._writer = None

    # --- state ------------------------------------------------------------------------

    def _trainer_state(self, optimizer_states: dict[str, dict] | None = None) -> dict[str, Any]:
        return {
            "step": self.step,
            "optimizers": optimizer_states or {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "rng": get_rng_state(),
            "best_value": self.best_value,
            "objective": self.objective.state_dict(),
            "world_size": self.dist.world_size,  # the data order depends on the global batch
            "fsdp": self.fsdp,  # FSDP saves optimizer states keyed by parameter name
        }

    def resume_from(self, checkpoint_dir: Path) -> None:
        """Load weights, EMA, optimizer, scheduler and RNG state; a checkpoint that does not fit
        this model and objective is one CheckpointError (the caller has written nothing yet)."""
        state = ckpt.load_trainer_state(checkpoint_dir)
        weights = ckpt._load_weights(checkpoint_dir / ckpt.WEIGHTS_FILE)
        try:
            ema_path = checkpoint_dir / ckpt.EMA_FILE
            ema_weights = ckpt._load_weights(ema_path) if self.ema is not None and ema_path.is_file() else weights
            if self.fsdp:
                fsdp.load_full_state(self.model, weights)
                if self.ema is not None:
                    fsdp.load_full_state(self.ema.shadow, {k[len(self.ema_prefix):]: v for k, v in ema_weights.items()
                                                           if k.startswith(self.ema_prefix)})
                for name, opt in self.optimizers.items():
                    fsdp.load_optimizer_state(self.model, opt, state["optimizers"][name])
            else:
                self.model.load_state_dict(weights)
                if self.ema is not None:
                    self.ema.load_state_dict(ema_weights, self.ema_prefix)
                for name, opt in self.optimizers.items():
                    opt.load_state_dict(state["optimizers"][name])
            for name, sched in self.schedulers.items():
                sched.load_state_dict(state["schedulers"][name])
            set_rng_state(state["rng"])
            self.objective.load_state_dict(state.get("objective", {}))
            step = int(state["step"])
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{checkpoint_dir} does not fit this run's model and optimizers "
                                  f"({reason(exc)})") from None
        saved_world = int(state.get("world_size", 1))
        if saved_world != self.dist.world_size and not self.cfg.reshard:
            raise CheckpointError(
                f"{checkpoint_dir} was trained by {saved_world} process(es) and this run has {self.dist.world_size}: "
                f"the global batch (train.batch_size x processes) and so the data order would change; resume with "
                f"{saved_world} process(es), or pass train.reshard=true to continue with the new global batch")
        self.step = step
        self.best_value = float(state.get("best_value", math.inf))

    def _all_finite(self) -> bool:
        tensors = [*self.model.parameters(), *self.model.buffers()]
        if self.ema is not None:
            tensors += [*self.ema.shadow.parameters(), *self.ema.shadow.buffers()]
        return all(torch.isfinite(t).all() for t in tensors if t.is_floating_point())

    def save_checkpoint(self, best: bool = False) -> Path:
        """Write a checkpoint (rank 0 only; every rank returns its path)."""
        if self.fsdp:
            return self._save_gathered_checkpoint(best)
        if not self.dist.is_main:
            return self.checkpoints.checkpoints_dir / ckpt.checkpoint_name(self.step)
        if not self._all_finite():
            raise TrainingError(f"step {self.step}: weights are non-finite; refusing to write a checkpoint")
        return self.checkpoints.save(
            self.step, self.model,
            ema_state=self.ema.state_dict(self.ema_prefix) if self.ema else None,
            trainer_state=self._trainer_state(),
            extra={"run": {"step": self.step, "recipe": self.recipe_dict}},
            best=best,
        )

    def _save_gathered_checkpoint(self, best: bool) -> Path:
        """Under FSDP: every rank joins in gathering the full weights and optimizer states; rank 0 writes them."""
        weights = fsdp.full_state(self.model)
        ema = fsdp.full_state(self.ema.shadow) if self.ema is not None else None
        optimizers = {name: fsdp.full_optimizer_state(self.model, opt) for name, opt in self.optimizers.items()}
        if not self.dist.is_main:
            return self.checkpoints.checkpoints_dir / ckpt.checkpoint_name(self.step)
        tensors = [*weights.values(), *(ema or {}).values()]
        if not all(torch.isfinite(t).all() for t in tensors if t.is_floating_point()):
            raise TrainingError(f"step {self.step}: weights are non-finite; refusing to write a checkpoint")
        self._plain.load_state_dict(weights)
        return self.checkpoints.save(
            self.step, self._plain,
            ema_state=None if ema is None else {f"{self.ema_prefix}{k}": v for k, v in ema.items()},
            trainer_state=self._trainer_state(optimizers),
            extra={"run": {"step": self.step, "recipe": self.recipe_dict}},
            best=best,
        )

    def _sampling_network(self) -> nn.Module | None:
        """What samples and evaluations use: the EMA copy, else the target; under FSDP its weights gathered into
        rank 0's plain copy (a collective: every rank calls this; the others get None)."""
        if not self.fsdp:
            return self.ema.shadow if self.ema else self.sample_network
        state = fsdp.full_state(self.ema.shadow if self.ema is not None else self.model)
        if not self.dist.is_main:
            return None
        plain_target = self._plain.get_submodule(self.ema_prefix[:-1]) if self.ema_prefix else self._plain
        (plain_target if self.ema is not None else self._plain).load_state_dict(state)
        return plain_target

    # --- logging ----------------------------------------------------------------------

    def _writer_or_none(self):
        if not self.cfg.tensorboard:
            return None
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter  # heavy import, only when used
            # purge_step drops events past a resumed checkpoint, so redone steps are not plotted twice
            self._writer = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=self.resumed_step)
        return self._writer

    def _log(self, row: dict[str, float]) -> None:
        if not self.dist.is_main:
            return
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        writer = self._writer_or_none()
        if writer is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)):
                    writer.add_scalar(key, value, row["step"])

    def _log_window(self, pending: list[dict[str, torch.Tensor]], window_start: float, window_steps: int,
                    start_time: float, nonfinite_streak: int) -> dict[str, float]:
        """Average the window's losses and log them; .item() here is the only sync with the device."""
        now = time.perf_counter()
        rate = window_steps / max(now - window_start, 1e-9)
        keys = dict.fromkeys(k for p in pending for k in p)  # every key any step logged (lazy R1: some steps)
        row = {k: float(torch.stack([p[k].float() for p in pending if k in p]).mean()) for k in keys}
        row = self.dist.mean(row, self.device)  # the step's numbers over all ranks, not rank 0's share
        row.update(steps_per_s=rate, images_per_s=rate * self.cfg.batch_size * self.dist.world_size,
                   elapsed_s=now - start_time, skipped_updates=nonfinite_streak)
        for name, opt in self.optimizers.items():
            row[f"lr_{name}"] = opt.param_groups[0]["lr"]
        self._log({"step": self.step, **row})
        pending.clear()
        return row

    def _save_samples(self) -> Path | None:
        network = self._sampling_network()
        if not self.dist.is_main:
            return None
        with eval_mode(network):
            images = self.objective.sample_grid(network, 64, seed=self.cfg.seed)
        if images is None:
            return None
        nrow = self.objective.data.num_classes if getattr(self.objective, "conditional", False) else None
        path = self.run_dir / "samples" / f"{ckpt.checkpoint_name(self.step)}.png"
        save_grid(images.float().cpu(), path, nrow=nrow, metadata={"step": self.step, "run": str(self.run_dir)})
        return path

    def _maybe_evaluate(self) -> bool:
        """Run the quality metric; True when this step is the best so far."""
        if self.evaluate is None:
            return False
        network = self._sampling_network()
        if not self.dist.is_main:
            return False
        with eval_mode(network):
            metrics = self.evaluate(network, self.step)
        self._log({"step": self.step, **{f"eval/{k}": v for k, v in metrics.items()}})
        # best_metric is minimised (FID, NLL, ...).
        value = metrics.get(self.best_metric) if self.best_metric else None
        if value is not None and value < self.best_value:
            self.best_value = value
            return True
        return False

    # --- the loop ---------------------------------------------------------------------

    def _agree_to_stop(self, flag: dict, start_time: float) -> tuple[bool, bool]:
        """(signalled, out of time), the same on every rank: a SIGTERM that reached one rank, or one
        rank's clock passing the budget, stops them all after the same step (one collective per step)."""
        signum = signal.Signals[flag["signal"]].value if flag.get("signal") else 0
        late = int(self.cfg.max_minutes is not None and (time.perf_counter() - start_time) > self.cfg.max_minutes * 60)
        signum, late = self.dist.max_codes([signum, late], self.device)
        if signum and not flag.get("signal"):
            flag["signal"] = signal.Signals(signum).name
        return bool(signum), bool(late)

    def _context(self, micro: MicroPass | None = None) -> StepContext:
        return StepContext(step=self.step, device=self.device, precision=self.precision, grad_clip=self.cfg.grad_clip,
                           optimizers=self.optimizers, dist=self.dist, micro=micro, fsdp=self.fsdp)

    def _train_step(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[dict[str, torch.Tensor], list[str]]:
        """One step: (logged values, names of updates refused for non-finite values)."""
        if self.cfg.grad_accum == 1:
            ctx = self._context()
            return self.objective.train_step((images, labels), ctx), ctx.skipped
        return accumulated_step(self.objective, (images, labels), self.cfg.grad_accum, self._context)

    def fit(self) -> RunResult:
        cfg = self.cfg
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        if cfg.compile:
            # In-place compile keeps parameter names (and so checkpoints) unchanged.
            for child in self.model.children():
                child.compile()
        batches = batch_stream(self.dataset, cfg.batch_size, cfg.seed, self.step, self.workers,
                               rank=self.dist.rank, world_size=self.dist.world_size)
        # Every rank starts from rank 0's weights, as under DDP (equal already when seeded alike or resumed;
        # sharded weights were broadcast before they were cut).
        if not self.fsdp:
            self.dist.broadcast_module(self.model)
            if self.ema is not None:
                self.dist.broadcast_module(self.ema.shadow)
        flag: dict[str, str] = {}
        stopped_by = "completed"
        nonfinite_streak = 0
        start_time = time.perf_counter()
        window_start, window_steps = start_time, 0
        last: dict[str, float] = {}
        pending: list[dict[str, torch.Tensor]] = []
        bar = tqdm(total=cfg.steps, initial=self.step, desc=f"train {self.run_dir.name}", unit="step",
                   disable=not self.progress, dynamic_ncols=True, mininterval=1.0 if sys.stderr.isatty() else 30.0)
        last_checkpoint: Path | None = None
        float_buffers = [b for b in self.model.buffers() if b.is_floating_point()]
        with _stop_on_signals(flag):
            while self.step < cfg.steps:
                images, labels = next(batches)
                images = images.to(self.device, non_blocking=True)
                if self.channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                labels = labels.to(self.device, non_blocking=True)
                # A non-finite batch also poisons running statistics (BatchNorm) during the forward
                # pass, before any update can be refused; keep a copy to roll them back.
                saved_buffers = torch._foreach_mul(float_buffers, 1.0) if float_buffers else []
                losses, skipped = self._train_step(images, labels)
                self.step += 1
                window_steps += 1
                bar.update(1)
                if skipped:
                    if float_buffers:
                        torch._foreach_copy_(float_buffers, saved_buffers)
                    nonfinite_streak += 1
                    if nonfinite_streak >= cfg.max_nonfinite:
                        bar.close()
                        raise TrainingError(
                            f"stopped at step {self.step}: {nonfinite_streak} consecutive steps with non-finite "
                            f"loss or gradients ({', '.join(skipped)}); weights were not updated by them and "
                            f"the last checkpoint is intact (lower the learning rate or check the data)")
                else:
                    nonfinite_streak = 0
                    if self.ema is not None:
                        self.ema.update(self.step)
                for sched in self.schedulers.values():
                    sched.step()
                if self.dist.is_distributed and float_buffers:
                    self.dist.broadcast_module(self.model, buffers_only=True)  # as DDP's broadcast_buffers
                pending.append(losses)

                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    last = self._log_window(pending, window_start, window_steps, start_time, nonfinite_streak)
                    bar.set_postfix({k: f"{v:.3g}" for k, v in last.items() if k.startswith("loss")}
                                    | {"img/s": f"{last['images_per_s']:.0f}"}, refresh=False)
                    window_start, window_steps = time.perf_counter(), 0

                if cfg.sample_every and self.step % cfg.sample_every == 0:
                    self._save_samples()
                is_best = bool(cfg.eval_every) and self.step % cfg.eval_every == 0 and self._maybe_evaluate()
                if self.fsdp:  # rank 0 alone evaluates, and an FSDP checkpoint is written by every rank together
                    is_best = bool(self.dist.max_codes([int(is_best)], self.device)[0])
                if self.step % cfg.ckpt_every == 0 or is_best:
                    last_checkpoint = self.save_checkpoint(best=is_best)

                signalled, timed_out = self._agree_to_stop(flag, start_time)
                if signalled:
                    stopped_by = "signal"
                    break
                if timed_out:
                    stopped_by = "time"
                    break
        bar.close()
        if pending:  # a run stopped by time or a signal still records its last partial window
            last = self._log_window(pending, window_start, window_steps, start_time, nonfinite_streak)
        if last_checkpoint is None or last_checkpoint.name != ckpt.checkpoint_name(self.step):
            last_checkpoint = self.save_checkpoint()
        self._save_samples()
        if self._writer is not None:
            self._writer.close()
        self.dist.barrier()  # no rank returns before rank 0's last checkpoint is on disk
        return RunResult(self.run_dir, self.step, last_checkpoint, stopped_by, last, flag.get("signal"))


def describe(result: RunResult) -> str:
    how = {"completed": "finished", "signal": "interrupted", "time": "stopped at its time budget"}[result.stopped_by]
    line = f"{how} at step {result.step}; checkpoint {result.checkpoint}"
    if result.stopped_by != "completed":
        line += f" (continue with --resume {result.run_dir})"
    return line


__all__ = ["Trainer", "RunResult", "describe", "to_dict"]
