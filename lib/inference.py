"""One inference API for the demo, the scripts and Python users: 2D poses in, meshes out.

:class:`Predictor` adds three steps to the bare network (:mod:`pose2mesh.models.pose2mesh_net`):

1. it is built from a checkpoint: the weights file (:func:`pose2mesh.checkpoint.resolve_weights`),
   the run's ``config.yaml`` beside it (:func:`pose2mesh.checkpoint.find_run_config`) for the
   model sizes and body model, else the original's sizes;
2. :meth:`Predictor.predict` normalizes the 2D poses of N people (or N frames) as in training
   and runs them through the network in one batch (eval mode, padding vertices skipped);
3. it fits each person's weak-perspective camera in closed form (:mod:`pose2mesh.camera`) between
   the joints regressed from the predicted mesh and the input joints, and places each mesh in one
   metric camera frame for rendering.

Example::

    from pose2mesh.inference import Predictor
    predictor = Predictor.from_checkpoint("experiment/exp_01-01_00:00", body_model="synthetic")
    result = predictor.predict(poses_2d, image_size=(640, 480))   # poses_2d: N x J x 2|3 pixels
    result.vertices            # N x V x 3 metres, root-relative, in the body model's vertex order
    result.cameras[0].scale    # pixels per metre of person 0's weak-perspective camera
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple, Union, cast

import numpy as np

from .camera import WeakPerspectiveCamera, crop_box, fit_weak_perspective_batch
from .errors import Pose2MeshError
from .joints import JointSet, add_pelvis_and_neck, get_joint_set

if TYPE_CHECKING:
    from .models.pose2mesh_net import Pose2Mesh

__all__ = ["InferenceError", "Predictor", "MeshPrediction", "DEFAULT_CHECKPOINTS", "POSE_THRESHOLD",
           "FOCAL_PER_IMAGE_SIDE", "default_checkpoint", "complete_poses"]

log = logging.getLogger("pose2mesh.inference")

# the original release's weights, per joint set (relative to the repository root)
DEFAULT_CHECKPOINTS = {
    "human36": "experiment/pose2mesh_human36J_train_human36/final.pth.tar",
    "coco": "experiment/pose2mesh_cocoJ_train_human36_coco_muco/final.pth.tar",
    "smpl": "experiment/pose2mesh_smplJ_train_surreal/final.pth.tar",
    "mano": "experiment/pose2mesh_manoJ_train_freihand/final.pth.tar",
}
JOINT_SETS = tuple(DEFAULT_CHECKPOINTS)

POSE_THRESHOLD = 0.1  # a joint counts (camera fit, drawing) above this confidence
# a weak-perspective camera is a perspective camera seen from far away; the original demo used a
# focal length of 1500 pixels for a 500-pixel crop, we use 3 x the image's long side
FOCAL_PER_IMAGE_SIDE = 3.0
MAX_BATCH = 64  # people (or frames) per forward pass; longer inputs run in chunks (bounded memory)


class InferenceError(Pose2MeshError, ValueError):
    """Bad input to the predictor (joint counts, non-finite or degenerate poses, weights)."""


def default_checkpoint(joint_set: str) -> Path:
    """The original release's weights for a joint set; a clear error when they are not there,
    naming the newest local training run's checkpoint and the command that uses it."""
    from .checkpoint import newest_run_checkpoint
    from .paths import experiment_dir, repo_root

    path = repo_root() / DEFAULT_CHECKPOINTS[joint_set]
    if path.is_file():
        return path
    newest = newest_run_checkpoint(experiment_dir())
    if newest is not None:
        try:
            shown = newest.relative_to(repo_root())
        except ValueError:
            shown = newest
        hint = (f"; the newest local checkpoint is {shown}: python demo/run.py --checkpoint {shown} "
                f"--joint_set <its joint set> ...")
    else:
        hint = ("; or train one: python main/train.py --gpu cpu "
                "--cfg asset/yaml/pose2mesh_human36J_quick_synthetic.yml, "
                "then pass --checkpoint experiment/exp_*/checkpoint/final.pth.tar")
    raise InferenceError(f"no weights for --joint_set {joint_set}: {path} does not exist (the original release's "
                         f"weights go there){hint}")


def complete_poses(poses: Union[np.ndarray, Sequence[np.ndarray]], joint_set: JointSet,
                   where: str = "input") -> Tuple[np.ndarray, bool]:
    """Check and complete 2D poses to ``(N, J, 3)`` float64 (x, y, confidence).

    ``(N, J, 2)`` get confidence 1; the 17 COCO keypoints get pelvis and neck (confidence the
    product of the two joints', the original demo's rule).

    Returns:
        the poses, and whether confidences were given.

    Raises:
        InferenceError: wrong shape or joint count, non-finite values.
    """
    if isinstance(poses, np.ndarray) and poses.ndim == 2:
        poses = [poses]  # one person
    arrays = [np.asarray(p, dtype=np.float64) for p in poses]
    if not arrays:
        raise InferenceError(f"{where}: no poses")
    out = []
    has_conf = all(a.ndim == 2 and a.shape[1] == 3 for a in arrays)
    for i, p in enumerate(arrays):
        who = f" person {i}" if len(arrays) > 1 else ""
        if p.ndim != 2 or p.shape[1] not in (2, 3):
            raise InferenceError(f"{where}{who}: expected a J x 2 or J x 3 pose, got shape {p.shape}")
        n = len(p)
        coco17 = joint_set.name == "coco" and n == 17
        if n != joint_set.num_joints and not coco17:
            fits = [name for name in JOINT_SETS
                    if get_joint_set(name).num_joints == n or (name == "coco" and n == 17)]
            hint = f" (a {n}-joint pose fits --joint_set {' or '.join(fits)})" if fits else ""
            expected = "17 or 19" if joint_set.name == "coco" else str(joint_set.num_joints)
            raise InferenceError(f"{where}{who}: the pose has {n} joints but --joint_set {joint_set.name} "
                                 f"expects {expected}{hint}")
        bad = np.argwhere(~np.isfinite(p))
        if len(bad):
            j, c = bad[0]
            raise InferenceError(f"{where}{who}: joint {j} has a non-finite {'xyc'[c]} value ({p[j, c]})")
        pose = np.ones((n, 3))
        pose[:, :p.shape[1]] = p
        if not has_conf:
            pose[:, 2] = 1.0
        if coco17:
            pose = add_pelvis_and_neck(pose, score="product")
        out.append(pose)
    return np.stack(out), has_conf


@dataclass
class MeshPrediction:
    """Predicted meshes of N people (or frames), numpy float64.

    Attributes:
        vertices: ``(N, V, 3)`` metres, root-relative camera frame (x right, y down), in the body
            model's vertex order.
        joints3d: ``(N, J_fit, 3)`` metres, the joints regressed from the meshes that the camera
            is fitted on (for ``coco`` the 17 measured keypoints).
        lifted_mm: ``(N, J, 3)`` PoseNet's lifted joints, millimetres, root-relative.
        poses_2d: ``(N, J, 3)`` the input poses as used (pixels, confidence; ``coco`` completed).
        cameras: per person, the weak-perspective camera ``uv = scale * XY + translation``.
        translations: ``(N, 3)`` metres: where each root-relative mesh sits in front of the
            perspective camera ``focal``, ``principal`` (add it to draw every person in one scene).
        faces: ``(F, 3)`` triangles of the body model (right-hand winding for hands).
        mirrored: ``(N,)`` True for a left hand predicted through the right-hand model and
            mirrored back (its faces are :meth:`faces_of` it).
        outside: ``(N,)`` fraction of the confident joints outside the image.
        image_size: ``(width, height)`` in pixels.
        focal, principal: the rendering camera (pixels).
        timings: seconds spent per step (``model``, ``camera``).
    """

    vertices: np.ndarray
    joints3d: np.ndarray
    lifted_mm: np.ndarray
    poses_2d: np.ndarray
    cameras: List[WeakPerspectiveCamera]
    translations: np.ndarray
    faces: np.ndarray
    mirrored: np.ndarray
    outside: np.ndarray
    image_size: Tuple[int, int]
    focal: float
    principal: Tuple[float, float]
    timings: Dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.vertices)

    def faces_of(self, i: int) -> np.ndarray:
        """Person ``i``'s triangles: the model's, reversed for a mirrored (left) hand."""
        return self.faces[:, ::-1].copy() if self.mirrored[i] else self.faces

    def placed_vertices(self, i: int) -> np.ndarray:
        """Person ``i``'s mesh in the rendering camera's frame (metres)."""
        return self.vertices[i] + self.translations[i]

    def crop_params(self, i: int) -> np.ndarray:
        """Person ``i``'s camera in the original demo's ``(s, tx, ty)`` for its 500-pixel crop."""
        return self.cameras[i].to_crop_params(crop_box(self.poses_2d[i, :, :2]))


class Predictor:
    """Pose2Mesh ready to predict: body model, graphs, network, weights and joint regressor.

    Args:
        cfg: a validated config (:func:`pose2mesh.config.load_config`) with
            ``DATASET.input_joint_set`` and ``DATASET.body_model`` set; ``MODEL`` gives the sizes.
        weights: a ``.pth.tar`` file; None keeps random initial weights (benchmarks).
        device: a torch device or its name (see :func:`pose2mesh.device.select_device`).

    Most users call :meth:`from_checkpoint`.
    """

    def __init__(self, cfg, weights: Optional[Union[str, Path]] = None, device: Any = "cpu"):
        import torch

        from .device import select_device
        from .engine.builders import build_graphs, build_mesh_model, build_model

        if cfg.MODEL.name != "pose2mesh_net":
            raise InferenceError(f"MODEL.name is {cfg.MODEL.name!r}; prediction needs a pose2mesh_net checkpoint")
        self.cfg = cfg
        self.device, _ = select_device(device)  # the project's one device switch
        self.joint_set = get_joint_set(cfg.DATASET.input_joint_set)
        self.body_model = build_mesh_model(cfg)
        self.faces = np.asarray(self.body_model.face, dtype=np.int64)
        self.vertex_num = int(self.body_model.vertex_num)
        # MODEL.name is pose2mesh_net (checked above): build_model returns a Pose2Mesh
        graphs = build_graphs(self.body_model, self.joint_set)
        self.model = cast("Pose2Mesh", build_model(cfg, self.joint_set, graphs))
        self.weights = Path(weights) if weights is not None else None
        self.config_path: Optional[Path] = None  # the config.yaml read by from_checkpoint
        self.load_seconds = 0.0
        self.epoch = self._load_weights(self.weights) if self.weights is not None else None
        self.model.to(self.device).eval()
        regressor = np.asarray(self.body_model.joint_regressor(self.joint_set.name), dtype=np.float64)
        if regressor.ndim != 2 or regressor.shape[1] != self.vertex_num or len(regressor) > self.joint_set.num_joints:
            raise InferenceError(f"the {self.joint_set.name} joint regressor has shape {regressor.shape}, expected "
                                 f"up to {self.joint_set.num_joints} x {self.vertex_num}")
        # the camera is fitted on the first len(regressor) joints; for coco on the 17 measured
        # keypoints only (pelvis and neck are derived from them), as the original did
        if self.joint_set.name == "coco":
            regressor = regressor[:17]
        self.regressor = torch.as_tensor(regressor, dtype=torch.float32, device=self.device)
        self.num_fit_joints = len(regressor)

    # ---- construction ----------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, checkpoint: Optional[Union[str, Path]] = None, joint_set: Optional[str] = None,
                        body_model: Optional[str] = None, device: Any = "cpu",
                        cfg: Optional[Union[str, Path]] = None) -> "Predictor":
        """Build a predictor from a checkpoint file or run folder.

        Args:
            checkpoint: a ``.pth.tar``, a run's ``checkpoint/`` folder or the run folder (its
                ``final.pth.tar``, else ``best.pth.tar``, else the newest ``checkpoint<N>``);
                None: the original release's weights for ``joint_set`` under ``experiment/``.
            joint_set: ``human36`` | ``coco`` | ``smpl`` | ``mano``; default the run's config,
                else ``coco``. A run trained on another joint set is refused.
            body_model: ``official`` | ``synthetic``; default the run's config, else official.
            device: torch device.
            cfg: a config YAML to use instead of the run's ``config.yaml``.
        """
        from .checkpoint import find_run_config, resolve_weights
        from .config import Config, load_config

        if joint_set is not None and joint_set not in JOINT_SETS:
            raise InferenceError(f"joint set {joint_set!r}: expected one of {', '.join(JOINT_SETS)}")
        if checkpoint is None:
            weights = default_checkpoint(joint_set or "coco")
        else:
            weights = resolve_weights(checkpoint, prefer="final")
        cfg_path = Path(cfg) if cfg is not None else find_run_config(weights)
        config = load_config(str(cfg_path)) if cfg_path is not None else Config()
        if cfg_path is not None:
            log.info("config: %s", cfg_path)
        else:
            log.info("config: none beside %s, using the original's model sizes", weights)
        if config.MODEL.name != "pose2mesh_net":
            raise InferenceError(f"{cfg_path}: MODEL.name is {config.MODEL.name!r}; prediction needs a "
                                 f"pose2mesh_net checkpoint")
        trained = config.DATASET.input_joint_set if cfg_path is not None else None
        chosen = joint_set or trained or "coco"
        if trained is not None and trained != chosen:
            raise InferenceError(f"{weights} was trained on the {trained} joint set ({cfg_path}), but --joint_set is "
                                 f"{chosen}: pass --joint_set {trained}, or weights trained on {chosen}")
        config.DATASET.input_joint_set = chosen
        config.DATASET.body_model = body_model or (config.DATASET.body_model if cfg_path is not None else "official")
        predictor = cls(config, weights, device)
        predictor.config_path = cfg_path
        return predictor

    def _load_weights(self, path: Path) -> Optional[int]:
        from .checkpoint import load_checkpoint, load_model_weights

        ckpt = load_checkpoint(str(path))
        load_model_weights(self.model, ckpt, strict=True)
        return ckpt.get("epoch") if isinstance(ckpt, dict) else None

    def describe_body(self) -> str:
        """The body model in words (official or synthetic, and which file)."""
        desc = getattr(self.body_model, "description", "")
        source = getattr(self.body_model, "source", "?")
        return f"{source} ({desc})" if desc else str(source)

    # ---- the network -----------------------------------------------------------------------
    def normalize(self, poses: np.ndarray) -> np.ndarray:
        """Pixels ``(N, J, >=2)`` (or one ``(J, >=2)``) -> network input ``(N, J, 2)`` float32, as training:
        box crop to ``MODEL.input_shape``, division by its size, per-sample mean/std."""
        from .coord_utils import get_bbox, process_bbox
        from .datasets.common import normalize_pose2d

        poses = np.asarray(poses, dtype=np.float64)
        single = poses.ndim == 2
        shape = tuple(self.cfg.MODEL.input_shape)
        out = []
        for i, pose in enumerate(poses[None] if single else poses):
            bbox = process_bbox(get_bbox(pose[:, :2]), shape)
            if bbox is None:
                who = f"person {i}: " if not single and len(poses) > 1 else ""
                raise InferenceError(f"{who}the 2D pose is degenerate: all joints lie on one horizontal or "
                                     f"vertical line")
            out.append(normalize_pose2d(pose[:, :2], bbox, shape))
        return out[0] if single else np.stack(out)

    def forward(self, poses: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The network alone on ``(N, J, 2|3)`` pixel poses, in chunks of :data:`MAX_BATCH`.

        Returns:
            meshes ``(N, V, 3)`` metres (body-model order), regressed joints ``(N, J_fit, 3)``
            metres, lifted joints ``(N, J, 3)`` mm; float64.
        """
        import torch

        from .coord_utils import regress_joints

        poses, _ = complete_poses(poses, self.joint_set)  # coco: 17 keypoints -> 19
        x_all = self.normalize(poses)
        meshes, joints, lifted = [], [], []
        with torch.inference_mode():
            for start in range(0, len(x_all), MAX_BATCH):
                x = torch.as_tensor(x_all[start:start + MAX_BATCH], dtype=torch.float32, device=self.device)
                mesh_padded, pose3d = self.model(x)
                mesh = self.model.to_body_vertices(mesh_padded)  # B x V x 3
                meshes.append(mesh.double().cpu().numpy())
                joints.append(regress_joints(self.regressor, mesh).double().cpu().numpy())
                lifted.append(pose3d.double().cpu().numpy())
        return np.concatenate(meshes), np.concatenate(joints), np.concatenate(lifted)

    # ---- the whole step --------------------------------------------------------------------
    def predict(self, poses_2d, image_size: Optional[Tuple[int, int]] = None,
                mirrored: Optional[Sequence[bool]] = None,
                confidence_threshold: float = POSE_THRESHOLD) -> MeshPrediction:
        """Meshes, 3D joints and cameras for the 2D poses of N people or frames, in one batch.

        Args:
            poses_2d: ``(N, J, 2|3)`` pixels (and confidence), or a list of ``(J, 2|3)``; for
                ``coco`` 17 or 19 joints.
            image_size: ``(width, height)`` of the image the poses are in; default a canvas
                1.5 times the poses' extent (the original demo's).
            mirrored: per pose, True for a left hand: it is mirrored into the right-hand model
                and its mesh mirrored back (``mano`` only).
            confidence_threshold: joints at or below it do not count in the camera fit.

        Returns:
            :class:`MeshPrediction`.
        """
        import time

        poses, has_conf = complete_poses(poses_2d, self.joint_set)
        n = len(poses)
        flip = np.zeros(n, bool) if mirrored is None else np.asarray(mirrored, dtype=bool).reshape(-1)
        if len(flip) != n:
            raise InferenceError(f"mirrored has {len(flip)} entries for {n} poses")
        if flip.any() and self.joint_set.name != "mano":
            raise InferenceError("mirrored poses are for hands (--joint_set mano)")
        if image_size is None:
            image_size = canvas_size(poses)
        width, height = int(image_size[0]), int(image_size[1])

        t0 = time.perf_counter()
        sign = np.where(flip, -1.0, 1.0)[:, None, None]
        net_in = poses.copy()
        net_in[..., 0] *= sign[..., 0]
        meshes, joints, lifted = self.forward(net_in)
        meshes[..., 0] *= sign[..., 0]
        joints[..., 0] *= sign[..., 0]
        lifted[..., 0] *= sign[..., 0]
        t_model = time.perf_counter() - t0

        t0 = time.perf_counter()
        focal = FOCAL_PER_IMAGE_SIDE * max(width, height)
        principal = ((width - 1) / 2.0, (height - 1) / 2.0)
        J = self.num_fit_joints
        weights = np.ones((n, J))
        if has_conf:  # confident joints only; a person with fewer than two keeps every joint
            confident = (poses[:, :J, 2] > confidence_threshold).astype(np.float64)
            enough = np.count_nonzero(confident, axis=1) >= 2
            weights[enough] = confident[enough]
        try:
            scales, shifts, rms = fit_weak_perspective_batch(joints, poses[:, :J, :2], weights)
        except ValueError as err:
            raise InferenceError(f"no camera fits ({err})") from None
        cameras = [WeakPerspectiveCamera(scale=float(a), translation=b, rms=float(r))
                   for a, b, r in zip(scales, shifts, rms)]
        translations = [cam.translation3d(focal, principal) for cam in cameras]
        t_camera = time.perf_counter() - t0

        conf = poses[..., 2] > confidence_threshold if has_conf else np.ones(poses.shape[:2], bool)
        xy = poses[..., :2]
        out_of_view = (xy[..., 0] < 0) | (xy[..., 0] > width - 1) | (xy[..., 1] < 0) | (xy[..., 1] > height - 1)
        outside = (out_of_view & conf).sum(1) / np.maximum(conf.sum(1), 1)
        return MeshPrediction(
            vertices=meshes, joints3d=joints, lifted_mm=lifted, poses_2d=poses, cameras=cameras,
            translations=np.array(translations).reshape(n, 3), faces=self.faces, mirrored=flip, outside=outside,
            image_size=(width, height), focal=focal, principal=principal,
            timings={"model": t_model, "camera": t_camera})


def canvas_size(poses: np.ndarray) -> Tuple[int, int]:
    """The original demo's canvas without an image: 1.5 times the poses' largest coordinates."""
    xy = np.asarray(poses)[..., :2].reshape(-1, 2)
    w = int(math.ceil(max(1.5 * xy[:, 0].max(), xy[:, 0].max() + 1, 64)))
    h = int(math.ceil(max(1.5 * xy[:, 1].max(), xy[:, 1].max() + 1, 64)))
    if w * h > 64e6:
        raise InferenceError(f"the pose's coordinates reach ({xy[:, 0].max():.0f}, {xy[:, 1].max():.0f}): too large "
                             f"for a canvas; are they pixels? Give the image (--input_img) to draw over it")
    return w, h
