"""The mesh-model wrappers the rest of the package uses: :class:`SMPL` (body) and :class:`MANO` (hand).

Each holds its layer(s), the faces, the vertex count and the joint regressors of the joint sets
defined in :mod:`pose2mesh.joints`, and says which files it was built from (``source``,
``description``). ``synthetic=True`` uses the generated stand-ins (see
:mod:`pose2mesh.body_models.synthetic`); the official files are used otherwise, from the
original release's places.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import numpy as np
import torch

from .. import paths
from ..joints import (
    JOINT_SETS,
    MANO_FINGERTIP_VERTICES,
    MANO_ORIGINAL_JOINT_NAMES,
    SMPL_FACE_KEYPOINT_VERTICES,
    add_pelvis_and_neck,
    remap_joints,
)
from .model_file import BodyModelError, missing_file_error
from .synthetic import ensure_synthetic_models

__all__ = ["SMPL", "MANO"]

PathLike = Union[str, os.PathLike]

REGRESSOR_SOURCE = ("It is a download of the original Pose2Mesh release (see its README, 'Data' "
                    "section: J_regressor_h36m_correct.npy goes in data/Human36M/, "
                    "J_regressor_coco.npy in data/COCO/), or use the synthetic body "
                    "(DATASET.body_model: 'synthetic').")
MANO_SOURCE = ("Register and download MANO from https://mano.is.tue.mpg.de (the 'Models & Code' "
               "archive holds mano_v1_2/models/MANO_RIGHT.pkl), as the original Pose2Mesh README "
               "says, or use the synthetic hand (DATASET.body_model: 'synthetic').")


def _one_hot_rows(vertex_ids, num_vertices: int) -> np.ndarray:
    rows = np.zeros((len(vertex_ids), num_vertices), dtype=np.float32)
    rows[np.arange(len(vertex_ids)), list(vertex_ids)] = 1.0
    return rows


def _load_regressor(path: Path, rows: int, num_vertices: int, name: str) -> np.ndarray:
    if not path.is_file():
        raise missing_file_error(f"{name} joint regressor", path, [path.name], REGRESSOR_SOURCE)
    try:
        reg = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise BodyModelError(f"{path}: not a readable .npy joint regressor ({exc})") from None
    if reg.shape != (rows, num_vertices):
        raise BodyModelError(f"{path}: expected a ({rows}, {num_vertices}) joint regressor, found {reg.shape}")
    return reg.astype(np.float32)


class _LayerDict(dict):
    """gender -> layer; a gender whose file is missing raises the missing-file error on access."""

    def __init__(self, layers, errors) -> None:
        super().__init__(layers)
        self._errors = errors

    def __missing__(self, key):
        if key in self._errors:
            raise self._errors[key]
        raise KeyError(key)


class SMPL:
    """The SMPL body (official files) or the synthetic SMPL-format body.

    Args:
        synthetic: use the generated synthetic body instead of the official files.
        model_dir: official: the folder of the SMPL pickles (default
            ``paths.smpl_model_dir()``); synthetic: the cache folder (default
            ``paths.cache_dir()``).
        data_dir: where ``Human36M/J_regressor_h36m_correct.npy`` and
            ``COCO/J_regressor_coco.npy`` are (default ``paths.data_dir()``); unused when synthetic.

    The neutral model is required; the male and female ones are loaded when present (asking for
    a missing one raises the missing-file error). Dataset regressors are read when first asked for.
    """

    name = "smpl"
    vertex_num = 6890

    def __init__(self, synthetic: bool = False, model_dir: Optional[PathLike] = None,
                 data_dir: Optional[PathLike] = None) -> None:
        from smplpytorch.pytorch.smpl_layer import SMPL_Layer

        self.source = "synthetic" if synthetic else "official"
        errors: Dict[str, BodyModelError] = {}
        layers = {}
        if synthetic:
            files = ensure_synthetic_models(model_dir, which=("body",))
            layer = SMPL_Layer(gender="neutral", model_path=files["smpl"])
            layers = {"neutral": layer, "male": layer, "female": layer}
            self._regressor_paths = {"human36": files["J_regressor_h36m"], "coco": files["J_regressor_coco"]}
            self.description = (f"synthetic SMPL-format body (NOT SMPL: generated stand-in) from {files['smpl']}, "
                                f"regressors {files['J_regressor_h36m'].name}, {files['J_regressor_coco'].name}")
        else:
            model_dir = Path(model_dir) if model_dir is not None else paths.smpl_model_dir()
            data_dir = Path(data_dir) if data_dir is not None else paths.data_dir()
            layers["neutral"] = SMPL_Layer(gender="neutral", model_root=model_dir)
            for gender in ("male", "female"):
                try:
                    layers[gender] = SMPL_Layer(gender=gender, model_root=model_dir)
                except BodyModelError as exc:
                    errors[gender] = exc
            self._regressor_paths = {"human36": data_dir / "Human36M" / "J_regressor_h36m_correct.npy",
                                     "coco": data_dir / "COCO" / "J_regressor_coco.npy"}
            used = ", ".join(Path(layer.model_path).name for layer in layers.values())
            self.description = (f"official SMPL model files from {model_dir} ({used}); regressors from "
                                f"{self._regressor_paths['human36']} and {self._regressor_paths['coco']}")
        self.layer = _LayerDict(layers, errors)
        neutral = self.layer["neutral"]
        if neutral.th_v_template.shape[1] != self.vertex_num:
            raise BodyModelError(f"{neutral.model_path}: expected {self.vertex_num} vertices, "
                                 f"found {neutral.th_v_template.shape[1]}")
        self.face = neutral.th_faces.numpy().astype(np.int64)
        self.joint_set = JOINT_SETS["smpl29"]
        self._regressors: Dict[str, np.ndarray] = {}

    def joint_regressor(self, name: str) -> np.ndarray:
        """(J, 6890) float32 regressor of joint set ``name``: 'smpl', 'smpl29', 'human36' or 'coco'."""
        if name not in self._regressors:
            self._regressors[name] = self._make_regressor(name)
        return self._regressors[name].copy()

    def _make_regressor(self, name: str) -> np.ndarray:
        smpl = self.layer["neutral"].th_J_regressor.numpy().astype(np.float32)
        if name == "smpl":
            return smpl
        if name == "smpl29":
            return np.concatenate([smpl, _one_hot_rows(SMPL_FACE_KEYPOINT_VERTICES, self.vertex_num)])
        if name == "human36":
            return _load_regressor(Path(self._regressor_paths["human36"]), 17, self.vertex_num, "Human3.6M")
        if name == "coco":
            coco = _load_regressor(Path(self._regressor_paths["coco"]), 17, self.vertex_num, "COCO")
            return add_pelvis_and_neck(coco).astype(np.float32)
        raise ValueError(f"no SMPL joint regressor for joint set {name!r} (expected smpl, smpl29, human36 or coco)")

    def __call__(self, pose: torch.Tensor, shape: torch.Tensor, trans: Optional[torch.Tensor] = None,
                 gender: str = "neutral") -> Tuple[torch.Tensor, torch.Tensor]:
        """Mesh and joints: pose (B, 72) axis-angle, shape (B, 10), trans (B, 3) -> verts (B, 6890, 3)
        and joints (B, 24, 3) in metres."""
        return self.layer[gender](pose, shape, trans)

    def __repr__(self) -> str:
        return f"SMPL(source={self.source!r}: {self.description})"


class MANO:
    """The MANO right hand (official file) or the synthetic MANO-format hand.

    Args:
        synthetic: use the generated synthetic hand.
        model_dir: official: the folder holding MANO_RIGHT.pkl (default ``paths.mano_model_dir()``);
            synthetic: the cache folder (default ``paths.cache_dir()``).

    The layer is the right hand without PCA and with the mean hand pose added
    (``use_pca=False, flat_hand_mean=False``), as in the original Pose2Mesh.
    """

    name = "mano"
    vertex_num = 778

    def __init__(self, synthetic: bool = False, model_dir: Optional[PathLike] = None) -> None:
        from manopth.manolayer import ManoLayer

        self.source = "synthetic" if synthetic else "official"
        if synthetic:
            files = ensure_synthetic_models(model_dir, which=("hand",))
            self.layer = ManoLayer(flat_hand_mean=False, use_pca=False, model_path=files["mano"])
            self.description = f"synthetic MANO-format hand (NOT MANO: generated stand-in) from {files['mano']}"
        else:
            model_dir = Path(model_dir) if model_dir is not None else paths.mano_model_dir()
            self.layer = ManoLayer(mano_root=model_dir, flat_hand_mean=False, use_pca=False)
            self.description = f"official MANO model file {self.layer.mano_path}"
        if self.layer.th_v_template.shape[1] != self.vertex_num:
            raise BodyModelError(f"{self.layer.mano_path}: expected {self.vertex_num} vertices, "
                                 f"found {self.layer.th_v_template.shape[1]}")
        self.face = self.layer.th_faces.numpy().astype(np.int64)
        self.joint_set = JOINT_SETS["mano"]
        self._regressor: Optional[np.ndarray] = None

    def joint_regressor(self, name: str = "mano") -> np.ndarray:
        """(21, 778) float32: the 16 MANO rows reordered to the ``mano`` joint set, fingertips one-hot."""
        if name != "mano":
            raise ValueError(f"no MANO joint regressor for joint set {name!r} (expected mano)")
        if self._regressor is None:
            rows = np.concatenate([self.layer.th_J_regressor.numpy().astype(np.float32),
                                   _one_hot_rows(MANO_FINGERTIP_VERTICES, self.vertex_num)])
            src = MANO_ORIGINAL_JOINT_NAMES + ("Thumb_4", "Index_4", "Middle_4", "Ring_4", "Pinky_4")
            self._regressor = remap_joints(rows, src, JOINT_SETS["mano"].names)
        return self._regressor.copy()

    def __call__(self, pose: torch.Tensor, shape: torch.Tensor,
                 trans: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """pose (B, 48) axis-angle, shape (B, 10), trans (B, 3) -> verts (B, 778, 3) and joints
        (B, 21, 3, ``mano`` joint set) in metres."""
        verts, joints = self.layer(pose, shape, trans)
        return verts / 1000.0, joints / 1000.0

    def __repr__(self) -> str:
        return f"MANO(source={self.source!r}: {self.description})"
