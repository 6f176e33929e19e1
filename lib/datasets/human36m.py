"""Human3.6M, protocol 2, with SMPL fits (the original's ``data/Human36M/dataset.py``).

Files (``data/Human36M/``, the original layout; see ``data/Human36M/README.md``)::

    annotations/Human36M_subject{S}_data.json        COCO format: images (subject, action_idx,
                                                     subaction_idx, cam_idx, frame_idx, file_name,
                                                     width, height) and annotations (image_id, bbox)
    annotations/Human36M_subject{S}_camera.json      {cam_idx: {R, t (mm), f, c}}
    annotations/Human36M_subject{S}_joint_3d.json    {action: {subaction: {frame: 17 x 3 world mm}}}
    annotations/Human36M_subject{S}_smpl_param.json  {action: {subaction: {frame: {pose, shape, trans}}}}
    absnet_output_on_testset.json                    {image file name: 17 x 2 detected joints}
    J_regressor_h36m_correct.npy                     read by the body model

Protocol 2: training subjects 1, 5, 6, 7, 8 (every 5th frame), test subjects 9 and 11 (every
50th frame). Frames without an SMPL fit are skipped. SMPL is evaluated with the neutral body
(as the original), with shapes beyond 3 standard deviations reset to the mean shape, in world
coordinates and moved to the camera frame. A fit whose Human3.6M joints (regressed from the
mesh, translation-aligned) are more than 25 mm from the annotated joints on average marks the
mesh target invalid (and the lifting target too for the COCO input joint set, whose joints come
from the mesh).

Testing with ``use_gt_input: False`` takes the 2D joints from the absnet detector output,
matched by image file name (the original paired the sorted lists by position). Those are
Human3.6M joints only: the COCO input joint set has no detector output here, and asking for it
is an error (the original indexed its detection list with an image id and crashed).
"""
from __future__ import annotations

import logging
from typing import Dict, List, Mapping, Optional

import numpy as np

from ..coord_utils import cam2pixel, process_bbox
from ..joints import H36M_ACTIONS, get_joint_set
from .annotation_io import as_array, coco_index, read_json, read_json_object, require
from .body_base import LoaderBase
from .common import group_means, per_sample_joint_errors, per_sample_mesh_errors, write_result_json
from .errors import DatasetError
from .mesh_batch import run_smpl

__all__ = ["Human36M"]

log = logging.getLogger(__name__)

HINT = "download the parsed Human3.6M data and SMPL fits, see data/Human36M/README.md"


class Human36M(LoaderBase):
    """Human3.6M protocol 2 (see the module docstring).

    Attributes:
        db: per-sample arrays, sorted by image file name: 'img_name', 'img_path', 'img_id',
            'subject', 'action' (0..14, :data:`pose2mesh.joints.H36M_ACTIONS`), 'R', 't' (mm),
            'focal', 'princpt', 'joint_cam' (17 x 3 camera mm), 'pose', 'shape', 'trans' (m).
    """

    name = "Human36M"
    index_field = "img_name"
    input_joint_sets = ("human36", "coco")
    protocol = 2
    fitting_thr = 25.0  # mm

    def __init__(self, data_split: str, cfg, data_dir=None, mesh_model=None, seed: int = 0,
                 mesh_cache_mb: float = 2048):
        super().__init__(data_split, cfg, data_dir, mesh_model, seed, mesh_cache_mb)
        self.annot_dir = self._path("annotations")
        self.img_dir = self._path("images")
        self.h36m = get_joint_set("human36")
        self.reg_h36m = self.regressor("human36")
        self.reg_coco = self.regressor("coco")
        self.reg_smpl = self.regressor("smpl")
        self.db = self._load_annotations()
        self.detections: Optional[np.ndarray] = None
        if not self.is_train and not self.use_gt_input:
            if self.joint_set.name != "human36":
                raise ValueError("Human36M test with detected 2D poses (use_gt_input: False) needs "
                                 "DATASET.input_joint_set 'human36': absnet_output_on_testset.json holds "
                                 "Human3.6M joints only")
            self.detections = self._load_detections()
        self.meshes = self._mesh_batcher()

    # ---- loading -----------------------------------------------------------------------------
    @property
    def subjects(self) -> List[int]:
        return [1, 5, 6, 7, 8] if self.is_train else [9, 11]

    @property
    def sampling_ratio(self) -> int:
        return 5 if self.is_train else 50

    def _load_annotations(self) -> Dict[str, np.ndarray]:
        log.info("Load annotations of Human36M protocol %d (%s)", self.protocol, self.data_split)
        rows: List[dict] = []
        for subject in self.subjects:
            prefix = self.annot_dir / f"Human36M_subject{subject}"
            data_path = f"{prefix}_data.json"
            cam_path, joint_path = f"{prefix}_camera.json", f"{prefix}_joint_3d.json"
            smpl_path = f"{prefix}_smpl_param.json"
            images, anns = coco_index(read_json(data_path, "Human3.6M annotation file", HINT), data_path)
            cameras = read_json(cam_path, "Human3.6M camera file", HINT)
            joints = read_json(joint_path, "Human3.6M 3D joint file", HINT)
            smpl_params = read_json(smpl_path, "Human3.6M SMPL parameter file", HINT)
            for ann in anns:
                img = images[ann["image_id"]]
                where = f"image {ann['image_id']}"
                frame = int(require(img, "frame_idx", data_path, where))
                if frame % self.sampling_ratio != 0:
                    continue
                action = int(require(img, "action_idx", data_path, where))
                subaction = int(require(img, "subaction_idx", data_path, where))
                cam_idx = int(require(img, "cam_idx", data_path, where))
                img_subject = int(require(img, "subject", data_path, where))
                key = (str(action), str(subaction), str(frame))
                try:
                    smpl = smpl_params[key[0]][key[1]][key[2]]
                except (KeyError, TypeError):
                    continue  # no SMPL fit for this frame: skipped, as the original
                try:
                    joint_world = joints[key[0]][key[1]][key[2]]
                except (KeyError, TypeError):
                    raise DatasetError(f"{joint_path}: no 3D joints for action {action}, subaction {subaction}, "
                                       f"frame {frame}") from None
                cam = require(cameras, str(cam_idx), cam_path, "cameras")
                file_name = str(require(img, "file_name", data_path, where))
                rows.append({
                    "img_name": file_name.split("/")[-1],
                    "img_path": str(self.img_dir / file_name),
                    "img_id": ann["image_id"],
                    "subject": img_subject,
                    "action": action - 2,  # action_idx runs from 2 (Directions) to 16
                    "R": as_array(require(cam, "R", cam_path, f"camera {cam_idx}"), "R", cam_path, (3, 3)),
                    "t": as_array(require(cam, "t", cam_path, f"camera {cam_idx}"), "t", cam_path, (3,)),
                    "focal": as_array(require(cam, "f", cam_path, f"camera {cam_idx}"), "f", cam_path, (2,)),
                    "princpt": as_array(require(cam, "c", cam_path, f"camera {cam_idx}"), "c", cam_path, (2,)),
                    "joint_world": as_array(joint_world, "joint_3d", joint_path, (17, 3), f"frame {key}"),
                    "pose": as_array(require(smpl, "pose", smpl_path, f"frame {key}"), "pose", smpl_path, (72,)),
                    "shape": as_array(require(smpl, "shape", smpl_path, f"frame {key}"), "shape", smpl_path, (10,)),
                    "trans": as_array(require(smpl, "trans", smpl_path, f"frame {key}"), "trans", smpl_path, (3,)),
                    "bbox": as_array(require(ann, "bbox", data_path, f"annotation {ann.get('id')}"), "bbox",
                                     data_path, (4,), f"annotation {ann.get('id')}"),
                })
        rows = [r for r in rows if self._bbox_ok(r["bbox"])]
        rows.sort(key=lambda r: r["img_name"])
        db: Dict[str, np.ndarray] = {}
        for field in ("img_name", "img_path", "img_id", "subject", "action"):
            db[field] = np.array([r[field] for r in rows])
        for field in ("R", "t", "focal", "princpt", "joint_world", "pose", "shape", "trans"):
            db[field] = np.stack([r[field] for r in rows]).astype(np.float32) if rows else np.zeros((0,), np.float32)
        if rows:
            # camera-frame annotated joints (mm)
            db["joint_cam"] = (np.matmul(db["joint_world"], np.swapaxes(db["R"], 1, 2))
                               + db["t"][:, None]).astype(np.float32)
            # the original resets implausible shapes to the mean shape
            db["shape"][np.any(np.abs(db["shape"]) > 3, axis=1)] = 0.0
        else:
            db["joint_cam"] = np.zeros((0, 17, 3), np.float32)
        return db

    def _bbox_ok(self, bbox: np.ndarray) -> bool:
        return process_bbox(bbox, self.input_shape) is not None

    def _load_detections(self) -> np.ndarray:
        path = self._path("absnet_output_on_testset.json")
        data = read_json_object(path, "Human3.6M 2D detection file", HINT, "image file names to 2D joints")
        det = np.zeros((len(self), 17, 2), dtype=np.float32)
        for i, img_name in enumerate(self.db["img_name"]):
            if img_name not in data:
                raise DatasetError(f"{path}: no detection for image '{img_name}'")
            det[i] = as_array(data[img_name], img_name, path, (17, -1))[:, :2]
        return det

    # ---- samples -----------------------------------------------------------------------------
    def _compute_meshes(self, idx: np.ndarray):
        """Camera-frame SMPL vertices and joints (mm) of samples ``idx``: the neutral body in
        world coordinates (pose, shape, trans), then ``R X + t`` (equal to the original's
        rotation of the root pose followed by its translation fix-up)."""
        db = self.db
        verts, joints = run_smpl(self.mesh_model, db["pose"][idx], db["shape"][idx], db["trans"][idx])
        R, t = db["R"][idx], db["t"][idx]
        Rt = np.swapaxes(R, 1, 2)  # X R^T = (R X^T)^T, batched
        verts = np.matmul(verts, Rt) + t[:, None]
        joints = np.matmul(joints, Rt) + t[:, None]
        return verts.astype(np.float32), joints.astype(np.float32)

    def fitting_error(self, mesh: np.ndarray, joint_cam: np.ndarray) -> np.ndarray:
        """Mean distance (mm) between annotated and mesh-regressed Human3.6M joints after
        aligning their means (the original's check). mesh ``(B, V, 3)``, joint_cam ``(B, 17, 3)``."""
        gt = joint_cam - joint_cam[:, self.h36m.root:self.h36m.root + 1]
        fit = np.matmul(self.reg_h36m, mesh)
        fit = fit - fit.mean(axis=1, keepdims=True) + gt.mean(axis=1, keepdims=True)
        return np.linalg.norm(gt - fit, axis=-1).mean(axis=1)

    def _samples(self, indices: List[int], draws: Optional[List[int]] = None) -> List:
        idx = np.asarray(indices, dtype=np.int64)
        assert self.meshes is not None, f"{self.name}: no meshes for this split"
        verts, _ = self.meshes.get(idx)
        db = self.db
        joint_cam = db["joint_cam"][idx]
        errors = self.fitting_error(verts, joint_cam)
        coco_cam = np.matmul(self.reg_coco, verts)
        root = self.h36m.root
        coco_root = get_joint_set("coco").root
        # the regression target: the annotated joints, or another target set from the mesh
        use_annotated = self.target_joint_set.name == "human36"
        reg_targets = None if use_annotated else self.target_from_mesh(verts)
        rngs = self.sample_rngs(idx, draws)
        out = []
        for k, i in enumerate(idx):
            f, c = db["focal"][i], db["princpt"][i]
            h36m_cam = joint_cam[k]
            mesh = verts[k] - h36m_cam[root]
            h36m_rel = h36m_cam - h36m_cam[root]
            if self.joint_set.name == "coco":
                joint_img = cam2pixel(coco_cam[k], f, c)[:, :2]
                lift = coco_cam[k] - coco_cam[k, coco_root]
            else:
                joint_img = cam2pixel(h36m_cam, f, c)[:, :2]
                lift = h36m_rel
            bad_fit = errors[k] > self.fitting_thr
            mesh_valid = 0.0 if bad_fit else 1.0
            lift_valid = 0.0 if (bad_fit and self.joint_set.name == "coco") else 1.0
            detection = self.detections[i] if self.detections is not None else None
            reg = h36m_rel if reg_targets is None else reg_targets[k]
            out.append(self.assemble(rngs[k], joint_img, lift, mesh_mm=mesh, reg_pose3d=reg,
                                     lift_valid=lift_valid, mesh_valid=mesh_valid, reg_valid=1.0,
                                     detection=detection))
        return out

    # ---- evaluation ----------------------------------------------------------------------------
    def _protocol(self) -> str:
        return (f"Human3.6M protocol {self.protocol}: test subjects 9 and 11, every 50th frame, all cameras; "
                "MPJPE / PA-MPJPE (Procrustes: scale, rotation, translation) over the 14 Human3.6M evaluation "
                "joints (pelvis, torso, nose excluded) regressed from the predicted mesh with "
                "J_regressor_h36m_correct, against the annotated joints, both relative to the pelvis; "
                "SMPL MPJPE over the 24 joints regressed from both meshes with the SMPL regressor, relative "
                "to the SMPL pelvis; MPVPE over all vertices after subtracting the SMPL pelvis; "
                "means over samples, per action over that action's samples (mm).")

    def evaluate(self, results: Mapping[str, np.ndarray], result_dir: Optional[str] = None) -> Dict[str, float]:
        """The original's Human3.6M evaluation (see :meth:`_protocol`); prints the summary and
        writes ``<result_dir>/Human36M_test.json``.

        Args:
            results: 'mesh_coord', 'mesh_coord_target' ``(N, V, 3)`` mm, and optionally 'index'
                (the dataset rows; default the first N).
        """
        pred, gt = self._take(results, "mesh_coord"), self._take(results, "mesh_coord_target")
        rows = self.result_rows(results, len(pred))
        actions = self.db["action"][rows]
        smpl = per_sample_mesh_errors(pred, gt, self.reg_smpl, root=0)
        h36m = per_sample_mesh_errors(pred, gt, self.reg_h36m, root=self.h36m.root, eval_joints=self.h36m.eval_joints,
                                      gt_joints=self.db["joint_cam"][rows], mesh_root_regressor=self.reg_smpl[0])
        figures = [("H36M pose error (MPJPE)", "h36m_mpjpe", h36m["mpjpe"]),
                   ("H36M pose error (PA-MPJPE)", "h36m_pa_mpjpe", h36m["pa_mpjpe"]),
                   ("SMPL pose error (MPJPE)", "smpl_mpjpe", smpl["mpjpe"]),
                   ("SMPL mesh error (MPVPE)", "mpvpe", smpl["mpvpe"])]
        return self._report_per_action(figures, actions, result_dir, f"{self.name}_{self.split}")

    def evaluate_joint(self, results: Mapping[str, np.ndarray], result_dir: Optional[str] = None) -> Dict[str, float]:
        """PoseNet evaluation: lifted Human3.6M joints against the annotated joints (14 evaluation
        joints, pelvis-relative), or lifted COCO joints against their targets (19 joints,
        pelvis-relative). Prints MPJPE and PA-MPJPE (total and per action)."""
        pred = self._take(results, "joint_coord")
        rows = self.result_rows(results, len(pred))
        if self.joint_set.name == "human36":
            err = per_sample_joint_errors(pred, self.db["joint_cam"][rows], self.h36m.root, self.h36m.eval_joints)
        else:
            err = per_sample_joint_errors(pred, self._take(results, "joint_coord_target"), self.joint_set.root)
        figures = [("pose error (MPJPE)", "mpjpe", err["mpjpe"]),
                   ("pose error (PA-MPJPE)", "pa_mpjpe", err["pa_mpjpe"])]
        return self._report_per_action(figures, self.db["action"][rows], result_dir, f"{self.name}_{self.split}_joint")

    def _report_per_action(self, figures, actions: np.ndarray, result_dir: Optional[str],
                           file_name: str) -> Dict[str, float]:
        totals: Dict[str, float] = {}
        per_action: Dict[str, Dict[str, float]] = {}
        lines = []
        for title, key, per_sample in figures:
            totals[key] = float(np.mean(per_sample)) if len(per_sample) else float("nan")
            per_action[key] = group_means(per_sample, actions, H36M_ACTIONS)
            lines.append(f"Protocol {self.protocol} {title} >> tot: {totals[key]:.2f}")
            lines.append(" ".join(f"{name}: {value:.2f}" for name, value in per_action[key].items()))
        print("\n".join(lines))
        if result_dir is not None:
            write_result_json(result_dir, file_name, {
                "dataset": self.name, "split": self.split, "protocol": self._protocol(),
                "input_joint_set": self.joint_set.name, "use_gt_input": self.use_gt_input,
                "samples": int(len(actions)), "metrics_mm": totals, "per_action_mm": per_action})
        return totals
