"""Everything a run is built from, from one validated config: body model, graphs, datasets,
model, optimizer, scheduler. Each builder is a plain function of explicit arguments."""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence

import numpy as np
import torch

from ..config import Config
from ..joints import JointSet, get_joint_set

__all__ = ["seed_everything", "epoch_seed", "build_mesh_model", "GraphSet", "build_graphs",
           "build_model", "build_optimizer", "load_optimizer_state", "build_scheduler", "build_datasets"]

log = logging.getLogger(__name__)


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The seed of one epoch on one rank: a run resumed at an epoch boundary replays it exactly."""
    return (int(seed) * 1_000_003 + int(epoch) * 9_973 + int(rank) * 101) % (2 ** 31 - 1)


def seed_everything(seed: int) -> None:
    """The one place that seeds every RNG (python, numpy, torch)."""
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def build_mesh_model(cfg: Config) -> Any:
    """The SMPL body, or the MANO hand for the ``mano`` joint set; official or synthetic files.

    Every run builds its body model first: the config's folders (``DATASET.data_dir``,
    ``smpl_dir``, ``mano_dir``, ``cache_dir``) are put in force here, for the body model, the
    graph cache and the datasets alike.
    """
    from .. import paths
    from ..body_models import MANO, SMPL

    d = cfg.DATASET
    paths.configure(data_dir=d.data_dir, smpl_dir=d.smpl_dir, mano_dir=d.mano_dir, cache_dir=d.cache_dir)

    synthetic = cfg.DATASET.body_model == "synthetic"
    if cfg.DATASET.input_joint_set == "mano":
        return MANO(synthetic=synthetic)
    return SMPL(synthetic=synthetic)


@dataclass
class GraphSet:
    """The coarsened mesh graphs of one run (built once, cached on disk)."""

    adjacency: list
    laplacians: list
    perm: list
    perm_reverse: np.ndarray
    vertex_num: int


def build_graphs(mesh_model: Any, joint_set: JointSet) -> GraphSet:
    from ..graph_utils import build_coarse_graphs

    levels = 6 if mesh_model.name == "mano" else 9
    adj, lap, perm, perm_rev = build_coarse_graphs(
        mesh_model.face, joint_set.num_joints, joint_set.skeleton, joint_set.graph_pairs, levels=levels)
    return GraphSet(adj, lap, perm, np.asarray(perm_rev), int(mesh_model.vertex_num))


def build_model(cfg: Config, joint_set: JointSet, graphs: Optional[GraphSet]) -> torch.nn.Module:
    if cfg.MODEL.name == "posenet":
        from ..models import posenet

        return posenet.get_model(joint_set.num_joints, hid_dim=cfg.MODEL.posenet_hid_dim, num_layer=2,
                                 p_dropout=cfg.MODEL.posenet_dropout)
    from ..models import pose2mesh_net

    if graphs is None:
        raise ValueError("build_model: Pose2Mesh needs the coarsened graphs")
    return pose2mesh_net.get_model(joint_set.num_joints, graphs.laplacians, hid_dim=cfg.MODEL.posenet_hid_dim,
                                   channel_divisor=cfg.MODEL.meshnet_channel_divisor,
                                   p_dropout=cfg.MODEL.posenet_dropout,
                                   graph_perm_reverse=graphs.perm_reverse, num_vertices=graphs.vertex_num)


def build_optimizer(cfg: Config, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    t = cfg.TRAIN
    if t.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=t.lr)
    if t.optimizer == "adam":
        return torch.optim.Adam(params, lr=t.lr)
    # the original read TRAIN.momentum / weight_decay / nesterov that its config never defined
    return torch.optim.SGD(params, lr=t.lr, momentum=0.9)


# a hyper-parameter only each optimizer's param_groups have
_OPTIMIZER_MARK = {"rmsprop": "alpha", "adam": "betas", "sgd": "nesterov"}


def load_optimizer_state(cfg: Config, optimizer: torch.optim.Optimizer, state: Dict[str, Any], source: object) -> None:
    """Load a checkpoint's optimizer state into the optimizer of ``TRAIN.optimizer``.

    Raises:
        ValueError: the state is another optimizer's (torch would load it, then fail with a
            ``KeyError`` at the first step).
    """
    groups = state.get("param_groups") or [{}]
    if _OPTIMIZER_MARK[cfg.TRAIN.optimizer] not in groups[0]:
        found = next((name for name, key in _OPTIMIZER_MARK.items() if key in groups[0]), "another optimizer")
        raise ValueError(f"{source} was trained with {found}, but TRAIN.optimizer is '{cfg.TRAIN.optimizer}': "
                         "resume with the optimizer it was trained with, or start a new run")
    optimizer.load_state_dict(state)


def build_scheduler(cfg: Config, optimizer: torch.optim.Optimizer) -> Any:
    t = cfg.TRAIN
    if t.scheduler == "step":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(t.lr_step), gamma=t.lr_factor)
    # 'platue' (the original's spelling) and 'plateau': stepped with the test error
    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=t.lr_factor,
                                                      patience=10, min_lr=1e-5)


def build_datasets(cfg: Config, names: Sequence[str], split: str, mesh_model: Any) -> List[Any]:
    from ..datasets import build_dataset

    datasets = []
    for name in names:
        ds = build_dataset(name, split, cfg, mesh_model=mesh_model)
        log.info("# of %s %s samples: %d", split, name, len(ds))
        datasets.append(ds)
    return datasets


def main_joint_set(cfg: Config) -> JointSet:
    return get_joint_set(cfg.DATASET.input_joint_set)
