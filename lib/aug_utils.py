"""Augmentation and the crop transform, with the original release's conventions.

The crop maps a box ``[x, y, w, h]`` to the network's input frame of ``res = (width, height)``
pixels (note: width first, as the original's ``j2d_processing``; ``MODEL.input_shape`` is
``(height, width)``). It is a similarity: scale ``res_w / w``, rotation by ``-rot`` degrees
about the box centre, translation of the box centre to the frame centre.

Sign conventions (checked by the tests): rotating the 2D joints with ``rot`` in the crop equals
projecting the 3D joints rotated by :func:`j3d_processing` with the same ``rot`` (an in-plane
rotation about the camera axis), when the box is centred on the principal point. A 2D flip
maps ``x`` to ``res_w - x - 1`` (the original's pixel convention) and a 3D flip negates ``X``;
both swap the left/right joints.

Every function returns new arrays; none modifies its input (the original's did).
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from .coord_utils import FloatVector, get_center_scale

__all__ = ["augm_params", "get_affine_transform", "affine_transform", "invert_affine",
           "flip_2d_joint", "flip_3d_joint", "j2d_processing", "j3d_processing",
           "inplane_rotation_matrix", "rotate_3d"]

Pairs = Optional[Sequence[Tuple[int, int]]]


def augm_params(is_train: bool, flip_enabled: bool, rotate_factor: float,
                rng: np.random.Generator) -> Tuple[bool, float]:
    """Draw the flip flag and the in-plane rotation (degrees) of one sample.

    The original's distribution: flip with probability 1/2 when enabled; the rotation is
    ``N(0, rotate_factor)`` clipped to ``[-2 rotate_factor, 2 rotate_factor]``, and is zero with
    probability 1/2. Evaluation samples are never augmented.
    """
    if not is_train:
        return False, 0.0
    flip = bool(flip_enabled) and rng.uniform(0.0, 1.0) <= 0.5
    rotate_factor = float(rotate_factor)
    rot = float(np.clip(rng.standard_normal() * rotate_factor, -2 * rotate_factor, 2 * rotate_factor))
    if rng.uniform(0.0, 1.0) <= 0.5:
        rot = 0.0
    return flip, rot


def _rotation_2d(rad: float) -> np.ndarray:
    sn, cs = np.sin(rad), np.cos(rad)
    return np.array([[cs, -sn], [sn, cs]])


def get_affine_transform(center: FloatVector, scale, rot: float, output_size: FloatVector,
                         shift: FloatVector = (0.0, 0.0), inv: bool = False) -> np.ndarray:
    """The 2 x 3 crop matrix (float64) taking image pixels to the output frame.

    The same map as the original's three-point ``cv2.getAffineTransform`` construction, in
    closed form: ``dst = s R(-rot) (p - center - scale * shift) + output_size / 2`` with
    ``s = output_size[0] / scale[0]``.

    Args:
        center: ``(2,)`` box centre in the image.
        scale: box size ``(w, h)`` (only ``w`` sets the zoom), or one number for both.
        rot: rotation in degrees.
        output_size: ``(width, height)`` of the output frame.
        shift: offset of the centre in units of the box size.
        inv: return the inverse map (output frame to image) instead.
    """
    scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), (2,))
    center = np.asarray(center, dtype=np.float64).reshape(2) + scale * np.asarray(shift, dtype=np.float64)
    out_w, out_h = float(output_size[0]), float(output_size[1])
    zoom = out_w / scale[0]
    linear = zoom * _rotation_2d(-np.deg2rad(rot))
    dst_center = np.array([out_w * 0.5, out_h * 0.5])
    trans = np.concatenate([linear, (dst_center - linear @ center)[:, None]], axis=1)
    return invert_affine(trans) if inv else trans


def affine_transform(points: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """Apply a 2 x 3 affine map to ``(..., 2)`` points (extra columns are not read)."""
    points = np.asarray(points)
    trans = np.asarray(trans)
    return points[..., :2] @ trans[:, :2].T + trans[:, 2]


def invert_affine(trans: np.ndarray) -> np.ndarray:
    """The inverse of an invertible 2 x 3 affine map."""
    trans = np.asarray(trans, dtype=np.float64)
    linear_inv = np.linalg.inv(trans[:, :2])
    return np.concatenate([linear_inv, (-linear_inv @ trans[:, 2])[:, None]], axis=1)


def _swap_pairs(kp: np.ndarray, flip_pairs: Pairs) -> np.ndarray:
    if not flip_pairs:
        return kp
    perm = np.arange(len(kp))
    for a, b in flip_pairs:
        perm[a], perm[b] = b, a
    return kp[perm]


def flip_2d_joint(kp: np.ndarray, width: float, flip_pairs: Pairs) -> np.ndarray:
    """Mirror 2D joints in a frame ``width`` pixels wide (``x -> width - x - 1``) and swap pairs."""
    kp = np.array(kp, copy=True)
    kp[:, 0] = width - kp[:, 0] - 1
    return _swap_pairs(kp, flip_pairs)


def flip_3d_joint(kp: np.ndarray, flip_pairs: Pairs) -> np.ndarray:
    """Mirror 3D joints (``X -> -X``) and swap left/right pairs."""
    kp = np.array(kp, copy=True)
    kp[:, 0] = -kp[:, 0]
    return _swap_pairs(kp, flip_pairs)


def j2d_processing(kp: np.ndarray, res: FloatVector, bbox: FloatVector, rot: float, flip: bool,
                   flip_pairs: Pairs) -> Tuple[np.ndarray, np.ndarray]:
    """Crop 2D joints to the input frame, rotate, then flip (the original's order).

    Args:
        kp: ``(J, C)`` joints, ``C >= 2``; columns after x, y (visibility, depth) pass through.
        res: output ``(width, height)``.
        bbox: ``[x, y, w, h]`` in the image.
        rot: rotation in degrees.
        flip: mirror horizontally.
        flip_pairs: left/right index pairs (None or empty: no swapping).
    Returns:
        the transformed joints ``(J, C)`` float32 and the 2 x 3 crop matrix (without the flip).
    """
    center, scale = get_center_scale(bbox)
    trans = get_affine_transform(center, scale, rot, res)
    out = np.array(kp, dtype=np.float64, copy=True)
    out[:, :2] = affine_transform(out[:, :2], trans)
    if flip:
        out = flip_2d_joint(out, res[0], flip_pairs)
    return out.astype(np.float32), trans


def inplane_rotation_matrix(rot: float) -> np.ndarray:
    """3 x 3 rotation about the camera axis by ``-rot`` degrees: the 3D twin of the crop rotation."""
    mat = np.eye(3)
    if rot != 0:
        mat[:2, :2] = _rotation_2d(-np.deg2rad(rot))
    return mat


def rotate_3d(points: np.ndarray, rot: float) -> np.ndarray:
    """Rotate ``(..., 3)`` points about the camera axis as :func:`j3d_processing` does."""
    points = np.asarray(points)
    if rot == 0:
        return points.copy()
    return points @ inplane_rotation_matrix(rot).T


def j3d_processing(S: np.ndarray, rot: float, flip: bool, flip_pairs: Pairs) -> np.ndarray:
    """Rotate 3D joints about the camera axis, then flip (the original's order); float32 ``(J, 3)``."""
    out = rotate_3d(np.asarray(S, dtype=np.float64), rot)
    if flip:
        out = flip_3d_joint(out, flip_pairs)
    return out.astype(np.float32)
