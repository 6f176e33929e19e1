"""Evaluation metrics as pure functions (numpy arrays or torch tensors in, the same type out).

Units are those of the inputs (the evaluation passes millimetres). Per-element errors are
returned unreduced so callers can average per sample, per joint or per action, as the
original's ``evaluate()`` does; take ``.mean()`` for the figure.

- :func:`mpjpe` / :func:`mpvpe`: Euclidean distance per joint / vertex.
- :func:`rigid_align`: the original ``coord_utils.rigid_align`` for one J x 3 pair (numpy).
- :func:`rigid_align_batch`: the same Procrustes alignment (rotation, scale, translation),
  batched over N x J x 3.
- :func:`pa_mpjpe` / :func:`pa_mpvpe`: errors after :func:`rigid_align_batch`.
- :func:`accel_error`: the SPIN/VIBE ``compute_error_accel`` on a sequence.
"""
from __future__ import annotations

from types import ModuleType
from typing import Optional, Union

import numpy as np
import torch

__all__ = ["mpjpe", "mpvpe", "rigid_transform_3d", "rigid_align", "rigid_align_batch", "pa_mpjpe", "pa_mpvpe",
           "accel_error"]

Array = Union[np.ndarray, torch.Tensor]


def _check_pair(pred: Array, target: Array, name: str) -> None:
    if tuple(pred.shape) != tuple(target.shape) or pred.shape[-1] != 3:
        raise ValueError(f"{name}: pred and target must have the same shape ... x 3, "
                         f"got {tuple(pred.shape)} and {tuple(target.shape)}")


def mpjpe(pred: Array, target: Array) -> Array:
    """Per-joint position error ``|pred - target|_2``.

    Args:
        pred, target: ... x J x 3 (e.g. N x J x 3), same units.

    Returns:
        ... x J errors, in the input units (MPJPE = the mean).
    """
    _check_pair(pred, target, "mpjpe")
    return (((pred - target) ** 2).sum(-1)) ** 0.5


def mpvpe(pred: Array, target: Array) -> Array:
    """Per-vertex position error, ... x V x 3 -> ... x V (MPVPE = the mean); see :func:`mpjpe`."""
    _check_pair(pred, target, "mpvpe")
    return (((pred - target) ** 2).sum(-1)) ** 0.5


def rigid_transform_3d(A: np.ndarray, B: np.ndarray):
    """The similarity transform (scale ``c``, rotation ``R``, translation ``t``) taking the
    points ``A`` (J x 3) closest to ``B`` (J x 3) in least squares (Umeyama), with the original's
    reflection handling: when ``det(R) < 0`` the last singular value and the last row of ``V^T``
    flip sign. ``B ~ c * A @ R.T + t``."""
    n = A.shape[0]
    mu_a, mu_b = A.mean(axis=0), B.mean(axis=0)
    H = (A - mu_a).T @ (B - mu_b) / n  # 3 x 3 cross-covariance
    U, s, Vt = np.linalg.svd(H)
    R = Vt.T @ U.T
    if np.linalg.det(R) < 0:
        s[-1] = -s[-1]
        Vt[2] = -Vt[2]
        R = Vt.T @ U.T
    c = np.sum(s) / np.var(A, axis=0).sum()
    t = mu_b - c * R @ mu_a
    return c, R, t


def rigid_align(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Align ``A`` onto ``B`` by the best rotation, uniform scale and translation (the original
    ``coord_utils.rigid_align``; public also as ``pose2mesh.coord_utils.rigid_align``).

    Args:
        A: J x 3 points to move (the prediction).
        B: J x 3 target points.

    Returns:
        J x 3, ``c R A + t``, in ``A``'s units.
    """
    A = np.asarray(A)
    B = np.asarray(B)
    if A.ndim != 2 or A.shape != B.shape or A.shape[1] != 3:
        raise ValueError(f"rigid_align: A and B must both be J x 3, got {A.shape} and {B.shape}")
    c, R, t = rigid_transform_3d(A, B)
    return (c * R @ A.T).T + t


def rigid_align_batch(A: Array, B: Array) -> Array:
    """Batched :func:`rigid_align`: each ``A[i]`` (J x 3) aligned onto ``B[i]``.

    Args:
        A, B: N x J x 3 (numpy, or torch on any device; torch is differentiable).

    Returns:
        N x J x 3 aligned copies of ``A``.
    """
    if A.ndim != 3 or tuple(A.shape) != tuple(B.shape) or A.shape[-1] != 3:
        raise ValueError("rigid_align_batch: A and B must both be N x J x 3, "
                         f"got {tuple(A.shape)} and {tuple(B.shape)}")
    lib: ModuleType  # torch or numpy, whichever the inputs are
    if torch.is_tensor(A):
        B = torch.as_tensor(B, dtype=A.dtype, device=A.device)
        lib, transpose, svd, det = torch, (lambda x: x.transpose(-1, -2)), torch.linalg.svd, torch.linalg.det
        mean = lambda x: x.mean(dim=1, keepdim=True)  # noqa: E731
    else:
        A, B = np.asarray(A), np.asarray(B)
        lib, transpose, svd, det = np, (lambda x: np.swapaxes(x, -1, -2)), np.linalg.svd, np.linalg.det
        mean = lambda x: x.mean(axis=1, keepdims=True)  # noqa: E731
    n = A.shape[1]
    mu_a, mu_b = mean(A), mean(B)  # N x 1 x 3
    A0, B0 = A - mu_a, B - mu_b
    H = transpose(A0) @ B0 / n  # N x 3 x 3
    U, s, Vt = svd(H)
    R = transpose(Vt) @ transpose(U)
    # reflection: flip the last singular value and the last row of V^T where det(R) < 0
    sign = lib.where(det(R) < 0, -1.0, 1.0)  # N
    if torch.is_tensor(A):
        sign = sign.to(A.dtype)
        flip = torch.ones_like(s)
    else:
        sign = sign.astype(A.dtype)
        flip = np.ones_like(s)
    flip[:, -1] = sign
    s = s * flip
    Vt = Vt * flip[:, :, None]
    R = transpose(Vt) @ transpose(U)
    var_a = (A0 ** 2).sum(-1).sum(-1) / n  # N: total variance of A
    c = s.sum(-1) / var_a  # N
    return c[:, None, None] * (A0 @ transpose(R)) + mu_b


def pa_mpjpe(pred: Array, target: Array) -> Array:
    """Per-joint error after Procrustes alignment of ``pred`` onto ``target``.

    Args:
        pred, target: N x J x 3.

    Returns:
        N x J errors (PA-MPJPE = the mean).
    """
    return mpjpe(rigid_align_batch(pred, target), target)


def pa_mpvpe(pred: Array, target: Array) -> Array:
    """Per-vertex error after Procrustes alignment (N x V x 3 -> N x V); see :func:`pa_mpjpe`."""
    return mpvpe(rigid_align_batch(pred, target), target)


def accel_error(pred: Array, target: Array, vis: Optional[Array] = None) -> Array:
    """Acceleration error of a sequence (SPIN/VIBE ``compute_error_accel``).

    The acceleration of frame ``i`` is ``X[i-1] - 2 X[i] + X[i+1]``; the error is the distance
    between predicted and target accelerations, averaged over joints. A frame that is not
    visible removes the three accelerations that involve it.

    Args:
        pred, target: N x J x 3 consecutive frames (N >= 3); the argument order does not change
            the value.
        vis: N booleans (None: all visible).

    Returns:
        per-frame errors, one for each of the N - 2 accelerations that are kept, in the input
        units per frame^2 (the reported figure is the mean).
    """
    _check_pair(pred, target, "accel_error")
    if pred.ndim != 3 or pred.shape[0] < 3:
        raise ValueError(f"accel_error: needs N x J x 3 with N >= 3 frames, got {tuple(pred.shape)}")
    accel_pred = pred[:-2] - 2 * pred[1:-1] + pred[2:]
    accel_target = target[:-2] - 2 * target[1:-1] + target[2:]
    normed = (((accel_pred - accel_target) ** 2).sum(-1)) ** 0.5  # (N-2) x J
    if vis is None:
        return normed.mean(-1)
    keep: Array
    if torch.is_tensor(normed):
        invis = ~torch.as_tensor(vis, device=normed.device).bool()
        keep = ~(invis[:-2] | invis[1:-1] | invis[2:])
    else:
        invis_np = ~np.asarray(vis).astype(bool)
        keep = ~(invis_np[:-2] | invis_np[1:-1] | invis_np[2:])
    return normed[keep].mean(-1)
