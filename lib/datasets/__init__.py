"""Datasets: one module per dataset, the shared pipeline (:mod:`.common`) and the mixer.

``DATASETS`` maps the names used in YAML (``DATASET.train_list`` / ``test_list``) to the loader
classes, written as ``(module, class)`` so that a loader's module (and its dependencies) is
imported only when that dataset is used; :func:`dataset_class` resolves a name and
:func:`build_dataset` constructs one. No ``eval`` of YAML strings.
"""
from __future__ import annotations

import importlib
from typing import Dict, Tuple

from .multiple import MultipleDatasets

__all__ = ["DATASETS", "dataset_class", "build_dataset", "MultipleDatasets"]

DATASETS: Dict[str, Tuple[str, str]] = {
    "Human36M": ("pose2mesh.datasets.human36m", "Human36M"),
    "PW3D": ("pose2mesh.datasets.pw3d", "PW3D"),
    "COCO": ("pose2mesh.datasets.coco", "COCO"),
    "MuCo": ("pose2mesh.datasets.muco", "MuCo"),
    "AMASS": ("pose2mesh.datasets.amass", "AMASS"),
    "SURREAL": ("pose2mesh.datasets.surreal", "SURREAL"),
    "FreiHAND": ("pose2mesh.datasets.freihand", "FreiHAND"),
    "Synthetic": ("pose2mesh.datasets.synthetic", "SyntheticDataset"),
}


def dataset_class(name: str):
    """The loader class of YAML dataset ``name``; a clear error for an unknown one."""
    try:
        module_name, class_name = DATASETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown dataset {name!r} (known datasets: {', '.join(DATASETS)})") from None
    return getattr(importlib.import_module(module_name), class_name)


def build_dataset(name: str, split: str, cfg, mesh_model=None):
    """Construct dataset ``name`` for ``split`` ('train' or 'test') from the configuration.

    Args:
        mesh_model: the run's SMPL / MANO model, shared by all datasets (each builds its own
            from ``DATASET.body_model`` when None).
    """
    return dataset_class(name)(split, cfg, mesh_model=mesh_model)

