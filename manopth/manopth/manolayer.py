"""``ManoLayer``: the MANO hand model as a PyTorch module, with the original manopth interface.

The model file is read by :func:`pose2mesh.body_models.load_model_file` (no chumpy) and the
skinning maths is :func:`smplx.lbs.lbs`. Semantics kept from manopth (hassony2/manopth, as
vendored by Pose2Mesh):

- pose coefficients: ``rot`` root values (3 axis-angle, or 6 for ``root_rot_mode='rot6d'``)
  followed by ``ncomps`` PCA coefficients (``use_pca=True``) or 45 axis-angle values; the hand
  mean pose is added unless ``flat_hand_mean``; with ``use_pca=False`` and
  ``joint_rot_mode='rotmat'`` the input is (B, 16, 3, 3) rotation matrices, projected onto
  rotations, without the mean;
- outputs in **millimetres**: ``(verts (B, 778, 3), joints (B, 21, 3))``; joints are the 16
  posed MANO joints plus 5 fingertip vertices (right hand 745, 317, 444, 556, 673; left 745,
  317, 445, 556, 673), reordered to wrist, thumb 1-4, index 1-4, middle 1-4, ring 1-4,
  pinky 1-4; ``root_palm`` replaces the wrist by the palm centre (vertices 95 and 22);
- betas of one element (the default) or None mean the model's default betas; ``share_betas``
  averages the betas over the batch; a translation that is all zero (or None) means none, and
  the output is then centred on joint ``center_idx`` when set.

Like the Pose2Mesh copy, ``forward`` returns two tensors (newer manopth also returns the root
transform). Batched, differentiable, in the device and dtype of the inputs.
"""
from __future__ import annotations

import os
from typing import Optional, Tuple, Union

import numpy as np
import torch
from smplx.lbs import batch_rodrigues, lbs
from torch.nn import Module

from pose2mesh.body_models.model_file import find_model_file, load_model_file
from pose2mesh.body_models.placement import center_or_translate

__all__ = ["ManoLayer", "MANO_FILE_NAMES", "MANO_SOURCE"]

MANO_FILE_NAMES = {"right": ("MANO_RIGHT.pkl", "MANO_RIGHT.npz"), "left": ("MANO_LEFT.pkl", "MANO_LEFT.npz")}
MANO_SOURCE = ("Register and download MANO from https://mano.is.tue.mpg.de (the 'Models & Code' archive "
               "holds mano_v1_2/models/MANO_RIGHT.pkl), as the original Pose2Mesh README says, or use the "
               "synthetic hand (DATASET.body_model: 'synthetic').")
# order of the 16 joints + 5 tips in the output (wrist, thumb, index, middle, ring, pinky)
_JOINT_REORDER = [0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20]
_TIPS = {"right": [745, 317, 444, 556, 673], "left": [745, 317, 445, 556, 673]}
# manopth's default arguments, one tensor each, created once as in the original signature
_DEFAULT_BETAS = torch.zeros(1)
_DEFAULT_TRANS = torch.zeros(1)
_DEFAULT_ROOT_PALM = torch.Tensor([0])
_DEFAULT_SHARE_BETAS = torch.Tensor([0])


def _dense(array) -> np.ndarray:
    return np.asarray(array.toarray() if hasattr(array, "toarray") else array, dtype=np.float64)


def rotation_from_6d(x: torch.Tensor) -> torch.Tensor:
    """(B, 6) -> (B, 3, 3): Gram-Schmidt on two 3-vectors; the columns are x, y, z."""
    a, b = x[:, 0:3], x[:, 3:6]
    col_x = torch.nn.functional.normalize(a, dim=1)
    col_z = torch.nn.functional.normalize(torch.cross(col_x, b, dim=1), dim=1)
    col_y = torch.cross(col_z, col_x, dim=1)
    return torch.stack([col_x, col_y, col_z], dim=2)


def project_to_rotations(mats: torch.Tensor) -> torch.Tensor:
    """Nearest rotation matrices (..., 3, 3), by SVD with the determinant fixed to +1."""
    u, _, vh = torch.linalg.svd(mats)
    det = torch.det(u @ vh)
    fix = torch.ones_like(u[..., 0, :])
    fix[..., 2] = det
    return (u * fix.unsqueeze(-2)) @ vh


class ManoLayer(Module):
    """MANO as a module.

    Args:
        center_idx: output joint to centre on when no translation is given (None: no centring).
        flat_hand_mean: if True, zero pose coefficients are the flat hand, else the mean pose.
        ncomps: number of PCA components used when ``use_pca``.
        side: 'right' or 'left'.
        mano_root: folder holding MANO_RIGHT.pkl / MANO_LEFT.pkl.
        use_pca: pose given as PCA coefficients.
        root_rot_mode: 'axisang' (3 values) or 'rot6d' (6 values).
        joint_rot_mode: 'axisang' or 'rotmat' (only without PCA).
        robust_rot: not supported (a ValueError), kept in the signature for compatibility.
        model_path: an explicit model file, overriding ``mano_root`` and ``side``'s file name.
    """

    __constants__ = ["use_pca", "rot", "ncomps", "kintree_parents", "side", "center_idx", "joint_rot_mode"]

    def __init__(self, center_idx: Optional[int] = None, flat_hand_mean: bool = True, ncomps: int = 6,
                 side: str = "right", mano_root: Union[str, os.PathLike] = "mano/models", use_pca: bool = True,
                 root_rot_mode: str = "axisang", joint_rot_mode: str = "axisang", robust_rot: bool = False,
                 model_path: Optional[Union[str, os.PathLike]] = None) -> None:
        super().__init__()
        if side not in MANO_FILE_NAMES:
            raise ValueError(f"unknown MANO side {side!r} (expected right or left)")
        if root_rot_mode not in ("axisang", "rot6d"):
            raise ValueError(f"unknown root_rot_mode {root_rot_mode!r} (expected axisang or rot6d)")
        if joint_rot_mode not in ("axisang", "rotmat"):
            raise ValueError(f"unknown joint_rot_mode {joint_rot_mode!r} (expected axisang or rotmat)")
        if robust_rot:
            raise ValueError("robust_rot=True is not supported by this ManoLayer")
        self.center_idx = center_idx
        self.robust_rot = robust_rot
        self.rot = 3 if root_rot_mode == "axisang" else 6
        self.flat_hand_mean = flat_hand_mean
        self.side = side
        self.use_pca = use_pca
        self.joint_rot_mode = joint_rot_mode
        self.root_rot_mode = root_rot_mode
        self.ncomps = ncomps if use_pca else 45

        if model_path is None:
            model_path = find_model_file(mano_root, MANO_FILE_NAMES[side], f"MANO {side} hand model", MANO_SOURCE)
        self.mano_path = str(model_path)
        smpl_data = load_model_file(model_path)
        self.smpl_data = smpl_data

        shapedirs = _dense(smpl_data["shapedirs"])
        betas = smpl_data.get("betas")
        betas = np.zeros(shapedirs.shape[-1]) if betas is None else _dense(betas).reshape(-1)
        f32 = torch.float32
        self.register_buffer("th_betas", torch.tensor(betas, dtype=f32).unsqueeze(0))
        self.register_buffer("th_shapedirs", torch.tensor(shapedirs, dtype=f32))
        self.register_buffer("th_posedirs", torch.tensor(_dense(smpl_data["posedirs"]), dtype=f32))
        self.register_buffer("th_v_template", torch.tensor(_dense(smpl_data["v_template"]), dtype=f32).unsqueeze(0))
        self.register_buffer("th_J_regressor", torch.tensor(_dense(smpl_data["J_regressor"]), dtype=f32))
        self.register_buffer("th_weights", torch.tensor(_dense(smpl_data["weights"]), dtype=f32))
        self.register_buffer("th_faces", torch.tensor(np.asarray(smpl_data["f"]).astype(np.int64)))

        hands_components = _dense(smpl_data["hands_components"])
        hands_mean = np.zeros(hands_components.shape[1]) if flat_hand_mean else _dense(smpl_data["hands_mean"])
        th_hands_mean = torch.tensor(hands_mean, dtype=f32).unsqueeze(0)
        if self.use_pca or self.joint_rot_mode == "axisang":
            self.register_buffer("th_hands_mean", th_hands_mean)
            self.register_buffer("th_comps", torch.tensor(hands_components, dtype=f32))
            self.register_buffer("th_selected_comps", torch.tensor(hands_components[:ncomps], dtype=f32))
        else:
            self.register_buffer("th_hands_mean_rotmat", batch_rodrigues(th_hands_mean.view(15, 3)).reshape(15, 3, 3))

        self.kintree_table = np.asarray(smpl_data["kintree_table"])
        parents = [int(p) for p in self.kintree_table[0].tolist()]
        parents[0] = -1  # the files store 2**32 - 1 for "no parent"
        self.kintree_parents = parents
        self.register_buffer("th_parents", torch.tensor(parents, dtype=torch.long), persistent=False)

    def _rotations(self, th_pose_coeffs: torch.Tensor) -> torch.Tensor:
        """(B, 16, 3, 3) joint rotations (root first) from the pose coefficients."""
        batch_size = th_pose_coeffs.shape[0]
        dtype = th_pose_coeffs.dtype
        if self.use_pca or self.joint_rot_mode == "axisang":
            hand = th_pose_coeffs[:, self.rot:self.rot + self.ncomps]
            if self.use_pca:
                hand = hand.mm(self.th_selected_comps.to(dtype))
            hand = self.th_hands_mean.to(dtype) + hand
            hand_rots = batch_rodrigues(hand.reshape(-1, 3)).view(batch_size, 15, 3, 3)
            if self.root_rot_mode == "axisang":
                root = batch_rodrigues(th_pose_coeffs[:, :3]).view(batch_size, 1, 3, 3)
            else:
                root = rotation_from_6d(th_pose_coeffs[:, :6]).unsqueeze(1)
            return torch.cat([root, hand_rots], dim=1)
        if th_pose_coeffs.dim() != 4 or tuple(th_pose_coeffs.shape[1:]) != (16, 3, 3):
            raise ValueError("with use_pca=False and joint_rot_mode='rotmat' the pose must be (B, 16, 3, 3) "
                             f"rotation matrices, got {tuple(th_pose_coeffs.shape)}")
        return project_to_rotations(th_pose_coeffs)

    def forward(self, th_pose_coeffs: torch.Tensor, th_betas: Optional[torch.Tensor] = _DEFAULT_BETAS,
                th_trans: Optional[torch.Tensor] = _DEFAULT_TRANS, root_palm: torch.Tensor = _DEFAULT_ROOT_PALM,
                share_betas: torch.Tensor = _DEFAULT_SHARE_BETAS) -> Tuple[torch.Tensor, torch.Tensor]:
        """Pose and shape the hand.

        Args:
            th_pose_coeffs: (B, rot + ncomps) or (B, 16, 3, 3) (see the class docstring).
            th_betas: (B, 10) shape; a single element or None: the model's default betas.
            th_trans: (B, 3) translation in metres; all zero or None: none (centring on
                ``center_idx`` if set).
            root_palm: truthy: the first joint is the palm centre instead of the wrist.
            share_betas: truthy: use the batch mean of the betas for every sample.
        Returns:
            verts (B, 778, 3) and joints (B, 21, 3), in millimetres.
        """
        dtype, device = th_pose_coeffs.dtype, th_pose_coeffs.device
        batch_size = th_pose_coeffs.shape[0]

        def buf(t: torch.Tensor) -> torch.Tensor:
            return t.to(device=device, dtype=dtype)

        rot_mats = self._rotations(th_pose_coeffs)
        if th_betas is None or th_betas.numel() == 1:
            betas = buf(self.th_betas).expand(batch_size, -1)
        else:
            betas = th_betas.to(dtype).reshape(th_betas.shape[0], -1)
            if bool(share_betas):
                betas = betas.mean(0, keepdim=True)
            betas = betas.expand(batch_size, -1)
        posedirs = buf(self.th_posedirs).reshape(-1, self.th_posedirs.shape[-1]).t()
        verts, joints = lbs(betas, rot_mats, buf(self.th_v_template)[0], buf(self.th_shapedirs)[..., :betas.shape[1]],
                            posedirs, buf(self.th_J_regressor), self.th_parents.to(device), buf(self.th_weights),
                            pose2rot=False)
        if bool(root_palm):
            palm = (verts[:, 95] + verts[:, 22]).unsqueeze(1) / 2
            joints = torch.cat([palm, joints[:, 1:]], 1)
        joints = torch.cat([joints, verts[:, _TIPS[self.side]]], 1)[:, _JOINT_REORDER]

        verts, joints = center_or_translate(verts, joints, th_trans, self.center_idx)
        return verts * 1000, joints * 1000

    def extra_repr(self) -> str:
        return (f"side={self.side}, model_path={self.mano_path}, use_pca={self.use_pca}, ncomps={self.ncomps}, "
                f"flat_hand_mean={self.flat_hand_mean}, root_rot_mode={self.root_rot_mode}, "
                f"center_idx={self.center_idx}")
