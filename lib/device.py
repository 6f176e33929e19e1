"""The one device switch: chosen in the entry point, passed down; one helper moves batches."""
from __future__ import annotations

import logging
from typing import Any, List

import torch

__all__ = ["parse_gpu_arg", "select_device", "move_to"]

log = logging.getLogger(__name__)


def parse_gpu_arg(gpu: str | None) -> List[int]:
    """``--gpu`` as the original: comma-separated CUDA indices; ``cpu`` (or empty) for none."""
    if gpu is None or str(gpu).strip().lower() in ("", "cpu", "-1"):
        return []
    try:
        ids = [int(g) for g in str(gpu).split(",") if g.strip() != ""]
    except ValueError:
        raise ValueError(f"--gpu {gpu!r}: expected CUDA device indices such as 0 or 0,1, or 'cpu'") from None
    if any(i < 0 for i in ids):
        raise ValueError(f"--gpu {gpu!r}: device indices must be >= 0")
    return ids


def select_device(gpu: str | None) -> tuple[torch.device, List[int]]:
    """Pick the device once. Falls back to CPU, with one line saying so, without CUDA.

    Returns:
        (device, gpu_ids): the primary device, and the CUDA indices for DataParallel
        (empty on CPU).
    """
    ids = parse_gpu_arg(gpu)
    if not ids:
        return torch.device("cpu"), []
    if not torch.cuda.is_available():
        log.warning("CUDA is not available: running on CPU (asked for --gpu %s)", gpu)
        return torch.device("cpu"), []
    count = torch.cuda.device_count()
    bad = [i for i in ids if i >= count]
    if bad:
        raise ValueError(f"--gpu {gpu!r}: this machine has {count} CUDA device(s), no index {bad[0]}")
    return torch.device("cuda", ids[0]), ids


def move_to(obj: Any, device: torch.device) -> Any:
    """Move tensors (nested in dicts, lists, tuples) to ``device``; numpy arrays become tensors."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: move_to(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(move_to(v, device) for v in obj)
    return obj
