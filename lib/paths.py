"""Where things live, the same whether the package is installed or used from a checkout.

- The *project root* holds the original release's layout (``data/``, ``experiment/``, the
  folders for the SMPL and MANO files). In a checkout of this repository it is the checkout
  (found from this file); for an installed package it is the current working directory, as the
  original's scripts assumed. ``POSE2MESH_ROOT`` sets it explicitly.
- Each folder can be moved on its own, by the config (``DATASET.data_dir``, ``smpl_dir``,
  ``mano_dir``, ``cache_dir``: applied by :func:`configure`) or by the environment
  (``POSE2MESH_DATA``, ``POSE2MESH_SMPL_DIR``, ``POSE2MESH_MANO_DIR``, ``POSE2MESH_CACHE``);
  the config wins, then the environment, then the defaults below.
- The cache (the generated synthetic body and hand, coarsened graphs) defaults to the user's
  cache folder (``$XDG_CACHE_HOME/pose2mesh``, else ``~/.cache/pose2mesh``), never into
  site-packages.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional

__all__ = ["repo_root", "is_checkout", "data_dir", "smpl_model_dir", "mano_model_dir", "cache_dir",
           "experiment_dir", "configure"]

_PACKAGE_PARENT = Path(__file__).resolve().parent.parent
_CONFIGURED: Dict[str, Path] = {}


def is_checkout() -> bool:
    """Whether the package runs from a checkout of this repository (editable or in place)."""
    return (_PACKAGE_PARENT / "setup.py").is_file() and (_PACKAGE_PARENT / "lib" / "paths.py").is_file()


def repo_root() -> Path:
    """The project root (see the module docstring)."""
    env = os.environ.get("POSE2MESH_ROOT")
    if env:
        return Path(env).resolve()
    return _PACKAGE_PARENT if is_checkout() else Path.cwd()


def _pick(key: str, env: str, default: Path) -> Path:
    if key in _CONFIGURED:
        return _CONFIGURED[key]
    value = os.environ.get(env)
    return Path(value) if value else default


def data_dir() -> Path:
    """``data/``: datasets, detector outputs and joint regressors (original layout)."""
    return _pick("data_dir", "POSE2MESH_DATA", repo_root() / "data")


def smpl_model_dir() -> Path:
    """Where the user's SMPL pickles go (the original's path)."""
    return _pick("smpl_dir", "POSE2MESH_SMPL_DIR", repo_root() / "smplpytorch" / "smplpytorch" / "native" / "models")


def mano_model_dir() -> Path:
    """Where the user's MANO pickles go (the original's path)."""
    return _pick("mano_dir", "POSE2MESH_MANO_DIR", repo_root() / "manopth" / "mano" / "models")


def cache_dir() -> Path:
    """Generated files: the synthetic body and hand, cached coarse graphs. Not committed."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    user_cache = Path(xdg) if xdg else Path.home() / ".cache"
    return _pick("cache_dir", "POSE2MESH_CACHE", user_cache / "pose2mesh")


def experiment_dir() -> Path:
    """``experiment/``: run folders, and the original release's weights."""
    return repo_root() / "experiment"


def configure(data_dir: Optional[str] = None, smpl_dir: Optional[str] = None, mano_dir: Optional[str] = None,
              cache_dir: Optional[str] = None) -> None:
    """Set folders from the config (empty or None leaves the environment / default in force)."""
    for key, value in (("data_dir", data_dir), ("smpl_dir", smpl_dir), ("mano_dir", mano_dir),
                       ("cache_dir", cache_dir)):
        if value:
            _CONFIGURED[key] = Path(value).expanduser()
        else:
            _CONFIGURED.pop(key, None)
