"""MS COCO 2017 train with SMPLify fits (the original's ``data/COCO/dataset.py``, class MSCOCO).

Files (``data/COCO/``, see ``data/COCO/README.md``)::

    annotations/person_keypoints_train2017.json   the COCO keypoint annotations
    annotations/coco_smplify_train.json           {annotation id: {smpl_param: {pose, shape},
                                                                   cam_param: {s, t}}}
    J_regressor_coco.npy                          read by the body model
    images/train2017/                             (images are not read)

Training only (the original had no COCO test split). Crowd annotations, people without
keypoints and people without a fit are skipped. The fits are weak-perspective: the neutral SMPL
mesh (shapes beyond 3 standard deviations reset to the mean shape) in millimetres projects as
``x_img = X / 1000 * s + t``. A fit whose COCO keypoints, mapped with the annotated ones into a
64 x 64 crop of their square box, are more than 3 pixels from the annotated visible keypoints on
average is invalid (every target of the sample, as the original, after I2L-MeshNet).
"""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np

from ..aug_utils import j2d_processing
from ..coord_utils import get_bbox, process_bbox
from .annotation_io import as_array, coco_index, read_json, read_json_object, read_smpl_param, require, stack_rows
from .body_base import LoaderBase

__all__ = ["COCO"]

HINT = "download the COCO 2017 keypoint annotations and the SMPLify fits, see data/COCO/README.md"


class COCO(LoaderBase):
    """COCO 2017 train with SMPLify fits (see the module docstring).

    Attributes:
        db: per-sample arrays in annotation order: 'annot_id', 'img_path', 'keypoints'
            (17 x 2 pixels), 'keypoints_valid' (17,), 'pose', 'shape', 'cam_s' (2,), 'cam_t' (2,).
    """

    name = "COCO"
    splits = ("train",)
    input_joint_sets = ("coco", "human36")
    fitting_thr = 3.0  # pixels in the 64 x 64 crop

    def __init__(self, data_split: str, cfg, data_dir=None, mesh_model=None, seed: int = 0,
                 mesh_cache_mb: float = 2048):
        super().__init__(data_split, cfg, data_dir, mesh_model, seed, mesh_cache_mb)
        self._set_body_regressors()
        self.db = self._load_annotations()
        self.meshes = self._mesh_batcher()

    def _load_annotations(self) -> Dict[str, np.ndarray]:
        path = self._path("annotations", "person_keypoints_train2017.json")
        fit_path = self._path("annotations", "coco_smplify_train.json")
        images, anns = coco_index(read_json(path, "COCO keypoint annotation file", HINT), path)
        fits = read_json_object(fit_path, "COCO SMPLify fit file", HINT, "annotation ids to fits")
        rows: List[dict] = []
        for ann in anns:
            aid = require(ann, "id", path, "an annotation")
            where = f"annotation {aid}"
            if require(ann, "iscrowd", path, where) or require(ann, "num_keypoints", path, where) == 0:
                continue
            bbox = as_array(require(ann, "bbox", path, where), "bbox", path, (4,), where)
            if process_bbox(bbox, self.input_shape) is None:
                continue
            fit = fits.get(str(aid))
            if fit is None:
                continue
            kps = as_array(require(ann, "keypoints", path, where), "keypoints", path, (17, 3), where)
            smpl = require(fit, "smpl_param", fit_path, where)
            cam = require(fit, "cam_param", fit_path, where)
            img = images[ann["image_id"]]
            rows.append({
                "annot_id": int(aid),
                "img_path": str(self._path("images", "train2017",
                                           str(require(img, "file_name", path, f"image {img['id']}")))),
                "keypoints": kps[:, :2], "keypoints_valid": (kps[:, 2] > 0).astype(np.float32),
                **read_smpl_param(smpl, fit_path, where, ("pose", "shape")),
                "cam_s": np.broadcast_to(as_array(require(cam, "s", fit_path, where), "s", fit_path, (-1,), where),
                                         (2,)),
                "cam_t": as_array(require(cam, "t", fit_path, where), "t", fit_path, (2,), where)})
        db = stack_rows(rows, ("annot_id", "img_path"),
                        (("keypoints", (17, 2)), ("keypoints_valid", (17,)), ("pose", (72,)), ("shape", (10,)),
                         ("cam_s", (2,)), ("cam_t", (2,))))
        db["shape"][np.any(np.abs(db["shape"]) > 3, axis=1)] = 0.0
        return db

    def project(self, joints_mm: np.ndarray, i: int) -> np.ndarray:
        """Weak-perspective projection of one sample's fit: ``X / 1000 * s + t`` (pixels)."""
        return joints_mm[..., :2] / 1000.0 * self.db["cam_s"][i] + self.db["cam_t"][i]

    def fitting_error(self, i: int, coco_from_fit: np.ndarray, tight_bbox: np.ndarray) -> float:
        """Mean distance (pixels of a 64 x 64 crop of the square box around ``tight_bbox``)
        between the annotated visible keypoints and the fit's projected COCO keypoints."""
        bbox = process_bbox(tight_bbox, aspect_ratio=1.0)
        if bbox is None:
            return float("inf")
        fit, _ = j2d_processing(coco_from_fit[:17], (64, 64), bbox, 0, False, None)
        ann, _ = j2d_processing(self.db["keypoints"][i], (64, 64), bbox, 0, False, None)
        valid = self.db["keypoints_valid"][i] > 0
        return float(np.linalg.norm(ann[valid] - fit[valid], axis=-1).mean())

    def _samples(self, indices: List[int], draws: Optional[List[int]] = None) -> List:
        idx, verts, coco_cam, h36m_cam, reg = self._regress_batch(indices)
        rngs = self.sample_rngs(idx, draws)
        out = []
        for k, i in enumerate(idx):
            coco_img = self.project(coco_cam[k], i)
            joints, lift, mesh = self._input_joints(verts[k], coco_cam[k], h36m_cam[k])
            joint_img = self.project(joints, i)
            valid = 0.0 if self.fitting_error(i, coco_img, get_bbox(joint_img)) > self.fitting_thr else 1.0
            out.append(self.assemble(rngs[k], joint_img, lift, mesh_mm=mesh, reg_pose3d=reg[k],
                                     lift_valid=valid, mesh_valid=valid, reg_valid=valid))
        return out
