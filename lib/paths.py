"""Where things live: the repository's folders, resolved once from this file's location.

The layout is the original release's, so downloaded data and model files go where its README
said. ``POSE2MESH_ROOT`` overrides the root (tests point it at a temporary folder).
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["repo_root", "data_dir", "smpl_model_dir", "mano_model_dir", "cache_dir", "experiment_dir"]


def repo_root() -> Path:
    env = os.environ.get("POSE2MESH_ROOT")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """``data/``: datasets, detector outputs and joint regressors (original layout)."""
    return Path(os.environ.get("POSE2MESH_DATA", repo_root() / "data"))


def smpl_model_dir() -> Path:
    """Where the user's SMPL pickles go (the original's path)."""
    return Path(os.environ.get("POSE2MESH_SMPL_DIR", repo_root() / "smplpytorch" / "smplpytorch" / "native" / "models"))


def mano_model_dir() -> Path:
    """Where the user's MANO pickles go (the original's path)."""
    return Path(os.environ.get("POSE2MESH_MANO_DIR", repo_root() / "manopth" / "mano" / "models"))


def cache_dir() -> Path:
    """Generated files: the synthetic body and hand, cached coarse graphs. Not committed."""
    return Path(os.environ.get("POSE2MESH_CACHE", repo_root() / ".cache"))


def experiment_dir() -> Path:
    return repo_root() / "experiment"
