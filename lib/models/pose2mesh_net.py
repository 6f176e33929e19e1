"""Pose2Mesh: PoseNet (2D -> 3D joints) followed by MeshNet (joints -> mesh vertices).

State_dict keys are the original's ``FlatPose2Mesh``: ``pose_lifter.*`` (PoseNet) and
``pose2mesh.*`` (MeshNet). MeshNet's input is ``concat(pose2d, pose3d.detach() / 1000)``
(J x 5): no gradient flows from the mesh losses into PoseNet.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from . import meshnet, posenet

__all__ = ["Pose2Mesh", "get_model"]


class Pose2Mesh(nn.Module):
    """pose2d (B x J x 2) -> (mesh B x V_padded x 3 in metres, pose3d B x J x 3 in mm).

    The mesh is in the coarsening's padded, permuted vertex order. :meth:`set_vertex_order`
    (done by :func:`get_model` when it is given ``graph_perm_reverse``) records the index
    ``graph_perm_reverse[:num_vertices]``; :meth:`to_body_vertices` then takes the output to the
    body model's vertex order. The index is a non-persistent buffer: state_dict keys are the
    original's.
    """

    def __init__(self, pose_lifter: posenet.PoseNet, mesh_net: meshnet.MeshNet):
        super().__init__()
        if mesh_net.num_joints != pose_lifter.num_joints:
            raise ValueError(f"Pose2Mesh: PoseNet has {pose_lifter.num_joints} joints, MeshNet's joint graph "
                             f"has {mesh_net.num_joints}")
        self.num_joints = pose_lifter.num_joints
        self.pose_lifter = pose_lifter
        self.pose2mesh = mesh_net
        self.register_buffer("vertex_index", None, persistent=False)

    def set_vertex_order(self, perm_reverse, num_vertices: int, padding_skip: bool = True) -> None:
        """Record where each body-model vertex sits in the padded output.

        Args:
            perm_reverse: ``graph_perm_reverse`` of :func:`pose2mesh.graph_utils.build_coarse_graphs`.
            num_vertices: vertices of the body model (6,890 SMPL, 778 MANO).
            padding_skip: also switch on MeshNet's evaluation fast path, which computes only the
                rows that reach these vertices (training always runs the full graph).
        """
        index = torch.as_tensor(np.asarray(perm_reverse)[:num_vertices], dtype=torch.long)
        if index.numel() != num_vertices:
            raise ValueError(f"set_vertex_order: perm_reverse has {index.numel()} entries, fewer than the "
                             f"{num_vertices} vertices")
        device = next(self.parameters()).device
        self.vertex_index = index.to(device)
        self.pose2mesh.set_padding_skip(index if padding_skip else None)

    @property
    def num_vertices(self) -> int:
        """Vertices of the body model (after :meth:`set_vertex_order`)."""
        if self.vertex_index is None:
            raise RuntimeError("Pose2Mesh.num_vertices: call set_vertex_order(perm_reverse, num_vertices) first")
        return int(self.vertex_index.numel())

    def to_body_vertices(self, mesh_padded: torch.Tensor) -> torch.Tensor:
        """The padded, permuted output ``(B, V_padded, 3)`` -> ``(B, V, 3)`` in body-model order."""
        if self.vertex_index is None:
            raise RuntimeError("Pose2Mesh.to_body_vertices: call set_vertex_order(perm_reverse, num_vertices) "
                               "first (get_model does when given graph_perm_reverse)")
        return mesh_padded.index_select(1, self.vertex_index)

    def forward(self, pose2d: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        J = self.num_joints
        if pose2d.dim() != 3 or pose2d.shape[1:] != (J, 2):
            raise ValueError(f"Pose2Mesh expects 2D poses of shape B x {J} x 2, got {tuple(pose2d.shape)}")
        pose3d = self.pose_lifter(pose2d)  # B x J x 3, mm
        pose_combine = torch.cat((pose2d, pose3d.detach() / 1000), dim=2)  # B x J x 5
        cam_mesh = self.pose2mesh(pose_combine)  # B x V_padded x 3, m
        return cam_mesh, pose3d


def get_model(num_joint: int, graph_L: Sequence, hid_dim: int = 4096, channel_divisor: int = 1,
              p_dropout: float = 0.5, sparse_layout: str = "coo", graph_perm_reverse=None,
              num_vertices: Optional[int] = None) -> Pose2Mesh:
    """The original's ``pose2mesh_net.get_model(num_joint, graph_L)``.

    Args:
        num_joint: J of the input joint set.
        graph_L: the rescaled Laplacians of ``build_coarse_graphs`` (10 for the body, 7 for the
            hand; scipy sparse or torch); not modified.
        hid_dim: PoseNet width (the original: 4096).
        channel_divisor: divides every MeshNet hidden channel (1 = the original).
        p_dropout: PoseNet dropout (the original: 0.5).
        sparse_layout: Laplacian buffer layout, ``'coo'`` or ``'csr'``.
        graph_perm_reverse, num_vertices: when given, :meth:`Pose2Mesh.set_vertex_order` is
            called with them (body-model vertex order and the evaluation padding skip).
    """
    lifter = posenet.get_model(num_joint, hid_dim=hid_dim, num_layer=2, p_dropout=p_dropout)
    mesh_net = meshnet.get_model(2 + 3, 3, graph_L, channel_divisor=channel_divisor, sparse_layout=sparse_layout)
    model = Pose2Mesh(lifter, mesh_net)
    if graph_perm_reverse is not None:
        if num_vertices is None:
            raise ValueError("get_model: graph_perm_reverse needs num_vertices")
        model.set_vertex_order(graph_perm_reverse, num_vertices)
    return model
