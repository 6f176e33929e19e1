"""FreiHAND, the hand benchmark with MANO (the original's ``data/FreiHAND/dataset.py``).

Files (``data/FreiHAND/data/``, see ``data/FreiHAND/README.md``)::

    freihand_train_coco.json, freihand_eval_coco.json   COCO format: images (file_name, width,
                                                        height, db_idx), annotations (bbox)
    freihand_train_data.json    {db_idx: {cam_param: {focal, princpt, R, t}, mano_param: {pose 48,
                                 shape 10}, joint_3d}}
    freihand_eval_data.json     {db_idx: {cam_param: {focal, princpt}, scale}}  (no ground truth)
    hrnet_output_on_{train,test}set.json    HRNet detections of the 21 hand joints:
                                            [{image_id, annotation_id, keypoints}]

Joint set ``mano`` (21 joints; the joint-graph links between fingers are the joint set's
``graph_pairs``). Training targets come from the MANO layer (millimetres): the root
orientation rotated by the camera ``R``, translation ``t``, everything relative to the wrist.
The input is the HRNet detection (the original used it in training too); ours also honours
``use_gt_input: True`` in training with the projection of the MANO joints. No augmentation:
the original's loader set ``rot, flip = 0, 0`` whatever ``AUG`` said (and
``posenet_manoJ_train_freihand.yml`` has ``flip: True``), so ``AUG.flip`` and
``AUG.rotate_factor`` are ignored here too.

Testing: the ground truth of the evaluation set is held by the FreiHAND server, so the test
split has no targets (zeros, marked invalid) and :meth:`FreiHAND.evaluate` does not print
errors (the original printed MPVPE / MPJPE 0.00 by construction). It writes the prediction
file the server expects, ``<result_dir>/pred.json`` = ``[joints, mesh]`` with joints
``N x 21 x 3`` (regressed from the mesh) and mesh ``N x 778 x 3``, in millimetres, rows ordered
by image id, and says so.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np

from ..coord_utils import process_bbox
from .annotation_io import as_array, coco_index, read_detections, read_json, read_json_object, require, stack_rows
from .body_base import LoaderBase
from .common import per_sample_joint_errors, per_sample_mesh_errors, write_result_json
from .mesh_batch import rotate_root, run_mano

__all__ = ["FreiHAND"]

log = logging.getLogger(__name__)

HINT = "download the parsed FreiHAND data and HRNet detections, see data/FreiHAND/README.md"


class FreiHAND(LoaderBase):
    """FreiHAND (see the module docstring).

    Attributes:
        db: per-sample arrays sorted by image id: 'img_id', 'img_path', 'focal', 'princpt', and
            for training 'R', 't' (m), 'pose' (48), 'shape' (10).
    """

    name = "FreiHAND"
    index_field = "img_id"
    input_joint_sets = ("mano",)
    body = "mano"
    # the original's FreiHAND loader sets rot, flip = 0, 0: AUG.flip / rotate_factor are ignored
    augmented = False

    def __init__(self, data_split: str, cfg, data_dir=None, mesh_model=None, seed: int = 0,
                 mesh_cache_mb: float = 2048):
        super().__init__(data_split, cfg, data_dir, mesh_model, seed, mesh_cache_mb)
        self.file_split = "train" if self.is_train else "eval"
        self.reg_mano = self.regressor("mano")
        self.db = self._load_annotations()
        need_detections = not self.is_train or not self.use_gt_input
        if not self.is_train and self.use_gt_input:
            log.warning("FreiHAND test: the evaluation set has no ground-truth 2D joints; using the HRNet detections")
        self.detections = self._load_detections() if need_detections else None
        self.meshes = self._mesh_batcher() if self.is_train else None

    def _load_annotations(self) -> Dict[str, np.ndarray]:
        coco_path = self._path("data", f"freihand_{self.file_split}_coco.json")
        data_path = self._path("data", f"freihand_{self.file_split}_data.json")
        images, anns = coco_index(read_json(coco_path, "FreiHAND annotation file", HINT), coco_path)
        data = read_json_object(data_path, "FreiHAND data file", HINT, "db_idx to camera and MANO parameters")
        rows: List[dict] = []
        for ann in anns:
            img = images[ann["image_id"]]
            image_where = f"image {img['id']}"
            db_idx = str(require(img, "db_idx", coco_path, image_where))
            entry = require(data, db_idx, data_path, "the db_idx entries")
            where = f"db_idx {db_idx}"
            cam = require(entry, "cam_param", data_path, where)
            row = {"img_id": img["id"],
                   "img_path": str(self._path("data", str(require(img, "file_name", coco_path, image_where)))),
                   "focal": as_array(require(cam, "focal", data_path, where), "focal", data_path, (2,), where),
                   "princpt": as_array(require(cam, "princpt", data_path, where), "princpt", data_path, (2,), where)}
            if self.is_train:
                bbox = as_array(require(ann, "bbox", coco_path, f"annotation {ann.get('id')}"), "bbox", coco_path, (4,))
                if process_bbox(bbox, self.input_shape) is None:
                    continue
                mano = require(entry, "mano_param", data_path, where)
                row.update({
                    "R": as_array(require(cam, "R", data_path, where), "R", data_path, (3, 3), where),
                    "t": as_array(require(cam, "t", data_path, where), "t", data_path, (3,), where),
                    "pose": as_array(require(mano, "pose", data_path, where), "pose", data_path, (48,), where),
                    "shape": as_array(require(mano, "shape", data_path, where), "shape", data_path, (10,), where)})
            rows.append(row)
        rows.sort(key=lambda r: r["img_id"])
        shapes: Dict[str, Tuple[int, ...]] = {"focal": (2,), "princpt": (2,)}
        if self.is_train:
            shapes.update({"R": (3, 3), "t": (3,), "pose": (48,), "shape": (10,)})
        return stack_rows(rows, ("img_id", "img_path"), shapes.items())

    def _load_detections(self) -> np.ndarray:
        return read_detections(self._path("data", f"hrnet_output_on_{self.data_split}set.json"),
                               "FreiHAND 2D detection file", HINT, "image_id", self.db["img_id"], 21)

    def _compute_meshes(self, idx: np.ndarray):
        """MANO vertices and joints (mm) in the camera frame: root orientation rotated by ``R``,
        translation ``t`` (the original's ``get_mano_coord``)."""
        db = self.db
        pose = rotate_root(db["pose"][idx], db["R"][idx])
        return run_mano(self.mesh_model, pose, db["shape"][idx], db["t"][idx])

    def _samples(self, indices: List[int], draws: Optional[List[int]] = None) -> List:
        idx = np.asarray(indices, dtype=np.int64)
        out = []
        if not self.is_train:
            assert self.detections is not None  # the evaluation set's input is the detections
            n_joints, n_verts = self.joint_set.num_joints, int(self.mesh_model.vertex_num)
            for i, rng in zip(idx, self.sample_rngs(idx, draws)):
                det = self.detections[i]
                out.append(self.assemble(rng, det, np.zeros((n_joints, 3)),
                                         mesh_mm=np.zeros((n_verts, 3)),
                                         reg_pose3d=np.zeros((self.target_joint_set.num_joints, 3)),
                                         lift_valid=0.0, mesh_valid=0.0, reg_valid=0.0, detection=det))
            return out
        return self._model_joint_samples(idx, draws)

    # ---- evaluation ----------------------------------------------------------------------------
    def _ordered(self, results: Mapping[str, np.ndarray], key: str):
        values = self._take(results, key)
        rows = self.result_rows(results, len(values))
        order = np.argsort(self.db["img_id"][rows], kind="stable")
        if len(rows) != len(self):
            log.warning("FreiHAND: predictions for %d of %d images; the server expects all of them",
                        len(rows), len(self))
        return values[order], rows[order]

    def _write_predictions(self, joints: np.ndarray, mesh: np.ndarray, result_dir: Optional[str]) -> Optional[str]:
        if result_dir is None:
            return None
        os.makedirs(result_dir, exist_ok=True)
        path = os.path.join(os.fspath(result_dir), "pred.json")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump([np.asarray(joints, dtype=np.float64).tolist(), np.asarray(mesh, dtype=np.float64).tolist()], f)
        os.replace(tmp, path)
        return path

    def evaluate(self, results: Mapping[str, np.ndarray], result_dir: Optional[str] = None) -> Dict[str, float]:
        """Test split: write the FreiHAND server's prediction file (see the module docstring);
        no errors are printed because the ground truth is not public. Train split (ground truth
        available): MPJPE / PA-MPJPE over the 21 joints regressed from the mesh and MPVPE, all
        wrist-relative.

        Args:
            results: 'mesh_coord' ``(N, 778, 3)`` mm (and for the train split 'mesh_coord_target'),
                optionally 'index'.
        """
        if self.is_train:
            pred, gt = self._take(results, "mesh_coord"), self._take(results, "mesh_coord_target")
            rows = self.result_rows(results, len(pred))
            err = per_sample_mesh_errors(pred, gt, self.reg_mano, root=0)
            metrics = {"MPJPE": float(err["mpjpe"].mean()), "PA-MPJPE": float(err["pa_mpjpe"].mean()),
                       "MPVPE": float(err["mpvpe"].mean())}
            print("\n".join(f"{k} (mm) >> tot: {v:.2f}" for k, v in metrics.items()))
            if result_dir is not None:
                write_result_json(result_dir, f"{self.name}_{self.split}", {
                    "dataset": self.name, "split": self.split, "samples": int(len(rows)), "metrics_mm": metrics,
                    "protocol": "21 MANO joints regressed from predicted and ground-truth meshes, wrist-relative; "
                                "MPVPE after subtracting the wrist; means over samples (mm)"})
            return metrics
        mesh, rows = self._ordered(results, "mesh_coord")
        joints = np.matmul(self.reg_mano, np.asarray(mesh, dtype=np.float64))
        path = self._write_predictions(joints, mesh, result_dir)
        self._announce(len(rows), path, "joints N x 21 x 3 (regressed from the mesh), mesh N x 778 x 3")
        return {}

    def evaluate_joint(self, results: Mapping[str, np.ndarray], result_dir: Optional[str] = None) -> Dict[str, float]:
        """PoseNet: on the test split the prediction file with the lifted joints, wrist-relative,
        in both slots (the original's layout: its mesh slot holds the joints, so the server's mesh
        figures are meaningless for PoseNet); on the train split MPJPE / PA-MPJPE."""
        if self.is_train:
            pred, gt = self._take(results, "joint_coord"), self._take(results, "joint_coord_target")
            err = per_sample_joint_errors(pred, gt, 0)
            metrics = {"MPJPE": float(err["mpjpe"].mean()), "PA-MPJPE": float(err["pa_mpjpe"].mean())}
            print("\n".join(f"{k} (mm) >> tot: {v:.2f}" for k, v in metrics.items()))
            return metrics
        joints, rows = self._ordered(results, "joint_coord")
        joints = joints - joints[:, :1]
        path = self._write_predictions(joints, joints, result_dir)
        self._announce(len(rows), path, "joints N x 21 x 3 (lifted, wrist-relative) in both slots")
        return {}

    def _announce(self, n: int, path: Optional[str], content: str) -> None:
        where = path if path is not None else "(no result_dir given: not written)"
        print(f"FreiHAND test: the ground truth is held by the FreiHAND evaluation server, so no errors are "
              f"computed here.\nPredictions for {n} images written to {where}: [joints, mesh], {content}, "
              "millimetres, rows ordered by image id. Submit this file to the FreiHAND server "
              "(https://competitions.codalab.org/competitions/21238).")
