"""The one device switch: chosen in the entry point, passed down; one helper moves batches."""
from __future__ import annotations

import logging
import os
from typing import Any, List, Optional, Tuple, Union

import torch

from .errors import Pose2MeshError

__all__ = ["DeviceError", "DeviceSpec", "parse_gpu_arg", "select_device", "move_to"]

log = logging.getLogger(__name__)

DeviceSpec = Union[None, str, int, torch.device]


class DeviceError(Pose2MeshError, ValueError):
    """A device request that cannot be met (a malformed ``--gpu``, a CUDA index not on this machine)."""


def parse_gpu_arg(gpu: Optional[str]) -> List[int]:
    """``--gpu`` as the original: comma-separated CUDA indices; ``cpu`` (or empty) for none."""
    if gpu is None or str(gpu).strip().lower() in ("", "cpu", "-1"):
        return []
    try:
        ids = [int(g) for g in str(gpu).split(",") if g.strip() != ""]
    except ValueError:
        raise DeviceError(f"--gpu {gpu!r}: expected CUDA device indices such as 0 or 0,1, or 'cpu'") from None
    if any(i < 0 for i in ids):
        raise DeviceError(f"--gpu {gpu!r}: device indices must be >= 0")
    return ids


def _under_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "LOCAL_RANK" in os.environ


def select_device(spec: DeviceSpec = None) -> Tuple[torch.device, List[int]]:
    """Pick the device once.

    Args:
        spec: ``--gpu``'s string (``"0"``, ``"0,1"``, ``"cpu"``), a device string (``"cuda"``,
            ``"cuda:1"``), an int, a ``torch.device``, or None: under ``torchrun`` this
            process's GPU (``LOCAL_RANK``) when CUDA is there, else the first GPU, else the CPU.
    Returns:
        (device, gpu_ids): the primary device, and the CUDA indices for DataParallel (empty on
        CPU; one index for a single GPU).
    Raises:
        DeviceError: malformed, or an index this machine does not have.
    """
    if spec is None:
        if not torch.cuda.is_available():
            return torch.device("cpu"), []
        index = int(os.environ["LOCAL_RANK"]) if _under_torchrun() else 0
        return torch.device("cuda", index), [index]
    if isinstance(spec, torch.device) or (isinstance(spec, str) and spec.strip().lower().startswith("cuda")):
        device = torch.device(spec)
        ids = [device.index if device.index is not None else 0]
    elif isinstance(spec, int):
        ids = [spec] if spec >= 0 else []
    else:
        ids = parse_gpu_arg(spec)
    if not ids or (isinstance(spec, torch.device) and spec.type == "cpu"):
        return torch.device("cpu"), []
    if not torch.cuda.is_available():
        log.warning("CUDA is not available: running on CPU (asked for %s)", spec)
        return torch.device("cpu"), []
    count = torch.cuda.device_count()
    bad = [i for i in ids if i >= count]
    if bad:
        raise DeviceError(f"device {spec!r}: this machine has {count} CUDA device(s), no index {bad[0]}")
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
