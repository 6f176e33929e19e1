"""The demo's drawing stage: 2D poses and meshes over the image (one scene, one z-buffer)."""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import numpy as np

from ..inference import POSE_THRESHOLD, MeshPrediction
from ..joints import JointSet
from ..render import Intrinsics, MeshRenderer, RenderMesh
from ..vis import draw_pose2d, person_color

__all__ = ["scene_meshes", "render_meshes", "draw_poses", "intrinsics_of"]


def intrinsics_of(pred: MeshPrediction) -> Intrinsics:
    """The perspective camera every person's mesh was placed for."""
    return Intrinsics(pred.focal, pred.focal, *pred.principal)


def scene_meshes(pred: MeshPrediction, indices: Optional[Sequence[int]] = None,
                 colors: Optional[Sequence[tuple]] = None, vertices: Optional[np.ndarray] = None) -> list:
    """:class:`RenderMesh` of the chosen people, placed in the camera frame.

    Args:
        vertices: ``(N, V, 3)`` root-relative meshes to draw instead of the prediction's (e.g. fits).
    """
    indices = range(len(pred)) if indices is None else indices
    verts = pred.vertices if vertices is None else vertices
    out = []
    for k, i in enumerate(indices):
        color = colors[k] if colors is not None else person_color(i)
        out.append(RenderMesh(verts[i] + pred.translations[i], pred.faces_of(i), color))
    return out


def render_meshes(renderer: MeshRenderer, image: np.ndarray, pred: MeshPrediction,
                  indices: Optional[Sequence[int]] = None, colors: Optional[Sequence[tuple]] = None,
                  vertices: Optional[np.ndarray] = None) -> np.ndarray:
    """The chosen people's meshes over ``image`` (RGB uint8), occluding each other."""
    return renderer.render(scene_meshes(pred, indices, colors, vertices), intrinsics_of(pred), background=image).image


def draw_poses(image: np.ndarray, poses: Sequence[np.ndarray], joint_set: JointSet, has_conf: bool,
               colors: Optional[Sequence[tuple]] = None) -> np.ndarray:
    """Every pose's skeleton over the image (joints at or below the threshold are not drawn)."""
    out = image
    for k, pose in enumerate(poses):
        color = colors[k] if colors is not None else (person_color(k) if len(poses) > 1 else None)
        kwargs: Dict[str, Any] = {"color": color} if color is not None else {}
        out = draw_pose2d(out, pose, joint_set.skeleton, pose[:, 2] if has_conf else None, POSE_THRESHOLD, **kwargs)
    return out
