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
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .. import paths
from ..coord_utils import cam2pixel
from ..joints import add_pelvis_and_neck, get_joint_set
from .common import PoseMeshDataset
from .errors import DatasetError
from .mesh_batch import MeshBatcher, run_smpl

__all__ = ["LoaderBase", "coco_regressor_19"]


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
    index_field = "annot_id"  # the ``db`` array with one entry per sample (its length is the dataset's)
    input_joint_sets: Tuple[str, ...] = ("human36", "coco")
    splits: Tuple[str, ...] = ("train", "test")
    body = "smpl"
    # set by each loader's __init__: the per-sample arrays, the meshes (None where a split has
    # none) and, for the loaders that read them, the 2D detections
    db: Dict[str, np.ndarray]
    meshes: Optional[MeshBatcher]
    detections: Optional[np.ndarray]

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

    def _set_body_regressors(self) -> None:
        """The Human3.6M and COCO joint sets (``h36m``, ``coco``) and their regressors
        (``reg_h36m``, ``reg_coco``) of the SMPL datasets."""
        self.h36m = get_joint_set("human36")
        self.coco = get_joint_set("coco")
        self.reg_h36m = self.regressor("human36")
        self.reg_coco = self.regressor("coco")

    def _mesh_batcher(self) -> MeshBatcher:
        """The meshes of all samples through :meth:`_compute_meshes` (cached when they fit)."""
        return MeshBatcher(len(self), self._compute_meshes, self.mesh_model.vertex_num, self.mesh_cache_mb)

    def _compute_meshes(self, idx: np.ndarray):
        """SMPL vertices and joints (mm) of samples ``idx`` from ``db`` 'pose' and 'shape', with
        'trans' (m) and 'gender' where the ``db`` has them."""
        db = self.db
        trans = db["trans"][idx] if "trans" in db else None
        genders = db["gender"][idx] if "gender" in db else None
        return run_smpl(self.mesh_model, db["pose"][idx], db["shape"][idx], trans, genders)

    def _regress_batch(self, indices: Sequence[int]):
        """The meshes of samples ``indices`` and the joints regressed from them.

        Returns:
            ``idx`` (int64), vertices ``(B, V, 3)``, COCO ``(B, 19, 3)`` and Human3.6M
            ``(B, 17, 3)`` joints in the meshes' frame, and the regression targets
            (:meth:`target_from_mesh`), all mm.
        """
        idx = np.asarray(indices, dtype=np.int64)
        assert self.meshes is not None, f"{self.name}: no meshes for this split"
        verts, _ = self.meshes.get(idx)
        coco_cam = np.matmul(self.reg_coco, verts)
        h36m_cam = np.matmul(self.reg_h36m, verts)
        return idx, verts, coco_cam, h36m_cam, self.target_from_mesh(verts)

    def _input_joints(self, verts: np.ndarray, coco_cam: np.ndarray,
                      h36m_cam: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One sample's input joints from its mesh ``(V, 3)`` and regressed ``(J, 3)`` joints.

        Returns:
            the joints of the input joint set (COCO or Human3.6M) as given, the same relative
            to the set's root, and the mesh relative to the Human3.6M pelvis.
        """
        joints, joint_set = (coco_cam, self.coco) if self.joint_set.name == "coco" else (h36m_cam, self.h36m)
        return joints, joints - joints[joint_set.root], verts - h36m_cam[self.h36m.root]

    def _model_joint_samples(self, idx: np.ndarray, draws: Optional[Sequence[int]] = None) -> List:
        """Samples whose input joints are the body model's own (SMPL for SURREAL, MANO for
        FreiHAND): camera-frame joints projected with ``db`` 'focal' / 'princpt', or the
        ``detections`` where loaded; lift and mesh relative to the model's root joint; the
        regression target the lifted joints when the target set is the model's, else regressed
        from the mesh."""
        assert self.meshes is not None, f"{self.name}: no meshes for this split"
        verts, joints = self.meshes.get(idx)
        use_model_joints = self.target_joint_set.name == self.body
        reg = None if use_model_joints else self.target_from_mesh(verts)
        rngs = self.sample_rngs(idx, draws)
        out = []
        for k, i in enumerate(idx):
            root = joints[k, 0]
            lift = joints[k] - root
            if self.detections is None:
                joint_img = cam2pixel(joints[k], self.db["focal"][i], self.db["princpt"][i])[:, :2]
                det = None
            else:
                joint_img = det = self.detections[i]
            out.append(self.assemble(rngs[k], joint_img, lift, mesh_mm=verts[k] - root,
                                     reg_pose3d=lift if reg is None else reg[k], detection=det))
        return out

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
    def __len__(self) -> int:
        return len(self.db[self.index_field])

    def __getitem__(self, idx: int):
        n = len(self)
        if not -n <= int(idx) < n:
            raise IndexError(f"{self.name}: index {idx} out of range for {n} samples")
        return self._samples([int(idx) % n])[0]

    def __getitems__(self, indices: Sequence[int]) -> List:
        """Several samples at once (the body model runs once for all of them)."""
        return self._samples([int(i) for i in indices])

    def draw_items(self, indices: Sequence[int], draws: Sequence[int]) -> List:
        """Several samples at once, their random streams keyed on ``draws`` (the mixer's
        positions, see :meth:`~pose2mesh.datasets.common.PoseMeshDataset.sample_rng`)."""
        n = len(self)
        for i in indices:
            if not 0 <= int(i) < n:
                raise IndexError(f"{self.name}: index {i} out of range for {n} samples")
        return self._samples([int(i) for i in indices], [int(d) for d in draws])

    def _samples(self, indices: List[int], draws: Optional[List[int]] = None) -> List:
        """The samples ``indices``; random streams keyed on ``draws`` when given (else on the index)."""
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
