"""Pictures and mesh files: 2D pose drawing, image reading and writing, Wavefront OBJ.

Images are RGB uint8 arrays throughout; the conversion to OpenCV's BGR happens only when a
file is read or written. Drawing uses sub-pixel coordinates (OpenCV's ``shift``), so float
joint positions are not truncated.
"""
from __future__ import annotations

import colorsys
import os
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from .errors import Pose2MeshError

__all__ = ["ImageError", "read_image", "write_image", "draw_pose2d", "person_color", "save_obj",
           "load_obj_vertices"]

PathLike = Union[str, os.PathLike]  # a file name: a string or a path

_SHIFT = 4  # OpenCV fixed-point bits for sub-pixel drawing
_ONE = 1 << _SHIFT


class ImageError(Pose2MeshError, ValueError):
    """An image file that cannot be read or written."""


def read_image(path: PathLike) -> np.ndarray:
    """An image file as ``(H, W, 3)`` uint8 RGB (EXIF orientation ignored, as the original).

    Raises:
        ImageError: the file is missing or not an image OpenCV can decode.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image {path} does not exist")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if img is None:
        raise ImageError(f"image {path} cannot be read (not an image format OpenCV decodes)")
    return np.ascontiguousarray(img[:, :, ::-1])


def write_image(path: PathLike, rgb: np.ndarray, max_side: Optional[int] = None) -> Path:
    """Write an RGB image (PNG, JPEG, ... by extension); optionally shrink it to ``max_side``."""
    path = Path(path)
    img = np.asarray(rgb)
    if max_side is not None and max(img.shape[:2]) > max_side:
        k = max_side / max(img.shape[:2])
        img = cv2.resize(img, (max(1, round(img.shape[1] * k)), max(1, round(img.shape[0] * k))),
                         interpolation=cv2.INTER_AREA)
    params = [cv2.IMWRITE_PNG_COMPRESSION, 9] if path.suffix.lower() == ".png" else []
    if not cv2.imwrite(str(path), np.ascontiguousarray(img[:, :, ::-1]), params):
        raise ImageError(f"cannot write image {path}")
    return path


def person_color(index: int) -> Tuple[float, float, float]:
    """A distinct pastel RGB colour in [0, 1] per person (golden-ratio hues; the original drew
    random hues with saturation 0.5 and value 1)."""
    hue = (0.58 + 0.618033988749895 * index) % 1.0
    return colorsys.hsv_to_rgb(hue, 0.5, 1.0)


def _rainbow(n: int) -> np.ndarray:
    """``(n, 3)`` RGB uint8 colours along matplotlib's 'rainbow' map (the original's bone colours)."""
    from matplotlib import colormaps

    cmap = colormaps["rainbow"]
    return np.array([[int(255 * c) for c in cmap(t)[:3]] for t in np.linspace(0, 1, max(n, 1))], dtype=np.int64)


def draw_pose2d(image: np.ndarray, joints: np.ndarray, skeleton: Sequence[Tuple[int, int]],
                confidence: Optional[np.ndarray] = None, threshold: float = 0.0,
                color: Optional[Sequence[float]] = None, thickness: int = 2, radius: int = 3) -> np.ndarray:
    """Draw bones and joints on a copy of ``image``.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        joints: ``(J, >=2)`` pixel coordinates (float).
        skeleton: bones as joint index pairs.
        confidence: optional ``(J,)``; joints at or below ``threshold`` (and their bones) are skipped.
        color: one RGB colour in [0, 1] for the whole pose; by default one rainbow colour per bone
            (as the original's ``vis_2d_keypoints``).
    Returns:
        the drawn image, ``(H, W, 3)`` uint8 RGB.
    """
    out = np.ascontiguousarray(np.asarray(image, dtype=np.uint8).copy())
    xy = np.asarray(joints, dtype=np.float64)[:, :2]
    ok = np.ones(len(xy), bool) if confidence is None else np.asarray(confidence).reshape(-1) > threshold
    ok &= np.isfinite(xy).all(1)
    fixed = np.round(np.clip(np.nan_to_num(xy), -1e6, 1e6) * _ONE).astype(np.int64)
    if color is not None:
        colors = np.tile([int(255 * c) for c in color[:3]], (max(len(skeleton), 1), 1))
    else:
        colors = _rainbow(len(skeleton))
    for (i, j), c in zip(skeleton, colors):
        c = tuple(int(v) for v in c)
        if ok[i] and ok[j]:
            cv2.line(out, tuple(map(int, fixed[i])), tuple(map(int, fixed[j])), c, thickness, cv2.LINE_AA, _SHIFT)
        for k in (i, j):
            if ok[k]:
                cv2.circle(out, tuple(map(int, fixed[k])), radius * _ONE, c, -1, cv2.LINE_AA, _SHIFT)
    return out


def save_obj(vertices: np.ndarray, faces: np.ndarray, path: PathLike) -> Path:
    """Write a triangle mesh as Wavefront OBJ: ``v x y z`` lines, then 1-based ``f a b c``.

    The original wrote faces as ``f a/a b/b c/c``, naming texture coordinates the file does not
    hold, which strict readers refuse; plain vertex indices are the valid form.

    Args:
        vertices: ``(V, 3)``, written with 6 decimals (micrometres for a mesh in metres).
        faces: ``(F, 3)`` 0-based vertex indices.
    """
    path = Path(path)
    v = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3) + 1
    with open(path, "w", encoding="ascii") as fh:
        np.savetxt(fh, v, fmt="v %.6f %.6f %.6f")
        np.savetxt(fh, f, fmt="f %d %d %d")
    return path


def load_obj_vertices(path: PathLike) -> Tuple[np.ndarray, np.ndarray]:
    """Read back the vertices ``(V, 3)`` and 0-based faces ``(F, 3)`` of a triangle OBJ file
    (vertex indices only; texture / normal references after a slash are ignored)."""
    verts, faces = [], []
    with open(path, "r", encoding="ascii") as fh:
        for line in fh:
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "v":
                verts.append([float(x) for x in parts[1:4]])
            elif parts[0] == "f":
                faces.append([int(x.split("/")[0]) - 1 for x in parts[1:4]])
    return np.asarray(verts, dtype=np.float64).reshape(-1, 3), np.asarray(faces, dtype=np.int64).reshape(-1, 3)
