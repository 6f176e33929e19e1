"""Where a posed body-model mesh goes, with the original smplpytorch / manopth semantics."""
from __future__ import annotations

from typing import Optional, Tuple

import torch

__all__ = ["center_or_translate"]


def center_or_translate(verts: torch.Tensor, joints: torch.Tensor, th_trans: Optional[torch.Tensor],
                        center_idx: Optional[int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Translate by ``th_trans`` (B x 3) when it is given and non-zero; otherwise, with a
    ``center_idx``, move that joint to the origin (both layers of the original behave so).

    Args:
        verts: B x V x 3. joints: B x J x 3.
    """
    if th_trans is None or bool(torch.norm(th_trans) == 0):
        if center_idx is not None:
            center_joint = joints[:, center_idx].unsqueeze(1)
            return verts - center_joint, joints - center_joint
        return verts, joints
    trans = th_trans.to(verts.dtype).reshape(-1, 1, 3)
    return verts + trans, joints + trans
