"""Fit SMPL / MANO parameters to a mesh in the body model's vertex order.

Pose2Mesh regresses vertices, not parameters. This module recovers the parameters (pose,
shape, translation) whose body-model mesh is nearest, in the least-squares sense, to given
vertices, so that a prediction can be animated, retargeted or exported (see
:mod:`pose2mesh.export`).

Method (batched over B, no loop over vertices or samples; loops over joints and iterations):

1. **Closed-form start.** Linear blend skinning is *linear* in the per-joint affine transforms:
   ``v_i = sum_k w_ik (A_k (x_i - j_k) + p_k)`` with ``x`` the rest vertices and ``j`` the rest
   joints at the current shape. One linear least squares over all 24 (16) joints' ``[A_k | p_k]``
   (a light smoothness term ``|A_k - A_parent|^2`` keeps weakly skinned joints determined), then
   each ``A_k`` projected on the nearest rotation (SVD) gives the global rotations, hence the
   local ones down the kinematic tree. For a fixed pose the vertices are linear in shape and
   translation: a second linear least squares gives them (with a firmer shape ridge). Two
   rounds (the second with the rest mesh at the new shape and the pose blendshapes at the new
   pose) land within 15-25 mm on clean meshes at 1 rad per joint, where LM converges from.
2. **Levenberg-Marquardt** on all parameters with an analytic Jacobian (rotation increments
   about each posed joint, shape, translation; the pose blendshapes' derivative is left out,
   which keeps the exact fixed point). Its normal equations come from Gram products of the
   per-joint lever arms, factored through per-vertex skinning features (two GEMMs over the
   vertices, no 3V x 85 Jacobian). Per-sample damping and step acceptance; up to 12 iterations
   on a fixed subset of 1,200 vertices, stopping once every step moves the mesh by < 0.01 mm
   (0.3 mm when an all-vertex step follows, or once a rejected step would gain < 0.1 % of the
   cost: noise), then ``final_steps`` on all vertices (the last one checked on the result's own
   forward instead of one of its own). Forwards and normal equations run in float32 on vertices
   taken relative to the mesh's mean; parameters, costs and solves stay float64. CPU batches of
   1-2 meshes run on one thread (their operations are too small to share). A small ridge on the shape coefficients
   (``shape_prior``) keeps body size from trading off against the mesh where the mesh leaves it
   loose; the damping keeps joints the mesh does not determine where they are. (A limb's twist
   is determined here: the vertices come with their correspondence.)

>>> fit = fit_smpl(vertices, smpl)          # vertices (B, 6890, 3) metres, SMPL vertex order
>>> verts, joints = smpl(fit.pose, fit.shape, fit.trans)   # == fit.vertices, fit.joints
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import torch

from manopth.manolayer import project_to_rotations

from .errors import Pose2MeshError

__all__ = ["FitResult", "FittingError", "fit_smpl", "fit_mano", "fit_body", "axis_angle_to_matrix",
           "matrix_to_axis_angle"]

ArrayLike = Union[torch.Tensor, np.ndarray]


class FittingError(Pose2MeshError, ValueError):
    """The vertices cannot be fitted (wrong shape or vertex count, non-finite values)."""


@dataclass
class FitResult:
    """Body-model parameters fitted to a batch of meshes (torch tensors on the input's device).

    Attributes:
        pose: (B, 72) SMPL / (B, 48) MANO axis-angle, the layout the wrappers take (for MANO the
            45 finger values are relative to the hand mean pose, as ``MANO`` adds it).
        shape: (B, 10) shape coefficients.
        trans: (B, 3) translation, metres.
        vertices: (B, V, 3) the body model at these parameters (``model(pose, shape, trans)[0]``).
        joints: (B, 24, 3) SMPL / (B, 16, 3) MANO kinematic joints, posed, metres.
        error: (B, V) distance of each fitted vertex to the input vertex, metres.
        kind: 'smpl' or 'mano'. gender: the SMPL layer used ('neutral' for MANO).
    """

    pose: torch.Tensor
    shape: torch.Tensor
    trans: torch.Tensor
    vertices: torch.Tensor
    joints: torch.Tensor
    error: torch.Tensor
    kind: str = "smpl"
    gender: str = "neutral"
    iterations: int = 0

    def __len__(self) -> int:
        return int(self.pose.shape[0])

    def select(self, index) -> "FitResult":
        """The fits of ``index`` (an int, slice or index tensor), keeping the batch dimension."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        pick = {name: getattr(self, name)[index] for name in ("pose", "shape", "trans", "vertices", "joints", "error")}
        return FitResult(**pick, kind=self.kind, gender=self.gender, iterations=self.iterations)

    @property
    def mean_error(self) -> torch.Tensor:
        """(B,) mean vertex distance to the input, metres."""
        return self.error.mean(dim=1)


# --------------------------------------------------------------------------------------------
# rotations
# --------------------------------------------------------------------------------------------

def _skew(v: torch.Tensor) -> torch.Tensor:
    """(..., 3) -> (..., 3, 3) cross-product matrices."""
    zero = torch.zeros_like(v[..., 0])
    x, y, z = v.unbind(-1)
    return torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*v.shape, 3)


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """(..., 3) axis-angle -> (..., 3, 3) rotation matrices (Rodrigues, exact near zero)."""
    theta2 = (aa * aa).sum(-1, keepdim=True)[..., None]
    theta = theta2.clamp_min(1e-24).sqrt()
    small = theta2 < 1e-8
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / theta2.clamp_min(1e-24))
    k = _skew(aa)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand_as(k)
    return eye + a * k + b * (k @ k)


def matrix_to_axis_angle(rot: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation matrices -> (..., 3) axis-angle with angle in [0, pi], via the quaternion."""
    m = rot
    tr = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    # four candidate quaternions (w, x, y, z); take the best conditioned one per matrix
    cands = torch.stack([
        torch.stack([1 + tr, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                     m[..., 1, 0] - m[..., 0, 1]], -1),
        torch.stack([m[..., 2, 1] - m[..., 1, 2], 1 + 2 * m[..., 0, 0] - tr, m[..., 0, 1] + m[..., 1, 0],
                     m[..., 0, 2] + m[..., 2, 0]], -1),
        torch.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], 1 + 2 * m[..., 1, 1] - tr,
                     m[..., 1, 2] + m[..., 2, 1]], -1),
        torch.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1],
                     1 + 2 * m[..., 2, 2] - tr], -1),
    ], dim=-2)  # (..., 4, 4)
    diag = torch.stack([tr, m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]], -1)
    best = diag.argmax(-1)
    q = torch.gather(cands, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True)
    q = torch.where(q[..., :1] < 0, -q, q)
    w, xyz = q[..., 0], q[..., 1:]
    s = xyz.norm(dim=-1)
    angle = 2 * torch.atan2(s, w)
    scale = torch.where(s < 1e-7, 2 / w.clamp_min(1e-12), angle / s.clamp_min(1e-30))
    return xyz * scale[..., None]


# --------------------------------------------------------------------------------------------
# the body model as plain tensors
# --------------------------------------------------------------------------------------------

@dataclass
class _Model:
    kind: str
    template: torch.Tensor       # V x 3
    shapedirs: torch.Tensor      # V x 3 x NB
    posedirs: torch.Tensor       # P x 3V (P = 9 (J - 1))
    regressor: torch.Tensor      # J x V
    weights: torch.Tensor        # V x J
    parents: List[int]
    pose_offset: torch.Tensor    # J x 3 axis-angle added to the finger pose (MANO hand mean), else 0
    reg_template: torch.Tensor   # J x 3  regressor @ template
    reg_shapedirs: torch.Tensor  # J x 3 x NB
    subtree: torch.Tensor        # J x J, [j, k] = 1 if k is j or below j
    ancestors: torch.Tensor      # J x J, its transpose: [k, j] = 1 if j is k or above k
    parent_index: torch.Tensor   # J (the root's is 0)
    levels: List[Tuple[torch.Tensor, torch.Tensor]]  # (joints, their parents) per tree depth >= 1
    laplacian: torch.Tensor      # J x J tree Laplacian
    subset: torch.Tensor         # vertex ids used by the start and the first LM iterations
    shape_scale: float           # mean squared shape direction per vertex and coefficient, m^2
    cache: Dict[str, Tuple[Any, ...]] = field(default_factory=dict)

    @property
    def num_joints(self) -> int:
        return len(self.parents)


_MODELS: "weakref.WeakKeyDictionary[torch.nn.Module, Dict[Tuple[str, str], _Model]]" = weakref.WeakKeyDictionary()
_SUBSET_SIZE = 1200         # vertices of the start and the first LM iterations (SMPL; MANO uses all 778)
_START_ROUNDS = 2           # affine start -> shape -> affine start at the new rest mesh ...
_START_SMOOTHING = 1e-3     # |A_k - A_parent|^2 weight, relative to the rotation block's scale
_SUBSET_TOL = 3e-4          # the subset LM's stop (m RMS step motion) when an all-vertex step follows
_SINGLE_THREAD_BATCH = 2    # CPU fits of at most this many meshes run on one thread
_STALL = 1e-3               # LM stops on a rejected step predicted to gain less than this part of the cost
_SHAPE_BOUND = 3.0          # |beta| beyond this costs steeply (a soft wall; bodies live well inside it)
_SHAPE_WALL = 1.0           # the wall's weight, relative like shape_prior (1: a unit of excess beta costs
                            # its whole vertex displacement)
_START_SHAPE_PRIOR = 1e-1   # the start's shape ridge (the affine start is rough; LM uses shape_prior)


def _model_tensors(layer, kind: str, device: torch.device) -> _Model:
    per_layer = _MODELS.setdefault(layer, {})
    key = (kind, str(device))
    if key in per_layer:
        return per_layer[key]
    f64: Dict[str, Any] = dict(dtype=torch.float64, device=device)
    template = layer.th_v_template[0].to(**f64)
    shapedirs = layer.th_shapedirs.to(**f64)
    num_verts = template.shape[0]
    posedirs = layer.th_posedirs.to(**f64).reshape(num_verts * 3, -1).t().contiguous()
    regressor = layer.th_J_regressor.to(**f64)
    weights = layer.th_weights.to(**f64)
    parents = list(layer.kintree_parents)
    num_joints = len(parents)
    offset = torch.zeros(num_joints, 3, **f64)
    if kind == "mano":
        offset[1:] = layer.th_hands_mean.to(**f64).reshape(-1, 3)
    subtree = torch.eye(num_joints, **f64)
    for k in range(num_joints - 1, 0, -1):  # parents precede children in SMPL/MANO order
        subtree[parents[k]] += subtree[k]
    depth = [0] * num_joints
    for k in range(1, num_joints):
        depth[k] = depth[parents[k]] + 1
    levels = [(torch.tensor([k for k in range(num_joints) if depth[k] == d], device=device),
               torch.tensor([parents[k] for k in range(num_joints) if depth[k] == d], device=device))
              for d in range(1, max(depth) + 1)]
    parent_index = torch.tensor([max(p, 0) for p in parents], device=device)
    adjacency = torch.zeros(num_joints, num_joints, **f64)
    for k in range(1, num_joints):
        adjacency[k, parents[k]] = adjacency[parents[k], k] = 1
    laplacian = torch.diag(adjacency.sum(1)) - adjacency
    if num_verts > _SUBSET_SIZE * 2:
        subset = torch.linspace(0, num_verts - 1, _SUBSET_SIZE, device=device).round().long()
    else:
        subset = torch.arange(num_verts, device=device)
    model = _Model(kind=kind, template=template, shapedirs=shapedirs, posedirs=posedirs, regressor=regressor,
                   weights=weights, parents=parents, pose_offset=offset, reg_template=regressor @ template,
                   reg_shapedirs=torch.einsum("jv,vcn->jcn", regressor, shapedirs), subtree=subtree,
                   ancestors=subtree.t().contiguous(), parent_index=parent_index, levels=levels,
                   laplacian=laplacian, subset=subset,
                   shape_scale=float((shapedirs ** 2).sum() / (num_verts * shapedirs.shape[-1])))
    per_layer[key] = model
    return model


def _subset_view(model: _Model, ids: Optional[torch.Tensor]):
    """Per-vertex arrays restricted to ``ids`` (None: all vertices)."""
    if ids is None:
        return model.template, model.shapedirs, model.posedirs, model.weights
    key = f"subset{ids.numel()}"
    if key not in model.cache:
        cols = (ids[:, None] * 3 + torch.arange(3, device=ids.device)).reshape(-1)
        model.cache[key] = (model.template[ids], model.shapedirs[ids], model.posedirs[:, cols], model.weights[ids])
    return model.cache[key]


@dataclass
class _Posed:
    rest: torch.Tensor         # B x V x 3 rest vertices (shape + pose blendshapes)
    rest_joints: torch.Tensor  # B x J x 3
    rot: torch.Tensor          # B x J x 3 x 3 global rotations
    parent_rot: torch.Tensor   # B x J x 3 x 3 the parent's global rotation (identity for the root)
    joints: torch.Tensor       # B x J x 3 posed joints (without translation)
    verts: torch.Tensor        # B x V x 3 posed vertices (with translation)


def _matvec(mats: torch.Tensor, vecs: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) x (..., 3) -> (...,3), without batched tiny matrix products."""
    return (mats * vecs.unsqueeze(-2)).sum(-1)


def _forward(model: _Model, local: torch.Tensor, betas: torch.Tensor, trans: torch.Tensor,
             ids: Optional[torch.Tensor] = None) -> _Posed:
    """LBS with pose blendshapes from local rotation matrices (B, J, 3, 3), the SMPL/MANO formula."""
    template, shapedirs, posedirs, weights = _subset_view(model, ids)
    batch = local.shape[0]
    num_verts, num_betas = template.shape[0], shapedirs.shape[-1]
    rest = template + (betas @ shapedirs.reshape(-1, num_betas).t()).reshape(batch, num_verts, 3)
    eye = torch.eye(3, dtype=local.dtype, device=local.device)
    feature = (local[:, 1:] - eye).reshape(batch, -1)
    rest = rest + (feature @ posedirs).reshape(batch, -1, 3)
    rest_joints = model.reg_template + (betas @ model.reg_shapedirs.reshape(-1, num_betas).t()).reshape(batch, -1, 3)
    rot = local.clone()
    for idx, par in model.levels:  # one step per tree depth
        rot[:, idx] = rot[:, par] @ local[:, idx]
    parent_rot = rot[:, model.parent_index]
    parent_rot[:, 0] = eye
    bone = rest_joints - rest_joints[:, model.parent_index]
    bone[:, 0] = rest_joints[:, 0]
    posed_joints = model.ancestors @ _matvec(parent_rot, bone)             # B x J x 3
    offset = posed_joints - _matvec(rot, rest_joints)                      # B x J x 3
    blend = weights @ torch.cat([rot.reshape(batch, -1, 9), offset], 2)   # B x V x 12
    blend_rot = blend[..., :9].reshape(batch, num_verts, 3, 3)
    verts = _matvec(blend_rot, rest) + blend[..., 9:] + trans[:, None]
    return _Posed(rest, rest_joints, rot, parent_rot, posed_joints, verts)


def _levers(model: _Model, posed: _Posed, weights: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """(B, V, J, 3) levers ``l_ij = sum_{k in sub(j)} w_ik (R_k x_i + o_k - p_j)``: a world-frame
    rotation increment w about joint j (moving its subtree) moves vertex i by w x l_ij.
    Vertices are taken relative to the root joint so that ``dtype`` float32 keeps the precision."""
    batch, num_verts = posed.rest.shape[:2]
    num_joints = model.num_joints
    centre = posed.joints[:, :1]
    offset = (posed.joints - centre - _matvec(posed.rot, posed.rest_joints)).to(dtype)     # B x J x 3
    rot = posed.rot.to(dtype)
    weights = weights.to(dtype)
    subtree_t = model.subtree.t().to(dtype)
    moved = (posed.rest.to(dtype) @ rot.permute(0, 3, 2, 1).reshape(batch, 3, 3 * num_joints)
             ).reshape(batch, num_verts, 3, num_joints) + offset.transpose(1, 2)[:, None]
    u = (moved * weights[None, :, None, :]) @ subtree_t                                  # B x V x 3 x J
    joints = (posed.joints - centre).to(dtype).transpose(1, 2)[:, None]                   # B x 1 x 3 x J
    lever = u - (weights @ subtree_t)[None, :, None, :] * joints
    return lever.transpose(2, 3)


def _shape_trans_jacobian(model: _Model, posed: _Posed, ids: Optional[torch.Tensor], dtype,
                          resid: Optional[torch.Tensor] = None) -> torch.Tensor:
    """(B, V, 3, NB + 3): d vertex / d (shape, translation). The shape block is
    ``sum_k w_ik (R_k (S_i - dj_k) + dp_k)`` with ``dj = J_reg S`` and ``dp`` its posed chain.
    With ``resid`` (B, V, 3) it comes as one more column (B, V, 3, NB + 4)."""
    _, shapedirs, _, weights = _subset_view(model, ids)
    batch, num_verts = posed.rest.shape[:2]
    num_joints, num_betas = model.num_joints, shapedirs.shape[-1]
    reg_dirs = model.reg_shapedirs                                                      # J x 3 x NB
    bone_dirs = reg_dirs - reg_dirs[model.parent_index]
    bone_dirs[0] = reg_dirs[0]
    chain = (posed.parent_rot.unsqueeze(-1) * bone_dirs[None, :, None]).sum(3)           # B x J x 3 x NB
    dp = (model.ancestors @ chain.reshape(batch, num_joints, -1)).reshape(batch, num_joints, 3, num_betas)
    joint_term = (dp - (posed.rot.unsqueeze(-1) * reg_dirs[None, :, None]).sum(3)).to(dtype)
    weights_t = weights.to(dtype)
    blend_rot = (weights_t @ posed.rot.to(dtype).reshape(batch, -1, 9)).reshape(batch, num_verts, 3, 3)
    j_shape = (weights_t @ joint_term.reshape(batch, num_joints, -1)).reshape(batch, num_verts, 3, num_betas)
    dirs = shapedirs.to(dtype)
    for d in range(3):  # blend_rot @ shapedirs, without a batch of V tiny matrix products (in place)
        j_shape.addcmul_(blend_rot[..., d, None], dirs[None, :, None, d])
    out = j_shape.new_empty(batch, num_verts, 3, num_betas + 3 + (resid is not None))
    out[..., :num_betas] = j_shape
    out[..., num_betas:num_betas + 3] = torch.eye(3, dtype=dtype, device=j_shape.device)
    if resid is not None:
        out[..., -1] = resid
    return out


def _jacobian(model: _Model, posed: _Posed, ids: Optional[torch.Tensor], dtype=torch.float32) -> torch.Tensor:
    """(B, 3V, 3J + NB + 3) Jacobian of the vertices w.r.t. world-frame rotation increments about
    each posed joint, the shape coefficients and the translation (rotation block ``-[l_ij]_x``).
    The pose blendshapes' derivative is left out (Gauss-Newton keeps the exact fixed point).
    :func:`_normal_equations` forms ``J^T J`` from the same pieces without building this."""
    weights = _subset_view(model, ids)[3]
    batch, num_verts = posed.rest.shape[:2]
    x, y, z = _levers(model, posed, weights, dtype).unbind(-1)                         # B x V x J each
    zero = torch.zeros_like(x)
    j_rot = torch.stack([torch.stack([zero, z, -y], -1), torch.stack([-z, zero, x], -1),
                         torch.stack([y, -x, zero], -1)], 2).reshape(batch, num_verts, 3, -1)
    j_other = _shape_trans_jacobian(model, posed, ids, dtype)
    return torch.cat([j_rot, j_other], dim=3).reshape(batch, num_verts * 3, -1)


def _cross_contract(t: torch.Tensor) -> torch.Tensor:
    """(..., 3(b), 3(c), ...) -> (..., 3(a), ...): sum_bc eps_abc t[b, c] (b, c at dims -2/-1 after moving)."""
    return torch.stack([t[:, :, 1, 2] - t[:, :, 2, 1], t[:, :, 2, 0] - t[:, :, 0, 2], t[:, :, 0, 1] - t[:, :, 1, 0]], 2)


def _lever_factors(model: _Model, posed: _Posed, weights: torch.Tensor,
                   dtype=torch.float32) -> Tuple[torch.Tensor, torch.Tensor]:
    """The levers of :func:`_levers` as a product ``F @ M``: per-vertex features
    ``F_i = [w_ik x_i, w_ik]_k`` (B, V, 4J) and a small matrix (B, 4J, 3J) with
    ``M[(k, d), (j, c)] = D_jk R_k[c, d]`` and ``M[(k, 3), (j, c)] = D_jk (o_kc - p_jc)``, so that
    Gram products of the levers never need the (B, V, 3J) levers themselves."""
    batch, num_verts = posed.rest.shape[:2]
    num_joints = model.num_joints
    centre = posed.joints[:, :1]
    offset = posed.joints - centre - _matvec(posed.rot, posed.rest_joints)             # B x J x 3
    joints = posed.joints - centre
    homog = torch.cat([posed.rest, torch.ones_like(posed.rest[..., :1])], -1).to(dtype)  # B x V x 4
    feats = (weights.to(dtype)[None, :, :, None] * homog[:, :, None, :]).reshape(batch, num_verts, num_joints * 4)
    dt = model.subtree.t().to(dtype)                                                   # [k, j] = D_jk
    rows_rot = dt[None, :, None, :, None] * posed.rot.transpose(2, 3).to(dtype)[:, :, :, None, :]
    rows_off = dt[None, :, :, None] * (offset[:, :, None, :] - joints[:, None, :, :]).to(dtype)
    mat = torch.cat([rows_rot, rows_off[:, :, None]], 2).reshape(batch, num_joints * 4, num_joints * 3)
    return feats, mat


def _normal_equations(model: _Model, posed: _Posed, resid: torch.Tensor, ids: Optional[torch.Tensor],
                      dtype=torch.float32) -> Tuple[torch.Tensor, torch.Tensor]:
    """``J^T J`` (B, P, P) and ``J^T r`` (B, P) of :func:`_jacobian`, from Gram matrices of the levers.

    With ``J_rot = -[l]_x``: ``J_rot^T J_rot`` blocks are ``sum_i (l_ij . l_ij') I - l_ij' l_ij^T``,
    ``J_rot^T X = sum_i l_ij x X_i`` and ``J_rot^T r = sum_i l_ij x r_i``. With the levers as
    ``F @ M`` (:func:`_lever_factors`), ``sum_i l_i l_i^T = M^T (F^T F) M`` and ``sum_i l_i X_i^T =
    M^T (F^T X)``: two GEMMs over the vertices, and nothing of size V x 3J or 3V x P is built.
    """
    weights = _subset_view(model, ids)[3]
    batch, num_verts = posed.rest.shape[:2]
    num_joints = model.num_joints
    feats, mat = _lever_factors(model, posed, weights, dtype)
    stacked4 = _shape_trans_jacobian(model, posed, ids, dtype, resid.to(dtype))        # B x V x 3 x (NO + 1)
    other, resid = stacked4[..., :-1], stacked4[..., -1]
    num_other = other.shape[-1]
    feats_t = feats.transpose(1, 2)                                                    # B x 4J x V
    mat_t = mat.transpose(1, 2)                                                        # B x 3J x 4J
    gram = (mat_t @ (feats_t @ feats) @ mat).reshape(batch, num_joints, 3, num_joints, 3)
    trace = gram.diagonal(dim1=2, dim2=4).sum(-1)                                      # B x J x J
    eye = torch.eye(3, dtype=dtype, device=feats.device)
    h_rr = trace[:, :, None, :, None] * eye[None, None, :, None, :] - gram.permute(0, 1, 4, 3, 2)
    stacked = stacked4.reshape(batch, num_verts, -1)                                   # B x V x 3(NO+1)
    mixed = (mat_t @ (feats_t @ stacked)).reshape(batch, num_joints, 3, 3, num_other + 1)
    crossed = _cross_contract(mixed)                                                   # B x J x 3 x (NO + 1)
    h_ro = crossed[..., :num_other].reshape(batch, num_joints * 3, num_other)
    g_rot = crossed[..., num_other].reshape(batch, num_joints * 3)
    stacked_flat = stacked4.reshape(batch, num_verts * 3, num_other + 1)
    oo = stacked_flat[..., :num_other].transpose(1, 2) @ stacked_flat                  # B x NO x (NO + 1)
    h_oo, g_other = oo[..., :num_other], oo[..., num_other]
    normal = torch.cat([torch.cat([h_rr.reshape(batch, num_joints * 3, num_joints * 3), h_ro], 2),
                        torch.cat([h_ro.transpose(1, 2), h_oo], 2)], 1)
    return normal.to(torch.float64), torch.cat([g_rot, g_other], 1).to(torch.float64)


# --------------------------------------------------------------------------------------------
# the closed-form start
# --------------------------------------------------------------------------------------------

def _affine_rotations(model: _Model, target: torch.Tensor, rest: torch.Tensor, rest_joints: torch.Tensor,
                      weights: torch.Tensor, smooth: float) -> torch.Tensor:
    """Global rotations (B, J, 3, 3) from one linear least squares over the per-joint affine maps."""
    batch, num_verts = target.shape[:2]
    num_joints = model.num_joints
    rel = rest[:, :, None, :] - rest_joints[:, None]                          # B x V x J x 3
    ones = torch.ones_like(rel[..., :1])
    phi = (weights[None, :, :, None] * torch.cat([rel, ones], -1)).reshape(batch, num_verts, num_joints * 4)
    normal = phi.transpose(1, 2) @ phi                                        # B x 4J x 4J
    rhs = phi.transpose(1, 2) @ target                                        # B x 4J x 3
    diag = normal.diagonal(dim1=1, dim2=2).reshape(batch, num_joints, 4)
    scale = diag[..., :3].mean((1, 2))[:, None, None]  # the rotation part's scale
    select = torch.diag(torch.tensor([1.0, 1.0, 1.0, 0.0], dtype=target.dtype, device=target.device))
    reg = torch.kron(model.laplacian, select)
    eye = torch.eye(num_joints * 4, dtype=target.dtype, device=target.device)
    sol = torch.linalg.solve(normal + scale * (smooth * reg + 1e-9 * eye), rhs)  # B x 4J x 3
    affine = sol.reshape(batch, num_joints, 4, 3)[:, :, :3].transpose(2, 3)      # rows of A_k
    return project_to_rotations(affine)


def _local_from_global(model: _Model, rot: torch.Tensor) -> torch.Tensor:
    local = rot[:, model.parent_index].transpose(2, 3) @ rot
    local[:, 0] = rot[:, 0]
    return local


def _solve_shape_trans(model: _Model, target: torch.Tensor, local: torch.Tensor, ids, shape_prior: float):
    """Least-squares shape and translation at a fixed pose (the vertices are affine in them)."""
    batch = target.shape[0]
    num_betas = model.shapedirs.shape[-1]
    zeros = target.new_zeros(batch, num_betas)
    m32 = _model_float32(model)  # the forward and Jacobian in float32 (the solve in float64)
    centre = target.mean(1, keepdim=True)
    posed = _forward(m32, local.to(torch.float32), zeros.to(torch.float32), -centre[:, 0].to(torch.float32), ids)
    jac = _shape_trans_jacobian(m32, posed, ids, torch.float32).reshape(batch, -1, num_betas + 3).to(target.dtype)
    resid = (target - centre - posed.verts).reshape(batch, -1, 1)
    prior = torch.zeros(num_betas + 3, dtype=target.dtype, device=target.device)
    prior[:num_betas] = shape_prior * model.shape_scale * target.shape[1]
    sol = torch.linalg.solve(jac.transpose(1, 2) @ jac + torch.diag(prior), jac.transpose(1, 2) @ resid)[..., 0]
    return sol[:, :num_betas], sol[:, num_betas:]


# --------------------------------------------------------------------------------------------
# fitting
# --------------------------------------------------------------------------------------------

def _as_vertices(vertices: ArrayLike, num_verts: int, what: str) -> Tuple[torch.Tensor, torch.device, torch.dtype]:
    if isinstance(vertices, np.ndarray):
        tensor = torch.from_numpy(np.asarray(vertices, dtype=np.float64))
    elif isinstance(vertices, torch.Tensor):
        tensor = vertices.detach()
    else:
        raise FittingError(f"{what} fit: vertices must be a torch tensor or numpy array, got {type(vertices).__name__}")
    if tensor.dim() == 2:
        tensor = tensor[None]
    if tensor.dim() != 3 or tensor.shape[-1] != 3 or tensor.shape[0] == 0:
        raise FittingError(f"{what} fit: vertices must be (B, {num_verts}, 3), got {tuple(tensor.shape)}")
    if tensor.shape[1] != num_verts:
        other = {6890: "an SMPL body", 778: "a MANO hand"}.get(int(tensor.shape[1]))
        hint = f" ({other} mesh?)" if other else ""
        raise FittingError(f"{what} fit: expected {num_verts} vertices per mesh, got {tensor.shape[1]}{hint}")
    if not bool(torch.isfinite(tensor).all()):
        bad = int((~torch.isfinite(tensor)).any(-1).any(-1).sum())
        raise FittingError(f"{what} fit: {bad} of {tensor.shape[0]} meshes have non-finite vertices")
    out_dtype = torch.float64 if tensor.dtype == torch.float64 and isinstance(vertices, torch.Tensor) else torch.float32
    return tensor.to(torch.float64), tensor.device, out_dtype


def _apply_increment(local: torch.Tensor, parent_rot: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
    """Local rotations after world-frame increments ``omega`` (B, J, 3) about each joint."""
    in_parent = _matvec(parent_rot.transpose(2, 3), omega)
    return axis_angle_to_matrix(in_parent) @ local


def _shape_terms(betas: torch.Tensor, ridge: float, wall: float) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The shape prior: a light ridge ``ridge |b|^2`` plus a soft wall ``wall |b - clip(b)|^2``
    beyond ``+-_SHAPE_BOUND``. A rough predicted mesh (thin, crumpled limbs) otherwise drives the
    coefficients to |beta| ~ 10, far outside any body; inside the bound only the ridge acts.

    Returns:
        the cost (B,), half its gradient (B, NB) and half its curvature (B, NB).
    """
    excess = betas - betas.clamp(-_SHAPE_BOUND, _SHAPE_BOUND)
    cost = ridge * (betas * betas).sum(1) + wall * (excess * excess).sum(1)
    curvature = ridge + wall * (excess != 0).to(betas.dtype)
    return cost, ridge * betas + wall * excess, curvature


def _lm(model: _Model, target: torch.Tensor, local, betas, trans, ids, iterations: int, shape_prior: float,
        damping: float, tol: float = 1e-5):
    """Up to ``iterations`` Levenberg-Marquardt steps; each sample keeps its own damping and accepts
    only improvements; stops early once every sample's accepted step moves the vertices by less
    than ``tol`` metres RMS (or its rejected step would gain less than ``_STALL`` of its cost).
    The forwards and normal equations run in float32 on vertices taken relative to the target's
    mean (the parameters, the costs and the solves stay float64)."""
    batch = target.shape[0]
    num_joints, num_betas = model.num_joints, betas.shape[1]
    tgt = target if ids is None else target[:, ids]
    num_verts = tgt.shape[1]
    m32 = _model_float32(model)
    centre = tgt.mean(1)
    tgt = (tgt - centre[:, None]).to(torch.float32)

    def forward(loc, b, t):
        return _forward(m32, loc.to(torch.float32), b.to(torch.float32), (t - centre).to(torch.float32), ids)
    ridge = shape_prior * model.shape_scale * num_verts
    wall = _SHAPE_WALL * model.shape_scale * num_verts
    shape = slice(num_joints * 3, num_joints * 3 + num_betas)
    mu = torch.full((batch, 1), damping, dtype=target.dtype, device=target.device)

    def cost(posed, b):
        return ((posed.verts - tgt).to(torch.float64) ** 2).sum((1, 2)) + _shape_terms(b, ridge, wall)[0]

    posed = forward(local, betas, trans)
    current = cost(posed, betas)
    for _ in range(iterations):
        normal, grad = _normal_equations(m32, posed, tgt - posed.verts, ids)
        _, shape_grad, shape_curv = _shape_terms(betas, ridge, wall)
        grad[:, shape] -= shape_grad
        prior = torch.zeros_like(grad)
        prior[:, shape] = shape_curv
        diag = normal.diagonal(dim1=1, dim2=2)
        system = normal + torch.diag_embed(prior + mu * (diag + 1e-6 * num_verts))
        step = torch.linalg.solve(system, grad[..., None])[..., 0]
        # the step's predicted RMS vertex motion; every sample below tol: converged
        motion = ((step[:, None] @ normal @ step[..., None])[:, 0, 0].clamp_min(0) / num_verts).sqrt()
        omega = step[:, :num_joints * 3].reshape(batch, num_joints, 3)
        new_local = _apply_increment(local, posed.parent_rot.to(torch.float64), omega)
        new_betas = betas + step[:, num_joints * 3:num_joints * 3 + num_betas]
        new_trans = trans + step[:, -3:]
        new_posed = forward(new_local, new_betas, new_trans)
        new_cost = cost(new_posed, new_betas)
        better = new_cost <= current
        b4 = better[:, None, None, None]
        local = torch.where(b4, new_local, local)
        betas = torch.where(better[:, None], new_betas, betas)
        trans = torch.where(better[:, None], new_trans, trans)
        current = torch.where(better, new_cost, current)
        posed = _Posed(*(torch.where(better.reshape(-1, *([1] * (a.dim() - 1))), a, b)
                         for a, b in zip(vars(new_posed).values(), vars(posed).values())))
        mu = torch.where(better[:, None], (mu / 10).clamp_min(1e-9), mu * 10)
        # done: an accepted step below tol, or a rejected one whose predicted decrease is below
        # _STALL of the cost (noise: what is left there is not worth more damped tries)
        stalled = ~better & (motion * motion * num_verts < _STALL * current)
        if bool(((better & (motion < tol)) | stalled).all()):
            break
    return local, betas, trans


def _fit(vertices: ArrayLike, body_model, layer, kind: str, gender: str, init: Optional[FitResult],
         iterations: int, final_steps: int, shape_prior: float, what: str) -> FitResult:
    num_verts = int(layer.th_v_template.shape[1])
    target, device, out_dtype = _as_vertices(vertices, num_verts, what)
    threads = torch.get_num_threads()
    # small batches on the CPU: the operations are too small to share between threads (the
    # hand-off costs more than it saves: 2 threads took ~1.5x the CPU time of 1 at batch 1)
    single = device.type == "cpu" and threads > 1 and target.shape[0] <= _SINGLE_THREAD_BATCH
    if single:
        torch.set_num_threads(1)
    try:
        return _fit_threads(target, device, out_dtype, body_model, layer, kind, gender, init, iterations,
                            final_steps, shape_prior, what)
    finally:
        if single:
            torch.set_num_threads(threads)


def _fit_threads(target, device, out_dtype, body_model, layer, kind: str, gender: str, init: Optional[FitResult],
                 iterations: int, final_steps: int, shape_prior: float, what: str) -> FitResult:
    num_verts = target.shape[1]
    model = _model_tensors(layer, kind, device)
    batch = target.shape[0]
    num_betas = model.shapedirs.shape[-1]
    ids = model.subset if model.subset.numel() < num_verts else None
    if init is not None:
        if init.kind != kind:
            raise FittingError(f"{what} fit: init is a {init.kind.upper()} fit")
        pose = init.pose.detach().to(device=device, dtype=torch.float64)
        if pose.shape[0] == 1 and batch > 1:
            pose = pose.expand(batch, -1)
        if pose.shape[0] != batch:
            raise FittingError(f"{what} fit: init has {pose.shape[0]} fits for {batch} meshes")
        local = axis_angle_to_matrix(pose.reshape(batch, -1, 3) + model.pose_offset)
        betas = init.shape.detach().to(device=device, dtype=torch.float64).expand(batch, -1).clone()
        trans = init.trans.detach().to(device=device, dtype=torch.float64).expand(batch, -1).clone()
        local, betas, trans = _lm(model, target, local, betas, trans, ids, max(iterations // 2, 2), shape_prior, 1e-3)
    else:
        template, _, _, weights = _subset_view(model, ids)
        tgt = target if ids is None else target[:, ids]
        betas = target.new_zeros(batch, num_betas)
        rest = template.expand(batch, -1, -1)
        rest_joints = model.reg_template.expand(batch, -1, -1)
        for round_ in range(_START_ROUNDS):
            rot = _affine_rotations(model, tgt, rest, rest_joints, weights, smooth=_START_SMOOTHING)
            local = _local_from_global(model, rot)
            betas, trans = _solve_shape_trans(model, tgt, local, ids, _START_SHAPE_PRIOR)
            if round_ + 1 < _START_ROUNDS:
                posed = _forward(model, local, betas, trans, ids)
                rest, rest_joints = posed.rest, posed.rest_joints
        local, betas, trans = _lm(model, target, local, betas, trans, ids, iterations, shape_prior, 1e-2,
                                  tol=_SUBSET_TOL if ids is not None and final_steps > 0 else 1e-5)
    fallback: Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = None
    if ids is not None and final_steps > 0:
        if final_steps > 1:
            local, betas, trans = _lm(model, target, local, betas, trans, None, final_steps - 1, shape_prior, 1e-4)
        before = (local, betas, trans)
        local, betas, trans, current = _final_step(model, target, local, betas, trans, shape_prior, 1e-4)
        fallback = before + (current,)
    pose = (matrix_to_axis_angle(local) - model.pose_offset).reshape(batch, -1)
    result = _result(body_model, kind, gender, pose, betas, trans, target, out_dtype, iterations)
    if fallback is not None:
        # the last step was taken without a forward of its own: the wrapper's forward checks it
        num_betas = betas.shape[1]
        ridge = shape_prior * model.shape_scale * num_verts
        wall = _SHAPE_WALL * model.shape_scale * num_verts
        new_cost = ((result.error.to(torch.float64) ** 2).sum(1)
                    + _shape_terms(result.shape.to(torch.float64), ridge, wall)[0])
        worse = new_cost > fallback[3]
        if bool(worse.any()):
            old_pose = (matrix_to_axis_angle(fallback[0]) - model.pose_offset).reshape(batch, -1)
            pick = worse[:, None]
            result = _result(body_model, kind, gender, torch.where(pick, old_pose, pose),
                             torch.where(pick, fallback[1], betas), torch.where(pick, fallback[2], trans), target,
                             out_dtype, iterations)
    return result


def _model_float32(model: _Model) -> _Model:
    """The model's tensors in float32 (cached): the all-vertex step runs in float32."""
    if "float32" not in model.cache:
        conv = {name: getattr(model, name).to(torch.float32)
                for name in ("template", "shapedirs", "posedirs", "regressor", "weights", "pose_offset",
                             "reg_template", "reg_shapedirs", "subtree", "ancestors", "laplacian")}
        model.cache["float32"] = (replace(model, cache={}, **conv),)
    converted: _Model = model.cache["float32"][0]
    return converted


def _final_step(model: _Model, target: torch.Tensor, local, betas, trans, shape_prior: float, damping: float):
    """One Levenberg-Marquardt step on all vertices, its forward and normal equations in float32
    (relative to the mesh's mean, so float32 keeps the precision), the solve in float64. No forward
    after the step: the caller checks the step on the result's own forward. Returns the new
    parameters and the cost before the step."""
    batch = target.shape[0]
    m32 = _model_float32(model)
    num_joints, num_betas = model.num_joints, betas.shape[1]
    num_verts = target.shape[1]
    centre = target.mean(1, keepdim=True)
    tgt = (target - centre).to(torch.float32)
    posed = _forward(m32, local.to(torch.float32), betas.to(torch.float32), (trans - centre[:, 0]).to(torch.float32))
    resid = tgt - posed.verts
    ridge = shape_prior * model.shape_scale * num_verts
    wall = _SHAPE_WALL * model.shape_scale * num_verts
    shape_cost, shape_grad, shape_curv = _shape_terms(betas, ridge, wall)
    current = (resid.to(torch.float64) ** 2).sum((1, 2)) + shape_cost
    normal, grad = _normal_equations(m32, posed, resid, None)
    prior = torch.zeros_like(grad)
    prior[:, num_joints * 3:num_joints * 3 + num_betas] = shape_curv
    grad[:, num_joints * 3:num_joints * 3 + num_betas] -= shape_grad
    diag = normal.diagonal(dim1=1, dim2=2)
    system = normal + torch.diag_embed(prior + damping * (diag + 1e-6 * num_verts))
    step = torch.linalg.solve(system, grad[..., None])[..., 0]
    omega = step[:, :num_joints * 3].reshape(batch, num_joints, 3)
    new_local = _apply_increment(local, posed.parent_rot.to(torch.float64), omega)
    return (new_local, betas + step[:, num_joints * 3:num_joints * 3 + num_betas], trans + step[:, -3:], current)


def _result(body_model, kind, gender, pose, betas, trans, target, out_dtype, iterations) -> FitResult:
    pose, betas, trans = (t.to(out_dtype) for t in (pose, betas, trans))
    with torch.no_grad():
        if kind == "smpl":
            verts, joints = body_model(pose, betas, trans, gender=gender)
        else:
            from manopth.manolayer import _JOINT_REORDER

            verts, joints21 = body_model(pose, betas, trans)
            kinematic = [_JOINT_REORDER.index(k) for k in range(16)]
            joints = joints21[:, kinematic]
    error = (verts.to(torch.float64) - target).norm(dim=-1).to(out_dtype)
    return FitResult(pose=pose, shape=betas, trans=trans, vertices=verts, joints=joints, error=error, kind=kind,
                     gender=gender, iterations=iterations)


def fit_smpl(vertices: ArrayLike, smpl, gender: str = "neutral", init: Optional[FitResult] = None,
             iterations: int = 30, final_steps: int = 1, shape_prior: float = 1e-4) -> FitResult:
    """SMPL pose, shape and translation whose mesh is nearest to ``vertices``.

    Args:
        vertices: (B, 6890, 3) or (6890, 3) metres, SMPL vertex order; torch (any device) or numpy.
        smpl: a :class:`pose2mesh.body_models.SMPL`.
        gender: the SMPL layer to fit ('neutral', 'male', 'female').
        init: a previous fit (B or 1 fits) to start from instead of the closed-form start, e.g.
            the previous video frame's.
        iterations: at most this many Levenberg-Marquardt iterations on a fixed subset of 1,200
            vertices (MANO: all); they stop once every sample's step moves its vertices by less
            than 0.01 mm (0.3 mm when an all-vertex step follows) or stalls at the noise level.
            Meshes of the body model converge in a few; a rough predicted mesh can need 20 to 30
            (at 12, a tenth of a briefly trained model's predictions were left 60 mm off).
        final_steps: iterations on all vertices after those (SMPL).
        shape_prior: ridge on the shape coefficients, relative to the mean squared shape direction
            (1e-4: a unit of beta costs what 0.01 % of its own vertex displacement would). Beyond
            |beta| = 3 a soft wall takes over, so that a rough predicted mesh gives a body.
    Returns:
        :class:`FitResult`, tensors on the input's device (float32 for numpy input).
    Raises:
        FittingError: wrong vertex count or layout, non-finite vertices, an init of another kind.
    """
    if getattr(smpl, "name", None) != "smpl":
        raise FittingError(f"fit_smpl needs a pose2mesh.body_models.SMPL, got {type(smpl).__name__}")
    if gender not in ("neutral", "male", "female"):
        raise FittingError(f"SMPL fit: unknown gender {gender!r} (expected neutral, male or female)")
    return _fit(vertices, smpl, smpl.layer[gender], "smpl", gender, init, iterations, final_steps, shape_prior,
                "SMPL")


def fit_mano(vertices: ArrayLike, mano, init: Optional[FitResult] = None, iterations: int = 30,
             shape_prior: float = 1e-4) -> FitResult:
    """MANO pose, shape and translation whose mesh is nearest to ``vertices`` ((B, 778, 3) metres).

    The arguments and result are those of :func:`fit_smpl`; the pose is (B, 48): the root's
    axis-angle, then the 15 finger joints' relative to the hand mean pose (what ``MANO`` takes).
    """
    if getattr(mano, "name", None) != "mano":
        raise FittingError(f"fit_mano needs a pose2mesh.body_models.MANO, got {type(mano).__name__}")
    return _fit(vertices, mano, mano.layer, "mano", "neutral", init, iterations, 0, shape_prior, "MANO")


def fit_body(vertices: ArrayLike, body_model, **kwargs) -> FitResult:
    """:func:`fit_smpl` or :func:`fit_mano`, chosen by ``body_model.name`` ('smpl' or 'mano')."""
    name = getattr(body_model, "name", None)
    if name == "smpl":
        return fit_smpl(vertices, body_model, **kwargs)
    if name == "mano":
        return fit_mano(vertices, body_model, **kwargs)
    raise FittingError(f"cannot fit a {type(body_model).__name__}: expected pose2mesh.body_models.SMPL or MANO")
