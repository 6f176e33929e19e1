"""MuCo-3DHP, the composited (augmented) multi-person set, with SMPLify-X fits (the original's
``data/MuCo/dataset.py``).

Files (``data/MuCo/data/``, see ``data/MuCo/README.md``)::

    MuCo-3DHP.json     COCO format: images (file_name, width, height, f, c) and annotations
                       (keypoints_cam 21 x 3 mm, keypoints_img 21 x 2, bbox)
    smpl_param.json    {annotation id: {pose, shape, trans (camera frame, m)}}
    augmented_set/, unaugmented_set/   (images are not read)

Training only. Of each image only the person closest to the camera (smallest pelvis depth) is
used; the image is skipped when that person has no fit or a fit with NaN values. SMPL is the
neutral body (shapes beyond 3 standard deviations reset to the mean shape) in the camera frame.

Fitting check (Pose2Mesh mode; PoseNet targets stay valid, as the original): more than 45 mm
on average makes every target of the sample invalid (mesh, regressed and lifted joints). By
default it is the original's check, which compares the Human3.6M joints regressed from the mesh
with *themselves* re-indexed as if they were MuCo joints (it passed the regressed joints where
the MuCo annotation was meant): the 14 joint names MuCo shares with Human3.6M are read at their
MuCo indices and at their Human3.6M indices of the same array. Those are different joints, so
the error is hundreds of millimetres and every MuCo sample is rejected: MuCo then contributes
only the normal and edge losses (which take no validity flags), and its zeros pad the masked L1
means. The released models were trained that way. With
``DATASET.muco_check_fit_against_annotation: True`` the check compares the annotated MuCo
joints with the same joints regressed from the mesh instead (both pelvis-relative, means
aligned), as intended.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np

from ..coord_utils import cam2pixel, process_bbox
from .annotation_io import as_array, coco_index, read_json, read_smpl_param, require, stack_rows
from .body_base import LoaderBase

__all__ = ["MuCo", "MUCO_JOINTS"]

HINT = "download the parsed MuCo-3DHP data and SMPL fits, see data/MuCo/README.md"

MUCO_JOINTS = ("Head_top", "Thorax", "R_Shoulder", "R_Elbow", "R_Wrist", "L_Shoulder", "L_Elbow", "L_Wrist",
               "R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "Pelvis", "Spine", "Head", "R_Hand",
               "L_Hand", "R_Toe", "L_Toe")
MUCO_ROOT = MUCO_JOINTS.index("Pelvis")


class MuCo(LoaderBase):
    """MuCo-3DHP augmented set (see the module docstring).

    Attributes:
        db: per-sample arrays in image order: 'annot_id', 'img_path', 'focal', 'princpt',
            'joint_cam' (21 x 3 MuCo joints, camera mm), 'pose', 'shape', 'trans' (m).
    """

    name = "MuCo"
    splits = ("train",)
    input_joint_sets = ("coco", "human36")
    fitting_thr = 45.0  # mm
    # the original's MuCo loader flips the 2D joints before adding synthesized errors, and scales
    # the COCO error model with the aspect-expanded crop box
    error_area_box = "crop"
    errors_before_flip = False

    def __init__(self, data_split: str, cfg, data_dir=None, mesh_model=None, seed: int = 0,
                 mesh_cache_mb: float = 2048):
        super().__init__(data_split, cfg, data_dir, mesh_model, seed, mesh_cache_mb)
        self._set_body_regressors()
        # the MuCo joints with a Human3.6M counterpart, as index pairs (muco, h36m)
        pairs = [(m, self.h36m.names.index(n)) for m, n in enumerate(MUCO_JOINTS) if n in self.h36m.names]
        self.fit_muco_idx = np.array([p[0] for p in pairs])
        self.fit_h36m_idx = np.array([p[1] for p in pairs])
        self.check_fit_against_annotation = bool(cfg.DATASET.muco_check_fit_against_annotation)
        self.db = self._load_annotations()
        self.meshes = self._mesh_batcher()

    def _load_annotations(self) -> Dict[str, np.ndarray]:
        path = self._path("data", "MuCo-3DHP.json")
        param_path = self._path("data", "smpl_param.json")
        images, anns = coco_index(read_json(path, "MuCo-3DHP annotation file", HINT), path)
        params = read_json(param_path, "MuCo SMPL parameter file", HINT)
        by_image: Dict[object, List[dict]] = {}
        for ann in anns:
            by_image.setdefault(ann["image_id"], []).append(ann)
        rows: List[dict] = []
        for image_id, img in images.items():
            people = by_image.get(image_id, [])
            if not people:
                continue
            cams = []
            for ann in people:
                where = f"annotation {ann.get('id')}"
                cams.append(as_array(require(ann, "keypoints_cam", path, where), "keypoints_cam", path, (21, 3), where))
            closest = int(np.argmin([c[MUCO_ROOT, 2] for c in cams]))
            ann = people[closest]
            aid = require(ann, "id", path, f"image {image_id}")
            where = f"annotation {aid}"
            bbox = as_array(require(ann, "bbox", path, where), "bbox", path, (4,), where)
            if process_bbox(bbox, self.input_shape) is None:
                continue
            fit = params.get(str(aid)) if isinstance(params, dict) else None
            if fit is None:
                continue
            smpl = read_smpl_param(fit, param_path, where)
            if not all(np.isfinite(v).all() for v in smpl.values()):
                continue
            rows.append({
                "annot_id": int(aid),
                "img_path": str(self._path("data", str(require(img, "file_name", path, f"image {image_id}")))),
                "focal": as_array(require(img, "f", path, f"image {image_id}"), "f", path, (2,)),
                "princpt": as_array(require(img, "c", path, f"image {image_id}"), "c", path, (2,)),
                "joint_cam": cams[closest], **smpl})
        db = stack_rows(rows, ("annot_id", "img_path"), (("focal", (2,)), ("princpt", (2,)), ("joint_cam", (21, 3)),
                                                          ("pose", (72,)), ("shape", (10,)), ("trans", (3,))))
        db["shape"][np.any(np.abs(db["shape"]) > 3, axis=1)] = 0.0
        return db

    def fitting_error(self, verts: np.ndarray, muco_cam: np.ndarray) -> np.ndarray:
        """The corrected check (``DATASET.muco_check_fit_against_annotation``): mean distance (mm)
        between the annotated MuCo joints with a Human3.6M counterpart and the same joints
        regressed from the mesh, after aligning their means. ``(B,)``."""
        gt = (muco_cam - muco_cam[:, MUCO_ROOT:MUCO_ROOT + 1])[:, self.fit_muco_idx]
        fit = np.matmul(self.reg_h36m[self.fit_h36m_idx], verts)
        fit = fit - fit.mean(axis=1, keepdims=True) + gt.mean(axis=1, keepdims=True)
        return np.linalg.norm(gt - fit, axis=-1).mean(axis=1)

    def reindexed_fitting_error(self, verts: np.ndarray) -> np.ndarray:
        """The original's check (the default): the Human3.6M joints regressed from the mesh, read
        at the MuCo indices of the shared joint names, against the same array read at their
        Human3.6M indices, after aligning their means; mean distance (mm). ``(B,)``."""
        h36m = np.matmul(self.reg_h36m, verts)  # B x 17 x 3
        as_muco = h36m[:, self.fit_muco_idx]
        fit = h36m[:, self.fit_h36m_idx]
        fit = fit - fit.mean(axis=1, keepdims=True) + as_muco.mean(axis=1, keepdims=True)
        return np.linalg.norm(as_muco - fit, axis=-1).mean(axis=1)

    def _samples(self, indices: List[int], draws: Optional[List[int]] = None) -> List:
        idx, verts, coco_cam, h36m_cam, reg = self._regress_batch(indices)
        if self.check_fit_against_annotation:
            errors = self.fitting_error(verts, self.db["joint_cam"][idx])
        else:
            errors = self.reindexed_fitting_error(verts)
        rngs = self.sample_rngs(idx, draws)
        out = []
        for k, i in enumerate(idx):
            f, c = self.db["focal"][i], self.db["princpt"][i]
            joints, lift, mesh = self._input_joints(verts[k], coco_cam[k], h36m_cam[k])
            joint_img = cam2pixel(joints, f, c)[:, :2]
            valid = 0.0 if (errors[k] > self.fitting_thr and self.mode == "pose2mesh_net") else 1.0
            out.append(self.assemble(rngs[k], joint_img, lift, mesh_mm=mesh, reg_pose3d=reg[k],
                                     lift_valid=valid, mesh_valid=valid, reg_valid=valid))
        return out
