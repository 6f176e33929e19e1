"""The demo: 2D poses in an image -> 3D meshes, rendered over the image.

``python demo/run.py --input_pose POSE [--input_img IMG] --joint_set {human36,coco,smpl,mano}``

Steps, per image:

1. Read the 2D poses (``.npy`` or ``.json``; ``J x 2`` or ``J x 3`` with confidence, image pixels,
   kept as floating point). Several people (e.g. a COCO-format keypoint list, a detector's
   output) switch to multi-person mode, as does ``--multi``; there low-confidence and duplicate
   detections are dropped with the original ``run.py``'s rules, and the 17 COCO keypoints get
   pelvis and neck (means of the hips and of the shoulders, confidence the product).
2. Normalize each pose as in training (box crop to ``MODEL.input_shape``, division by its size,
   per-sample mean/std) and run Pose2Mesh on all people in one batch.
3. Fit a weak-perspective camera per person in closed form (:mod:`pose2mesh.camera`) between the
   joints regressed from the predicted mesh and the input joints.
4. Render every person into one scene (one z-buffer, so people occlude each other) over the
   image, or over a black canvas of the pose's extent without ``--input_img``
   (:mod:`pose2mesh.render`), and write the files listed in :func:`run`.

The body model and the weights used are always printed; nothing falls back silently.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .joints import JointSet, add_pelvis_and_neck, get_joint_set
from .errors import Pose2MeshError

__all__ = ["DemoError", "DEFAULT_CHECKPOINTS", "parse_args", "load_poses", "prepare_people",
           "select_people", "resolve_checkpoint", "DemoModel", "run", "main"]

log = logging.getLogger("pose2mesh.demo")

# the original release's demo weights, per joint set (relative to the repository root)
DEFAULT_CHECKPOINTS = {
    "human36": "experiment/pose2mesh_human36J_train_human36/final.pth.tar",
    "coco": "experiment/pose2mesh_cocoJ_train_human36_coco_muco/final.pth.tar",
    "smpl": "experiment/pose2mesh_smplJ_train_surreal/final.pth.tar",
    "mano": "experiment/pose2mesh_manoJ_train_freihand/final.pth.tar",
}
DEMO_JOINT_SETS = ("human36", "coco", "smpl", "mano")

# the original run.py's multi-person filters (tuned for HigherHRNet outputs)
POSE_THRESHOLD = 0.1       # a joint is valid above this confidence
DET_SCORE_THRESHOLD = 1.5  # a person is kept when its confidences sum to at least this
MIN_JOINT_DIFF = 20.0      # pixels: closer (mean over shared valid joints) is a duplicate

# rendering: a weak-perspective camera is a perspective camera seen from far away; the original
# demo used a focal length of 1500 pixels for a 500-pixel crop, we use 3 x the image's long side
FOCAL_PER_IMAGE_SIDE = 3.0


class DemoError(Pose2MeshError):
    """A user error: reported as one line, exit status 2."""


# ----------------------------------------------------------------------------------------------
# command line

def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="demo/run.py",
        description="Pose2Mesh demo: 3D human (or hand) meshes from 2D poses, rendered over the image.")
    p.add_argument("--gpu", type=str, default="0",
                   help="CUDA device index as the original (falls back to CPU without CUDA); 'cpu' for CPU")
    p.add_argument("--input_pose", type=str, required=True,
                   help="2D pose(s) in image pixels: .npy (J x 2, J x 3 with confidence, or N x J x C) or .json "
                        "(a J x C list, or COCO-format keypoints of several people)")
    p.add_argument("--input_img", type=str, default=None,
                   help="the image the pose belongs to (default: a black canvas of the pose's extent)")
    p.add_argument("--joint_set", type=str, default=None, choices=DEMO_JOINT_SETS,
                   help="joint order of the input pose (default: the checkpoint's config.yaml, else coco)")
    p.add_argument("--checkpoint", type=str, default=None,
                   help="Pose2Mesh weights (.pth.tar, or a folder with final.pth.tar / best.pth.tar); default: "
                        "the original release's path for the joint set, under experiment/")
    p.add_argument("--cfg", type=str, default=None,
                   help="config YAML giving MODEL sizes and DATASET.body_model (default: the config.yaml "
                        "beside the checkpoint's folder, else the original's sizes)")
    p.add_argument("--body_model", type=str, default=None, choices=("official", "synthetic"),
                   help="official SMPL/MANO files or the generated synthetic body (default: the config's "
                        "DATASET.body_model, else official)")
    p.add_argument("--output_dir", type=str, default=None, help="where results go (default: demo/result/)")
    p.add_argument("--multi", action="store_true",
                   help="multi-person mode (automatic when the input holds several people)")
    p.add_argument("--debug", action="store_true", help="full tracebacks instead of one-line errors")
    args = p.parse_args(argv)
    if args.input_img in (".", ""):  # the original's 'no image' value
        args.input_img = None
    return args


# ----------------------------------------------------------------------------------------------
# reading poses

def _as_pose(value: Any, where: str) -> np.ndarray:
    """One person's joints as a float64 ``(J, 2|3)`` array, or a clear error."""
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DemoError(f"{where}: the 2D pose is not a numeric J x 2 or J x 3 array") from None
    if arr.ndim == 1 and arr.size % 3 == 0 and arr.size > 0:  # COCO's flat [x1, y1, v1, x2, ...]
        arr = arr.reshape(-1, 3)
    if arr.size == 0:
        raise DemoError(f"{where}: the 2D pose is empty")
    if arr.ndim != 2 or arr.shape[1] not in (2, 3):
        raise DemoError(f"{where}: expected a J x 2 or J x 3 (x, y[, confidence]) pose, got shape {arr.shape}")
    bad = np.argwhere(~np.isfinite(arr))
    if len(bad):
        j, c = bad[0]
        raise DemoError(f"{where}: joint {j} has a non-finite {'xyc'[c]} value ({arr[j, c]})")
    return arr


def _image_id_of(image_path: Optional[str]) -> Optional[int]:
    if image_path is None:
        return None
    try:
        return int(Path(image_path).stem)  # COCO images: 000000123456.jpg is image_id 123456
    except ValueError:
        return None


def _people_from_json(data: Any, path: Path, image_path: Optional[str]) -> Tuple[List[Any], bool]:
    """The people in a JSON document; True when it is a per-person list (detector output)."""
    if isinstance(data, dict) and "annotations" in data and isinstance(data["annotations"], list):
        data = data["annotations"]  # a COCO annotation file
    if isinstance(data, dict) and "keypoints" in data:
        return [data["keypoints"]], False
    if isinstance(data, dict):  # {image name: [people]}, the original demo's detector file
        if not data:
            raise DemoError(f"{path}: the JSON object is empty (no poses)")
        if len(data) == 1:
            return _people_from_json(next(iter(data.values())), path, image_path)
        if image_path is not None:
            name = Path(image_path).name
            for key in (name, Path(image_path).stem):
                if key in data:
                    return _people_from_json(data[key], path, image_path)
        keys = ", ".join(list(data)[:5])
        raise DemoError(f"{path}: holds poses for {len(data)} images ({keys}, ...); pass the image with "
                        f"--input_img so that its entry can be picked")
    if isinstance(data, list):
        if not data:
            raise DemoError(f"{path}: the JSON list is empty (no poses)")
        if all(isinstance(d, dict) for d in data):  # COCO results / annotations: one dict per person
            if not all("keypoints" in d for d in data):
                raise DemoError(f"{path}: a COCO-format entry has no 'keypoints' field")
            ids = sorted({d.get("image_id") for d in data}, key=str)
            if len(ids) > 1:
                wanted = _image_id_of(image_path)
                if wanted is None or wanted not in ids:
                    raise DemoError(f"{path}: holds poses for {len(ids)} images (image_id {ids[0]}, {ids[1]}, ...); "
                                    f"pass the image with --input_img named by its COCO image_id")
                data = [d for d in data if d.get("image_id") == wanted]
            return [d["keypoints"] for d in data], True
        try:
            arr = np.array(data, dtype=np.float64)
        except (TypeError, ValueError):
            arr = None
        if arr is not None and arr.ndim == 3:
            return list(arr), True
        return [data], False
    raise DemoError(f"{path}: expected a list of joints or COCO-format keypoints, got a JSON {type(data).__name__}")


def load_poses(path: os.PathLike, image_path: Optional[str] = None) -> Tuple[List[np.ndarray], bool]:
    """Read the 2D poses of one image.

    Returns:
        the people as float64 ``(J, 2|3)`` arrays, and whether the file is a multi-person format
        (``N x J x C`` array or a per-person list).

    Raises:
        DemoError: missing, unreadable, empty, non-numeric or non-finite input.
    """
    path = Path(path)
    if not path.is_file():
        raise DemoError(f"input pose {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            data = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise DemoError(f"{path}: not a readable .npy array ({err})") from None
        if data.dtype.kind not in "biuf":
            raise DemoError(f"{path}: the array holds {data.dtype} values, not numbers")
        if data.ndim == 3:
            return [_as_pose(p, f"{path} person {i}") for i, p in enumerate(data)], True
        return [_as_pose(data, str(path))], False
    if suffix == ".json":
        try:
            with open(path, "r", encoding="utf-8") as f:
                data = json.load(f)
        except json.JSONDecodeError as err:
            raise DemoError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None
        except (OSError, UnicodeDecodeError) as err:
            raise DemoError(f"{path}: cannot be read ({err})") from None
        people, multi = _people_from_json(data, path, image_path)
        where = (lambda i: f"{path} person {i}") if len(people) > 1 else (lambda i: str(path))
        return [_as_pose(p, where(i)) for i, p in enumerate(people)], multi
    raise DemoError(f"input pose {path}: expected a .npy or .json file")


def prepare_people(people: Sequence[np.ndarray], joint_set: JointSet, where: str) -> Tuple[List[np.ndarray], bool]:
    """Check joint counts and complete every pose to ``(J, 3)`` (x, y, confidence).

    Returns:
        the poses, and whether confidences were given.
    """
    has_conf = all(p.shape[1] == 3 for p in people)
    out = []
    for i, p in enumerate(people):
        n = len(p)
        if n != joint_set.num_joints and not (joint_set.name == "coco" and n == 17):
            fits = [name for name in DEMO_JOINT_SETS
                    if get_joint_set(name).num_joints == n or (name == "coco" and n == 17)]
            hint = f" (a {n}-joint pose fits --joint_set {' or '.join(fits)})" if fits else ""
            who = f" person {i}" if len(people) > 1 else ""
            expected = "17 or 19" if joint_set.name == "coco" else str(joint_set.num_joints)
            raise DemoError(f"{where}{who}: the pose has {n} joints but --joint_set {joint_set.name} "
                            f"expects {expected}{hint}")
        pose = np.ones((n, 3))
        pose[:, :p.shape[1]] = p
        if not has_conf:
            pose[:, 2] = 1.0
        if joint_set.name == "coco" and n == 17:
            pose = add_pelvis_and_neck(pose, score="product")
        out.append(pose)
    return out, has_conf


def select_people(people: Sequence[np.ndarray], pose_thr: float = POSE_THRESHOLD,
                  score_thr: float = DET_SCORE_THRESHOLD, min_diff: float = MIN_JOINT_DIFF) -> List[int]:
    """Indices of the people to keep (the original multi-person demo's filters).

    A person is dropped when its confidences sum to less than ``score_thr``, or when it
    duplicates an already kept person: the mean absolute coordinate difference over the joints
    valid (confidence > ``pose_thr``) in both is below ``min_diff`` pixels, or no joint is valid
    in both.
    """
    kept: List[int] = []
    for i, pose in enumerate(people):
        score = float(pose[:, 2].sum())
        if score < score_thr:
            log.info("person %d: skipped, confidence sum %.2f < %.2f", i, score, score_thr)
            continue
        valid = pose[:, 2] > pose_thr
        duplicate_of = None
        for k in kept:
            both = valid & (people[k][:, 2] > pose_thr)
            if not both.any() or np.abs(pose[both, :2] - people[k][both, :2]).mean() < min_diff:
                duplicate_of = k
                break
        if duplicate_of is not None:
            log.info("person %d: skipped, duplicate of person %d", i, duplicate_of)
            continue
        kept.append(i)
    return kept


# ----------------------------------------------------------------------------------------------
# model

def resolve_checkpoint(checkpoint: Optional[str], joint_set: str) -> Path:
    """The weights file: the given path, or the original release's default for the joint set.

    A folder (a run's ``checkpoint/`` folder or the run folder itself) means its
    ``final.pth.tar``, else ``best.pth.tar``, else the newest ``checkpoint<N>.pth.tar``.
    """
    from .paths import repo_root

    if checkpoint is None:
        path = repo_root() / DEFAULT_CHECKPOINTS[joint_set]
        if not path.is_file():
            raise DemoError(
                f"no weights for --joint_set {joint_set}: {path} does not exist. Put the original release's "
                f"checkpoint there, or pass --checkpoint experiment/exp_*/checkpoint/final.pth.tar from "
                f"main/train.py (the quick synthetic config trains one on CPU)")
        return path
    from .checkpoint import resolve_weights

    return resolve_weights(checkpoint, prefer="final")


@dataclass
class Prediction:
    """The model's output for N people (numpy, float64)."""

    meshes: np.ndarray       # N x V x 3, metres, root-relative, body model vertex order
    joints3d: np.ndarray     # N x J_fit x 3, metres: joints regressed from the meshes
    lifted_mm: np.ndarray    # N x J x 3, mm: PoseNet's lifted joints


class DemoModel:
    """Body model, graphs, network and joint regressor for one joint set, ready to predict.

    Args:
        cfg: the validated config (MODEL sizes; ``DATASET.input_joint_set`` and ``body_model``
            already set).
        checkpoint: weights file; None keeps the random initial weights (benchmarks).
        device: torch device.
    """

    def __init__(self, cfg, checkpoint: Optional[Path], device):
        import torch

        from .engine.builders import build_graphs, build_mesh_model, build_model

        self.cfg = cfg
        self.device = device
        self.joint_set = get_joint_set(cfg.DATASET.input_joint_set)
        self.mesh_model = build_mesh_model(cfg)
        self.face = np.asarray(self.mesh_model.face, dtype=np.int64)
        self.vertex_num = int(self.mesh_model.vertex_num)
        graphs = build_graphs(self.mesh_model, self.joint_set)
        self.model = build_model(cfg, self.joint_set, graphs)
        self.checkpoint_info = self._load_weights(checkpoint) if checkpoint is not None else {"path": None, "epoch": None}
        self.model.to(device).eval()
        regressor = np.asarray(self.mesh_model.joint_regressor(self.joint_set.name), dtype=np.float64)
        if regressor.ndim != 2 or regressor.shape[1] != self.vertex_num or len(regressor) > self.joint_set.num_joints:
            raise DemoError(f"the {self.joint_set.name} joint regressor has shape {regressor.shape}, expected "
                            f"up to {self.joint_set.num_joints} x {self.vertex_num}")
        # the camera is fitted on the first len(regressor) joints; for coco on the 17 measured
        # keypoints only (pelvis and neck are derived from them), as the original did
        if self.joint_set.name == "coco":
            regressor = regressor[:17]
        self.regressor = torch.as_tensor(regressor, dtype=torch.float32, device=device)
        self.num_fit_joints = len(regressor)

    def _load_weights(self, path: Path) -> Dict[str, Any]:
        from .checkpoint import load_checkpoint, load_model_weights

        ckpt = load_checkpoint(str(path))
        load_model_weights(self.model, ckpt, strict=True)
        return {"path": str(path), "epoch": ckpt.get("epoch") if isinstance(ckpt, dict) else None}

    def describe_body(self) -> str:
        desc = getattr(self.mesh_model, "description", "")
        source = getattr(self.mesh_model, "source", "?")
        return f"{source} ({desc})" if desc else str(source)

    def normalize(self, pose: np.ndarray) -> np.ndarray:
        """One person's pixels ``(J, >=2)`` -> the network input ``(J, 2)`` float32 (as training)."""
        from .coord_utils import get_bbox, process_bbox
        from .datasets.common import normalize_pose2d

        bbox = process_bbox(get_bbox(pose[:, :2]), tuple(self.cfg.MODEL.input_shape))
        if bbox is None:
            raise DemoError("the 2D pose is degenerate: all joints lie on one horizontal or vertical line")
        return normalize_pose2d(pose[:, :2], bbox, tuple(self.cfg.MODEL.input_shape))

    def predict(self, poses: Sequence[np.ndarray]) -> Prediction:
        """Run the network on all people in one batch."""
        import torch

        from .coord_utils import regress_joints

        x = torch.as_tensor(np.stack([self.normalize(p) for p in poses]), dtype=torch.float32, device=self.device)
        with torch.inference_mode():
            mesh_padded, lifted = self.model(x)
            mesh = self.model.to_body_vertices(mesh_padded)  # N x V x 3
            joints = regress_joints(self.regressor, mesh)
        return Prediction(mesh.double().cpu().numpy(), joints.double().cpu().numpy(), lifted.double().cpu().numpy())


# ----------------------------------------------------------------------------------------------
# the run

@dataclass
class PersonResult:
    index: int
    pose: np.ndarray                # J x 3 input (x, y, confidence)
    mesh: np.ndarray                # V x 3 metres, root-relative
    camera: Any                     # WeakPerspectiveCamera
    translation: np.ndarray         # (3,) metres, camera frame
    color: Tuple[float, float, float]
    crop_params: np.ndarray         # the original's (s, tx, ty)
    crop_box: np.ndarray
    lifted_mm: np.ndarray
    files: Dict[str, str] = field(default_factory=dict)


def _load_config(args: argparse.Namespace, checkpoint: Path):
    from .config import Config, load_config

    from .checkpoint import find_run_config

    cfg_path = args.cfg or find_run_config(checkpoint)
    cfg = load_config(str(cfg_path)) if cfg_path else Config()
    if cfg_path:
        log.info("config: %s", cfg_path)
    else:
        log.info("config: none beside %s, using the original's model sizes", checkpoint)
    if cfg.MODEL.name != "pose2mesh_net":
        raise DemoError(f"{cfg_path}: MODEL.name is {cfg.MODEL.name!r}; the demo needs a pose2mesh_net checkpoint")
    return cfg, cfg_path


def _choose_joint_set(args: argparse.Namespace) -> Tuple[str, Path, Any, Optional[Path]]:
    """Joint set, checkpoint and config, each from the flags, else from the other two."""
    if args.joint_set is None and args.checkpoint is None:
        args.joint_set = "coco"  # the original demo's default
    checkpoint = resolve_checkpoint(args.checkpoint, args.joint_set or "coco")
    cfg, cfg_path = _load_config(args, checkpoint)
    trained = cfg.DATASET.input_joint_set if cfg_path else None
    joint_set = args.joint_set or trained or "coco"
    if trained is not None and trained != joint_set:
        raise DemoError(f"{checkpoint} was trained on the {trained} joint set ({cfg_path}), but --joint_set is "
                        f"{joint_set}: pass --joint_set {trained}, or weights trained on {joint_set}")
    cfg.DATASET.input_joint_set = joint_set
    cfg.DATASET.body_model = args.body_model or (cfg.DATASET.body_model if cfg_path else "official")
    return joint_set, checkpoint, cfg, cfg_path


def _canvas(people: Sequence[np.ndarray], image_path: Optional[str]) -> Tuple[np.ndarray, Optional[str]]:
    from .vis import read_image

    if image_path is not None:
        image = read_image(image_path)
        h, w = image.shape[:2]
        xy = np.concatenate([p[p[:, 2] > POSE_THRESHOLD, :2] for p in people] or [np.zeros((0, 2))])
        inside = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
        if len(xy) and inside.mean() < 0.5:
            log.warning("warning: most joints lie outside the %d x %d image %s: is the pose in its pixels?",
                        w, h, image_path)
        return image, image_path
    # the original: a black canvas 1.5 times the pose's largest coordinates
    xy = np.concatenate([p[:, :2] for p in people])
    w = int(math.ceil(max(1.5 * xy[:, 0].max(), xy[:, 0].max() + 1, 64)))
    h = int(math.ceil(max(1.5 * xy[:, 1].max(), xy[:, 1].max() + 1, 64)))
    if w * h > 64e6:
        raise DemoError(f"the pose's coordinates reach ({xy[:, 0].max():.0f}, {xy[:, 1].max():.0f}): too large "
                        f"for a canvas; are they pixels? Pass --input_img to draw over the image")
    return np.zeros((h, w, 3), dtype=np.uint8), None


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """Run the demo for parsed arguments; returns the summary that is also written as JSON.

    Files written to the output folder:

    - ``demo_pose2d.png``: the input 2D pose(s) over the image;
    - ``demo_mesh.png``: the mesh(es) over the image (all people in one scene);
    - single person: ``demo_mesh.obj`` (the predicted vertices, metres, root-relative);
    - multi-person: ``demo_mesh_{i}.obj`` and ``demo_mesh_{i}.png`` (person ``i`` alone), ``i``
      being the person's index in the input;
    - ``demo_result.json``: body model, weights, cameras (ours and the original's
      ``(s, tx, ty)`` convention), translations, lifted 3D joints, timings.
    """
    from .camera import crop_box, fit_weak_perspective
    from .device import select_device
    from .paths import repo_root
    from .render import Intrinsics, MeshRenderer, RenderMesh
    from .vis import draw_pose2d, person_color, save_obj, write_image

    joint_set_name, checkpoint, cfg, cfg_path = _choose_joint_set(args)
    joint_set = get_joint_set(joint_set_name)

    raw, _ = load_poses(args.input_pose, args.input_img)
    people, has_conf = prepare_people(raw, joint_set, str(args.input_pose))
    multi = args.multi or len(people) > 1
    keep = select_people(people) if multi else [0]
    if not keep:
        raise DemoError(f"{args.input_pose}: no person left after the confidence and duplicate filters "
                        f"(confidence sum >= {DET_SCORE_THRESHOLD}, joints valid above {POSE_THRESHOLD})")
    image, image_path = _canvas([people[i] for i in keep], args.input_img)
    height, width = image.shape[:2]

    out_dir = Path(args.output_dir) if args.output_dir else repo_root() / "demo" / "result"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DemoError(f"cannot create the output folder {out_dir} ({err.strerror})") from None

    device, _ = select_device(args.gpu)
    t0 = time.perf_counter()
    model = DemoModel(cfg, checkpoint, device)
    t_load = time.perf_counter() - t0
    log.info("body model: %s", model.describe_body())
    epoch = model.checkpoint_info["epoch"]
    log.info("weights: %s%s", checkpoint, f" (epoch {epoch})" if epoch is not None else "")
    log.info("joint set: %s (%d joints), %d %s on %s", joint_set.name, joint_set.num_joints, len(keep),
             "person" if len(keep) == 1 else "people", device)

    t0 = time.perf_counter()
    pred = model.predict([people[i] for i in keep])
    t_model = time.perf_counter() - t0

    focal = FOCAL_PER_IMAGE_SIDE * max(width, height)
    principal = ((width - 1) / 2.0, (height - 1) / 2.0)
    t0 = time.perf_counter()
    results: List[PersonResult] = []
    J_fit = model.num_fit_joints
    for k, i in enumerate(keep):
        pose = people[i]
        weights = (pose[:J_fit, 2] > POSE_THRESHOLD).astype(np.float64) if has_conf else None
        if weights is not None and np.count_nonzero(weights) < 2:
            weights = None
        cam = fit_weak_perspective(pred.joints3d[k], pose[:J_fit, :2], weights)
        box = crop_box(pose[:, :2])
        results.append(PersonResult(
            index=i, pose=pose, mesh=pred.meshes[k], camera=cam, translation=cam.translation3d(focal, principal),
            color=person_color(k), crop_params=cam.to_crop_params(box), crop_box=box, lifted_mm=pred.lifted_mm[k]))
    t_fit = time.perf_counter() - t0
    for r in results:
        log.info("person %d: camera scale %.1f px/m, translation (%.1f, %.1f) px, fit RMS %.1f px",
                 r.index, r.camera.scale, *r.camera.translation, r.camera.rms)
        if r.camera.scale <= 1e-5:
            log.warning("warning: person %d: the mesh's joints do not match the pose (degenerate camera fit)", r.index)

    intr = Intrinsics(focal, focal, *principal)
    renderer = MeshRenderer(width, height)
    t0 = time.perf_counter()
    scene = [RenderMesh(r.mesh + r.translation, model.face, r.color) for r in results]
    mesh_img = renderer.render(scene, intr, background=image).image
    t_render = time.perf_counter() - t0

    files: Dict[str, str] = {}
    if multi:
        pose_img = image
        for r in results:
            pose_img = draw_pose2d(pose_img, r.pose, joint_set.skeleton, r.pose[:, 2], POSE_THRESHOLD, color=r.color)
    else:
        r = results[0]
        pose_img = draw_pose2d(image, r.pose, joint_set.skeleton, r.pose[:, 2] if has_conf else None,
                               POSE_THRESHOLD)
    files["pose2d"] = str(write_image(out_dir / "demo_pose2d.png", pose_img))
    files["mesh_image"] = str(write_image(out_dir / "demo_mesh.png", mesh_img))
    if multi:
        for r, m in zip(results, scene):
            r.files["mesh"] = str(save_obj(r.mesh, model.face, out_dir / f"demo_mesh_{r.index}.obj"))
            alone = renderer.render([m], intr, background=image).image
            r.files["mesh_image"] = str(write_image(out_dir / f"demo_mesh_{r.index}.png", alone))
    else:
        results[0].files["mesh"] = str(save_obj(results[0].mesh, model.face, out_dir / "demo_mesh.obj"))
    renderer_name = renderer.describe()
    renderer.close()

    n = len(results)
    summary = {
        "body_model": model.describe_body(),
        "weights": str(checkpoint),
        "epoch": epoch,
        "config": str(cfg_path) if cfg_path else None,
        "joint_set": joint_set.name,
        "input_pose": str(args.input_pose),
        "image": image_path,
        "image_size": [width, height],
        "renderer": renderer_name,
        "camera_model": {"focal_px": focal, "principal_px": list(principal),
                         "crop_size": 500, "note": "weak perspective u = scale * X + translation; "
                                                    "original_cam_param (s, tx, ty) is for the 500 px crop_box"},
        "people": [{
            "index": r.index,
            "scale_px_per_m": r.camera.scale,
            "translation_px": r.camera.translation.tolist(),
            "fit_rms_px": r.camera.rms,
            "original_cam_param": r.crop_params.tolist(),
            "crop_box": r.crop_box.tolist(),
            "translation_m": r.translation.tolist(),
            "lifted_joints_mm": np.round(r.lifted_mm, 3).tolist(),
            "files": r.files,
        } for r in results],
        "files": files,
        "timing_ms": {"load": 1e3 * t_load, "model_per_person": 1e3 * t_model / n,
                      "camera_fit_per_person": 1e3 * t_fit / n, "render": 1e3 * t_render},
    }
    with open(out_dir / "demo_result.json", "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1)
    log.info("timing: model %.1f ms, camera fit %.2f ms per person; render %.1f ms (%s)",
             1e3 * t_model / n, 1e3 * t_fit / n, 1e3 * t_render, renderer_name)
    log.info("wrote %s", ", ".join(sorted({str(Path(p).name) for p in list(files.values()) + [
        v for r in results for v in r.files.values()]} | {"demo_result.json"})) + f" to {out_dir}")
    return summary


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``demo/run.py``: 0 on success, 2 for a user error (one line on stderr),
    1 for an unexpected failure (rerun with ``--debug`` for the traceback)."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    if args.debug:
        run(args)
        return 0
    user_errors = (Pose2MeshError,)
    try:
        run(args)
    except user_errors as err:
        msg = str(err)
        if type(err).__name__ == "BodyModelError" and "--body_model" not in msg:
            msg = msg.rstrip(".") + "; in the demo: --body_model synthetic uses the generated synthetic body"
        print(f"error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # a bug, not bad input: one line, the traceback with --debug
        print(f"error: unexpected {type(err).__name__}: {err} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return 1
    return 0
