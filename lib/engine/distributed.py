"""torch.distributed, when launched by ``torchrun``: one process per device, any number of machines.

Without the ``torchrun`` environment everything here is a no-op for a single process.
"""
from __future__ import annotations

import os
from typing import Any, List

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "init_distributed", "is_main", "barrier", "all_gather_objects",
           "all_reduce_mean", "cleanup"]


class DistInfo:
    def __init__(self, rank: int = 0, world_size: int = 1, local_rank: int = 0):
        self.rank, self.world_size, self.local_rank = rank, world_size, local_rank

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


_INFO = DistInfo()


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1


def init_distributed(use_cuda: bool) -> DistInfo:
    """Join the process group set up by ``torchrun`` (nccl on CUDA, gloo on CPU)."""
    global _INFO
    if not launched_by_torchrun():
        _INFO = DistInfo()
        return _INFO
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if use_cuda:  # before the group: nccl's communicators and barriers use the current device
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    _INFO = DistInfo(rank, world, local_rank)
    return _INFO


def info() -> DistInfo:
    return _INFO


def is_main() -> bool:
    return _INFO.is_main


def barrier() -> None:
    if _INFO.enabled:
        dist.barrier()


def all_gather_objects(obj: Any) -> List[Any]:
    """Every rank's ``obj`` (in rank order); ``[obj]`` for one process."""
    if not _INFO.enabled:
        return [obj]
    out: List[Any] = [None] * _INFO.world_size
    dist.all_gather_object(out, obj)
    return out


def all_reduce_mean(values: torch.Tensor) -> torch.Tensor:
    """The mean over ranks, on ``values``' device (nccl reduces CUDA tensors only: a CPU tensor
    travels through this rank's GPU)."""
    if not _INFO.enabled:
        return values
    on = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else values.device
    reduced = values.to(on, copy=True)
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return (reduced / _INFO.world_size).to(values.device)


def cleanup() -> None:
    if _INFO.enabled and dist.is_initialized():
        dist.destroy_process_group()
