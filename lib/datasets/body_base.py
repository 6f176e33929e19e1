"""What the seven dataset loaders share on top of :class:`~pose2mesh.datasets.common.PoseMeshDataset`.

- where the files are (``data_dir / <Name>``, the original's layout) and the body model
  (built from ``DATASET.body_model`` when none is passed);
- the joint regressors (``coco`` with pelvis and neck rows added);
- batched access: a loader implements :meth:`LoaderBase._samples` for a list of indices, so
  that the body model runs once per batch (``__getitems__``, used by ``torch.utils.data``'s
  fetcher) or once at load (:class:`~pose2mesh.datasets.mesh_batch.MeshBatcher`);
- the check that the configured input joint set is one the dataset has.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .. import paths
from ..joints import get_joint_set
from .common import PoseMeshDataset
from .errors import DatasetError

__all__ = ["LoaderBase", "add_pelvis_and_neck", "coco_regressor_19"]


def add_pelvis_and_neck(joints: np.ndarray) -> np.ndarray:
    """Append pelvis and neck (means of the hips and of the shoulders) to 17 COCO joints.

    Args:
        joints: ``(..., 17, C)``.
    Returns:
        ``(..., 19, C)`` in the ``coco`` joint set's order.
    """
    coco = get_joint_set("coco")
    lhip, rhip = coco.index("L_Hip"), coco.index("R_Hip")
    lsho, rsho = coco.index("L_Shoulder"), coco.index("R_Shoulder")
    pelvis = (joints[..., lhip, :] + joints[..., rhip, :]) * 0.5
    neck = (joints[..., lsho, :] + joints[..., rsho, :]) * 0.5
    return np.concatenate([joints, pelvis[..., None, :], neck[..., None, :]], axis=-2)


def coco_regressor_19(regressor: np.ndarray) -> np.ndarray:
    """The 19-row COCO regressor: the 17 rows of ``J_regressor_coco.npy`` plus pelvis and neck
    rows (regression is linear, so this equals adding the two joints afterwards)."""
    regressor = np.asarray(regressor, dtype=np.float32)
    if regressor.shape[0] == 19:
        return regressor
    if regressor.shape[0] != 17:
        raise DatasetError(f"the COCO joint regressor has {regressor.shape[0]} rows, expected 17")
    return add_pelvis_and_neck(regressor).astype(np.float32)  # rows: joints, columns: vertices


class LoaderBase(PoseMeshDataset):
    """Files, body model, regressors and batched access shared by the loaders.

    Args:
        data_split: 'train' or 'test'.
        cfg: the run's :class:`pose2mesh.config.Config`.
        data_dir: the ``data/`` folder (default :func:`pose2mesh.paths.data_dir`).
        mesh_model: ``SMPL`` / ``MANO`` of :mod:`pose2mesh.body_models`; built from
            ``cfg.DATASET.body_model`` when None.
        seed: base of the per-sample random streams (augmentation, synthesized errors).
        mesh_cache_mb: evaluate all meshes at load when they fit in this many MB.
    """

    name = "dataset"
    input_joint_sets: Tuple[str, ...] = ("human36", "coco")
    splits: Tuple[str, ...] = ("train", "test")
    body = "smpl"

    def __init__(self, data_split: str, cfg, data_dir: Optional[os.PathLike] = None, mesh_model=None,
                 seed: int = 0, mesh_cache_mb: float = 2048):
        if data_split not in self.splits:
            raise ValueError(f"{self.name} has no '{data_split}' split (it has: {', '.join(self.splits)})")
        if cfg.DATASET.input_joint_set not in self.input_joint_sets:
            raise ValueError(f"{self.name} gives no '{cfg.DATASET.input_joint_set}' input joints "
                             f"(DATASET.input_joint_set must be one of {', '.join(self.input_joint_sets)})")
        self.data_dir = Path(data_dir) if data_dir is not None else Path(paths.data_dir())
        if mesh_model is None:
            mesh_model = self._default_mesh_model(cfg)
        super().__init__(data_split, cfg, mesh_model=mesh_model, seed=seed)
        self.data_split = data_split
        self.cfg = cfg
        self.root_dir = self.data_dir / self.name
        self.mesh_cache_mb = mesh_cache_mb
        self._target_regressor: Optional[np.ndarray] = None

    def _default_mesh_model(self, cfg):
        from ..body_models import MANO, SMPL

        synthetic = cfg.DATASET.body_model == "synthetic"
        if self.body == "mano":
            return MANO(synthetic=synthetic)
        # the official regressors live in this data folder (data/Human36M, data/COCO)
        return SMPL(synthetic=synthetic, data_dir=self.data_dir)

    def regressor(self, name: str) -> np.ndarray:
        """``(J, V)`` float32 regressor of a joint set from the mesh model (``coco``: 19 rows)."""
        reg = np.asarray(self.mesh_model.joint_regressor(name), dtype=np.float32)
        return coco_regressor_19(reg) if name == "coco" else reg

    def target_from_mesh(self, verts: np.ndarray) -> np.ndarray:
        """The regression target of ``DATASET.target_joint_set`` from meshes ``(B, V, 3)`` (mm):
        the set's joints regressed from the mesh, relative to the set's root, ``(B, J_t, 3)``."""
        if self._target_regressor is None:
            self._target_regressor = self.regressor(self.target_joint_set.name)
        joints = np.matmul(self._target_regressor, verts)
        root = self.target_joint_set.root
        return joints - joints[:, root:root + 1]

    def _path(self, *parts: str) -> Path:
        return self.root_dir.joinpath(*parts)

    # the attributes the original's trainer read from a dataset
    @property
    def joint_num(self) -> int:
        return self.joint_set.num_joints

    @property
    def skeleton(self):
        return self.joint_set.skeleton

    @property
    def flip_pairs(self):
        return self.joint_set.flip_pairs

    # ---- batched access ----------------------------------------------------------------------
    def __getitem__(self, idx: int):
        n = len(self)
        if not -n <= int(idx) < n:
            raise IndexError(f"{self.name}: index {idx} out of range for {n} samples")
        return self._samples([int(idx) % n])[0]

    def __getitems__(self, indices: Sequence[int]) -> List:
        """Several samples at once (the body model runs once for all of them)."""
        return self._samples([int(i) for i in indices])

    def _samples(self, indices: List[int]) -> List:
        raise NotImplementedError

    # ---- evaluation helpers ------------------------------------------------------------------
    def result_rows(self, results: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        """The dataset rows of ``n`` results: ``results['index']`` when given (the trainer's
        order), else the first ``n`` rows."""
        rows = np.asarray(results["index"], dtype=np.int64).reshape(-1) if "index" in results else np.arange(n)
        if len(rows) != n:
            raise ValueError(f"{self.name}: {n} results but {len(rows)} indices")
        if n and (rows.min() < 0 or rows.max() >= len(self)):
            raise ValueError(f"{self.name}: result indices outside the dataset's {len(self)} samples")
        return rows
