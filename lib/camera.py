"""The demo's camera: a weak-perspective (scaled orthographic) projection, fitted in closed form.

The original demo fitted three numbers per person, ``cam = (s, tx, ty)``, by running Adam for
1,500 steps on the L1 distance between the projected regressed 3D joints and the input 2D joints,
both expressed in a virtual ``crop x crop`` crop (``crop = 500``) of the square box
``process_bbox(get_bbox(joints), aspect_ratio=1, scale=1.25)``::

    u_crop = s * r * (X + tx) + r,    v_crop = s * r * (Y + ty) + r,    r = crop / 2

with ``X, Y`` the joints' camera-frame coordinates in metres (x right, y down). Written in image
pixels this is the affine map ``u = a X + b_x``, ``v = a Y + b_y`` with one scale ``a``
(pixels per metre) and a translation ``b`` (pixels). Given the 3D joints the model is *linear*
in ``(a, b)``, so the least-squares optimum has a closed form (:func:`fit_weak_perspective`):

    a = sum_j w_j <X_j - X_bar, y_j - y_bar> / sum_j w_j |X_j - X_bar|^2,    b = y_bar - a X_bar

(``X_bar``, ``y_bar`` the weighted means). A crop is a uniform scaling plus a shift, so the
optimum does not depend on the crop: fitting in crop pixels and converting gives the same
camera (:meth:`WeakPerspectiveCamera.to_crop_params` returns the original's ``(s, tx, ty)``).
Where the original minimised L1 with a stochastic optimiser we minimise the squared error
exactly (the two optima coincide for noise-free inputs), in microseconds instead of seconds.

For rendering, a weak-perspective camera is the perspective camera with focal length ``f``
seen from the depth ``f / a``: :meth:`WeakPerspectiveCamera.translation` places the root there,
so that every person of an image lives in one metric scene with a consistent depth order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Tuple

import numpy as np

if TYPE_CHECKING:
    from .coord_utils import FloatVector

__all__ = ["WeakPerspectiveCamera", "fit_weak_perspective", "fit_weak_perspective_batch", "crop_box",
           "ORIGINAL_CROP_SIZE", "ORIGINAL_CROP_SCALE", "reprojection_error"]

# the original demo's virtual crop: 500 x 500 pixels around the pose's box grown by 1.25
ORIGINAL_CROP_SIZE = 500
ORIGINAL_CROP_SCALE = 1.25


@dataclass(frozen=True)
class WeakPerspectiveCamera:
    """``uv = scale * XY + translation``: image pixels from camera-frame metres.

    Attributes:
        scale: pixels per metre (``a`` above); positive.
        translation: ``(2,)`` pixel position of the 3D origin (``b`` above).
        rms: root-mean-square reprojection error of the fit, in pixels (over weighted joints).
    """

    scale: float
    translation: np.ndarray
    rms: float = 0.0

    def project(self, points: np.ndarray) -> np.ndarray:
        """``(..., >=2)`` camera-frame points (metres) -> ``(..., 2)`` pixels."""
        points = np.asarray(points, dtype=np.float64)
        return points[..., :2] * self.scale + self.translation

    def translation3d(self, focal: float, principal: FloatVector) -> np.ndarray:
        """The metric translation ``(3,)`` of a perspective camera equal to this one at the root.

        With focal length ``focal`` (pixels) and principal point ``principal`` (pixels), the
        point ``X + T`` projects like ``scale * X + translation`` at ``X_z = 0`` (and to first
        order around it): ``T_z = focal / scale``, ``T_xy = (translation - principal) / scale``.
        """
        c = np.asarray(principal, dtype=np.float64)
        return np.array([(self.translation[0] - c[0]) / self.scale,
                         (self.translation[1] - c[1]) / self.scale,
                         focal / self.scale])

    def to_crop_params(self, box: FloatVector, crop_size: int = ORIGINAL_CROP_SIZE) -> np.ndarray:
        """The original's ``cam_param = (s, tx, ty)`` for the square crop ``box`` of ``crop_size``.

        Args:
            box: ``[x, y, w, h]`` of the crop in image pixels (``w == h``, see :func:`crop_box`).
        """
        x0, y0, w, h = (float(v) for v in box)
        if w <= 0 or abs(w - h) > 1e-3 * max(w, h):
            raise ValueError(f"to_crop_params needs a square box, got w={w}, h={h}")
        k = crop_size / w  # crop pixels per image pixel
        r = crop_size / 2.0
        a_crop = self.scale * k
        b_crop = (self.translation - np.array([x0, y0])) * k
        return np.array([a_crop / r, (b_crop[0] - r) / a_crop, (b_crop[1] - r) / a_crop])

    @classmethod
    def from_crop_params(cls, cam_param: FloatVector, box: FloatVector,
                         crop_size: int = ORIGINAL_CROP_SIZE) -> "WeakPerspectiveCamera":
        """The inverse of :meth:`to_crop_params`: the original's ``(s, tx, ty)`` in image pixels."""
        s, tx, ty = (float(v) for v in cam_param)
        x0, y0, w, _ = (float(v) for v in box)
        a = s * w / 2.0  # s * r pixels of the crop per metre, times w / crop_size
        return cls(scale=a, translation=np.array([a * tx + x0 + w / 2.0, a * ty + y0 + w / 2.0]))


def crop_box(joints2d: np.ndarray, valid: Optional[np.ndarray] = None) -> np.ndarray:
    """The original demo's square crop around a pose: ``[x, y, w, h]`` float64.

    The tight box of the joints, sanitised as the original's ``process_bbox`` (one pixel off
    each side), grown to a square and by 1.25 about its centre.
    """
    from .coord_utils import get_bbox, process_bbox

    box = process_bbox(get_bbox(joints2d, valid), aspect_ratio=1.0, scale=ORIGINAL_CROP_SCALE)
    if box is None:
        raise ValueError("the 2D pose is degenerate (all joints on one line): no crop box")
    return box.astype(np.float64)


def fit_weak_perspective_batch(points3d: np.ndarray, points2d: np.ndarray, weights: Optional[np.ndarray] = None,
                               min_scale: float = 1e-6) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`fit_weak_perspective` for N people at once, vectorized.

    Args:
        points3d: ``(N, J, >=2)``; points2d: ``(N, J, 2)``; weights: ``(N, J)`` or None.
    Returns:
        scales ``(N,)``, translations ``(N, 2)`` and weighted RMS errors ``(N,)``.
    Raises:
        ValueError: as :func:`fit_weak_perspective`, naming the first person it concerns.
    """
    P = np.asarray(points3d, dtype=np.float64)[..., :2]
    p = np.asarray(points2d, dtype=np.float64)[..., :2]
    if P.ndim != 3 or P.shape != p.shape:
        raise ValueError(f"fit_weak_perspective: 3D points {P.shape[:2]} and 2D points {p.shape[:2]} "
                         f"do not match (expected N x J each)")
    w = np.ones(P.shape[:2]) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != P.shape[:2] or np.any(w < 0):
        raise ValueError("fit_weak_perspective: weights must be (N, J) and non-negative")
    if not (np.isfinite(P).all() and np.isfinite(p).all() and np.isfinite(w).all()):
        raise ValueError("fit_weak_perspective: non-finite input")
    few = np.count_nonzero(w, axis=1) < 2
    if few.any():
        raise ValueError(f"fit_weak_perspective: person {int(np.argmax(few))} needs at least two weighted points")
    wsum = w.sum(1)                                                  # N
    P_bar = (w[..., None] * P).sum(1) / wsum[:, None]                # N x 2
    p_bar = (w[..., None] * p).sum(1) / wsum[:, None]
    Pc, pc = P - P_bar[:, None], p - p_bar[:, None]
    denom = (w * (Pc ** 2).sum(-1)).sum(1)
    flat = denom <= 1e-18
    if flat.any():
        raise ValueError(f"fit_weak_perspective: person {int(np.argmax(flat))}: the 3D points coincide in x, y")
    scale = np.maximum((w * (Pc * pc).sum(-1)).sum(1) / denom, min_scale)
    trans = p_bar - scale[:, None] * P_bar
    resid = scale[:, None, None] * P + trans[:, None] - p
    rms = np.sqrt((w * (resid ** 2).sum(-1)).sum(1) / wsum)
    return scale, trans, rms


def fit_weak_perspective(points3d: np.ndarray, points2d: np.ndarray,
                         weights: Optional[np.ndarray] = None, min_scale: float = 1e-6,
                         ) -> WeakPerspectiveCamera:
    """Least-squares weak-perspective camera mapping 3D points' ``x, y`` onto 2D points.

    Minimises ``sum_j w_j |a * P_j[:2] + b - p_j|^2`` over the scale ``a`` and the translation
    ``b`` exactly (normal equations, closed form). The scale is constrained to
    ``a >= min_scale``: a negative optimum (a mirrored fit, which only an untrained or broken
    model produces) is replaced by the constrained optimum, ``a = min_scale``.

    Args:
        points3d: ``(J, >=2)`` camera-frame points (metres; only x and y are used).
        points2d: ``(J, 2)`` target pixels.
        weights: optional ``(J,)`` non-negative weights (e.g. 0/1 confidence masks).
        min_scale: the smallest accepted scale (pixels per metre).

    Returns:
        the camera, with its weighted RMS reprojection error.

    Raises:
        ValueError: mismatched shapes, non-finite values, or fewer than two weighted points,
            or all weighted 3D points at one x, y position.
    """
    P = np.asarray(points3d, dtype=np.float64)
    p = np.asarray(points2d, dtype=np.float64)
    if P.ndim != 2 or p.ndim != 2 or len(P) != len(p):
        raise ValueError(f"fit_weak_perspective: {len(P)} 3D points but {len(p)} 2D points")
    if weights is not None and np.asarray(weights).reshape(-1).shape != (len(P),):
        raise ValueError("fit_weak_perspective: weights must be (J,) and non-negative")
    try:
        scale, trans, rms = fit_weak_perspective_batch(
            P[None], p[None], None if weights is None else np.asarray(weights, dtype=np.float64).reshape(1, -1),
            min_scale)
    except ValueError as err:
        raise ValueError(str(err).replace("person 0: ", "").replace(" person 0 ", " ")) from None
    return WeakPerspectiveCamera(scale=float(scale[0]), translation=trans[0], rms=float(rms[0]))


def reprojection_error(camera: WeakPerspectiveCamera, points3d: np.ndarray, points2d: np.ndarray,
                       weights: Optional[np.ndarray] = None) -> Tuple[float, float]:
    """Weighted sum of squared and mean absolute reprojection errors, pixels (for tests, bench)."""
    d = camera.project(points3d) - np.asarray(points2d, dtype=np.float64)[:, :2]
    w = np.ones(len(d)) if weights is None else np.asarray(weights, dtype=np.float64)
    return float((w * (d ** 2).sum(1)).sum()), float((w[:, None] * np.abs(d)).sum() / (2 * w.sum()))
