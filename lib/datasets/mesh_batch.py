"""Body-model evaluation for dataset loaders, in batches.

The original loaders ran SMPL (or MANO) once per sample inside ``__getitem__``. Here a loader
describes its samples as parameter arrays and :class:`MeshBatcher` evaluates them many at a
time: all at load when the meshes fit in ``cache_mb`` (the cache is shared copy-on-write with
forked data-loader workers), otherwise on demand for the indices asked for (one sample from
``__getitem__``, a whole batch from ``__getitems__``).
"""
from __future__ import annotations

import logging
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from scipy.spatial.transform import Rotation

__all__ = ["MeshBatcher", "run_smpl", "run_mano", "rotate_root", "normalize_gender"]

log = logging.getLogger(__name__)

ComputeFn = Callable[[np.ndarray], Tuple[np.ndarray, np.ndarray]]

_GENDERS = {"neutral": "neutral", "n": "neutral", "male": "male", "m": "male", "female": "female", "f": "female"}


def normalize_gender(value) -> Optional[str]:
    """'male' / 'female' / 'neutral' from the spellings the annotation files use; None if unknown."""
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, np.ndarray):
        value = value.item() if value.shape == () else None
    if not isinstance(value, str):
        return None
    return _GENDERS.get(value.strip().lower())


def rotate_root(pose: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Left-multiply each sample's root orientation (axis-angle, first 3 values) by ``R``.

    Args:
        pose: ``(B, 3K)`` axis-angle poses.
        R: ``(B, 3, 3)`` or ``(3, 3)`` rotations.
    Returns:
        a copy of ``pose`` with the root set to ``R @ root``.
    """
    pose = np.array(pose, dtype=np.float64, copy=True)
    R = np.broadcast_to(np.asarray(R, dtype=np.float64), (len(pose), 3, 3))
    root = Rotation.from_rotvec(pose[:, :3]).as_matrix()
    pose[:, :3] = Rotation.from_matrix(R @ root).as_rotvec()
    return pose


def _layer_forward(layer, pose: np.ndarray, shape: np.ndarray, trans: Optional[np.ndarray]):
    with torch.no_grad():
        args = [torch.as_tensor(pose, dtype=torch.float32), torch.as_tensor(shape, dtype=torch.float32)]
        if trans is not None:
            args.append(torch.as_tensor(trans, dtype=torch.float32))
        verts, joints = layer(*args)
    return verts.cpu().numpy().astype(np.float32), joints.cpu().numpy().astype(np.float32)


def run_smpl(mesh_model, pose: np.ndarray, shape: np.ndarray, trans: Optional[np.ndarray] = None,
             genders: Optional[Sequence[str]] = None) -> Tuple[np.ndarray, np.ndarray]:
    """SMPL vertices and joints in millimetres for a batch, one layer call per gender.

    Args:
        mesh_model: a :class:`pose2mesh.body_models.SMPL` (its ``layer[gender]`` is an
            smplpytorch ``SMPL_Layer``, outputs in metres).
        pose: ``(B, 72)``; shape: ``(B, 10)``; trans: ``(B, 3)`` metres or None.
        genders: ``B`` of 'neutral' / 'male' / 'female' (None: all neutral).
    Returns:
        vertices ``(B, V, 3)`` and joints ``(B, 24, 3)``, float32, mm.
    """
    n = len(pose)
    gender_of = np.asarray(["neutral"] * n if genders is None else list(genders))
    verts_out: Optional[np.ndarray] = None
    joints_out: Optional[np.ndarray] = None
    for gender in np.unique(gender_of):
        sel = np.nonzero(gender_of == gender)[0]
        verts, joints = _layer_forward(mesh_model.layer[str(gender)], pose[sel], shape[sel],
                                       None if trans is None else trans[sel])
        if verts_out is None or joints_out is None:
            verts_out = np.empty((n,) + verts.shape[1:], dtype=np.float32)
            joints_out = np.empty((n,) + joints.shape[1:], dtype=np.float32)
        verts_out[sel], joints_out[sel] = verts, joints
    assert verts_out is not None and joints_out is not None, "run_smpl needs at least one sample"
    return verts_out * 1000.0, joints_out * 1000.0


def run_mano(mesh_model, pose: np.ndarray, shape: np.ndarray, trans: Optional[np.ndarray] = None
             ) -> Tuple[np.ndarray, np.ndarray]:
    """MANO vertices ``(B, 778, 3)`` and joints ``(B, 21, 3)`` in millimetres (the manopth layer
    already returns millimetres)."""
    return _layer_forward(mesh_model.layer, pose, shape, trans)


class MeshBatcher:
    """Camera-frame meshes (and model joints) of a dataset's samples, evaluated in batches.

    Args:
        num_samples: number of samples.
        compute: ``compute(indices) -> (verts (B, V, 3), joints (B, J, 3))`` in mm.
        vertex_num: V, to size the cache.
        cache_mb: evaluate everything at construction when the meshes take at most this much
            memory; 0 disables the cache.
        batch_size: samples per body-model call when filling the cache.
    """

    def __init__(self, num_samples: int, compute: ComputeFn, vertex_num: int, cache_mb: float = 2048,
                 batch_size: int = 512):
        self.num_samples = int(num_samples)
        self._compute = compute
        self._verts: Optional[np.ndarray] = None
        self._joints: Optional[np.ndarray] = None
        need_mb = self.num_samples * int(vertex_num) * 3 * 4 / 2 ** 20
        if self.num_samples and cache_mb and need_mb <= cache_mb:
            verts, joints = [], []
            for start in range(0, self.num_samples, batch_size):
                v, j = compute(np.arange(start, min(start + batch_size, self.num_samples)))
                verts.append(v)
                joints.append(j)
            self._verts, self._joints = np.concatenate(verts), np.concatenate(joints)
        elif self.num_samples:
            log.info("meshes of %d samples need %.0f MB (> cache_mb=%s): evaluated on demand",
                     self.num_samples, need_mb, cache_mb)

    @property
    def cached(self) -> bool:
        return self._verts is not None

    def get(self, indices: Union[Sequence[int], np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
        """Vertices ``(B, V, 3)`` and joints ``(B, J, 3)`` (mm) of the samples ``indices``."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if self._verts is not None and self._joints is not None:
            return self._verts[indices], self._joints[indices]
        return self._compute(indices)

    def stats(self) -> Dict[str, object]:
        return {"samples": self.num_samples, "cached": self.cached}
