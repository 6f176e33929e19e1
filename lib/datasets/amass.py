"""AMASS: CMU, and BMLrub / BMLmovi for PoseNet (the original's ``data/AMASS/dataset.py``, class
AMASS_CMU, as of its last loader update).

Files (``data/AMASS/data/``, see ``data/AMASS/README.md``)::

    CMU/<subject>/<sequence>_poses.npz    AMASS SMPL+H archives: poses (T x 156), betas (16,), ...
    BMLrub/, BMLmovi/ (PoseNet only)      the same layout

Training only. The sub-dataset folders read are the original's (its final loader): those whose
name contains ``CMU`` in Pose2Mesh mode, and those containing ``CMU`` or ``BML`` (BMLrub,
BMLmovi) in PoseNet mode; matched without regard to case here, because the original README
lists the folder as ``cmu`` while its loader tested for ``CMU``. Frames are subsampled per
sub-dataset (CMU, 120 fps: every 60th frame; BMLrub, BMLmovi: every 10th). Each kept frame is
seen by the original's four virtual cameras: the rotations of the four Human3.6M cameras, the
body 10 m in front (``t = (0, 0, 10)`` m, applied after the rotation about the pelvis), focal
length 1500 and principal point (500, 500). The neutral body with the first 72 pose values
(body joints) and the first 10 shape values; no translation. No fitting check (the meshes are
the ground truth).
"""
from __future__ import annotations

import logging
import zipfile
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from ..coord_utils import cam2pixel
from .body_base import LoaderBase
from .errors import DatasetError
from .mesh_batch import run_smpl

__all__ = ["AMASS", "H36M_CAMERA_ROTATIONS", "sub_datasets", "sampling_ratio"]

log = logging.getLogger(__name__)

HINT = ("download the AMASS SMPL+H archives (CMU; BMLrub, BMLmovi for PoseNet) from https://amass.is.tue.mpg.de, "
        "see data/AMASS/README.md")

# the rotations of the four Human3.6M cameras (the original's virtual cameras)
H36M_CAMERA_ROTATIONS = np.array([
    [[-0.9153617, 0.40180838, 0.02574755], [0.05154812, 0.18037356, -0.9822465],
     [-0.39931902, -0.89778364, -0.18581952]],
    [[0.92816836, 0.37215385, 0.00224838], [0.08166409, -0.1977723, -0.9768404],
     [-0.36309022, 0.9068559, -0.2139576]],
    [[-0.91415495, -0.40277803, -0.04572295], [-0.04562341, 0.2143085, -0.97569996],
     [0.4027893, -0.8898549, -0.21428728]],
    [[0.91415626, -0.40060705, 0.06190599], [-0.05641001, -0.2769532, -0.9592262],
     [0.40141782, 0.8733905, -0.27577674]],
], dtype=np.float32)
CAMERA_T = np.array([0.0, 0.0, 10.0], dtype=np.float32)  # metres
FOCAL = np.array([1500.0, 1500.0], dtype=np.float32)
PRINCPT = np.array([500.0, 500.0], dtype=np.float32)


def sub_datasets(mode: str):
    """The name fragments of the sub-dataset folders read in ``mode`` (``MODEL.name``), as the
    original: CMU for Pose2Mesh, CMU and BML for PoseNet (lower case, matched case-insensitively)."""
    return ("cmu",) if mode == "pose2mesh_net" else ("cmu", "bml")


def sampling_ratio(sub_dataset: str) -> int:
    """The original's frame subsampling per AMASS sub-dataset (CMU: 120 fps -> 2 fps)."""
    return {"cmu": 60, "mpi_mosh": 10, "bmlrub": 10, "bmlmovi": 10}.get(sub_dataset.lower(), 5)


class AMASS(LoaderBase):
    """AMASS CMU with four virtual cameras (see the module docstring).

    Attributes:
        db: 'body' arrays ('pose' (B, 72), 'shape' (B, 10), 'source' file, 'frame') of the kept
            frames, and per sample 'body_idx' and 'cam_idx' (sample = body x camera).
    """

    name = "AMASS"
    index_field = "body_idx"
    splits = ("train",)
    input_joint_sets = ("coco", "human36")

    def __init__(self, data_split: str, cfg, data_dir=None, mesh_model=None, seed: int = 0,
                 mesh_cache_mb: float = 2048):
        super().__init__(data_split, cfg, data_dir, mesh_model, seed, mesh_cache_mb)
        self._set_body_regressors()
        self.db = self._load_sequences()
        self.meshes = self._mesh_batcher()

    def _load_sequences(self) -> Dict[str, np.ndarray]:
        base = self._path("data")
        if not base.is_dir():
            raise DatasetError(f"AMASS data folder not found: {base} ({HINT})")
        poses, shapes, sources, frames = [], [], [], []
        wanted = sub_datasets(self.mode)
        for sub in sorted(p for p in base.iterdir() if p.is_dir() and any(w in p.name.lower() for w in wanted)):
            ratio = sampling_ratio(sub.name)
            for path in sorted(sub.glob("*/*_poses.npz")):
                data = self._read_npz(path)
                keep = np.arange(0, len(data["poses"]), ratio)
                poses.append(data["poses"][keep, :72])
                shapes.append(np.repeat(data["betas"][None, :10], len(keep), axis=0))
                sources += [str(path)] * len(keep)
                frames.append(keep)
        if not poses:
            names = " or ".join(w.upper() for w in wanted)
            raise DatasetError(f"no AMASS {names} sequences (*/<sequence>_poses.npz) under {base}/<{names} folder> "
                               f"({HINT})")
        body = {"pose": np.concatenate(poses).astype(np.float32), "shape": np.concatenate(shapes).astype(np.float32),
                "source": np.array(sources), "frame": np.concatenate(frames)}
        n_cam = len(H36M_CAMERA_ROTATIONS)
        body["body_idx"] = np.repeat(np.arange(len(body["pose"])), n_cam)
        body["cam_idx"] = np.tile(np.arange(n_cam), len(body["pose"]))
        return body

    @staticmethod
    def _read_npz(path: Path) -> Dict[str, np.ndarray]:
        try:
            with np.load(path, allow_pickle=False) as npz:
                missing = [k for k in ("poses", "betas") if k not in npz.files]
                if missing:
                    raise DatasetError(f"{path}: missing field '{missing[0]}' (an AMASS *_poses.npz has poses, betas)")
                poses, betas = np.asarray(npz["poses"], dtype=np.float32), np.asarray(npz["betas"], dtype=np.float32)
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            if isinstance(exc, DatasetError):
                raise
            raise DatasetError(f"{path}: not a readable AMASS .npz archive ({exc})") from None
        if poses.ndim != 2 or poses.shape[1] < 72 or betas.reshape(-1).shape[0] < 10:
            raise DatasetError(f"{path}: field 'poses' must be T x 156 (>= 72) and 'betas' hold >= 10 values, "
                               f"got {poses.shape} and {betas.shape}")
        return {"poses": poses, "betas": betas.reshape(-1)}

    def _compute_meshes(self, idx: np.ndarray):
        """Each body once, then per camera ``R (X - J_root) + J_root + t``: the original's rotation
        of the root orientation by ``R`` (SMPL rotates about the pelvis joint) followed by ``+ t``."""
        db = self.db
        bodies, inverse = np.unique(db["body_idx"][idx], return_inverse=True)
        verts, joints = run_smpl(self.mesh_model, db["pose"][bodies], db["shape"][bodies])
        R = H36M_CAMERA_ROTATIONS[db["cam_idx"][idx]]
        root = joints[inverse, :1]
        t = CAMERA_T * 1000.0
        Rt = np.swapaxes(R, 1, 2)  # X R^T = (R X^T)^T, batched
        verts_cam = np.matmul(verts[inverse] - root, Rt) + root + t
        joints_cam = np.matmul(joints[inverse] - root, Rt) + root + t
        return verts_cam.astype(np.float32), joints_cam.astype(np.float32)

    def _samples(self, indices: List[int], draws: Optional[List[int]] = None) -> List:
        idx, verts, coco_cam, h36m_cam, reg = self._regress_batch(indices)
        rngs = self.sample_rngs(idx, draws)
        out = []
        for k, _i in enumerate(idx):
            joints, lift, mesh = self._input_joints(verts[k], coco_cam[k], h36m_cam[k])
            joint_img = cam2pixel(joints, FOCAL, PRINCPT)[:, :2]
            out.append(self.assemble(rngs[k], joint_img, lift, mesh_mm=mesh, reg_pose3d=reg[k]))
        return out
