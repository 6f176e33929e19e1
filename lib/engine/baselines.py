"""Two reference points for a model's test figures, on the same test split:

- the mean training mesh (predict the average root-relative training mesh for every input);
- the nearest neighbours of the 2D input (average the meshes of the k=20 training samples whose
  normalized 2D inputs are closest).

A model that does not beat these has not learned much; the quick synthetic run prints them.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from ..config import Config

__all__ = ["collect", "mean_mesh_prediction", "knn_mesh_prediction", "evaluate_baselines", "format_table"]

log = logging.getLogger(__name__)


def collect(dataset: Any, max_samples: int, batch_size: int = 256) -> Dict[str, np.ndarray]:
    """Normalized 2D inputs (N x J x 2) and root-relative target meshes (N x V x 3, m) of the first
    ``max_samples`` samples, evenly spread over the dataset."""
    n = len(dataset)
    idx = np.unique(np.linspace(0, n - 1, num=min(n, max_samples)).astype(np.int64))
    loader = DataLoader(Subset(dataset, idx.tolist()), batch_size=batch_size, shuffle=False)
    pose2d, mesh = [], []
    for inputs, targets, _ in loader:
        pose2d.append(inputs["pose2d"].float().numpy())
        mesh.append(targets["mesh"].float().numpy())
    return {"pose2d": np.concatenate(pose2d), "mesh": np.concatenate(mesh)}


def mean_mesh_prediction(train_mesh: np.ndarray, num_test: int) -> np.ndarray:
    """(num_test, V, 3): the mean training mesh for every test sample."""
    return np.broadcast_to(train_mesh.mean(axis=0, keepdims=True), (num_test,) + train_mesh.shape[1:]).copy()


def knn_mesh_prediction(train_pose2d: np.ndarray, train_mesh: np.ndarray, test_pose2d: np.ndarray,
                        k: int = 20, chunk: int = 1024) -> np.ndarray:
    """(N_test, V, 3): the mean mesh of the k nearest training 2D inputs (Euclidean, flattened)."""
    train = torch.from_numpy(train_pose2d.reshape(len(train_pose2d), -1)).double()
    meshes = torch.from_numpy(train_mesh.reshape(len(train_mesh), -1))
    k = min(k, len(train))
    out = []
    for start in range(0, len(test_pose2d), chunk):
        q = torch.from_numpy(test_pose2d[start:start + chunk].reshape(-1, train.shape[1])).double()
        nn_idx = torch.cdist(q, train).topk(k, largest=False).indices  # chunk x k
        out.append(meshes[nn_idx].mean(dim=1).numpy())
    return np.concatenate(out).reshape((len(test_pose2d),) + train_mesh.shape[1:])


def format_table(rows: Dict[str, Dict[str, float]]) -> str:
    """A plain-text table: one row per method, one column per metric present in every row."""
    keys = [k for k in next(iter(rows.values())) if all(k in r for r in rows.values())
            and isinstance(next(iter(rows.values()))[k], (int, float))]
    width = max(len(name) for name in rows) + 2
    head = "method".ljust(width) + "".join(k.rjust(max(12, len(k) + 2)) for k in keys)
    lines = [head, "-" * len(head)]
    for name, r in rows.items():
        lines.append(name.ljust(width) + "".join(f"{r[k]:.2f}".rjust(max(12, len(k) + 2)) for k in keys))
    return "\n".join(lines)


def evaluate_baselines(cfg: Config, mesh_model: Any, test_set: Any, results: Dict[str, np.ndarray], model_metrics: Dict,
                       result_dir: Optional[Path], max_train: int = 4000, k: int = 20) -> Dict[str, Dict[str, float]]:
    """Evaluate both baselines with the test set's own evaluate() and print a comparison table."""
    from ..datasets import build_dataset

    train_set = build_dataset(cfg.DATASET.train_list[0], "train", cfg, mesh_model=mesh_model)
    train = collect(train_set, max_train)
    test = collect(Subset(test_set, results["index"].tolist()), len(results["index"]))
    preds = {"mean training mesh": mean_mesh_prediction(train["mesh"], len(test["mesh"])),
             f"2D nearest neighbours (k={k})": knn_mesh_prediction(train["pose2d"], train["mesh"], test["pose2d"], k)}
    rows = {"Pose2Mesh (this model)": {k_: float(v) for k_, v in model_metrics.items()
                                        if isinstance(v, (int, float))}}
    for name, mesh in preds.items():
        log.info("==> baseline: %s", name)
        res = dict(results)
        res["mesh_coord"] = (mesh * 1000).astype(np.float32)
        metrics = test_set.evaluate(res, result_dir=None)
        rows[name] = {k_: float(v) for k_, v in metrics.items() if isinstance(v, (int, float))}
    table = format_table(rows)
    log.info("\nComparison on the same %d test samples (mm):\n%s", len(results["index"]), table)
    if result_dir is not None:
        with open(Path(result_dir) / "baselines.json", "w", encoding="utf-8") as f:
            json.dump({"train_samples_used": int(len(train["mesh"])), "k": k, "rows": rows}, f, indent=2)
    return rows
