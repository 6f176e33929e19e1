"""The demo's fitting stage: SMPL / MANO parameters for the predicted meshes, and their files.

Over :mod:`pose2mesh.fitting` (parameters from a mesh) and :mod:`pose2mesh.export` (npz with
smplx's names, BVH, glTF). A left hand was predicted through the right-hand model and mirrored
back; it is fitted in the right-hand model's frame (the mesh mirrored again), so its parameters
are those of the right-hand MANO, and its fitted mesh is mirrored back for display.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

__all__ = ["fit_meshes", "fit_track", "MIRROR"]

log = logging.getLogger("pose2mesh.demo")

MIRROR = np.array([-1.0, 1.0, 1.0])


def _to_model_frame(vertices: np.ndarray, mirrored: Union[Sequence[bool], np.ndarray]) -> np.ndarray:
    flip = np.where(np.asarray(mirrored, bool), -1.0, 1.0)[:, None, None]
    out = np.array(vertices, dtype=np.float64, copy=True)
    out[..., 0] *= flip[..., 0]
    return out


def fit_meshes(body_model, vertices: np.ndarray, mirrored: Optional[Union[Sequence[bool], np.ndarray]] = None):
    """Fit every mesh ``(N, V, 3)`` at once.

    Returns:
        the :class:`pose2mesh.fitting.FitResult` (right-hand frame for mirrored hands) and the
        fitted vertices ``(N, V, 3)`` float64 in the input's frame (mirrored back).
    """
    from ..fitting import fit_body

    flip = np.zeros(len(vertices), bool) if mirrored is None else np.asarray(mirrored, bool)
    fit = fit_body(_to_model_frame(vertices, flip).astype(np.float32), body_model)
    fitted = _to_model_frame(fit.vertices.detach().double().cpu().numpy(), flip)
    return fit, fitted


def fit_track(body_model, vertices: np.ndarray, left: bool = False, progress: bool = True):
    """Fit one track's meshes ``(T, V, 3)`` frame by frame, each fit started from the previous
    frame's (the first from the closed-form start).

    Returns:
        the sequence as one :class:`pose2mesh.fitting.FitResult` (B = T) and the fitted
        vertices ``(T, V, 3)`` in the input's frame.
    """
    import torch

    from ..fitting import FitResult, fit_body

    frames = _to_model_frame(vertices, [left] * len(vertices)).astype(np.float32)
    fits: List = []
    prev = None
    iterator = range(len(frames))
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="fit", unit="frame", leave=False, dynamic_ncols=True)
    for t in iterator:
        prev = fit_body(frames[t:t + 1], body_model, init=prev)
        fits.append(prev)
    cat: Dict[str, torch.Tensor] = {name: torch.cat([getattr(f, name) for f in fits])
                                    for name in ("pose", "shape", "trans", "vertices", "joints", "error")}
    seq = FitResult(**cat, kind=fits[0].kind, gender=fits[0].gender, iterations=fits[-1].iterations)
    fitted = _to_model_frame(seq.vertices.detach().double().cpu().numpy(), [left] * len(frames))
    return seq, fitted


def write_params(path: Path, fit, kind: str) -> str:
    """The parameters as ``.npz`` (:func:`pose2mesh.export.save_params_npz`)."""
    from ..export import save_params_npz

    return str(save_params_npz(path, fit, kind))
