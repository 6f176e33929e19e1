"""What every dataset shares: the input pipeline, the sample schema, and the evaluation.

The sample schema (the trainer relies on it; every array float32)::

    mode 'posenet':
        inputs  {'pose2d': J x 2}                  normalized 2D joints (see normalize_pose2d)
        targets {'lift_pose3d': J x 3}             mm, root-relative, input joint set
        meta    {'lift_pose3d_valid': J x 1}
    mode 'pose2mesh_net':
        inputs  {'pose2d': J x 2}
        targets {'mesh': V x 3,                    metres, root-relative
                 'lift_pose3d': J x 3,             mm, root-relative, input joint set
                 'reg_pose3d': J_t x 3}            mm, root-relative, target joint set
        meta    {'mesh_valid': V x 1, 'lift_pose3d_valid': J x 1, 'reg_pose3d_valid': J_t x 1}

The 2D input pipeline is the original's: tight box around the 2D joints, grown to the
crop's aspect ratio (:func:`pose2mesh.coord_utils.process_bbox`), crop / rotate / flip into the
``input_shape`` frame, optionally synthesized detector errors (training) or detector outputs
(testing) in that frame, division by the frame size, then per-sample mean/std normalization.

Evaluation helpers are vectorized over samples (Procrustes alignment in one batched SVD).
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..aug_utils import affine_transform, augm_params, flip_2d_joint, j2d_processing, j3d_processing, rotate_3d
from ..coord_utils import FloatVector, get_bbox, process_bbox
from ..joints import JointSet, get_joint_set

__all__ = ["MODES", "crop_pose2d", "normalize_cropped_pose2d", "normalize_pose2d", "crop_area",
           "synthesize_input_error", "make_sample", "PoseMeshDataset", "per_sample_joint_errors",
           "evaluate_joints", "per_sample_mesh_errors", "evaluate_mesh", "group_means",
           "format_summary", "write_result_json", "batch_joint_error", "batch_mesh_error"]

MODES = ("posenet", "pose2mesh_net")
SPLITS = ("train", "test")
_DRAW_TAG = 0x6D6978  # marks a random-stream key that holds a mixer position

ArrayLike = Union[np.ndarray, torch.Tensor]
Indices = Union[Sequence[int], np.ndarray]  # sample or group indices: a list or an integer array


# --------------------------------------------------------------------------------------------
# 2D input pipeline
# --------------------------------------------------------------------------------------------

def _res(input_shape: Sequence[int]) -> Tuple[int, int]:
    """``MODEL.input_shape`` is (height, width); the crop functions take (width, height)."""
    return int(input_shape[1]), int(input_shape[0])


def crop_pose2d(joint_img: np.ndarray, bbox: FloatVector, input_shape: Sequence[int], rot: float = 0.0,
                flip: bool = False, flip_pairs=None) -> Tuple[np.ndarray, np.ndarray]:
    """Image pixels to the ``input_shape`` frame (crop, rotate, flip).

    Args:
        joint_img: ``(J, >=2)`` pixel coordinates (extra columns ignored).
        bbox: ``[x, y, w, h]`` with the crop's aspect ratio (from ``process_bbox``).
        input_shape: ``(height, width)``.
    Returns:
        ``(J, 2)`` float64 joints in the frame, and the 2 x 3 crop matrix (without the flip).
    """
    joint_img = np.asarray(joint_img, dtype=np.float64)
    crop, trans = j2d_processing(joint_img[:, :2], _res(input_shape), bbox, rot, flip, flip_pairs)
    return crop.astype(np.float64), trans


def normalize_cropped_pose2d(pose2d_crop: np.ndarray, input_shape: Sequence[int]) -> np.ndarray:
    """Frame pixels to the network input: divide by the frame size, then per-sample mean/std.

    Float throughout (the original demo's integer truncation is not reproduced). A pose whose
    joints all coincide along an axis has zero spread there; that axis is then only centred
    instead of producing NaN.

    Returns:
        ``(J, 2)`` float32.
    """
    xy = np.asarray(pose2d_crop, dtype=np.float64)[:, :2] / np.array([input_shape[1], input_shape[0]], dtype=np.float64)
    mean, std = xy.mean(axis=0), xy.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    return ((xy - mean) / std).astype(np.float32)


def normalize_pose2d(joint_img: np.ndarray, bbox: FloatVector, input_shape: Sequence[int], rot: float = 0.0,
                     flip: bool = False, flip_pairs=None) -> np.ndarray:
    """Image pixels to the network input (crop -> / input size -> per-sample mean/std); ``(J, 2)`` float32."""
    crop, _ = crop_pose2d(joint_img, bbox, input_shape, rot, flip, flip_pairs)
    return normalize_cropped_pose2d(crop, input_shape)


def crop_area(bbox: FloatVector, trans: np.ndarray) -> float:
    """Area (pixels^2) in the crop frame of the image box ``bbox`` mapped by ``trans``: the
    ``area`` the COCO error model scales with.

    The original's rule: the box's corners (x, y), (x + w, y), (x + w, y + h) are mapped, and the
    area is the product of the two mapped side lengths. The original passes the *tight* box
    around the 2D joints for Human3.6M, COCO and AMASS, and the aspect-expanded crop box only
    for MuCo (see :attr:`PoseMeshDataset.error_area_box`).
    """
    x, y, w, h = (float(v) for v in bbox)
    corners = affine_transform(np.array([[x, y], [x + w, y], [x + w, y + h]]), trans)
    return float(np.linalg.norm(corners[1] - corners[0]) * np.linalg.norm(corners[2] - corners[1]))


def synthesize_input_error(joint_set_name: str, pose2d_crop: np.ndarray, input_shape: Sequence[int], area: float,
                           rng: np.random.Generator, visibility: Optional[np.ndarray] = None) -> np.ndarray:
    """Synthesized detector errors on 2D joints in the crop frame, as the original's training.

    - ``human36``: the per-joint Gaussian table (:func:`pose2mesh.noise_utils.generate_h36m_error`),
      given for a 256-pixel frame and scaled to ``input_shape``.
    - ``coco``: :func:`pose2mesh.noise_utils.synthesize_pose` on the 17 COCO keypoints (pelvis
      and neck keep their ground truth, as in the original).
    - other joint sets: unchanged (the original synthesized none for them).

    Returns:
        ``(J, 2)`` float64.
    """
    from ..noise_utils import generate_h36m_error, synthesize_pose

    pose = np.array(pose2d_crop, dtype=np.float64)[:, :2]
    if joint_set_name == "human36":
        scale = np.array([input_shape[1], input_shape[0]], dtype=np.float64) / 256.0
        return pose + generate_h36m_error(rng).astype(np.float64) * scale
    if joint_set_name == "coco":
        vis = np.ones(17) if visibility is None else np.asarray(visibility, dtype=np.float64).reshape(-1)[:17]
        synth = synthesize_pose(np.concatenate([pose[:17], vis[:, None]], axis=1), area, rng=rng)
        pose[:17] = synth[:, :2]
        return pose
    return pose


# --------------------------------------------------------------------------------------------
# sample schema
# --------------------------------------------------------------------------------------------

def _valid(flag, n: int, name: str) -> np.ndarray:
    arr = np.asarray(flag, dtype=np.float32)
    if arr.ndim == 0:
        return np.full((n, 1), float(arr), dtype=np.float32)
    arr = arr.reshape(-1, 1) if arr.ndim == 1 else arr
    if arr.shape != (n, 1):
        raise ValueError(f"{name}: expected {n} validity flags, got shape {arr.shape}")
    return arr.astype(np.float32)


def _coords(x, cols: int, name: str, rows: Optional[int] = None) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[1] != cols or (rows is not None and arr.shape[0] != rows):
        want = f"({rows if rows is not None else 'N'}, {cols})"
        raise ValueError(f"{name}: expected an array of shape {want}, got {arr.shape}")
    return arr


def make_sample(mode: str, pose2d, lift_pose3d, lift_valid, mesh=None, reg_pose3d=None, mesh_valid=None,
                reg_valid=None) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray], Dict[str, np.ndarray]]:
    """Assemble ``(inputs, targets, meta)`` in the pinned schema (module docstring).

    Args:
        mode: 'posenet' or 'pose2mesh_net' (``MODEL.name``).
        pose2d: ``(J, 2)`` normalized input joints.
        lift_pose3d: ``(J, 3)`` mm, root-relative, input joint set.
        lift_valid: scalar or ``(J,)`` / ``(J, 1)`` flags.
        mesh: ``(V, 3)`` metres, root-relative (pose2mesh mode).
        reg_pose3d: ``(J_t, 3)`` mm, root-relative, target joint set (pose2mesh mode).
        mesh_valid, reg_valid: scalar or per-row flags (default valid).
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r} (expected one of {', '.join(MODES)})")
    pose2d = _coords(pose2d, 2, "pose2d")
    lift_pose3d = _coords(lift_pose3d, 3, "lift_pose3d", rows=len(pose2d))
    inputs = {"pose2d": pose2d}
    if mode == "posenet":
        return (inputs, {"lift_pose3d": lift_pose3d},
                {"lift_pose3d_valid": _valid(lift_valid, len(lift_pose3d), "lift_valid")})
    if mesh is None or reg_pose3d is None:
        raise ValueError("make_sample: mode 'pose2mesh_net' needs mesh and reg_pose3d")
    mesh = _coords(mesh, 3, "mesh")
    reg_pose3d = _coords(reg_pose3d, 3, "reg_pose3d")
    targets = {"mesh": mesh, "lift_pose3d": lift_pose3d, "reg_pose3d": reg_pose3d}
    meta = {"mesh_valid": _valid(1.0 if mesh_valid is None else mesh_valid, len(mesh), "mesh_valid"),
            "lift_pose3d_valid": _valid(lift_valid, len(lift_pose3d), "lift_valid"),
            "reg_pose3d_valid": _valid(1.0 if reg_valid is None else reg_valid, len(reg_pose3d), "reg_valid")}
    return inputs, targets, meta


# --------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------

def _np(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _eval_index(eval_joints: Optional[Sequence[int]], num_joints: int) -> np.ndarray:
    return np.arange(num_joints) if not eval_joints else np.asarray(eval_joints, dtype=np.int64)


def per_sample_joint_errors(pred: np.ndarray, gt: np.ndarray, root: Optional[int] = 0,
                            eval_joints: Optional[Sequence[int]] = None, align: bool = True) -> Dict[str, np.ndarray]:
    """Per-joint errors (mm) of every sample, as the original's evaluate loops compute them.

    Both poses are made relative to their own ``root`` joint (None: left as given), the
    ``eval_joints`` are kept, the Euclidean error is taken, and with ``align`` also after a
    Procrustes alignment (scale, rotation, translation) of the prediction onto the ground truth.

    Args:
        pred, gt: ``(N, J, 3)``.
    Returns:
        ``{'mpjpe': (N, K)}`` and with ``align`` ``'pa_mpjpe': (N, K)``, K = number of eval joints.
    """
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[-1] != 3:
        raise ValueError(f"expected two (N, J, 3) arrays of equal shape, got {pred.shape} and {gt.shape}")
    if root is not None:
        pred = pred - pred[:, root:root + 1]
        gt = gt - gt[:, root:root + 1]
    idx = _eval_index(eval_joints, pred.shape[1])
    pred, gt = pred[:, idx], gt[:, idx]
    out = {"mpjpe": np.linalg.norm(pred - gt, axis=-1)}
    if align:
        from ..metrics import rigid_align_batch

        out["pa_mpjpe"] = np.linalg.norm(np.asarray(rigid_align_batch(pred, gt)) - gt, axis=-1)
    return out


def evaluate_joints(pred: np.ndarray, gt: np.ndarray, root: Optional[int] = 0,
                    eval_joints: Optional[Sequence[int]] = None, align: bool = True) -> Dict[str, float]:
    """MPJPE and PA-MPJPE (mm), means over samples and eval joints; see :func:`per_sample_joint_errors`."""
    errors = per_sample_joint_errors(pred, gt, root, eval_joints, align)
    return {k: float(v.mean()) for k, v in errors.items()}


def per_sample_mesh_errors(pred_mesh: np.ndarray, gt_mesh: np.ndarray, joint_regressor: np.ndarray, root: int,
                           eval_joints: Optional[Sequence[int]] = None, gt_joints: Optional[np.ndarray] = None,
                           mesh_root_regressor: Optional[np.ndarray] = None, align_mesh: bool = False
                           ) -> Dict[str, np.ndarray]:
    """Per-sample errors of predicted meshes (all mm), the original's evaluate() arithmetic.

    - Meshes are made root-relative by their own root joint, regressed with
      ``mesh_root_regressor`` (``(V,)``; default ``joint_regressor[root]``).
    - ``mpvpe``: per-vertex Euclidean error; with ``align_mesh`` also ``pa_mpvpe`` after
      Procrustes alignment of the whole mesh.
    - Joints: ``joint_regressor`` applied to the root-relative predicted mesh, made relative
      to its ``root`` joint; the ground truth is ``gt_joints`` when given (e.g. Human3.6M's
      annotated joints) or the same regression of the ground-truth mesh. ``mpjpe`` and
      ``pa_mpjpe`` over ``eval_joints``.

    Args:
        pred_mesh, gt_mesh: ``(N, V, 3)`` mm.
        joint_regressor: ``(J, V)``.
        root: root joint index in the regressor's joint set.
        gt_joints: optional ``(N, J, 3)`` ground-truth joints (mm).
    Returns:
        ``{'mpvpe': (N, V), 'mpjpe': (N, K), 'pa_mpjpe': (N, K)}`` (+ ``'pa_mpvpe': (N, V)``).
    """
    pred_mesh, gt_mesh = np.asarray(pred_mesh, dtype=np.float64), np.asarray(gt_mesh, dtype=np.float64)
    if pred_mesh.shape != gt_mesh.shape or pred_mesh.ndim != 3:
        raise ValueError(f"expected two (N, V, 3) meshes of equal shape, got {pred_mesh.shape} and {gt_mesh.shape}")
    reg = np.asarray(joint_regressor, dtype=np.float64)
    if reg.shape[1] != pred_mesh.shape[1]:
        raise ValueError(f"joint regressor has {reg.shape[1]} vertices, meshes have {pred_mesh.shape[1]}")
    root_reg = (reg[root] if mesh_root_regressor is None
                else np.asarray(mesh_root_regressor, dtype=np.float64).reshape(-1))
    pred_mesh = pred_mesh - np.einsum("v,nvc->nc", root_reg, pred_mesh)[:, None]
    gt_mesh = gt_mesh - np.einsum("v,nvc->nc", root_reg, gt_mesh)[:, None]
    out = {"mpvpe": np.linalg.norm(pred_mesh - gt_mesh, axis=-1)}
    if align_mesh:
        from ..metrics import rigid_align_batch

        out["pa_mpvpe"] = np.linalg.norm(np.asarray(rigid_align_batch(pred_mesh, gt_mesh)) - gt_mesh, axis=-1)
    pred_joints = np.einsum("jv,nvc->njc", reg, pred_mesh)
    gt_joints = np.einsum("jv,nvc->njc", reg, gt_mesh) if gt_joints is None else np.asarray(gt_joints, dtype=np.float64)
    out.update(per_sample_joint_errors(pred_joints, gt_joints, root, eval_joints, align=True))
    return out


def evaluate_mesh(pred_mesh: np.ndarray, gt_mesh: np.ndarray, joint_regressor: np.ndarray, root: int,
                  eval_joints: Optional[Sequence[int]] = None, gt_joints: Optional[np.ndarray] = None,
                  mesh_root_regressor: Optional[np.ndarray] = None, align_mesh: bool = False) -> Dict[str, float]:
    """MPJPE, PA-MPJPE, MPVPE (and PA-MPVPE with ``align_mesh``) in mm, means over samples;
    see :func:`per_sample_mesh_errors` for the arguments."""
    errors = per_sample_mesh_errors(pred_mesh, gt_mesh, joint_regressor, root, eval_joints, gt_joints,
                                    mesh_root_regressor, align_mesh)
    return {k: float(v.mean()) for k, v in errors.items()}


def group_means(per_sample: np.ndarray, groups: Indices, names: Sequence[str]) -> Dict[str, float]:
    """Mean error of each group (e.g. Human3.6M action) from ``(N, ...)`` per-sample errors;
    NaN for an empty group (the original printed ``nan`` there too)."""
    per_sample = np.asarray(per_sample, dtype=np.float64).reshape(len(per_sample), -1).mean(axis=1)
    groups = np.asarray(groups)
    return {name: float(per_sample[groups == g].mean()) if np.any(groups == g) else float("nan")
            for g, name in enumerate(names)}


def format_summary(title: str, metrics: Mapping[str, float], groups: Optional[Mapping[str, float]] = None) -> str:
    """``'<title> >> tot: 12.34'`` lines in the original's style, with optional per-group figures."""
    lines = [f"{title} {name} >> tot: {value:.2f}" for name, value in metrics.items()]
    if groups:
        lines.append(" ".join(f"{name}: {value:.2f}" for name, value in groups.items()))
    return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    return value


def write_result_json(result_dir: Union[str, os.PathLike], name: str, metrics: Mapping[str, Any]) -> str:
    """Write ``<result_dir>/<name>.json`` atomically; NaN/inf become null. Returns the path."""
    os.makedirs(result_dir, exist_ok=True)
    path = os.path.join(os.fspath(result_dir), f"{name}.json")
    fd, tmp = tempfile.mkstemp(dir=os.fspath(result_dir), prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(_jsonable(metrics), f, indent=2)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def batch_joint_error(pred: ArrayLike, target: ArrayLike, root: Optional[int] = 0,
                      eval_joints: Optional[Sequence[int]] = None) -> float:
    """Mean per-joint error (mm) of one batch ``(B, J, 3)``, root-relative (progress bar figure)."""
    pred, target = _np(pred).astype(np.float64), _np(target).astype(np.float64)
    return float(per_sample_joint_errors(pred, target, root, eval_joints, align=False)["mpjpe"].mean())


def batch_mesh_error(pred_mesh: ArrayLike, gt_mesh: ArrayLike, pred_joints: ArrayLike, gt_joints: ArrayLike,
                     root: int = 0, eval_joints: Optional[Sequence[int]] = None) -> Tuple[float, float]:
    """``(joint error, mesh error)`` (mm) of one batch, the original's ``compute_both_err``:
    meshes relative to their own ``root`` joint (``pred_joints`` / ``gt_joints``: the joints
    regressed from them, ``(B, J, 3)``), joints root-relative over ``eval_joints``."""
    pm, gm = _np(pred_mesh).astype(np.float64), _np(gt_mesh).astype(np.float64)
    pj, gj = _np(pred_joints).astype(np.float64), _np(gt_joints).astype(np.float64)
    mesh_err = np.linalg.norm((pm - pj[:, root:root + 1]) - (gm - gj[:, root:root + 1]), axis=-1).mean()
    return batch_joint_error(pj, gj, root, eval_joints), float(mesh_err)


# --------------------------------------------------------------------------------------------
# the dataset base class
# --------------------------------------------------------------------------------------------

class PoseMeshDataset(torch.utils.data.Dataset):
    """Base of every loader: the attributes the trainer reads and the shared sample pipeline.

    Attributes:
        name: the YAML name (``'Human36M'``, ...).
        split: 'train' or 'test'.
        mode: ``MODEL.name`` ('posenet' or 'pose2mesh_net').
        joint_set: the input :class:`~pose2mesh.joints.JointSet` (``DATASET.input_joint_set``).
        target_joint_set: the joint set regressed from the mesh (``DATASET.target_joint_set``).
        mesh_model: the SMPL / MANO model (or None where a loader needs none).
        input_shape: the crop ``(height, width)``.
        use_gt_input: ``DATASET.use_gt_input``: False gives synthesized errors in training and
            detector outputs (where a loader has them) in testing.
        seed: base of every per-sample random stream (see :meth:`sample_rng`).

    Subclasses implement ``__len__`` and ``__getitem__`` (usually ``self.assemble(...)``) and
    may override :meth:`evaluate` / :meth:`evaluate_joint` for dataset-specific protocols. A
    subclass whose samples are random also implements ``draw_items(indices, draws)``: the samples
    with their streams keyed on the mixer's positions (:meth:`sample_rng`); the mixer uses it.
    """

    name = "dataset"
    # whether AUG.flip / AUG.rotate_factor apply in training (the original's FreiHAND and 3DPW
    # loaders set ``rot, flip = 0, 0`` whatever the config says)
    augmented = True
    # the box whose area (mapped into the crop) scales the COCO error model: 'tight', the tight
    # box around the 2D joints (the original's Human3.6M, COCO and AMASS loaders), or 'crop', the
    # aspect-expanded crop box (its MuCo loader)
    error_area_box = "tight"
    # synthesized errors are added in the unflipped crop and flipped with the joints (the
    # original's Human3.6M, COCO and AMASS loaders); False: added after the flip (its MuCo loader)
    errors_before_flip = True

    def __init__(self, split: str, cfg, mesh_model=None, seed: int = 0):
        if split not in SPLITS:
            raise ValueError(f"{type(self).__name__}: unknown split {split!r} (expected one of {', '.join(SPLITS)})")
        if cfg.MODEL.name not in MODES:
            raise ValueError(f"{type(self).__name__}: unknown MODEL.name {cfg.MODEL.name!r}")
        if self.error_area_box not in ("tight", "crop"):
            raise ValueError(f"{type(self).__name__}: error_area_box must be 'tight' or 'crop'")
        self.split = split
        self.mode = cfg.MODEL.name
        self.joint_set: JointSet = get_joint_set(cfg.DATASET.input_joint_set)
        self.target_joint_set: JointSet = get_joint_set(cfg.DATASET.target_joint_set)
        self.mesh_model = mesh_model
        self.input_shape = tuple(int(v) for v in cfg.MODEL.input_shape)
        self.use_gt_input = bool(cfg.DATASET.use_gt_input)
        # AUG.flip and AUG.rotate_factor are read here, and only where the dataset takes
        # augmentation (``augmented``): FreiHAND and 3DPW ignore them, as the original did
        self.flip_enabled = bool(cfg.AUG.flip) and self.augmented
        self.rotate_factor = float(cfg.AUG.rotate_factor) if self.augmented else 0.0
        self.rotate_mesh_targets = bool(cfg.AUG.rotate_mesh_targets)
        self.seed = int(seed)
        self.epoch = 0
        if self.mode == "pose2mesh_net" and self.flip_enabled and self.is_train:
            # the original flipped only the lifted joints and left the mesh target unflipped
            raise ValueError(f"{type(self).__name__}: AUG.flip is not supported with MODEL.name 'pose2mesh_net' "
                             "(a flipped mesh target needs a left/right vertex map); set AUG.flip: False")

    @property
    def is_train(self) -> bool:
        return self.split == "train"

    # ---- randomness -------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Vary training augmentation and synthesized errors per epoch (call before each epoch;
        with non-persistent DataLoader workers the copies see it)."""
        self.epoch = int(epoch)

    def sample_rng(self, index: int, stream: int = 0, draw: Optional[int] = None) -> np.random.Generator:
        """The random stream of one draw of sample ``index``.

        A function of (seed, split, epoch, index, stream) and, when the sample is drawn through
        the mixer (:class:`~pose2mesh.datasets.multiple.MultipleDatasets`), of ``draw``, the
        mixer position that drew it: the mixer draws a smaller dataset's samples several times
        per epoch, and each draw gets fresh augmentation and synthesized errors (the original
        drew fresh random numbers for every draw). Streams do not depend on the worker or the
        order of access, so a run and its resumption see the same samples.
        """
        key = [self.seed, SPLITS.index(self.split), self.epoch, int(index), int(stream)]
        if draw is not None:
            key += [_DRAW_TAG, int(draw)]
        return np.random.default_rng(np.random.SeedSequence(key))

    def sample_rngs(self, indices: Indices, draws: Optional[Sequence[int]] = None) -> List[np.random.Generator]:
        """:meth:`sample_rng` of each of ``indices``, keyed on ``draws`` (one per index) when given."""
        if draws is None:
            return [self.sample_rng(int(i)) for i in indices]
        if len(draws) != len(indices):
            raise ValueError(f"{type(self).__name__}: {len(indices)} indices but {len(draws)} draws")
        return [self.sample_rng(int(i), draw=int(d)) for i, d in zip(indices, draws)]

    # ---- the shared pipeline ----------------------------------------------------------------
    def assemble(self, rng: np.random.Generator, joint_img: np.ndarray, lift_pose3d: np.ndarray,
                 mesh_mm: Optional[np.ndarray] = None, reg_pose3d: Optional[np.ndarray] = None,
                 lift_valid=1.0, mesh_valid=1.0, reg_valid=1.0, detection: Optional[np.ndarray] = None,
                 visibility: Optional[np.ndarray] = None, bbox: Optional[np.ndarray] = None):
        """One sample in the pinned schema, through the original's pipeline.

        Args:
            rng: the sample's random stream (:meth:`sample_rng`).
            joint_img: ``(J, >=2)`` ground-truth 2D joints of the input set, image pixels.
            lift_pose3d: ``(J, 3)`` mm, root-relative, input set (the PoseNet target).
            mesh_mm: ``(V, 3)`` mm, root-relative (pose2mesh mode).
            reg_pose3d: ``(J_t, 3)`` mm, root-relative, target set (pose2mesh mode).
            lift_valid, mesh_valid, reg_valid: validity flags (scalar or per row).
            detection: ``(J, >=2)`` detector output in image pixels; replaces the input in
                testing when ``use_gt_input`` is False.
            visibility: ``(J,)`` flags for the COCO error model (default all visible).
            bbox: the crop box; default the tight box around ``joint_img`` grown to the crop's
                aspect ratio, as the original.

        The steps, in the original's order: draw flip and rotation; crop and rotate; with
        synthesized errors (training, ``use_gt_input`` False), add them in the crop frame, the
        COCO model scaled by the area of :attr:`error_area_box` in the crop; flip the 2D joints
        before or after that (:attr:`errors_before_flip`); rotate and flip the lifted joints.

        The mesh and regression targets are rotated with the input only with
        ``AUG.rotate_mesh_targets`` (the original rotated only the lifted joints; every original
        YAML has ``rotate_factor: 0``, where both agree). Flipping is refused in pose2mesh mode at
        construction (a flipped mesh target needs a left/right vertex map).
        """
        joint_img = np.asarray(joint_img, dtype=np.float64)
        tight_bbox = get_bbox(joint_img)
        if bbox is None:
            bbox = process_bbox(tight_bbox, self.input_shape)
            if bbox is None:
                raise ValueError(f"{type(self).__name__}: degenerate 2D pose (its box has no area)")
        flip, rot = augm_params(self.is_train, self.flip_enabled, self.rotate_factor, rng)
        flip_pairs = self.joint_set.flip_pairs
        width = _res(self.input_shape)[0]
        crop, trans = crop_pose2d(joint_img, bbox, self.input_shape, rot)
        if flip and not self.errors_before_flip:
            crop = flip_2d_joint(crop, width, flip_pairs)
        if not self.use_gt_input:
            if self.is_train:
                area_box = tight_bbox if self.error_area_box == "tight" else bbox
                crop = synthesize_input_error(self.joint_set.name, crop, self.input_shape, crop_area(area_box, trans),
                                              rng, visibility)
            elif detection is not None:
                crop = affine_transform(np.asarray(detection, dtype=np.float64)[:, :2], trans)
        if flip and self.errors_before_flip:
            crop = flip_2d_joint(crop, width, flip_pairs)
        pose2d = normalize_cropped_pose2d(crop, self.input_shape)
        lift = j3d_processing(lift_pose3d, rot, flip, flip_pairs)
        if self.mode == "posenet":
            return make_sample(self.mode, pose2d, lift, lift_valid)
        target_rot = rot if self.rotate_mesh_targets else 0.0
        mesh_m = rotate_3d(np.asarray(mesh_mm, dtype=np.float64), target_rot) / 1000.0
        reg = rotate_3d(np.asarray(reg_pose3d, dtype=np.float64), target_rot)
        return make_sample(self.mode, pose2d, lift, lift_valid, mesh_m, reg, mesh_valid, reg_valid)

    # ---- evaluation -------------------------------------------------------------------------
    def target_regressor(self) -> np.ndarray:
        """``(J_t, V)`` regressor of the target joint set from the mesh model."""
        if self.mesh_model is None:
            raise ValueError(f"{type(self).__name__}: no mesh model to regress {self.target_joint_set.name} joints")
        return np.asarray(self.mesh_model.joint_regressor(self.target_joint_set.name))

    @staticmethod
    def _take(results: Mapping[str, np.ndarray], key: str) -> np.ndarray:
        if key not in results:
            raise KeyError(f"evaluation results lack {key!r} (have: {', '.join(results)})")
        return np.asarray(results[key])

    def evaluate(self, results: Mapping[str, np.ndarray], result_dir: Optional[str] = None) -> Dict[str, float]:
        """Mesh evaluation (pose2mesh mode): MPJPE / PA-MPJPE of the target joints regressed
        from the meshes (over the target set's evaluation joints), and MPVPE. Prints a summary
        and, with ``result_dir``, writes ``<result_dir>/<name>_<split>.json``.

        Args:
            results: 'mesh_coord' and 'mesh_coord_target' ``(N, V, 3)`` mm, rows ordered by
                dataset index (the first N samples).
        """
        pred, gt = self._take(results, "mesh_coord"), self._take(results, "mesh_coord_target")
        js = self.target_joint_set
        metrics = evaluate_mesh(pred, gt, self.target_regressor(), js.root, js.eval_joints)
        named = {"MPJPE": metrics["mpjpe"], "PA-MPJPE": metrics["pa_mpjpe"], "MPVPE": metrics["mpvpe"]}
        return self._publish(f"{js.name} joints from the mesh", "", len(pred), js.name, named, result_dir)

    def evaluate_joint(self, results: Mapping[str, np.ndarray], result_dir: Optional[str] = None) -> Dict[str, float]:
        """PoseNet evaluation: MPJPE / PA-MPJPE of the lifted joints (input set, its
        evaluation joints, root-relative). ``results``: 'joint_coord', 'joint_coord_target'."""
        pred, gt = self._take(results, "joint_coord"), self._take(results, "joint_coord_target")
        js = self.joint_set
        metrics = evaluate_joints(pred, gt, js.root, js.eval_joints)
        named = {"MPJPE": metrics["mpjpe"], "PA-MPJPE": metrics["pa_mpjpe"]}
        return self._publish(f"lifted {js.name} joints", "_joint", len(pred), js.name, named, result_dir)

    # printed after the dataset and split in every summary (the synthetic set says what it is)
    summary_label = ""

    def _report(self, samples: int, joint_set: str, metrics: Mapping[str, float]) -> Dict:
        """What the result JSON holds besides the metrics; loaders may add their protocol."""
        return {"dataset": self.name, "split": self.split, "samples": int(samples),
                "joint_set": joint_set, "metrics_mm": dict(metrics)}

    def _publish(self, what: str, suffix: str, samples: int, joint_set: str, named: Dict[str, float],
                 result_dir: Optional[str]) -> Dict[str, float]:
        """Print the summary and, with ``result_dir``, write ``<name>_<split><suffix>.json``."""
        print(format_summary(f"{self.name} {self.split}{self.summary_label} ({what})", named))
        if result_dir is not None:
            write_result_json(result_dir, f"{self.name}_{self.split}{suffix}", self._report(samples, joint_set, named))
        return named
