"""What training and evaluation share, built once from a config and a device: the body model,
the graphs, the model with its criterion, the distributed set-up, the loaders' worker count."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from ..config import Config
from ..device import DeviceSpec, select_device
from ..joints import JointSet, get_joint_set
from . import builders
from . import distributed as dist_utils
from .loop import IndexedDataset, LiftCriterion, MeshCriterion

__all__ = ["RunContext", "build_context", "write_vis"]

log = logging.getLogger("pose2mesh")


@dataclass
class RunContext:
    """Everything a run builds before it touches data.

    Attributes:
        cfg: the validated configuration.
        device: the primary device; ``gpu_ids`` the CUDA indices for DataParallel.
        dist: this process's place under ``torchrun`` (a single process otherwise).
        joint_set: the input joint set; ``target_set`` the joint set the mesh is evaluated on.
        mesh_model: the SMPL or MANO wrapper (official or synthetic files).
        graphs: the coarsened mesh graphs (None for PoseNet).
        model: the bare model (not wrapped), on ``device``.
        criterion: the named loss terms; also turns outputs into body-model vertices and joints.
        joint_regressor: ``(J', V)`` regressor of the target joint set (None for PoseNet).
        workers: data-loader workers (``DATASET.workers`` capped at the core count).
    """

    cfg: Config
    device: torch.device
    gpu_ids: List[int]
    dist: dist_utils.DistInfo
    joint_set: JointSet
    target_set: JointSet
    mesh_model: Any
    graphs: Optional[builders.GraphSet]
    model: torch.nn.Module
    criterion: torch.nn.Module
    joint_regressor: Optional[np.ndarray]
    workers: int

    @property
    def is_mesh(self) -> bool:
        return self.cfg.MODEL.name == "pose2mesh_net"

    @property
    def is_main(self) -> bool:
        return self.dist.is_main

    @property
    def error_set(self) -> JointSet:
        """The joint set of the per-epoch errors: the target set for meshes (joints regressed
        from the mesh), else the input set (the lifted joints)."""
        return self.target_set if self.is_mesh else self.joint_set

    @property
    def error_root(self) -> int:
        return self.error_set.root

    @property
    def eval_joints(self) -> Tuple[int, ...]:
        """The joints the per-epoch error averages over: the dataset protocol's evaluation joints."""
        return self.error_set.eval_joints

    @property
    def error_joints(self) -> str:
        """Which joints the per-epoch MPJPE averages, in words (e.g. '14 human36 joints')."""
        return f"{len(self.eval_joints) or self.error_set.num_joints} {self.error_set.name} joints"

    def wrap_model(self) -> torch.nn.Module:
        """The model as training and inference run it: DDP under ``torchrun``, DataParallel on
        several GPUs, else the bare model."""
        if self.dist.enabled:
            from .sync_bn import convert_batchnorm

            model = convert_batchnorm(self.model, use_cuda=self.device.type == "cuda")
            ids = [self.device.index] if self.device.type == "cuda" else None
            return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        if len(self.gpu_ids) > 1:
            return torch.nn.DataParallel(self.model, device_ids=self.gpu_ids)
        return self.model

    def test_loader(self, dataset: Any, batch_size: int) -> DataLoader:
        """Ordered test batches of ``(index, sample)``; under DDP each rank takes every W-th sample."""
        indexed: Dataset = IndexedDataset(dataset)
        if self.dist.enabled:  # shard without padding: rank r takes r, r+W, ...
            indexed = Subset(indexed, list(range(self.dist.rank, len(dataset), self.dist.world_size)))
        return DataLoader(indexed, batch_size=batch_size, shuffle=False, num_workers=self.workers,
                          pin_memory=self.device.type == "cuda")

    def evaluate(self, dataset: Any, results: Dict[str, np.ndarray], result_dir: Path) -> Dict[str, Any]:
        """The dataset's own evaluation (printed and written as the original's evaluate())."""
        if self.is_mesh:
            return dataset.evaluate(results, result_dir=result_dir)
        return dataset.evaluate_joint(results, result_dir=result_dir)


def build_context(cfg: Config, device: DeviceSpec = None) -> RunContext:
    """Device, distributed group, body model, graphs, model and criterion for ``cfg``."""
    dev, gpu_ids = select_device(device)
    dist = dist_utils.init_distributed(dev.type == "cuda")
    if dist.enabled and dev.type == "cuda":
        dev, gpu_ids = torch.device("cuda", dist.local_rank), [dist.local_rank]
    joint_set = get_joint_set(cfg.DATASET.input_joint_set)
    target_set = get_joint_set(cfg.DATASET.target_joint_set)
    mesh_model = builders.build_mesh_model(cfg)
    log.info("body model: %s", getattr(mesh_model, "description", mesh_model.source))
    is_mesh = cfg.MODEL.name == "pose2mesh_net"
    graphs = builders.build_graphs(mesh_model, joint_set) if is_mesh else None
    regressor = mesh_model.joint_regressor(target_set.name) if is_mesh else None
    model = builders.build_model(cfg, joint_set, graphs).to(dev)
    criterion: torch.nn.Module
    if regressor is not None:
        criterion = MeshCriterion(cfg, mesh_model.face, regressor).to(dev)
    else:
        criterion = LiftCriterion().to(dev)
    workers = max(0, min(cfg.DATASET.workers, os.cpu_count() or 1))
    return RunContext(cfg, dev, gpu_ids, dist, joint_set, target_set, mesh_model, graphs, model, criterion,
                      regressor, workers)


def write_vis(results: Dict[str, np.ndarray], faces: np.ndarray, folder: Path, count: int = 10) -> List[Path]:
    """``TEST.vis``: OBJ files of about ``count`` predicted meshes and their targets, spread over
    the test set (``<n>_pred.obj``, ``<n>_gt.obj``)."""
    from ..vis import save_obj

    written: List[Path] = []
    if "mesh_coord" not in results:
        return written
    n_all = len(results["index"])
    for n in range(0, n_all, max(1, n_all // count)):
        written.append(save_obj(results["mesh_coord"][n] / 1000, faces, folder / f"{n}_pred.obj"))
        written.append(save_obj(results["mesh_coord_target"][n] / 1000, faces, folder / f"{n}_gt.obj"))
    return written
