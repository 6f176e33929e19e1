"""Camera projections and bounding boxes, with the original release's conventions.

Coordinates follow the original: camera space in millimetres (or whatever unit the translation
has), pixel space as ``(x, y)`` with the depth kept as a third column by :func:`cam2pixel`.
A bounding box is ``[x_min, y_min, width, height]``.

Unlike the original, nothing here reads a global configuration: the crop's ``input_shape``
(``(height, width)``, as ``MODEL.input_shape``) is passed in.

``rigid_align`` (Procrustes alignment of one ``J x 3`` pose onto another) lives in
:mod:`pose2mesh.metrics` and is re-exported here under its original public name
``pose2mesh.coord_utils.rigid_align``.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import numpy as np

from .metrics import rigid_align, rigid_align_batch

__all__ = ["regress_joints", "world2cam", "cam2pixel", "pixel2cam", "get_center_scale", "get_bbox", "process_bbox",
           "rigid_align", "rigid_align_batch"]

# a short vector of numbers (a box, a focal length, a centre): a list, a tuple or an array
FloatVector = Union[Sequence[float], np.ndarray]


def regress_joints(regressor, vertices):
    """Joints from mesh vertices, one function for every joint set: ``(J, V) @ (..., V, 3)``.

    numpy arrays or torch tensors (both arguments of one kind); the units are the vertices'.
    """
    if regressor.shape[-1] != vertices.shape[-2]:
        raise ValueError(f"regress_joints: a regressor over {regressor.shape[-1]} vertices cannot take "
                         f"meshes of {vertices.shape[-2]} vertices")
    return regressor @ vertices


def world2cam(world_coord: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """World to camera coordinates: ``X_cam = R @ X_world + t``.

    Args:
        world_coord: ``(..., 3)`` points.
        R: ``(3, 3)`` rotation, world to camera.
        t: ``(3,)`` translation, in the unit of the points.
    Returns:
        ``(..., 3)`` camera coordinates.
    """
    world_coord = np.asarray(world_coord)
    return world_coord @ np.asarray(R).T + np.asarray(t).reshape(3)


def cam2pixel(cam_coord: np.ndarray, f: FloatVector, c: FloatVector) -> np.ndarray:
    """Pinhole projection keeping the depth: ``[f_x X/Z + c_x, f_y Y/Z + c_y, Z]``.

    Args:
        cam_coord: ``(..., 3)`` camera coordinates (Z > 0).
        f: focal lengths ``(f_x, f_y)`` in pixels (or ``(..., 2)`` broadcasting with the points).
        c: principal point ``(c_x, c_y)`` in pixels (likewise).
    Returns:
        ``(..., 3)``: pixel x, pixel y, camera depth.
    """
    cam_coord = np.asarray(cam_coord)
    z = cam_coord[..., 2:3]
    xy = cam_coord[..., :2] / z * np.asarray(f, dtype=np.float64) + np.asarray(c, dtype=np.float64)
    return np.concatenate([xy, z], axis=-1)


def pixel2cam(pixel_coord: np.ndarray, c: FloatVector, f: FloatVector) -> np.ndarray:
    """Inverse of :func:`cam2pixel` (note the original's argument order: centre, then focal).

    Args:
        pixel_coord: ``(..., 3)``: pixel x, pixel y, camera depth.
        c: principal point ``(c_x, c_y)``.
        f: focal lengths ``(f_x, f_y)``.
    Returns:
        ``(..., 3)`` camera coordinates.
    """
    pixel_coord = np.asarray(pixel_coord, dtype=np.float64)
    z = pixel_coord[..., 2:3]
    xy = (pixel_coord[..., :2] - np.asarray(c, dtype=np.float64)) * z / np.asarray(f, dtype=np.float64)
    return np.concatenate([xy, z], axis=-1)


def get_center_scale(bbox: FloatVector) -> Tuple[np.ndarray, np.ndarray]:
    """Centre ``(2,)`` and size ``(2,)`` (width, height) of a ``[x, y, w, h]`` box, float32."""
    x, y, w, h = (float(v) for v in bbox)
    center = np.array([x + 0.5 * w, y + 0.5 * h], dtype=np.float32)
    scale = np.array([w, h], dtype=np.float32)
    return center, scale


def get_bbox(joint_img: np.ndarray, valid: Optional[np.ndarray] = None) -> np.ndarray:
    """The tight box ``[x_min, y_min, w, h]`` (float32) around 2D joints.

    Args:
        joint_img: ``(J, >=2)`` pixel coordinates.
        valid: optional ``(J,)`` mask; only these joints count (the original used all joints).
    """
    xy = np.asarray(joint_img)[:, :2]
    if valid is not None:
        xy = xy[np.asarray(valid).reshape(-1) > 0]
    if len(xy) == 0:
        raise ValueError("get_bbox: no valid joints to put a box around")
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    return np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]], dtype=np.float32)


def process_bbox(bbox: FloatVector, input_shape: Optional[Sequence[int]] = None, *,
                 aspect_ratio: Optional[float] = None, scale: float = 1.0) -> Optional[np.ndarray]:
    """Sanitize a box and grow it to the crop's aspect ratio, about its centre (the original's rule).

    As in the original, the box first loses one pixel of width and height (its corners are
    ``(x, y)`` and ``(x + w - 1, y + h - 1)``), then the shorter side grows until
    ``w / h == aspect_ratio``, then both sides are multiplied by ``scale``. The original's
    default scale is 1.0 (its 1.25 is commented out); ``scale`` lets a caller ask for a margin.

    Args:
        bbox: ``[x, y, w, h]``.
        input_shape: the crop ``(height, width)``; the aspect ratio is ``width / height``.
        aspect_ratio: overrides the one from ``input_shape`` (the COCO fitting check uses 1.0).
        scale: size multiplier applied after the aspect correction.
    Returns:
        ``[x, y, w, h]`` float32, or None for a degenerate box (as the original).
    """
    if aspect_ratio is None:
        if input_shape is None:
            raise ValueError("process_bbox needs input_shape (height, width) or an explicit aspect_ratio")
        aspect_ratio = float(input_shape[1]) / float(input_shape[0])
    x, y, w, h = (float(v) for v in bbox)
    x2, y2 = x + (w - 1), y + (h - 1)
    if not (w * h > 0 and x2 >= x and y2 >= y):
        return None
    w, h = x2 - x, y2 - y
    c_x, c_y = x + w / 2.0, y + h / 2.0
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    w, h = w * scale, h * scale
    return np.array([c_x - w / 2.0, c_y - h / 2.0, w, h], dtype=np.float32)
