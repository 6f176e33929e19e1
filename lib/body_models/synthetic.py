"""Generate (once) and cache the synthetic body and hand files in the official formats.

The files are written under ``<cache>/synthetic/`` with names that say what they are:

- ``SMPL_SYNTHETIC_NEUTRAL.pkl``: the body, an SMPL-format pickle (protocol 2, numpy arrays,
  ``J_regressor`` as a scipy CSC matrix) readable by our layer, by ``smplx`` and by the
  original smplpytorch;
- ``J_regressor_h36m_synthetic.npy`` (17 x 6890) and ``J_regressor_coco_synthetic.npy``
  (17 x 6890): the dataset regressors of the body, in the format of the original release's
  ``J_regressor_h36m_correct.npy`` and ``J_regressor_coco.npy``;
- ``MANO_SYNTHETIC_RIGHT.pkl``: the right hand, a MANO-format pickle.

A ``VERSION`` stamp holds :data:`GENERATOR_VERSION`; files from another version are
regenerated. Writes are atomic (temporary file, then rename), so concurrent processes (DDP
ranks) never read a half-written file.
"""
from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Dict, Optional, Union

import numpy as np

from .. import paths

__all__ = ["GENERATOR_VERSION", "SYNTHETIC_FILE_NAMES", "ensure_synthetic_models", "synthetic_dir"]

GENERATOR_VERSION = "4"
SYNTHETIC_FILE_NAMES = {
    "smpl": "SMPL_SYNTHETIC_NEUTRAL.pkl",
    "J_regressor_h36m": "J_regressor_h36m_synthetic.npy",
    "J_regressor_coco": "J_regressor_coco_synthetic.npy",
    "mano": "MANO_SYNTHETIC_RIGHT.pkl",
}


def synthetic_dir(cache_dir: Optional[Union[str, os.PathLike]] = None) -> Path:
    return Path(cache_dir if cache_dir is not None else paths.cache_dir()) / "synthetic"


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _stamp(directory: Path, key: str) -> Path:
    return directory / f"VERSION_{key}"


def _is_current(directory: Path, key: str, names) -> bool:
    stamp = _stamp(directory, key)
    if not stamp.is_file() or stamp.read_text().strip() != GENERATOR_VERSION:
        return False
    return all((directory / name).is_file() for name in names)


def _write_body(directory: Path) -> None:
    from .synthetic_body import build_synthetic_body

    data = build_synthetic_body()
    h36m = data.pop("J_regressor_h36m")
    coco = data.pop("J_regressor_coco")
    assert isinstance(h36m, np.ndarray) and isinstance(coco, np.ndarray)
    data["synthetic"] = f"Pose2Mesh reimplementation synthetic body, generator version {GENERATOR_VERSION}; not SMPL"
    _atomic_write(directory / SYNTHETIC_FILE_NAMES["J_regressor_h36m"], lambda f: np.save(f, h36m))
    _atomic_write(directory / SYNTHETIC_FILE_NAMES["J_regressor_coco"], lambda f: np.save(f, coco))
    _atomic_write(directory / SYNTHETIC_FILE_NAMES["smpl"], lambda f: pickle.dump(data, f, protocol=2))


def _write_hand(directory: Path) -> None:
    from .synthetic_hand import build_synthetic_hand

    data = build_synthetic_hand()
    data["synthetic"] = f"Pose2Mesh reimplementation synthetic hand, generator version {GENERATOR_VERSION}; not MANO"
    _atomic_write(directory / SYNTHETIC_FILE_NAMES["mano"], lambda f: pickle.dump(data, f, protocol=2))


_GROUPS = {
    "body": (("smpl", "J_regressor_h36m", "J_regressor_coco"), _write_body),
    "hand": (("mano",), _write_hand),
}


def ensure_synthetic_models(cache_dir: Optional[Union[str, os.PathLike]] = None,
                            which=("body", "hand")) -> Dict[str, Path]:
    """Generate the synthetic model files unless current ones are cached; return their paths.

    Args:
        cache_dir: the cache folder (default ``paths.cache_dir()``); files go in its
            ``synthetic/`` subfolder.
        which: the groups to make sure of, ``'body'`` and/or ``'hand'``.
    Returns:
        ``{'smpl', 'J_regressor_h36m', 'J_regressor_coco', 'mano'}`` -> path (those of
        ``which``).
    """
    directory = synthetic_dir(cache_dir)
    out: Dict[str, Path] = {}
    for group in which:
        keys, writer = _GROUPS[group]
        names = [SYNTHETIC_FILE_NAMES[k] for k in keys]
        if not _is_current(directory, group, names):
            writer(directory)
            _atomic_write(_stamp(directory, group), lambda f: f.write(GENERATOR_VERSION.encode()))
        out.update({k: directory / SYNTHETIC_FILE_NAMES[k] for k in keys})
    return out
