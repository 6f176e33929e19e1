"""Batch normalization over the global batch of all DDP processes, on CPU (gloo) as on CUDA.

``torch.nn.SyncBatchNorm`` refuses CPU tensors, so CPU DDP would normalize every process's
slice of the batch on its own: the run would differ from a single process with the same global
batch. :class:`DistributedBatchNorm1d` sums the per-channel count, sum and squared deviations over
all processes with a differentiable all-reduce (:func:`all_reduce_sum`, around
``torch.distributed.all_reduce``). Parameter and buffer names are those of ``nn.BatchNorm1d``, so
checkpoints are unchanged.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["DistributedBatchNorm1d", "convert_batchnorm"]


class _AllReduceSum(torch.autograd.Function):
    """``sum_r x_r`` over the processes, differentiable: every process's output depends on every
    process's input, so the gradient of ``x_r`` is the sum over processes of the output gradients
    (one more all-reduce in the backward pass)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        out = x.detach().clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Differentiable sum of ``x`` over all processes of the default group."""
    return _AllReduceSum.apply(x)


class DistributedBatchNorm1d(nn.BatchNorm1d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: N x C (or N x C x L)
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        dims = [0] + list(range(2, x.dim()))
        c = x.shape[1]
        shape = [1, c] + [1] * (x.dim() - 2)
        # two passes (mean, then squared deviations): E[x^2] - E[x]^2 loses digits
        count = torch.tensor([x.numel() / c], dtype=x.dtype, device=x.device)
        first = all_reduce_sum(torch.cat([count, x.sum(dim=dims)]))  # differentiable sum over processes
        n = first[0]
        mean = first[1:] / n
        var = all_reduce_sum(((x - mean.view(shape)) ** 2).sum(dim=dims)) / n  # biased, as batch norm normalizes
        if self.track_running_stats:
            assert self.num_batches_tracked is not None and self.running_mean is not None
            assert self.running_var is not None
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(m * mean.detach())
                self.running_var.mul_(1 - m).add_(m * var.detach() * n / max(float(n) - 1, 1.0))
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def convert_batchnorm(module: nn.Module, use_cuda: bool) -> nn.Module:
    """Global-batch BN under DDP: torch's SyncBatchNorm on CUDA, ours on CPU."""
    if use_cuda:
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if type(module) is nn.BatchNorm1d:
        new = DistributedBatchNorm1d(module.num_features, module.eps, module.momentum, module.affine,
                                     module.track_running_stats)
        if module.affine:  # the same Parameter objects: requires_grad and optimizer state carry over
            new.weight, new.bias = module.weight, module.bias
        new.running_mean, new.running_var = module.running_mean, module.running_var
        new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        setattr(module, name, convert_batchnorm(child, use_cuda))
    return module
