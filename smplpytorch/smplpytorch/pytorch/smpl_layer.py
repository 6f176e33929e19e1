"""``SMPL_Layer``: the SMPL body model as a PyTorch module, with the original smplpytorch interface.

The model file is read by :func:`pose2mesh.body_models.load_model_file` (no chumpy, nothing but
arrays accepted) and the skinning maths is :func:`smplx.lbs.lbs`. Semantics kept from
smplpytorch (gulvarol/smplpytorch, as vendored by Pose2Mesh):

- ``forward(th_pose_axisang (B, 72), th_betas (B, 10), th_trans (B, 3))`` returns
  ``(verts (B, 6890, 3), joints (B, 24, 3))`` in metres; joints are the posed kinematic joints;
- betas that are all zero (or ``None``) mean the model's default betas (zeros);
- a translation that is all zero (or ``None``) means "no translation": the result is then
  centred on joint ``center_idx`` when that is set; otherwise the translation is added.

Batched (no Python loop over the batch), differentiable, and runs in the device and dtype of
its inputs.
"""
from __future__ import annotations

import os
from typing import Optional, Tuple, Union

import numpy as np
import torch
from smplx.lbs import lbs
from torch.nn import Module

from pose2mesh.body_models.model_file import find_model_file, load_model_file
from pose2mesh.body_models.placement import center_or_translate

__all__ = ["SMPL_Layer", "SMPL_FILE_NAMES", "SMPL_SOURCE"]

SMPL_FILE_NAMES = {
    "neutral": ("basicModel_neutral_lbs_10_207_0_v1.0.0.pkl", "SMPL_NEUTRAL.pkl", "SMPL_NEUTRAL.npz"),
    "male": ("basicModel_m_lbs_10_207_0_v1.0.0.pkl", "SMPL_MALE.pkl", "SMPL_MALE.npz"),
    "female": ("basicModel_f_lbs_10_207_0_v1.0.0.pkl", "SMPL_FEMALE.pkl", "SMPL_FEMALE.npz"),
}
SMPL_SOURCE = ("Register and download SMPL from https://smpl.is.tue.mpg.de (the neutral model comes "
               "with SMPLify at https://smplify.is.tue.mpg.de), as the original Pose2Mesh README says, "
               "or use the synthetic body (DATASET.body_model: 'synthetic').")
# smplpytorch's default arguments, one tensor each, created once as in the original signature
_DEFAULT_BETAS = torch.zeros(1)
_DEFAULT_TRANS = torch.zeros(1)


def _dense(array) -> np.ndarray:
    return np.asarray(array.toarray() if hasattr(array, "toarray") else array, dtype=np.float64)


class SMPL_Layer(Module):
    """SMPL as a module.

    Args:
        center_idx: joint to centre the output on when no translation is given (None: no centring).
        gender: 'neutral', 'male' or 'female'.
        model_root: folder holding the SMPL model files (official names, see ``SMPL_FILE_NAMES``).
        model_path: an explicit model file (``.pkl`` or ``.npz``); overrides ``gender``'s file name.
    """

    __constants__ = ["kintree_parents", "gender", "center_idx", "num_joints"]

    def __init__(self, center_idx: Optional[int] = None, gender: str = "neutral",
                 model_root: Union[str, os.PathLike] = "smpl/native/models",
                 model_path: Optional[Union[str, os.PathLike]] = None) -> None:
        super().__init__()
        if gender not in SMPL_FILE_NAMES:
            raise ValueError(f"unknown SMPL gender {gender!r} (expected neutral, male or female)")
        self.center_idx = center_idx
        self.gender = gender
        if model_path is None:
            model_path = find_model_file(model_root, SMPL_FILE_NAMES[gender], f"SMPL {gender} model",
                                         SMPL_SOURCE)
        self.model_path = str(model_path)
        smpl_data = load_model_file(model_path)
        self.smpl_data = smpl_data

        shapedirs = _dense(smpl_data["shapedirs"])
        num_betas = shapedirs.shape[-1]
        betas = smpl_data.get("betas")
        betas = np.zeros(num_betas) if betas is None else _dense(betas).reshape(-1)
        self.register_buffer("th_betas", torch.tensor(betas, dtype=torch.float32).unsqueeze(0))
        self.register_buffer("th_shapedirs", torch.tensor(shapedirs, dtype=torch.float32))
        self.register_buffer("th_posedirs", torch.tensor(_dense(smpl_data["posedirs"]), dtype=torch.float32))
        self.register_buffer("th_v_template",
                             torch.tensor(_dense(smpl_data["v_template"]), dtype=torch.float32).unsqueeze(0))
        self.register_buffer("th_J_regressor", torch.tensor(_dense(smpl_data["J_regressor"]), dtype=torch.float32))
        self.register_buffer("th_weights", torch.tensor(_dense(smpl_data["weights"]), dtype=torch.float32))
        self.register_buffer("th_faces", torch.tensor(np.asarray(smpl_data["f"]).astype(np.int64)))
        self.vertice_segmentation = torch.argmax(self.th_weights, dim=1)

        self.kintree_table = np.asarray(smpl_data["kintree_table"])
        parents = [int(p) for p in self.kintree_table[0].tolist()]
        parents[0] = -1  # the files store 2**32 - 1 for "no parent"
        self.kintree_parents = parents
        self.num_joints = len(parents)
        self.register_buffer("th_parents", torch.tensor(parents, dtype=torch.long), persistent=False)

    def forward(self, th_pose_axisang: torch.Tensor, th_betas: Optional[torch.Tensor] = _DEFAULT_BETAS,
                th_trans: Optional[torch.Tensor] = _DEFAULT_TRANS) -> Tuple[torch.Tensor, torch.Tensor]:
        """Pose and shape the body.

        Args:
            th_pose_axisang: (B, 72) axis-angle rotations of the 24 joints (root first).
            th_betas: (B, 10) shape parameters; all zero or None: the model's default betas.
            th_trans: (B, 3) translation; all zero or None: no translation (centring on
                ``center_idx`` if set).
        Returns:
            verts (B, 6890, 3) and joints (B, 24, 3), in metres.
        """
        dtype, device = th_pose_axisang.dtype, th_pose_axisang.device
        batch_size = th_pose_axisang.shape[0]
        pose = th_pose_axisang.reshape(batch_size, -1)

        def buf(t: torch.Tensor) -> torch.Tensor:
            return t.to(device=device, dtype=dtype)

        if th_betas is None or bool(torch.norm(th_betas) == 0):
            betas = buf(self.th_betas).expand(batch_size, -1)
        else:
            betas = th_betas.to(dtype).reshape(th_betas.shape[0], -1).expand(batch_size, -1)
        num_betas = betas.shape[1]
        posedirs = buf(self.th_posedirs).reshape(-1, self.th_posedirs.shape[-1]).t()
        verts, joints = lbs(betas, pose, buf(self.th_v_template)[0], buf(self.th_shapedirs)[..., :num_betas],
                            posedirs, buf(self.th_J_regressor), self.th_parents.to(device),
                            buf(self.th_weights), pose2rot=True)

        verts, joints = center_or_translate(verts, joints, th_trans, self.center_idx)
        return verts, joints

    def extra_repr(self) -> str:
        return (f"gender={self.gender}, model_path={self.model_path}, vertices={self.th_v_template.shape[1]}, "
                f"joints={self.num_joints}, center_idx={self.center_idx}")
