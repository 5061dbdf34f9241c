"""BatchNorm over the global batch of a distributed run (``train.sync_batchnorm=true``).

On CUDA this is PyTorch's own ``nn.SyncBatchNorm``. PyTorch's module refuses CPU tensors ("expected
input tensor to be on GPU"), so for gloo runs on CPUs genvision has :class:`GlobalBatchNorm`, written
here because no maintained library provides it: it sums each channel's statistics over ranks with
``torch.distributed.nn``'s differentiable all-reduce, so autograd also reduces the gradients of those
sums and the backward pass is the global-batch one, with no hand-written backward.

With it, N ranks normalise exactly as one process with N times the batch does (up to float summation
order): the property that lets a 2-process CPU run reproduce a 1-process run with BatchNorm inside.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


class _SumOverRanks(torch.autograd.Function):
    """y = the sum of x over ranks; every rank's y feeds its own loss, so dL/dx = the sum of dL_r/dy over
    ranks: the backward pass is the same all-reduce. (``torch.distributed.nn``'s version is deprecated
    in favour of functional collectives, which do not differentiate all_reduce.)"""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        total = x.clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        total = grad.contiguous().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total


def differentiable_all_reduce(x: torch.Tensor) -> torch.Tensor:
    return _SumOverRanks.apply(x)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm1d/2d/3d whose training-mode statistics cover every rank's batch (any device)."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (batch, channels, ...), got {x.dim()}D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if not (self.training and _distributed()):
            return super().forward(x)
        channels = x.shape[1]
        reduce_dims = [0, *range(2, x.dim())]
        view = (1, channels) + (1,) * (x.dim() - 2)  # broadcast a (C,) statistic over (B, C, ...)
        count = x.new_full((1,), x.numel() // channels)
        # Two passes (mean, then squared deviations), as in one process, rather than E[x^2] - E[x]^2,
        # which loses digits to cancellation when the mean is large.
        totals = differentiable_all_reduce(torch.cat([x.sum(reduce_dims), count]))  # (C + 1,)
        n = totals[channels]
        mean = totals[:channels] / n  # (C,)
        centred = x - mean.view(view)
        var = differentiable_all_reduce((centred * centred).sum(reduce_dims)) / n  # (C,) biased
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = (1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum)
                unbiased = var.detach() * (n / (n - 1)).clamp(min=0)
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), momentum)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)
        out = centred * torch.rsqrt(var + self.eps).view(view)
        if self.affine:
            out = out * self.weight.view(view) + self.bias.view(view)
        return out


def convert_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` with every BatchNorm synchronised over ranks: parameters and buffers are the same
    tensors (optimizers and checkpoints see no difference; a saved model loads as plain BatchNorm)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        converted = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                    module.track_running_stats)
        if module.affine:
            converted.weight, converted.bias = module.weight, module.bias
        if module.track_running_stats:
            converted.running_mean, converted.running_var = module.running_mean, module.running_var
            converted.num_batches_tracked = module.num_batches_tracked
        converted.train(module.training)
        return converted
    for name, child in module.named_children():
        replacement = convert_batchnorm(child, device)
        if replacement is not child:
            setattr(module, name, replacement)
    return module


__all__ = ["GlobalBatchNorm", "convert_batchnorm"]
