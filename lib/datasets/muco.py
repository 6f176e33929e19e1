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

Fitting check, fixed: the original compared the Human3.6M joints regressed from the mesh with
*themselves* re-indexed as if they were MuCo joints (it passed the regressed joints where the
MuCo annotation was meant), so its check never compared against the annotation. Here the
annotated MuCo joints that have a Human3.6M counterpart (14 of them) are compared with the
joints regressed from the mesh after aligning their means; more than 45 mm on average makes
every target of the sample invalid in Pose2Mesh mode (PoseNet targets stay valid, as the
original).
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np

from ..coord_utils import cam2pixel, process_bbox
from ..joints import get_joint_set
from .annotation_io import as_array, coco_index, read_json, require
from .body_base import LoaderBase
from .mesh_batch import MeshBatcher, run_smpl

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

    def __init__(self, data_split: str, cfg, data_dir=None, mesh_model=None, seed: int = 0,
                 mesh_cache_mb: float = 2048):
        super().__init__(data_split, cfg, data_dir, mesh_model, seed, mesh_cache_mb)
        self.h36m = get_joint_set("human36")
        self.coco = get_joint_set("coco")
        self.reg_h36m = self.regressor("human36")
        self.reg_coco = self.regressor("coco")
        # the MuCo joints with a Human3.6M counterpart, as index pairs (muco, h36m)
        pairs = [(m, self.h36m.names.index(n)) for m, n in enumerate(MUCO_JOINTS) if n in self.h36m.names]
        self.fit_muco_idx = np.array([p[0] for p in pairs])
        self.fit_h36m_idx = np.array([p[1] for p in pairs])
        self.db = self._load_annotations()
        self.meshes = MeshBatcher(len(self), self._compute_meshes, self.mesh_model.vertex_num, mesh_cache_mb)

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
            pose = as_array(require(fit, "pose", param_path, where), "pose", param_path, (72,), where)
            shape = as_array(require(fit, "shape", param_path, where), "shape", param_path, (10,), where)
            trans = as_array(require(fit, "trans", param_path, where), "trans", param_path, (3,), where)
            if not (np.isfinite(pose).all() and np.isfinite(shape).all() and np.isfinite(trans).all()):
                continue
            rows.append({
                "annot_id": int(aid),
                "img_path": str(self._path("data", str(require(img, "file_name", path, f"image {image_id}")))),
                "focal": as_array(require(img, "f", path, f"image {image_id}"), "f", path, (2,)),
                "princpt": as_array(require(img, "c", path, f"image {image_id}"), "c", path, (2,)),
                "joint_cam": cams[closest], "pose": pose, "shape": shape, "trans": trans})
        db: Dict[str, np.ndarray] = {k: np.array([r[k] for r in rows]) for k in ("annot_id", "img_path")}
        for k, shape in (("focal", (2,)), ("princpt", (2,)), ("joint_cam", (21, 3)), ("pose", (72,)),
                         ("shape", (10,)), ("trans", (3,))):
            db[k] = np.stack([r[k] for r in rows]).astype(np.float32) if rows else np.zeros((0,) + shape, np.float32)
        db["shape"][np.any(np.abs(db["shape"]) > 3, axis=1)] = 0.0
        return db

    def __len__(self) -> int:
        return len(self.db["annot_id"])

    def _compute_meshes(self, idx: np.ndarray):
        db = self.db
        return run_smpl(self.mesh_model, db["pose"][idx], db["shape"][idx], db["trans"][idx])

    def fitting_error(self, verts: np.ndarray, muco_cam: np.ndarray) -> np.ndarray:
        """Mean distance (mm) between the annotated MuCo joints with a Human3.6M counterpart and
        the same joints regressed from the mesh, after aligning their means. ``(B,)``."""
        gt = (muco_cam - muco_cam[:, MUCO_ROOT:MUCO_ROOT + 1])[:, self.fit_muco_idx]
        fit = np.matmul(self.reg_h36m[self.fit_h36m_idx], verts)
        fit = fit - fit.mean(axis=1, keepdims=True) + gt.mean(axis=1, keepdims=True)
        return np.linalg.norm(gt - fit, axis=-1).mean(axis=1)

    def _samples(self, indices: List[int]) -> List:
        idx = np.asarray(indices, dtype=np.int64)
        verts, _ = self.meshes.get(idx)
        coco_cam = np.matmul(self.reg_coco, verts)
        h36m_cam = np.matmul(self.reg_h36m, verts)
        reg = self.target_from_mesh(verts)
        errors = self.fitting_error(verts, self.db["joint_cam"][idx])
        out = []
        for k, i in enumerate(idx):
            f, c = self.db["focal"][i], self.db["princpt"][i]
            mesh = verts[k] - h36m_cam[k, self.h36m.root]
            if self.joint_set.name == "coco":
                joint_img, lift = cam2pixel(coco_cam[k], f, c)[:, :2], coco_cam[k] - coco_cam[k, self.coco.root]
            else:
                joint_img, lift = cam2pixel(h36m_cam[k], f, c)[:, :2], h36m_cam[k] - h36m_cam[k, self.h36m.root]
            valid = 0.0 if (errors[k] > self.fitting_thr and self.mode == "pose2mesh_net") else 1.0
            out.append(self.assemble(self.sample_rng(int(i)), joint_img, lift, mesh_mm=mesh, reg_pose3d=reg[k],
                                     lift_valid=valid, mesh_valid=valid, reg_valid=valid))
        return out
