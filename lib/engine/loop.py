"""The training and testing loops for both stages (PoseNet lifting, Pose2Mesh).

A small plain-PyTorch loop: the model's outputs go through a dict of named loss terms, which
the loop sums; a non-finite term stops the run at once with the step and the term's name.
Semantics follow the original release (lib/core/base.py): vertex L1, surface normal (x0.1),
edge length (x20, after ``TRAIN.edge_loss_start``), joint L1 on the joints regressed from the
predicted mesh (x1e-3) and on the lifted joints (x1e-3); test after every epoch; "best" by the
test joint error.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..config import Config
from ..coord_utils import regress_joints
from ..device import move_to
from ..errors import Pose2MeshError
from . import distributed as dist_utils

__all__ = ["NonFiniteLossError", "MeshCriterion", "LiftCriterion", "IndexedDataset", "train_one_epoch",
           "run_inference", "StageOutputs"]

log = logging.getLogger(__name__)


class NonFiniteLossError(Pose2MeshError, RuntimeError):
    """A loss term became NaN or infinite (exit code 3)."""

    exit_code = 3


def _unwrap(model: torch.nn.Module) -> Any:
    """The bare model inside DataParallel / DistributedDataParallel."""
    inner = getattr(model, "module", None)
    return inner if isinstance(inner, torch.nn.Module) else model


@dataclass
class StageOutputs:
    """What one batch produced, in the units of the targets (mesh in metres, joints in mm)."""

    mesh: Optional[torch.Tensor]  # B x V x 3 (un-permuted)
    lifted: torch.Tensor  # B x J x 3
    regressed: Optional[torch.Tensor]  # B x J' x 3 (from mesh * 1000)


class MeshCriterion(torch.nn.Module):
    """The Pose2Mesh loss terms, by name. Faces and the joint regressor are given once."""

    def __init__(self, cfg: Config, faces: np.ndarray, joint_regressor: np.ndarray):
        super().__init__()
        from ..losses import CoordLoss, EdgeLengthLoss, NormalVectorLoss

        self.coord = CoordLoss()
        self.normal = NormalVectorLoss(faces)
        self.edge = EdgeLengthLoss(faces)
        self.register_buffer("joint_regressor", torch.as_tensor(joint_regressor, dtype=torch.float32), persistent=False)
        self.w_normal = cfg.MODEL.normal_loss_weight
        self.w_edge = cfg.MODEL.edge_loss_weight
        self.w_joint = cfg.MODEL.joint_loss_weight
        self.edge_loss_start = cfg.TRAIN.edge_loss_start

    def predict(self, model: torch.nn.Module, pose2d: torch.Tensor) -> StageOutputs:
        mesh_padded, lifted = model(pose2d)  # B x V_padded x 3, B x J x 3
        mesh = _unwrap(model).to_body_vertices(mesh_padded)  # B x V x 3
        regressed = regress_joints(self.joint_regressor, mesh * 1000)  # B x J' x 3
        return StageOutputs(mesh, lifted, regressed)

    def forward(self, out: StageOutputs, targets: Dict[str, torch.Tensor], meta: Dict[str, torch.Tensor],
                epoch: int) -> Dict[str, torch.Tensor]:
        gt_mesh = targets["mesh"]
        losses = {
            "vertex": self.coord(out.mesh, gt_mesh, meta["mesh_valid"]),
            "normal": self.w_normal * self.normal(out.mesh, gt_mesh),
            "joint": self.w_joint * self.coord(out.regressed, targets["reg_pose3d"], meta["reg_pose3d_valid"]),
            "lift": self.w_joint * self.coord(out.lifted, targets["lift_pose3d"], meta["lift_pose3d_valid"]),
        }
        if epoch > self.edge_loss_start:  # as the original: from the epoch after edge_loss_start
            losses["edge"] = self.w_edge * self.edge(out.mesh, gt_mesh)
        return losses


class LiftCriterion(torch.nn.Module):
    """PoseNet: masked L1 between lifted and ground-truth root-relative 3D joints (mm)."""

    def __init__(self) -> None:
        super().__init__()
        from ..losses import CoordLoss

        self.coord = CoordLoss()

    def predict(self, model: torch.nn.Module, pose2d: torch.Tensor) -> StageOutputs:
        return StageOutputs(None, model(pose2d), None)

    def forward(self, out: StageOutputs, targets: Dict[str, torch.Tensor], meta: Dict[str, torch.Tensor],
                epoch: int) -> Dict[str, torch.Tensor]:
        return {"lift": self.coord(out.lifted, targets["lift_pose3d"], meta["lift_pose3d_valid"])}


class IndexedDataset(Dataset):
    """Yields ``(index, sample)`` so that results gathered from several ranks can be ordered."""

    def __init__(self, dataset: Any):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, idx: int) -> Tuple[int, Any]:
        return idx, self.dataset[idx]

    def __getitems__(self, indices: Sequence[int]) -> List[Tuple[int, Any]]:
        """Batched access, kept when the dataset has it (one vectorized body-model call)."""
        getitems = getattr(self.dataset, "__getitems__", None)
        samples = getitems(list(indices)) if getitems is not None else [self.dataset[i] for i in indices]
        return list(zip(indices, samples))


def train_one_epoch(model: torch.nn.Module, criterion: Any, optimizer: torch.optim.Optimizer, loader: DataLoader,
                    device: torch.device, epoch: int, global_step: int, print_freq: int, max_iters: int = 0,
                    writer: Any = None, show_progress: bool = True) -> Tuple[Dict[str, float], int]:
    """One epoch. Returns the mean of each loss term (and 'total') and the new global step."""
    model.train()
    sums: Dict[str, float] = {}
    count = 0
    total_iters = len(loader) if not max_iters else min(max_iters, len(loader))
    bar = tqdm(loader, total=total_iters, disable=not show_progress, dynamic_ncols=True, leave=False)
    for i, (inputs, targets, meta) in enumerate(bar):
        if max_iters and i >= max_iters:
            break
        inputs, targets, meta = move_to((inputs, targets, meta), device)
        out = criterion.predict(model, inputs["pose2d"].float())
        losses = criterion(out, targets, meta, epoch)
        total = sum(losses.values())
        for name, value in losses.items():
            if not torch.isfinite(value):
                raise NonFiniteLossError(
                    f"the {name} loss is {value.item()} at epoch {epoch}, iteration {i} (global step "
                    f"{global_step}); stopping. The last complete checkpoint is kept.")
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()

        values = {k: float(v.detach()) for k, v in losses.items()}
        values["total"] = float(total.detach())
        for k, v in values.items():
            sums[k] = sums.get(k, 0.0) + v
        count += 1
        global_step += 1
        if i % print_freq == 0:
            bar.set_description(f"Epoch{epoch} " + " ".join(f"{k}: {v:.4f}" for k, v in values.items()))
            if writer is not None:
                for k, v in values.items():
                    writer.add_scalar(f"train/loss_{k}", v, global_step)
    bar.close()
    means = {k: v / max(count, 1) for k, v in sums.items()}
    # every rank reports the same figures
    if dist_utils.info().enabled and means:
        keys = sorted(means)
        reduced = dist_utils.all_reduce_mean(torch.tensor([means[k] for k in keys], dtype=torch.float64))
        means = {k: float(v) for k, v in zip(keys, reduced)}
    return means, global_step


@torch.no_grad()
def run_inference(model: torch.nn.Module, criterion: Any, loader: DataLoader, device: torch.device, keep_mesh: bool,
                  max_samples: int = 0, show_progress: bool = True, desc: str = "test") -> Dict[str, np.ndarray]:
    """Predict every sample of ``loader`` (an IndexedDataset loader).

    Returns arrays ordered by dataset index, gathered over ranks: 'index', 'joint_coord' and
    'joint_coord_target' (lifted joints, mm), and with ``keep_mesh`` 'mesh_coord' and
    'mesh_coord_target' (mm, mesh vertex order).
    """
    model.eval()
    parts: Dict[str, List[np.ndarray]] = {}
    seen = 0
    for idx, (inputs, targets, _meta) in tqdm(loader, disable=not show_progress, dynamic_ncols=True, leave=False,
                                              desc=desc):
        inputs, targets = move_to((inputs, targets), device)
        out = criterion.predict(model, inputs["pose2d"].float())
        batch = {"index": idx.numpy(),
                 "joint_coord": out.lifted.float().cpu().numpy(),
                 "joint_coord_target": targets["lift_pose3d"].float().cpu().numpy()}
        if keep_mesh and out.mesh is not None:
            batch["mesh_coord"] = (out.mesh.float() * 1000).cpu().numpy()
            batch["mesh_coord_target"] = (targets["mesh"].float() * 1000).cpu().numpy()
        for k, v in batch.items():
            parts.setdefault(k, []).append(v)
        seen += len(idx)
        if max_samples and seen >= max_samples:
            break
    local = {k: np.concatenate(v) for k, v in parts.items()}
    gathered = dist_utils.all_gather_objects(local)
    merged = {k: np.concatenate([g[k] for g in gathered if k in g]) for k in local}
    order = np.argsort(merged["index"], kind="stable")
    merged = {k: v[order] for k, v in merged.items()}
    if max_samples:
        merged = {k: v[:max_samples] for k, v in merged.items()}
    return merged


def running_errors(results: Dict[str, np.ndarray], joint_regressor: Optional[np.ndarray], root: int,
                   eval_joints: Sequence[int] = ()) -> Dict[str, float]:
    """Per-sample mean errors (mm) used after every epoch: MPJPE over the protocol's
    ``eval_joints`` (all when empty) of the joints that pick the best checkpoint (regressed from
    the mesh for Pose2Mesh, lifted for PoseNet), and MPVPE.

    The original printed a mean of batch means here; these are per-sample means, computed as
    the final evaluation computes them.
    """
    from ..datasets.common import per_sample_joint_errors, per_sample_mesh_errors

    for key in ("mesh_coord", "joint_coord"):
        if key in results and not np.isfinite(results[key]).all():
            raise NonFiniteLossError(f"non-finite test predictions ({key})")
    eval_idx = list(eval_joints) or None
    if "mesh_coord" in results and joint_regressor is not None:
        errors = per_sample_mesh_errors(results["mesh_coord"], results["mesh_coord_target"], joint_regressor, root,
                                        eval_idx)
        out = {"MPVPE": float(errors["mpvpe"].mean()), "MPJPE": float(errors["mpjpe"].mean())}
    else:
        errors = per_sample_joint_errors(results["joint_coord"], results["joint_coord_target"], root, eval_idx,
                                         align=False)
        out = {"MPJPE": float(errors["mpjpe"].mean())}
    if not all(math.isfinite(v) for v in out.values()):
        raise NonFiniteLossError(f"non-finite test error: {out}")
    return out
