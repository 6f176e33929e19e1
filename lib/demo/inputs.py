"""Reading 2D poses from files: the demo's first stage when no detector runs.

Accepted (pixels of the image, kept as floating point):

- ``.npy``: ``J x 2``, ``J x 3`` (with confidence) or ``N x J x C`` (several people);
- ``.json``:
  a ``J x C`` list or an ``N x J x C`` list;
  COCO results (``[{"image_id", "category_id", "keypoints": [x1, y1, c1, ...], "score"}, ...]``,
  what COCO-style detectors write, and the demo's own ``demo_keypoints.json``) or a COCO annotation
  file (``{"annotations": [...]}``);
  OpenPose's per-image JSON (``{"people": [{"pose_keypoints_2d": ...}]}``, BODY_25 or COCO-18,
  mapped to the 17 COCO keypoints; its ``hand_{left,right}_keypoints_2d`` for ``--joint_set mano``);
  MMPose predictions (``[{"keypoints": [[x, y], ...], "keypoint_scores": [...]}, ...]``, also
  inside ``{"instance_info": ...}`` or ``{"predictions": [[...]]}``);
  the original release's ``{image name: [people]}``.

A file with several images needs the image (``--input_img``) to pick one: by file name, or by
COCO ``image_id`` for ``000000123456.jpg``.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from .common import DET_SCORE_THRESHOLD, MIN_JOINT_DIFF, POSE_THRESHOLD, DemoError

__all__ = ["PoseInput", "read_poses", "load_poses", "check_layout", "select_people",
           "OPENPOSE_BODY25_TO_COCO", "OPENPOSE_COCO18_TO_COCO"]

log = logging.getLogger("pose2mesh.demo")

# OpenPose's keypoint orders -> the 17 COCO keypoints (nose, eyes, ears, shoulders, elbows,
# wrists, hips, knees, ankles; left before right). BODY_25: 0 nose, 1 neck, 2-4 right arm,
# 5-7 left arm, 8 mid hip, 9-11 right leg, 12-14 left leg, 15/16 right/left eye, 17/18 ears,
# 19-24 feet. COCO-18: as BODY_25 without the mid hip and feet.
OPENPOSE_BODY25_TO_COCO = (0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11)
OPENPOSE_COCO18_TO_COCO = (0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10)


@dataclass
class PoseInput:
    """The poses of one image as read from a file.

    Attributes:
        people: float64 ``(J, 2|3)`` arrays.
        multi: the file is a multi-person format (``N x J x C`` array or a per-person list).
        layout: ``"coco"`` when the format says the 17 joints are COCO keypoints (COCO results,
            OpenPose, MMPose), ``"hand"`` for OpenPose hands, else None (plain arrays).
        mirrored: per person, True for a left hand (``--joint_set mano``).
        source: the format's name, for messages.
    """

    people: List[np.ndarray]
    multi: bool
    layout: Optional[str] = None
    mirrored: List[bool] = field(default_factory=list)
    source: str = "array"


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


def _openpose(data: dict, path: Path, joint_set: Optional[str]) -> PoseInput:
    """OpenPose's per-image JSON: body keypoints mapped to COCO, or hands for ``mano``."""
    people, mirrored = [], []
    if joint_set == "mano":
        for person in data["people"]:
            for key, left in (("hand_right_keypoints_2d", False), ("hand_left_keypoints_2d", True)):
                kp = np.asarray(person.get(key) or [], dtype=np.float64).reshape(-1, 3) if person.get(key) else None
                if kp is not None and len(kp) == 21 and kp[:, 2].sum() > 0:
                    people.append(kp)
                    mirrored.append(left)
        if not people:
            raise DemoError(f"{path}: the OpenPose file has no hand keypoints (run OpenPose with --hand)")
        return PoseInput(people, True, "hand", mirrored, "OpenPose hands")
    for i, person in enumerate(data["people"]):
        kp = _as_pose(person.get("pose_keypoints_2d", []), f"{path} person {i}")
        if len(kp) == 25:
            order = OPENPOSE_BODY25_TO_COCO
        elif len(kp) == 18:
            order = OPENPOSE_COCO18_TO_COCO
        else:
            raise DemoError(f"{path} person {i}: OpenPose pose_keypoints_2d has {len(kp)} keypoints; expected "
                            f"25 (BODY_25) or 18 (COCO-18)")
        people.append(kp[list(order)])
    if not people:
        raise DemoError(f"{path}: the OpenPose file lists no people")
    return PoseInput(people, True, "coco", [False] * len(people), "OpenPose")


def _mmpose_instances(instances: list, path: Path) -> PoseInput:
    people = []
    for i, inst in enumerate(instances):
        kp = _as_pose(inst["keypoints"], f"{path} person {i}")
        scores = inst.get("keypoint_scores")
        if scores is not None and kp.shape[1] == 2:
            s = np.asarray(scores, dtype=np.float64).reshape(-1)
            if len(s) != len(kp):
                raise DemoError(f"{path} person {i}: {len(kp)} keypoints but {len(s)} keypoint_scores")
            kp = np.concatenate([kp, s[:, None]], 1)
        people.append(kp)
    if not people:
        raise DemoError(f"{path}: the MMPose file lists no people")
    return PoseInput(people, True, "coco", [False] * len(people), "MMPose")


def _is_mmpose_list(data: Any) -> bool:
    return (isinstance(data, list) and bool(data) and all(isinstance(d, dict) for d in data)
            and all("keypoints" in d for d in data) and isinstance(data[0]["keypoints"], list)
            and bool(data[0]["keypoints"]) and isinstance(data[0]["keypoints"][0], list))


def _from_json(data: Any, path: Path, image_path: Optional[str], joint_set: Optional[str]) -> PoseInput:
    """The people in a JSON document."""
    if isinstance(data, dict) and "people" in data and isinstance(data["people"], list):
        return _openpose(data, path, joint_set)
    if isinstance(data, dict) and "instance_info" in data:  # MMPose demo output
        info = data["instance_info"]
        if isinstance(info, list) and info and isinstance(info[0], dict) and "instances" in info[0]:
            if len(info) > 1:
                raise DemoError(f"{path}: MMPose predictions of {len(info)} frames; the photo demo takes one")
            info = info[0]["instances"]
        return _mmpose_instances(info, path)
    if isinstance(data, dict) and "predictions" in data and isinstance(data["predictions"], list):
        preds = data["predictions"]  # MMPose inferencer: one list of instances per image
        if len(preds) != 1:
            raise DemoError(f"{path}: MMPose predictions of {len(preds)} images; the photo demo takes one")
        return _mmpose_instances(preds[0], path)
    if _is_mmpose_list(data):
        return _mmpose_instances(data, path)
    if isinstance(data, dict) and "annotations" in data and isinstance(data["annotations"], list):
        data = data["annotations"]  # a COCO annotation file
        if not data:
            raise DemoError(f"{path}: the COCO annotation file has no annotations")
    if isinstance(data, dict) and "keypoints" in data:
        return PoseInput([_as_pose(data["keypoints"], str(path))], False, "coco", source="COCO")
    if isinstance(data, dict):  # {image name: [people]}, the original demo's detector file
        if not data:
            raise DemoError(f"{path}: the JSON object is empty (no poses)")
        if len(data) == 1:
            return _from_json(next(iter(data.values())), path, image_path, joint_set)
        if image_path is not None:
            name = Path(image_path).name
            for key in (name, Path(image_path).stem):
                if key in data:
                    return _from_json(data[key], path, image_path, joint_set)
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
            where = (lambda i: f"{path} person {i}") if len(data) > 1 else (lambda i: str(path))
            people = [_as_pose(d["keypoints"], where(i)) for i, d in enumerate(data)]
            hands = [d.get("handedness") == "left" for d in data]
            layout = "hand" if all(len(p) == 21 for p in people) else "coco"
            return PoseInput(people, True, layout, hands, "COCO keypoint list")
        try:
            arr = np.array(data, dtype=np.float64)
        except (TypeError, ValueError):
            arr = None
        if arr is not None and arr.ndim == 3:
            return PoseInput([_as_pose(p, f"{path} person {i}") for i, p in enumerate(arr)], True)
        return PoseInput([_as_pose(data, str(path))], False)
    raise DemoError(f"{path}: expected a list of joints or COCO-format keypoints, got a JSON {type(data).__name__}")


def read_poses(path: os.PathLike, image_path: Optional[str] = None, joint_set: Optional[str] = None) -> PoseInput:
    """Read the 2D poses of one image from a ``.npy`` or ``.json`` file.

    Args:
        path: the pose file.
        image_path: the image, to pick its entry from a file of several images.
        joint_set: the joint set asked for (OpenPose files give hands for ``mano``).

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
            people = [_as_pose(p, f"{path} person {i}") for i, p in enumerate(data)]
            return PoseInput(people, True, None, [False] * len(people))
        return PoseInput([_as_pose(data, str(path))], False, None, [False])
    if suffix == ".json":
        try:
            with open(path, "r", encoding="utf-8") as f:
                data = json.load(f)
        except json.JSONDecodeError as err:
            raise DemoError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None
        except (OSError, UnicodeDecodeError) as err:
            raise DemoError(f"{path}: cannot be read ({err})") from None
        result = _from_json(data, path, image_path, joint_set)
        if len(result.mirrored) != len(result.people):
            result.mirrored = [False] * len(result.people)
        return result
    raise DemoError(f"input pose {path}: expected a .npy or .json file")


def load_poses(path: os.PathLike, image_path: Optional[str] = None) -> Tuple[List[np.ndarray], bool]:
    """The people of :func:`read_poses` and whether the file is a multi-person format."""
    result = read_poses(path, image_path)
    return result.people, result.multi


def check_layout(poses: PoseInput, joint_set: str, where: str) -> None:
    """Refuse a file whose format names its joints when they are not the joint set's.

    A COCO-format file (COCO results, OpenPose, MMPose) holds the 17 COCO keypoints; Human3.6M
    also has 17 joints, in another order, so the count alone would accept it silently.
    """
    if poses.layout == "coco" and joint_set != "coco":
        raise DemoError(f"{where} is a {poses.source} file of COCO keypoints, but --joint_set is {joint_set}: "
                        f"pass --joint_set coco (with weights trained on the coco joint set)")
    if poses.layout == "hand" and joint_set != "mano":
        raise DemoError(f"{where} holds hand keypoints, but --joint_set is {joint_set}: pass --joint_set mano")


def select_people(people: Sequence[np.ndarray], pose_thr: float = POSE_THRESHOLD,
                  score_thr: float = DET_SCORE_THRESHOLD, min_diff: float = MIN_JOINT_DIFF) -> List[int]:
    """Indices of the people to keep (the original multi-person demo's filters).

    A person is dropped when its confidences sum to less than ``score_thr``, or when it
    duplicates an already kept person: the mean absolute coordinate difference over the joints
    valid (confidence > ``pose_thr``) in both is below ``min_diff`` pixels, or no joint is valid
    in both. Poses are ``(J, 3)``.
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
