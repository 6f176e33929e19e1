"""Checkpoints in the original release's ``.pth.tar`` format, written atomically, read safely.

Format (the original's ``main/train.py``)::

    {'epoch': int, 'model_state_dict': OrderedDict, 'optim_state_dict': dict,
     'scheduler_state_dict': dict, 'train_log': [float, ...],
     'test_log': {'surface': [...], 'joint': [...]}}

Extra keys are allowed. Files are read with ``torch.load(weights_only=True)``: nothing but
tensors and plain data is unpickled. The original's files need exactly these extra globals:
its ``test_log`` holds NumPy scalars (the per-epoch errors are sums of ``np.mean`` results), which
pickle as ``numpy.core.multiarray.scalar`` (``numpy._core.multiarray.scalar`` under NumPy 2)
applied to a ``numpy.dtype`` whose state builds a ``Float32DType`` / ``Float64DType``. The
scheduler's ``collections.Counter`` milestones, ``OrderedDict`` and ``_codecs.encode`` (bytes in
protocol 2) are allowed by torch already.
"""
from __future__ import annotations

import os
import pickle
import re
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Tuple, Union

import numpy as np
import torch
from torch import nn

from .errors import OutputError, Pose2MeshError

__all__ = ["CheckpointError", "LoadResult", "CHECKPOINT_KEYS", "SAFE_GLOBALS", "resolve_weights",
           "checkpoint_candidates", "find_run_config", "newest_run_checkpoint",
           "save_checkpoint", "load_checkpoint", "check_resumable", "load_model_weights", "strip_module_prefix"]

CHECKPOINT_KEYS = ("epoch", "model_state_dict", "optim_state_dict", "scheduler_state_dict", "train_log", "test_log")


class CheckpointError(Pose2MeshError, ValueError):
    """A checkpoint file that is missing, damaged, foreign, or does not fit the model."""


def _numpy_scalar_constructor():
    core = getattr(np, "_core", None) or np.core
    return core.multiarray.scalar


_SCALAR = _numpy_scalar_constructor()
# (object, the dotted name a pickle may call it by), typed as torch.serialization.safe_globals takes them
SAFE_GLOBALS: List[Union[Callable[..., Any], Tuple[Callable[..., Any], str]]] = [
    (_SCALAR, "numpy.core.multiarray.scalar"),  # written by NumPy 1.x (the original's files)
    (_SCALAR, "numpy._core.multiarray.scalar"),  # written by NumPy 2
    (np.dtype, "numpy.dtype"),
]
if hasattr(np, "dtypes"):  # NumPy >= 1.25 builds dtypes as these classes
    SAFE_GLOBALS += [(np.dtypes.Float32DType, "numpy.dtypes.Float32DType"),
                     (np.dtypes.Float64DType, "numpy.dtypes.Float64DType")]


def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a temporary file in the same folder, flushed and
    fsynced, then renamed over ``path``. An interrupted write leaves the previous file intact.

    Args:
        path: the target file (e.g. ``.../checkpoint/checkpoint12.pth.tar``).
        state: a dict with at least ``'epoch'`` and ``'model_state_dict'`` (the original's six
            keys are expected; extra keys are allowed).

    Raises:
        OSError: the file cannot be written (disk full, read-only folder); the message names it,
            and no temporary file is left behind.
    """
    if not isinstance(state, Mapping) or "model_state_dict" not in state:
        raise CheckpointError("save_checkpoint: state must be a dict with a 'model_state_dict' key "
                              f"(the original's keys: {', '.join(CHECKPOINT_KEYS)})")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    except OSError as err:
        raise OutputError(err.errno, f"cannot write the checkpoint {path}: {err.strerror or err}") from err
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(dict(state), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(err, OSError):  # disk full, quota, I/O error: say which file, and that nothing is lost
            raise OutputError(err.errno, f"cannot write the checkpoint {path}: {err.strerror or err}; "
                                     "the checkpoints already written are intact") from err
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> Dict[str, Any]:
    """Read a checkpoint written by this package or by the original release.

    Returns:
        the checkpoint dict (``'model_state_dict'`` and whatever else was saved).

    Raises:
        CheckpointError: the file is missing, truncated or damaged, holds objects other than
            tensors and plain data, or is not a checkpoint dict with a ``'model_state_dict'``.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint {path} does not exist")
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} is not a file")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): an interrupted copy or download?")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS), warnings.catch_warnings():
            # a plain (non-torch) pickle makes torch warn about its protocol before failing
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        detail = _unpickler_detail(str(err))
        if "global" in detail.lower() or "Can only build" in detail:
            raise CheckpointError(f"checkpoint {path} holds objects other than tensors and plain data; "
                                  f"refusing to unpickle it ({detail})") from None
        raise CheckpointError(f"checkpoint {path} is damaged or not a PyTorch checkpoint ({detail})") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, AttributeError, TypeError,
            IndexError, KeyError) as err:
        raise CheckpointError(f"checkpoint {path} is truncated, damaged or not a PyTorch checkpoint "
                              f"({type(err).__name__}: {_first_line(err)})") from None
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path} is not a Pose2Mesh checkpoint: it holds a {type(obj).__name__}, "
                              f"expected a dict with the keys {', '.join(CHECKPOINT_KEYS)}")
    if "model_state_dict" not in obj or not isinstance(obj["model_state_dict"], Mapping):
        found = ", ".join(map(str, list(obj)[:8])) + (", ..." if len(obj) > 8 else "")
        raise CheckpointError(f"{path} is not a Pose2Mesh checkpoint: no 'model_state_dict' "
                              f"(keys found: {found or 'none'})")
    return dict(obj)


def check_resumable(state: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Raise :class:`CheckpointError` unless ``state`` holds what continuing training needs:
    the epoch, the weights, and the optimizer and scheduler states (a weights-only file, as
    some tools write, can be tested but not resumed)."""
    missing = [k for k in ("epoch", "model_state_dict", "optim_state_dict", "scheduler_state_dict") if k not in state]
    optim = state.get("optim_state_dict")
    if "optim_state_dict" not in missing and not (isinstance(optim, Mapping) and "param_groups" in optim):
        missing.append("optim_state_dict (it is empty)")
    if "epoch" not in missing and not isinstance(state["epoch"], (int, np.integer)):
        missing.append(f"an integer epoch (found {state['epoch']!r})")
    if missing:
        raise CheckpointError(f"checkpoint {os.fspath(path)} cannot resume training: it lacks {', '.join(missing)} "
                              "(weights only? test it with main/test.py --weights, or start a new run)")


def _unpickler_detail(msg: str) -> str:
    """The one informative line of torch's weights-only error (which also advises
    ``weights_only=False``: not for files one does not trust)."""
    # "Unsupported global: GLOBAL m.f was not an allowed global", or, for a blocked module,
    # "Trying to load unsupported GLOBAL posix.system whose module posix is blocked"
    match = re.search(r"unsupported global:?(?: GLOBAL)? (\S+)", msg, flags=re.IGNORECASE)
    if match:
        return f"unsupported global {match.group(1)}"
    lines = [line.strip() for line in msg.splitlines()
             if line.strip() and not line.strip().startswith(("Weights only load failed", "Check the documentation"))]
    for i, line in enumerate(lines):
        if line.startswith("Can only build"):
            return line
        if line.endswith("WeightsUnpickler error:") and i + 1 < len(lines):
            return lines[i + 1]
        if "WeightsUnpickler error:" in line:
            return line.split("WeightsUnpickler error:", 1)[1].strip()
    return lines[0] if lines else "unreadable pickle"


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    if not text:
        return type(err).__name__
    first = text.splitlines()[0]
    return first.split(". ")[0][:200]


def strip_module_prefix(state_dict: Mapping[str, Any]) -> Dict[str, Any]:
    """Drop the ``module.`` prefix that (Distributed)DataParallel adds to every key."""
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state_dict.items()}


# (key, checkpoint shape or the checkpoint value's type name, model shape)
Mismatch = Tuple[str, Union[Tuple[int, ...], str], Tuple[int, ...]]


class LoadResult(NamedTuple):
    missing_keys: List[str]
    unexpected_keys: List[str]
    mismatched_keys: List[Mismatch]


def load_model_weights(model: nn.Module, state_dict_or_checkpoint: Mapping[str, Any],
                       strict: bool = True) -> LoadResult:
    """Load weights into ``model`` (unwrapping DataParallel/DDP), from a state_dict or a
    checkpoint dict (its ``'model_state_dict'``), with any ``module.`` prefix stripped.

    Args:
        strict: every key must match in name and shape; otherwise keys with matching names and
            shapes are loaded and the rest are reported in the result.

    Raises:
        CheckpointError: (strict) listing the missing, unexpected and mis-shaped keys.
    """
    if not isinstance(state_dict_or_checkpoint, Mapping):
        raise CheckpointError("expected a state_dict or a checkpoint dict, "
                              f"got {type(state_dict_or_checkpoint).__name__}")
    sd = state_dict_or_checkpoint
    if "model_state_dict" in sd and isinstance(sd["model_state_dict"], Mapping):
        sd = sd["model_state_dict"]
    sd = strip_module_prefix(sd)
    target = model.module if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)) else model
    own = target.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    mismatched: List[Mismatch] = []
    for k, v in sd.items():
        if k in own and (not torch.is_tensor(v) or tuple(v.shape) != tuple(own[k].shape)):
            shape = tuple(v.shape) if torch.is_tensor(v) else type(v).__name__
            mismatched.append((k, shape, tuple(own[k].shape)))
    result = LoadResult(missing, unexpected, mismatched)
    if strict and (missing or unexpected or mismatched):
        raise CheckpointError(_mismatch_message(type(target).__name__, result))
    bad = {k for k, _, _ in mismatched}
    target.load_state_dict({k: v for k, v in sd.items() if k in own and k not in bad}, strict=strict)
    return result


def _mismatch_message(model_name: str, result: LoadResult, limit: int = 20) -> str:
    def listing(items):
        shown = ", ".join(items[:limit])
        return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")

    lines = [f"the weights do not fit {model_name}:"]
    if result.missing_keys:
        lines.append(f"  missing from the checkpoint ({len(result.missing_keys)}): {listing(result.missing_keys)}")
    if result.unexpected_keys:
        lines.append(f"  not in the model ({len(result.unexpected_keys)}): {listing(result.unexpected_keys)}")
    if result.mismatched_keys:
        items = [f"{k} checkpoint {list(a) if isinstance(a, tuple) else a} vs model {list(b)}"
                 for k, a, b in result.mismatched_keys]
        lines.append(f"  different shapes ({len(items)}): {listing(items)}")
    lines.append("  (a PoseNet checkpoint has PoseNet keys without prefix; a Pose2Mesh checkpoint has "
                 "pose_lifter.* and pose2mesh.*; the joint set and graph levels must match the training run)")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- finding weights
_NUMBERED = re.compile(r"^checkpoint(\d+)\.pth\.tar$")


def checkpoint_candidates(folder: str | os.PathLike) -> List[Path]:
    """The checkpoints of a run's ``checkpoint/`` folder, newest first: ``final.pth.tar``, then
    ``checkpoint<N>.pth.tar`` by decreasing N."""
    folder = Path(folder)
    numbered = sorted(((int(m.group(1)), p) for p in folder.glob("checkpoint*.pth.tar")
                       if (m := _NUMBERED.match(p.name))), reverse=True)
    final = folder / "final.pth.tar"
    return ([final] if final.is_file() else []) + [p for _, p in numbered]


def resolve_weights(path: str | os.PathLike, prefer: str = "final") -> Path:
    """The one resolver of weights: a checkpoint file, a run's ``checkpoint/`` folder or the run
    folder itself -> one ``.pth.tar`` file.

    In a folder, ``prefer="final"`` takes ``final.pth.tar``, else ``best.pth.tar``;
    ``prefer="best"`` the other way round (the original loaded PoseNet's best and Pose2Mesh's
    final); else the newest ``checkpoint<N>.pth.tar``.

    Raises:
        CheckpointError: nothing there, or a folder without a checkpoint.
    """
    if prefer not in ("final", "best"):
        raise ValueError(f"resolve_weights: prefer must be 'final' or 'best', got {prefer!r}")
    p = Path(path)
    if p.is_file():
        return p
    if p.is_dir():
        folder = p / "checkpoint" if (p / "checkpoint").is_dir() else p
        order = ("final.pth.tar", "best.pth.tar") if prefer == "final" else ("best.pth.tar", "final.pth.tar")
        for name in order:
            if (folder / name).is_file():
                return folder / name
        numbered = checkpoint_candidates(folder)
        if numbered:
            return numbered[0]
        raise CheckpointError(f"no final.pth.tar, best.pth.tar or checkpoint<N>.pth.tar in {folder}")
    raise CheckpointError(f"checkpoint {p} does not exist (download the original release's weights into "
                          f"experiment/ as its README says, or train one with main/train.py)")


def find_run_config(weights: str | os.PathLike) -> Path | None:
    """The ``config.yaml`` a training run wrote beside its ``checkpoint/`` folder, if any."""
    weights = Path(weights)
    for folder in (weights.parent, weights.parent.parent) if weights.is_file() else (weights, weights.parent):
        if (folder / "config.yaml").is_file():
            return folder / "config.yaml"
    return None


def newest_run_checkpoint(experiment_root: str | os.PathLike) -> Path | None:
    """The newest checkpoint of the newest run folder under ``experiment_root`` (searched two
    levels deep: ``exp_*/checkpoint`` and ``*/exp_*/checkpoint``), or None."""
    root = Path(experiment_root)
    if not root.is_dir():
        return None
    runs = [d for d in list(root.glob("exp_*")) + list(root.glob("*/exp_*"))
            if (d / "checkpoint").is_dir() and checkpoint_candidates(d / "checkpoint")]
    if not runs:
        return None
    newest = max(runs, key=lambda d: max(p.stat().st_mtime for p in checkpoint_candidates(d / "checkpoint")))
    return checkpoint_candidates(newest / "checkpoint")[0]
