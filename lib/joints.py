"""The joint sets, defined once: names, skeleton, flip pairs, root, evaluation joints.

Orders are the original release's (they index released weights and detector outputs):

- ``human36``: the 17 Human3.6M joints.
- ``coco``: the 17 COCO keypoints plus pelvis and neck (means of the hips and of the
  shoulders), 19 in all.
- ``smpl``: the 24 SMPL kinematic joints (``smpl29`` adds 5 face keypoints taken from
  mesh vertices, used by the mesh-model wrapper).
- ``mano``: 21 hand joints, the 16 MANO joints reordered thumb-to-pinky plus 5 fingertips.

``graph_pairs`` are the extra joint-graph edges the original passed to ``build_coarse_graphs``
as "flip pairs": the left/right pairs for bodies, the horizontal finger links for the hand.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np

__all__ = ["JointSet", "JOINT_SETS", "get_joint_set", "joint_set_names",
           "SMPL_FACE_KEYPOINT_VERTICES", "MANO_FINGERTIP_VERTICES", "MANO_ORIGINAL_JOINT_NAMES",
           "H36M_ACTIONS", "remap_joints", "add_pelvis_and_neck"]

Pairs = Tuple[Tuple[int, int], ...]


@dataclass(frozen=True)
class JointSet:
    """One joint convention.

    Attributes:
        name: the key used in YAML (``DATASET.input_joint_set``) and on the command line.
        names: joint names, in order.
        skeleton: bones as index pairs (drawing and the joint graph).
        flip_pairs: left/right index pairs swapped by a horizontal flip.
        graph_pairs: extra joint-graph edges (see the module docstring).
        root: index of the root joint.
        eval_joints: the joints that the evaluation averages over (all when empty).
    """

    name: str
    names: Tuple[str, ...]
    skeleton: Pairs
    flip_pairs: Pairs
    graph_pairs: Pairs
    root: int
    eval_joints: Tuple[int, ...] = ()

    @property
    def num_joints(self) -> int:
        return len(self.names)

    def index(self, joint_name: str) -> int:
        return self.names.index(joint_name)

    def flip_permutation(self) -> np.ndarray:
        """Index array ``p`` such that ``joints[p]`` swaps every left/right pair."""
        perm = np.arange(self.num_joints)
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm


HUMAN36 = JointSet(
    name="human36",
    names=("Pelvis", "R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "Torso", "Neck",
           "Nose", "Head", "L_Shoulder", "L_Elbow", "L_Wrist", "R_Shoulder", "R_Elbow", "R_Wrist"),
    skeleton=((0, 7), (7, 8), (8, 9), (9, 10), (8, 11), (11, 12), (12, 13), (8, 14), (14, 15),
              (15, 16), (0, 1), (1, 2), (2, 3), (0, 4), (4, 5), (5, 6)),
    flip_pairs=((1, 4), (2, 5), (3, 6), (14, 11), (15, 12), (16, 13)),
    graph_pairs=((1, 4), (2, 5), (3, 6), (14, 11), (15, 12), (16, 13)),
    root=0,
    # the 14 joints of the Human3.6M evaluation protocol (no pelvis, torso, nose)
    eval_joints=(1, 2, 3, 4, 5, 6, 8, 10, 11, 12, 13, 14, 15, 16),
)

COCO = JointSet(
    name="coco",
    names=("Nose", "L_Eye", "R_Eye", "L_Ear", "R_Ear", "L_Shoulder", "R_Shoulder", "L_Elbow",
           "R_Elbow", "L_Wrist", "R_Wrist", "L_Hip", "R_Hip", "L_Knee", "R_Knee", "L_Ankle",
           "R_Ankle", "Pelvis", "Neck"),
    skeleton=((1, 2), (0, 1), (0, 2), (2, 4), (1, 3), (6, 8), (8, 10), (5, 7), (7, 9), (12, 14),
              (14, 16), (11, 13), (13, 15), (17, 11), (17, 12), (17, 18), (18, 5), (18, 6),
              (18, 0)),
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    graph_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    root=17,
)

_SMPL_NAMES = ("Pelvis", "L_Hip", "R_Hip", "Torso", "L_Knee", "R_Knee", "Spine", "L_Ankle",
               "R_Ankle", "Chest", "L_Toe", "R_Toe", "Neck", "L_Thorax", "R_Thorax", "Head",
               "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist", "L_Hand",
               "R_Hand")
_SMPL_FLIPS = ((1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21), (22, 23))

SMPL = JointSet(
    name="smpl",
    names=_SMPL_NAMES,
    skeleton=((0, 1), (1, 4), (4, 7), (7, 10), (0, 2), (2, 5), (5, 8), (8, 11), (0, 3), (3, 6),
              (6, 9), (9, 14), (14, 17), (17, 19), (19, 21), (21, 23), (9, 13), (13, 16),
              (16, 18), (18, 20), (20, 22), (9, 12), (12, 15)),
    flip_pairs=_SMPL_FLIPS,
    graph_pairs=_SMPL_FLIPS,
    root=0,
)

SMPL29 = JointSet(
    name="smpl29",
    names=_SMPL_NAMES + ("Nose", "L_Eye", "R_Eye", "L_Ear", "R_Ear"),
    skeleton=((0, 1), (1, 4), (4, 7), (7, 10), (0, 2), (2, 5), (5, 8), (8, 11), (0, 3), (3, 6),
              (6, 9), (9, 14), (14, 17), (17, 19), (21, 23), (9, 13), (13, 16), (16, 18),
              (18, 20), (20, 22), (9, 12), (12, 24), (24, 14), (24, 25), (24, 26), (25, 27),
              (26, 28)),
    flip_pairs=_SMPL_FLIPS + ((25, 26), (27, 28)),
    graph_pairs=_SMPL_FLIPS + ((25, 26), (27, 28)),
    root=0,
)

MANO = JointSet(
    name="mano",
    names=("Wrist", "Thumb_1", "Thumb_2", "Thumb_3", "Thumb_4", "Index_1", "Index_2", "Index_3",
           "Index_4", "Middle_1", "Middle_2", "Middle_3", "Middle_4", "Ring_1", "Ring_2", "Ring_3",
           "Ring_4", "Pinky_1", "Pinky_2", "Pinky_3", "Pinky_4"),
    skeleton=((0, 1), (0, 5), (0, 9), (0, 13), (0, 17), (1, 2), (2, 3), (3, 4), (5, 6), (6, 7),
              (7, 8), (9, 10), (10, 11), (11, 12), (13, 14), (14, 15), (15, 16), (17, 18),
              (18, 19), (19, 20)),
    flip_pairs=(),
    # the horizontal links between neighbouring fingers, per knuckle level (FreiHAND loader)
    graph_pairs=((1, 5), (5, 9), (9, 13), (13, 17), (2, 6), (6, 10), (10, 14), (14, 18), (3, 7),
                 (7, 11), (11, 15), (15, 19), (4, 8), (8, 12), (12, 16), (16, 20)),
    root=0,
)

JOINT_SETS: Dict[str, JointSet] = {js.name: js for js in (HUMAN36, COCO, SMPL, SMPL29, MANO)}

# SMPL mesh vertices used as nose, left eye, right eye, left ear, right ear
SMPL_FACE_KEYPOINT_VERTICES = (331, 2802, 6262, 3489, 3990)
# MANO (right hand) mesh vertices used as thumb, index, middle, ring, pinky tips. The original's
# source lists 444 for the middle tip, but the one-hot row its regressor uses is 445.
MANO_FINGERTIP_VERTICES = (745, 317, 445, 556, 673)
# the 16 joints of the MANO model file, in its own order
MANO_ORIGINAL_JOINT_NAMES = ("Wrist", "Index_1", "Index_2", "Index_3", "Middle_1", "Middle_2",
                             "Middle_3", "Pinky_1", "Pinky_2", "Pinky_3", "Ring_1", "Ring_2",
                             "Ring_3", "Thumb_1", "Thumb_2", "Thumb_3")

H36M_ACTIONS = ("Directions", "Discussion", "Eating", "Greeting", "Phoning", "Posing", "Purchases",
                "Sitting", "SittingDown", "Smoking", "Photo", "Waiting", "Walking", "WalkDog",
                "WalkTogether")


def joint_set_names() -> Tuple[str, ...]:
    return tuple(JOINT_SETS)


def get_joint_set(name: str) -> JointSet:
    """The joint set called ``name``; a clear error for an unknown one."""
    try:
        return JOINT_SETS[name]
    except KeyError:
        raise ValueError(f"unknown joint set {name!r} (expected one of {', '.join(JOINT_SETS)})") from None


def remap_joints(joints: np.ndarray, src_names, dst_names) -> np.ndarray:
    """Reorder joints (or regressor rows) from one naming to another; missing ones are zero.

    Args:
        joints: ``(..., J_src, C)`` or ``(J_src, N)`` array indexed by ``src_names`` on axis -2
            (or axis 0 for a 2-D array).
    Returns:
        the same with ``len(dst_names)`` entries on that axis.
    """
    joints = np.asarray(joints)
    axis = 0 if joints.ndim == 2 else joints.ndim - 2
    shape = list(joints.shape)
    shape[axis] = len(dst_names)
    out = np.zeros(shape, dtype=joints.dtype)
    for dst_i, name in enumerate(dst_names):
        if name in src_names:
            src_i = src_names.index(name)
            np.moveaxis(out, axis, 0)[dst_i] = np.moveaxis(joints, axis, 0)[src_i]
    return out


def add_pelvis_and_neck(joints, score: str = "mean"):
    """The ``coco`` joint set's completion, defined once: 17 COCO keypoints -> 19.

    The pelvis is the mean of the hips and the neck the mean of the shoulders (the original's
    rule, used by its loaders, its joint regressor rows and its demo).

    Args:
        joints: ``(..., 17, C)`` numpy array or torch tensor: coordinates, or regressor rows
            (``(17, V)``, one row per joint: regression is linear, so completing the rows equals
            completing the regressed joints).
        score: ``"mean"`` averages every channel; ``"product"`` treats the last channel as a
            detection confidence and multiplies the two (the original demo's rule).
    Returns:
        ``(..., 19, C)`` of the same type, in the ``coco`` order.
    """
    if joints.shape[-2] != 17:
        raise ValueError(f"add_pelvis_and_neck: expected 17 COCO keypoints on the second-last axis, "
                         f"got shape {tuple(joints.shape)}")
    coco = JOINT_SETS["coco"]
    pairs = ((coco.index("L_Hip"), coco.index("R_Hip")), (coco.index("L_Shoulder"), coco.index("R_Shoulder")))
    extra = [(joints[..., a, :] + joints[..., b, :]) * 0.5 for a, b in pairs]
    if score == "product":
        for (a, b), e in zip(pairs, extra):
            e[..., -1] = joints[..., a, -1] * joints[..., b, -1]
    elif score != "mean":
        raise ValueError(f"add_pelvis_and_neck: score must be 'mean' or 'product', got {score!r}")
    if isinstance(joints, np.ndarray):
        return np.concatenate([joints] + [e[..., None, :] for e in extra], axis=-2)
    import torch

    return torch.cat([joints] + [e.unsqueeze(-2) for e in extra], dim=-2)
