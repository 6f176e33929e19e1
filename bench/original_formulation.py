"""The original release's forward pass of Pose2Mesh, re-expressed over our model's modules (bench baseline).

The original (``models/backbones/cheby_graph_conv.py`` and ``models/meshnet.py`` of
hongsukchoi/Pose2Mesh_RELEASE) runs MeshNet batch-major (``B x V x F``) and, in every
Chebyshev layer: permutes the features to ``V x Fin x B`` with a ``.contiguous()`` copy,
multiplies them by an *uncoalesced* COO Laplacian with ``torch.sparse.mm``, grows the stack of
Chebyshev terms with one ``torch.cat`` per order, permutes the ``K x V x Fin x B`` stack back to
``B x V x Fin x K`` (another copy), applies one ``Linear(Fin * K, Fout)`` and a ``BatchNorm1d``;
the Laplacians are moved to the device at the start of every forward; ``x2`` upsampling goes
through two permutes around ``nn.Upsample``. This module does the same arithmetic in the same
order, written independently, with the *parameters of our model* (it holds no weights of its
own), so that the bench can assert that both give the same outputs and gradients before it
compares their speed and memory. Not used by the package.
"""
from __future__ import annotations

from typing import List

import torch
import torch.nn.functional as F
from torch import nn


def original_sparse_laplacian(L: torch.Tensor) -> torch.Tensor:
    """A Laplacian as the original held it: a float32 COO tensor built from scipy's (row, col,
    data) triplets and never coalesced (its ``sparse_python_to_torch``)."""
    coo = L.to_sparse_coo() if L.layout != torch.sparse_coo else L
    coo = coo.coalesce()
    return torch.sparse_coo_tensor(coo.indices().clone(), coo.values().float().clone(), tuple(coo.shape),
                                   check_invariants=False)


def original_cheb_conv(x: torch.Tensor, cl: nn.Linear, bn, L: torch.Tensor, Fout: int, K: int) -> torch.Tensor:
    """One layer in the original's formulation. x: B x V x Fin -> B x V x Fout."""
    B, V, Fin = x.shape
    x0 = x.permute(1, 2, 0).contiguous().view(V, Fin * B)  # V x Fin*B
    stack = x0.unsqueeze(0)  # 1 x V x Fin*B
    if K > 1:
        x1 = torch.sparse.mm(L, x0)
        stack = torch.cat((stack, x1.unsqueeze(0)), 0)
        for _ in range(2, K):
            x2 = 2 * torch.sparse.mm(L, x1) - x0
            stack = torch.cat((stack, x2.unsqueeze(0)), 0)  # k x V x Fin*B
            x0, x1 = x1, x2
    stack = stack.view(K, V, Fin, B).permute(3, 1, 2, 0).contiguous()  # B x V x Fin x K
    out = cl(stack.view(B * V, Fin * K))  # B*V x Fout
    if bn is not None:
        out = bn(out)
    return out.view(B, V, Fout)


def _upsample2(x: torch.Tensor) -> torch.Tensor:
    """The original's ``graph_upsample(x, 2)``: B x V x F -> B x 2V x F (nearest)."""
    x = x.permute(0, 2, 1).contiguous()
    x = nn.Upsample(scale_factor=2)(x)
    return x.permute(0, 2, 1).contiguous()


class OriginalFormulation(nn.Module):
    """Pose2Mesh's forward as the original computes it, over the modules of ``model`` (our
    :class:`pose2mesh.models.pose2mesh_net.Pose2Mesh`): same parameters, same buffers, same
    train/eval mode, so outputs and gradients are comparable."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        mesh = model.pose2mesh
        # the original's graph_L list after `del graph_L[-2]`: finest mesh level first, joints last
        self._laplacians: List[torch.Tensor] = [original_sparse_laplacian(mesh.laplacian(i))
                                                for i in range(mesh.num_levels)]
        self.channels = [tuple(b) for b in mesh.channels]
        self.cheb_order = list(mesh.cheb_order)

    def forward(self, pose2d: torch.Tensor):
        pose3d = self.model.pose_lifter(pose2d)
        x = torch.cat((pose2d, pose3d.detach() / 1000), dim=2)
        return self.meshnet_forward(x), pose3d

    def meshnet_forward(self, x: torch.Tensor) -> torch.Tensor:
        mesh = self.model.pose2mesh
        graph_L = [L.to(x.device) for L in self._laplacians]  # moved in every forward, as the original
        CL_F, CL_K = self.channels, self.cheb_order
        x = x.view(-1, graph_L[-1].shape[0], CL_F[0][0])
        cl_i = 0
        for i in range(len(CL_F)):
            input_x = x
            for layer_i in range(len(CL_F[i]) - 1):
                ldx = -(i + 1) + (1 if i == len(CL_F) - 1 else 0)
                x = original_cheb_conv(x, mesh.cl[cl_i], mesh.bn[cl_i], graph_L[ldx], CL_F[i][layer_i + 1], CL_K[i])
                if i != len(CL_F) - 1 or layer_i != len(CL_F[i]) - 2:
                    x = F.relu(x)
                cl_i += 1
            if i == 0:
                x = mesh.fc(x.view(-1, graph_L[-1].shape[0] * CL_F[0][-1]))
                x = x.view(-1, graph_L[-2].shape[0], CL_F[1][0])
            elif i < len(CL_F) - 2:
                x = F.interpolate(input_x, size=x.shape[2], mode="linear") + x
                x = _upsample2(x)
            elif i == len(CL_F) - 2:
                x = F.interpolate(input_x, size=x.shape[2], mode="linear") + x
        return x
