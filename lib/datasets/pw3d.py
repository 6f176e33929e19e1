"""3DPW (the original's ``data/PW3D/dataset.py``).

Files (``data/PW3D/``, see ``data/PW3D/README.md``)::

    data/3DPW_latest_{train,validation,test}.json      COCO format, written by the original's
                                                      data/3dpw2coco.py
    data/darkpose_3dpw_{train,validation,test}set_output.json   DarkPose 2D detections:
                                                      [{annotation_id, keypoints: 17 x 3}]
    imageFiles/<sequence>/image_%05d.jpg              (images are not read)

Camera handling (the original's): ``3dpw2coco.py`` already folded each frame's camera pose
into the SMPL parameters (root orientation rotated by ``R``, translation moved to the camera
frame), so the loader evaluates SMPL with the annotation's gender, pose, shape and translation
and gets camera-frame meshes directly; ``cam_param`` supplies only the intrinsics for the
projection. Targets are made relative to the Human3.6M pelvis regressed from the mesh.

Input joints are COCO (the original hard-coded them): the DarkPose detections with pelvis and
neck added, or with ``use_gt_input`` the projection of the COCO joints regressed from the
mesh. With ``use_gt_input`` (or in training) the Human3.6M joint set can be used too. In
training with ``use_gt_input: False`` the detector-error synthesis of the other datasets applies
and no detection file is read (the original fed the detections in training as well, from a
``darkpose_3dpw_trainset_output.json`` its README does not list). No augmentation in training:
the original's loader set ``rot, flip = 0, 0`` whatever ``AUG`` said.

Evaluation (:meth:`PW3D.evaluate`) prints the original's figures, plus PA-MPVPE and the
acceleration error that the original computed in commented-out code and never printed.
"""
from __future__ import annotations

import logging
from typing import Dict, List, Mapping, Optional

import numpy as np

from ..coord_utils import cam2pixel, process_bbox
from ..joints import add_pelvis_and_neck
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

__all__ = ["PW3D", "acceleration_error"]

log = logging.getLogger(__name__)

HINT = "download the parsed 3DPW data and DarkPose detections, see data/PW3D/README.md"


def acceleration_error(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per-frame acceleration error (mm / frame^2) of one sequence, as the original's
    ``compute_error_accel``: the second finite differences of predicted and ground-truth joints,
    the Euclidean norm of their difference, averaged over joints.

    Args:
        gt, pred: ``(T, J, 3)``.
    Returns:
        ``(T - 2,)``.
    """
    accel_gt = gt[:-2] - 2 * gt[1:-1] + gt[2:]
    accel_pred = pred[:-2] - 2 * pred[1:-1] + pred[2:]
    return np.linalg.norm(accel_pred - accel_gt, axis=-1).mean(axis=-1)


class PW3D(LoaderBase):
    """3DPW (see the module docstring).

    Args:
        subset: the annotation file's split ('train', 'validation', 'test'); default the
            dataset split ('train' or 'test').

    Attributes:
        db: per-sample arrays sorted by (person id, image path) as the original: 'annot_id',
            'image_id', 'person_id', 'img_path', 'vid_name' (sequence + person id), 'focal',
            'princpt', 'pose', 'shape', 'trans' (camera frame, m), 'gender'.
    """

    name = "PW3D"
    input_joint_sets = ("coco", "human36")
    # the original's 3DPW loader sets rot, flip = 0, 0: AUG.flip / rotate_factor are ignored
    augmented = False

    def __init__(self, data_split: str, cfg, data_dir=None, mesh_model=None, seed: int = 0,
                 mesh_cache_mb: float = 2048, subset: Optional[str] = None):
        super().__init__(data_split, cfg, data_dir, mesh_model, seed, mesh_cache_mb)
        self.subset = subset or data_split
        if self.joint_set.name != "coco" and not self.use_gt_input and not self.is_train:
            raise ValueError("PW3D with detected 2D poses (use_gt_input: False) needs DATASET.input_joint_set 'coco': "
                             "the DarkPose detections are COCO keypoints")
        self._set_body_regressors()
        self.reg_smpl = self.regressor("smpl")
        self.annot_path = self._path("data", f"3DPW_latest_{self.subset}.json")
        self.det_path = self._path("data", f"darkpose_3dpw_{self.subset}set_output.json")
        self.db = self._load_annotations()
        # detections replace the input at test time only (training synthesizes errors)
        self.detections = None if (self.use_gt_input or self.is_train) else self._load_detections()
        self.meshes = self._mesh_batcher()

    def _load_annotations(self) -> Dict[str, np.ndarray]:
        path = self.annot_path
        images, anns = coco_index(read_json(path, "3DPW annotation file", HINT), path)
        rows: List[dict] = []
        for ann in anns:
            aid = require(ann, "id", path, "an annotation")
            where = f"annotation {aid}"
            img = images[ann["image_id"]]
            bbox = as_array(require(ann, "bbox", path, where), "bbox", path, (4,), where)
            if process_bbox(bbox, self.input_shape) is None:
                continue
            cam = require(img, "cam_param", path, f"image {img['id']}")
            smpl = require(ann, "smpl_param", path, where)
            gender = normalize_gender(require(smpl, "gender", path, where))
            if gender is None:
                raise DatasetError(f"{path}: field 'gender' in {where} is {smpl['gender']!r} "
                                   "(expected 'male', 'female' or 'neutral')")
            sequence = str(require(img, "sequence", path, f"image {img['id']}"))
            person = int(require(ann, "person_id", path, where))
            rows.append({
                "annot_id": int(aid), "image_id": img["id"], "person_id": person,
                "img_path": str(self._path("imageFiles", sequence,
                                           str(require(img, "file_name", path, f"image {img['id']}")))),
                "vid_name": f"{sequence}{person}",
                **read_intrinsics(cam, path, f"image {img['id']}"), **read_smpl_param(smpl, path, where),
                "gender": gender})
        rows.sort(key=lambda r: (r["person_id"], r["img_path"]))
        return stack_rows(rows, ("annot_id", "image_id", "person_id", "img_path", "vid_name", "gender"),
                          (("focal", (2,)), ("princpt", (2,)), ("pose", (72,)), ("shape", (10,)), ("trans", (3,))))

    def _load_detections(self) -> np.ndarray:
        det = read_detections(self.det_path, "3DPW 2D detection file", HINT, "annotation_id", self.db["annot_id"], 17,
                              fields="annotation_id, keypoints", convert=int)
        return add_pelvis_and_neck(det)

    def _samples(self, indices: List[int], draws: Optional[List[int]] = None) -> List:
        idx, verts, coco_cam, h36m_cam, reg = self._regress_batch(indices)
        rngs = self.sample_rngs(idx, draws)
        out = []
        for k, i in enumerate(idx):
            f, c = self.db["focal"][i], self.db["princpt"][i]
            joints, lift, mesh = self._input_joints(verts[k], coco_cam[k], h36m_cam[k])
            joint_img = cam2pixel(joints, f, c)[:, :2]
            det = self.detections[i] if self.detections is not None else None
            out.append(self.assemble(rngs[k], joint_img, lift, mesh_mm=mesh, reg_pose3d=reg[k],
                                     detection=det))
        return out

    # ---- evaluation ----------------------------------------------------------------------------
    PROTOCOL = ("3DPW {subset} set, every annotated person and frame (frames without a valid camera pose are "
                "absent from the annotation file); H36M MPJPE / PA-MPJPE over the 14 Human3.6M evaluation joints "
                "regressed with J_regressor_h36m_correct from predicted and ground-truth meshes (each relative to "
                "its SMPL pelvis, then to its Human3.6M pelvis); SMPL MPJPE over the 24 SMPL joints relative to the "
                "SMPL pelvis; MPVPE over all vertices after subtracting the SMPL pelvis; PA-MPVPE after Procrustes "
                "alignment (scale, rotation, translation) of the whole mesh; acceleration error: mean over "
                "videos (sequence x person) of the mean over frames of the per-joint norm of the difference of "
                "second finite differences of the 14 pelvis-relative H36M joints, unsmoothed, in mm/frame^2, "
                "consecutive annotated frames of a video taken as consecutive samples (the original's rule); "
                "all other figures are means over samples (mm).")

    def evaluate(self, results: Mapping[str, np.ndarray], result_dir: Optional[str] = None) -> Dict[str, float]:
        """The original's 3DPW figures plus PA-MPVPE and the acceleration error; prints the
        summary and writes ``<result_dir>/PW3D_<split>.json``.

        Args:
            results: 'mesh_coord', 'mesh_coord_target' ``(N, V, 3)`` mm, optionally 'index'.
        """
        pred, gt = self._take(results, "mesh_coord"), self._take(results, "mesh_coord_target")
        rows = self.result_rows(results, len(pred))
        smpl = per_sample_mesh_errors(pred, gt, self.reg_smpl, root=0, align_mesh=True)
        h36m = per_sample_mesh_errors(pred, gt, self.reg_h36m, root=self.h36m.root, eval_joints=self.h36m.eval_joints,
                                      mesh_root_regressor=self.reg_smpl[0])
        accel, videos = self._acceleration(pred, gt, rows)
        metrics = {"H36M MPJPE": float(h36m["mpjpe"].mean()), "H36M PA-MPJPE": float(h36m["pa_mpjpe"].mean()),
                   "SMPL MPJPE": float(smpl["mpjpe"].mean()), "MPVPE": float(smpl["mpvpe"].mean()),
                   "PA-MPVPE": float(smpl["pa_mpvpe"].mean()), "H36M accel error": accel}
        lines = [f"H36M MPJPE (mm)    >> tot: {metrics['H36M MPJPE']:.2f}",
                 f"H36M PA-MPJPE (mm) >> tot: {metrics['H36M PA-MPJPE']:.2f}",
                 f"SMPL MPJPE (mm)    >> tot: {metrics['SMPL MPJPE']:.2f}",
                 f"MPVPE (mm)         >> tot: {metrics['MPVPE']:.2f}",
                 f"PA-MPVPE (mm)      >> tot: {metrics['PA-MPVPE']:.2f}",
                 f"H36M accel error (mm/frame^2) >> tot: {accel:.2f} ({videos} videos)"]
        print("\n".join(lines))
        if result_dir is not None:
            write_result_json(result_dir, f"{self.name}_{self.split}", {
                "dataset": self.name, "split": self.split, "subset": self.subset,
                "protocol": self.PROTOCOL.format(subset=self.subset), "input_joint_set": self.joint_set.name,
                "use_gt_input": self.use_gt_input, "samples": int(len(rows)), "videos": videos,
                "metrics_mm": {k: v for k, v in metrics.items() if k != "H36M accel error"},
                "accel_error_mm_per_frame2": accel})
        return metrics

    def _acceleration(self, pred: np.ndarray, gt: np.ndarray, rows: np.ndarray):
        """Mean over videos of the per-video mean acceleration error; videos with fewer than
        three evaluated frames are left out. Returns (error, number of videos)."""
        def h36m_joints(mesh):
            mesh = np.asarray(mesh, dtype=np.float64)
            mesh = mesh - np.einsum("v,nvc->nc", self.reg_smpl[0], mesh)[:, None]
            joints = np.matmul(self.reg_h36m, mesh)
            joints = joints - joints[:, self.h36m.root:self.h36m.root + 1]
            return joints[:, list(self.h36m.eval_joints)]

        pred_j, gt_j = h36m_joints(pred), h36m_joints(gt)
        names = self.db["vid_name"][rows]
        per_video = []
        for name in np.unique(names):
            sel = np.nonzero(names == name)[0]
            sel = sel[np.argsort(rows[sel], kind="stable")]
            if len(sel) >= 3:
                per_video.append(float(acceleration_error(gt_j[sel], pred_j[sel]).mean()))
        return (float(np.mean(per_video)) if per_video else float("nan")), len(per_video)

    def evaluate_joint(self, results: Mapping[str, np.ndarray], result_dir: Optional[str] = None) -> Dict[str, float]:
        """PoseNet evaluation: lifted joints against their targets, all joints, relative to the
        pelvis (the original's COCO MPJPE / PA-MPJPE)."""
        pred, gt = self._take(results, "joint_coord"), self._take(results, "joint_coord_target")
        rows = self.result_rows(results, len(pred))
        err = per_sample_joint_errors(pred, gt, self.joint_set.root)
        tag = "COCO" if self.joint_set.name == "coco" else "H36M"
        metrics = {f"{tag} MPJPE": float(err["mpjpe"].mean()), f"{tag} PA-MPJPE": float(err["pa_mpjpe"].mean())}
        print(f"{tag} MPJPE (mm)    >> tot: {metrics[tag + ' MPJPE']:.2f}\n"
              f"{tag} PA-MPJPE (mm) >> tot: {metrics[tag + ' PA-MPJPE']:.2f}")
        if result_dir is not None:
            write_result_json(result_dir, f"{self.name}_{self.split}_joint", {
                "dataset": self.name, "split": self.split, "subset": self.subset,
                "protocol": f"lifted {self.joint_set.name} joints (all {self.joint_set.num_joints}) against their "
                            "targets, both relative to the pelvis; MPJPE and PA-MPJPE, means over samples (mm)",
                "samples": int(len(rows)), "metrics_mm": metrics})
        return metrics
