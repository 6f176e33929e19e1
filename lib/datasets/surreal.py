"""SURREAL (the original's ``data/SURREAL/dataset.py``).

Files (``data/SURREAL/data/``, see ``data/SURREAL/README.md``)::

    train.json, val.json                    COCO format: images (cam_param: focal, princpt) and
                                            annotations (smpl_param: pose, shape, trans, gender;
                                            joint_cam; bbox)
    hrnet_output_on_{train,val}set.json     HRNet 2D detections of the 24 SMPL joints:
                                            [{image_id, annotation_id, keypoints}]

The test split is the ``val`` file (as the original). Input and target joints are the 24 SMPL
joints (``DATASET.input_joint_set: smpl``): the body model's joints in the camera frame (SMPL
parameters are camera-frame, with the annotation's gender), everything relative to the pelvis.
With ``use_gt_input: False`` the HRNet detections are the input in training and testing (the
original's rule), matched by image id. The original README names the test detections
``hrnet_output_on_testset.json`` while its loader reads ``hrnet_output_on_valset.json``; both
names are accepted, the loader's first. The original appended a copy of the first sample to the
training set to work around a multi-GPU batch problem; not here.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional

import numpy as np

from ..coord_utils import process_bbox
from .annotation_io import (
    as_array,
    coco_index,
    read_detections,
    read_intrinsics,
    read_json,
    read_smpl_param,
    require,
    stack_rows,
)
from .body_base import LoaderBase
from .common import per_sample_joint_errors, per_sample_mesh_errors, write_result_json
from .errors import DatasetError
from .mesh_batch import normalize_gender

__all__ = ["SURREAL"]

HINT = "download the parsed SURREAL data and HRNet detections, see data/SURREAL/README.md"


class SURREAL(LoaderBase):
    """SURREAL with SMPL joints (see the module docstring).

    Attributes:
        db: per-sample arrays sorted by image id: 'img_id', 'img_name', 'focal', 'princpt',
            'pose', 'shape', 'trans' (camera frame, m), 'gender'.
    """

    name = "SURREAL"
    index_field = "img_id"
    input_joint_sets = ("smpl",)

    def __init__(self, data_split: str, cfg, data_dir=None, mesh_model=None, seed: int = 0,
                 mesh_cache_mb: float = 2048):
        super().__init__(data_split, cfg, data_dir, mesh_model, seed, mesh_cache_mb)
        self.file_split = "train" if self.is_train else "val"
        self.reg_smpl = self.regressor("smpl")
        self.db = self._load_annotations()
        self.detections = None if self.use_gt_input else self._load_detections()
        self.meshes = self._mesh_batcher()

    def _load_annotations(self) -> Dict[str, np.ndarray]:
        path = self._path("data", f"{self.file_split}.json")
        images, anns = coco_index(read_json(path, "SURREAL annotation file", HINT), path)
        first_ann: Dict[object, dict] = {}
        for record in anns:
            first_ann.setdefault(record["image_id"], record)
        rows: List[dict] = []
        for image_id, img in images.items():
            ann = first_ann.get(image_id)
            if ann is None:
                continue
            where = f"annotation {ann.get('id')} (image {image_id})"
            bbox = as_array(require(ann, "bbox", path, where), "bbox", path, (4,), where)
            if process_bbox(bbox, self.input_shape) is None:
                continue
            smpl = require(ann, "smpl_param", path, where)
            cam = require(img, "cam_param", path, f"image {image_id}")
            gender = normalize_gender(require(smpl, "gender", path, where))
            if gender is None:
                raise DatasetError(f"{path}: field 'gender' in {where} is {smpl['gender']!r}")
            rows.append({
                "img_id": image_id, "img_name": str(require(img, "file_name", path, f"image {image_id}")),
                **read_intrinsics(cam, path, f"image {image_id}"), **read_smpl_param(smpl, path, where),
                "gender": gender})
        rows.sort(key=lambda r: r["img_id"])
        return stack_rows(rows, ("img_id", "img_name", "gender"),
                          (("focal", (2,)), ("princpt", (2,)), ("pose", (72,)), ("shape", (10,)), ("trans", (3,))))

    def _detection_path(self):
        candidates = [self._path("data", f"hrnet_output_on_{self.file_split}set.json")]
        if not self.is_train:
            candidates.append(self._path("data", "hrnet_output_on_testset.json"))
        for path in candidates:
            if path.is_file():
                return path
        return candidates[0]

    def _load_detections(self) -> np.ndarray:
        return read_detections(self._detection_path(), "SURREAL 2D detection file", HINT, "image_id",
                               self.db["img_id"], 24)

    def _samples(self, indices: List[int], draws: Optional[List[int]] = None) -> List:
        return self._model_joint_samples(np.asarray(indices, dtype=np.int64), draws)

    PROTOCOL = ("SURREAL val set; MPJPE over the 24 SMPL joints regressed with the SMPL regressor from predicted and "
                "ground-truth meshes, relative to the SMPL pelvis; MPVPE over all vertices after subtracting the "
                "SMPL pelvis; means over samples (mm).")

    def evaluate(self, results: Mapping[str, np.ndarray], result_dir: Optional[str] = None) -> Dict[str, float]:
        """The original's SURREAL figures: SMPL-joint MPJPE and MPVPE (see :attr:`PROTOCOL`)."""
        pred, gt = self._take(results, "mesh_coord"), self._take(results, "mesh_coord_target")
        rows = self.result_rows(results, len(pred))
        err = per_sample_mesh_errors(pred, gt, self.reg_smpl, root=0)
        metrics = {"MPJPE": float(err["mpjpe"].mean()), "MPVPE": float(err["mpvpe"].mean())}
        print(f"Pose error (MPJPE): {metrics['MPJPE']:.2f} mm\nMesh error (MPVPE): {metrics['MPVPE']:.2f} mm")
        if result_dir is not None:
            write_result_json(result_dir, f"{self.name}_{self.split}", {
                "dataset": self.name, "split": self.split, "protocol": self.PROTOCOL,
                "use_gt_input": self.use_gt_input, "samples": int(len(rows)), "metrics_mm": metrics})
        return metrics

    def evaluate_joint(self, results: Mapping[str, np.ndarray], result_dir: Optional[str] = None) -> Dict[str, float]:
        """PoseNet evaluation: lifted SMPL joints against their targets, pelvis-relative."""
        pred, gt = self._take(results, "joint_coord"), self._take(results, "joint_coord_target")
        rows = self.result_rows(results, len(pred))
        err = per_sample_joint_errors(pred, gt, 0)
        metrics = {"MPJPE": float(err["mpjpe"].mean()), "PA-MPJPE": float(err["pa_mpjpe"].mean())}
        print(f"MPJPE (mm)    >> tot: {metrics['MPJPE']:.2f}\nPA-MPJPE (mm) >> tot: {metrics['PA-MPJPE']:.2f}")
        if result_dir is not None:
            write_result_json(result_dir, f"{self.name}_{self.split}_joint", {
                "dataset": self.name, "split": self.split,
                "protocol": "lifted 24 SMPL joints against their targets, pelvis-relative; MPJPE and PA-MPJPE, "
                            "means over samples (mm)",
                "samples": int(len(rows)), "metrics_mm": metrics})
        return metrics
