"""The distributed batch norm over 2 gloo processes equals one batch norm over the whole batch
(forward, input and parameter gradients, running statistics) in float64."""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from pose2mesh.engine.sync_bn import DistributedBatchNorm1d, convert_batchnorm

WORLD = 2


def _data():
    gen = torch.Generator().manual_seed(0)
    x = 3 * torch.randn(12, 5, dtype=torch.float64, generator=gen) + 1
    probe = torch.randn(12, 5, dtype=torch.float64, generator=gen)
    weight = 0.5 + torch.rand(5, dtype=torch.float64, generator=gen)
    return x, probe, weight


def _rank(rank: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        x, probe, weight = _data()
        bn = convert_batchnorm(nn.Sequential(nn.BatchNorm1d(5)).double(), use_cuda=False)[0]
        assert isinstance(bn, DistributedBatchNorm1d)
        with torch.no_grad():
            bn.weight.copy_(weight)
        rows = slice(rank * 6, (rank + 1) * 6)
        xs = x[rows].clone().requires_grad_()
        y = bn(xs)
        (y * probe[rows]).sum().backward()
        grads = torch.stack([bn.weight.grad, bn.bias.grad])
        dist.all_reduce(grads)  # what DDP does with parameter gradients (up to its averaging)
        torch.save({"y": y.detach(), "dx": xs.grad, "grads": grads, "running_mean": bn.running_mean,
                    "running_var": bn.running_var}, f"{out}_{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_processes_equal_one_batch_norm_over_the_whole_batch(tmp_path):
    mp.spawn(_rank, args=(str(tmp_path / "store"), str(tmp_path / "rank")), nprocs=WORLD)
    parts = [torch.load(tmp_path / f"rank_{r}.pt") for r in range(WORLD)]
    x, probe, weight = _data()
    bn = nn.BatchNorm1d(5).double()
    with torch.no_grad():
        bn.weight.copy_(weight)
    x.requires_grad_()
    y = bn(x)
    (y * probe).sum().backward()
    torch.testing.assert_close(torch.cat([p["y"] for p in parts]), y.detach(), rtol=0, atol=1e-12)
    torch.testing.assert_close(torch.cat([p["dx"] for p in parts]), x.grad, rtol=0, atol=1e-12)
    for p in parts:
        torch.testing.assert_close(p["grads"], torch.stack([bn.weight.grad, bn.bias.grad]), rtol=0, atol=1e-12)
        torch.testing.assert_close(p["running_mean"], bn.running_mean, rtol=0, atol=1e-12)
        torch.testing.assert_close(p["running_var"], bn.running_var, rtol=0, atol=1e-12)
