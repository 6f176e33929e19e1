"""Pose2Mesh: PoseNet (2D -> 3D joints) followed by MeshNet (joints -> mesh vertices).

State_dict keys are the original's ``FlatPose2Mesh``: ``pose_lifter.*`` (PoseNet) and
``pose2mesh.*`` (MeshNet). MeshNet's input is ``concat(pose2d, pose3d.detach() / 1000)``
(J x 5): no gradient flows from the mesh losses into PoseNet.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
from torch import nn

from . import meshnet, posenet

__all__ = ["Pose2Mesh", "get_model"]


class Pose2Mesh(nn.Module):
    """pose2d (B x J x 2) -> (mesh B x V_padded x 3 in metres, pose3d B x J x 3 in mm).

    The mesh is in the coarsening's padded, permuted vertex order; index it with
    ``graph_perm_reverse[:num_vertices]`` for the body model's order.
    """

    def __init__(self, pose_lifter: posenet.PoseNet, mesh_net: meshnet.MeshNet):
        super().__init__()
        if mesh_net.num_joints != pose_lifter.num_joint:
            raise ValueError(f"Pose2Mesh: PoseNet has {pose_lifter.num_joint} joints, MeshNet's joint graph "
                             f"has {mesh_net.num_joints}")
        self.num_joint = pose_lifter.num_joint
        self.pose_lifter = pose_lifter
        self.pose2mesh = mesh_net

    def forward(self, pose2d: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        J = self.num_joint
        if pose2d.dim() != 3 or pose2d.shape[1:] != (J, 2):
            raise ValueError(f"Pose2Mesh expects 2D poses of shape B x {J} x 2, got {tuple(pose2d.shape)}")
        pose3d = self.pose_lifter(pose2d)  # B x J x 3, mm
        pose_combine = torch.cat((pose2d, pose3d.detach() / 1000), dim=2)  # B x J x 5
        cam_mesh = self.pose2mesh(pose_combine)  # B x V_padded x 3, m
        return cam_mesh, pose3d


def get_model(num_joint: int, graph_L: Sequence, hid_dim: int = 4096, channel_divisor: int = 1,
              p_dropout: float = 0.5, sparse_layout: str = "coo") -> Pose2Mesh:
    """The original's ``pose2mesh_net.get_model(num_joint, graph_L)``.

    Args:
        num_joint: J of the input joint set.
        graph_L: the rescaled Laplacians of ``build_coarse_graphs`` (10 for the body, 7 for the
            hand; scipy sparse or torch); not modified.
        hid_dim: PoseNet width (the original: 4096).
        channel_divisor: divides every MeshNet hidden channel (1 = the original).
        p_dropout: PoseNet dropout (the original: 0.5).
        sparse_layout: Laplacian buffer layout, ``'coo'`` or ``'csr'``.
    """
    lifter = posenet.get_model(num_joint, hid_dim=hid_dim, num_layer=2, p_dropout=p_dropout)
    mesh_net = meshnet.get_model(2 + 3, 3, graph_L, channel_divisor=channel_divisor, sparse_layout=sparse_layout)
    return Pose2Mesh(lifter, mesh_net)
