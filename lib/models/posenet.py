"""PoseNet: lifts normalized 2D joints to root-relative 3D joints (mm).

A residual MLP in the style of Martinez et al. 2017, with the original release's parameter
names (``w1``, ``batch_norm1``, ``linear_stages.N.{w1,batch_norm1,w2,batch_norm2}``, ``w2``):

    y = w1(x);   for each stage: y = y + w2(drop(relu(bn2(w1(drop(relu(bn1(y))))))));   out = w2(y)

The top-level ``batch_norm1`` exists in the released checkpoints but the original's forward
never uses it; it is kept (same keys) and frozen (``requires_grad=False``), which changes no
number and lets DistributedDataParallel run without ``find_unused_parameters``. Build optimizers
over ``model.parameters()`` (all of them, as the original did) so the original's optimizer
states load.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PoseNet", "ResidualStage", "get_model"]


class ResidualStage(nn.Module):
    """BN-ReLU-Dropout-Linear twice, plus the identity (the original's ``Linear``)."""

    def __init__(self, size: int, p_dropout: float = 0.5):
        super().__init__()
        self.w1 = nn.Linear(size, size)
        self.batch_norm1 = nn.BatchNorm1d(size)
        self.w2 = nn.Linear(size, size)
        self.batch_norm2 = nn.BatchNorm1d(size)
        self.dropout = nn.Dropout(p_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.w1(self.dropout(F.relu(self.batch_norm1(x))))
        y = self.w2(self.dropout(F.relu(self.batch_norm2(y))))
        return x + y


class PoseNet(nn.Module):
    """2D joints (B x J x 2, or B x 2J) to 3D joints (B x J x 3, mm, root-relative).

    Args:
        num_joint: J.
        hid_dim: hidden width (the original: 4096).
        num_layer: number of residual stages (the original: 2).
        p_dropout: dropout probability (the original: 0.5).
    """

    def __init__(self, num_joint: int, hid_dim: int = 4096, num_layer: int = 2, p_dropout: float = 0.5):
        super().__init__()
        self.num_joints = int(num_joint)
        self.hid_dim = int(hid_dim)
        self.w1 = nn.Linear(self.num_joints * 2, self.hid_dim)
        self.batch_norm1 = nn.BatchNorm1d(self.hid_dim)
        self.batch_norm1.requires_grad_(False)  # unused by the forward (see the module docstring)
        self.linear_stages = nn.ModuleList(ResidualStage(self.hid_dim, p_dropout) for _ in range(num_layer))
        self.w2 = nn.Linear(self.hid_dim, self.num_joints * 3)

    def forward(self, pose2d: torch.Tensor) -> torch.Tensor:
        J = self.num_joints
        if not ((pose2d.dim() == 3 and pose2d.shape[1:] == (J, 2)) or (pose2d.dim() == 2 and pose2d.shape[1] == 2 * J)):
            raise ValueError(f"PoseNet expects 2D poses of shape B x {J} x 2 (or B x {2 * J}), "
                             f"got {tuple(pose2d.shape)}")
        y = self.w1(pose2d.reshape(pose2d.shape[0], 2 * J))
        for stage in self.linear_stages:
            y = stage(y)
        return self.w2(y).view(-1, J, 3)

    def extra_repr(self) -> str:
        return f"num_joints={self.num_joints}, hid_dim={self.hid_dim}"


def get_model(num_joint: int, hid_dim: int = 4096, num_layer: int = 2, p_dropout: float = 0.5) -> PoseNet:
    """The original's ``posenet.get_model`` (loading pretrained weights is the caller's job:
    :func:`pose2mesh.checkpoint.load_model_weights`)."""
    return PoseNet(num_joint, hid_dim, num_layer, p_dropout)
