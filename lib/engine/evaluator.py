"""Evaluation from Python: ``pose2mesh.engine.evaluate(cfg, weights, ...)``.

Loads the weights, predicts the config's test split (sharded under ``torchrun``), and runs the
dataset's own evaluation, which prints and writes every figure the original's evaluate()
printed. Optional extras on the same samples: the mean-mesh and nearest-neighbour baselines,
and the body model fitted to every predicted mesh (``TEST.fit``).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np

from ..checkpoint import load_checkpoint, load_model_weights, resolve_weights
from ..config import Config
from ..device import DeviceSpec
from . import builders
from .context import RunContext, build_context, write_vis
from .experiment import attach_run_log, create_run_dir, record_run
from .loop import run_inference

__all__ = ["EvalResult", "evaluate", "evaluate_fitted"]

log = logging.getLogger("pose2mesh")


@dataclass
class EvalResult:
    """The figures of one evaluation.

    Attributes:
        metrics: the dataset's evaluation (MPJPE, PA-MPJPE, MPVPE, ... in mm).
        result_dir: where the JSON results were written (None on ranks other than 0).
        weights: the checkpoint file that was evaluated.
        baselines: with ``baselines=True``, a row per method (this model, mean mesh, kNN).
        fitted: with ``fit``, the same figures for the fitted body-model meshes.
    """

    metrics: Dict[str, Any]
    result_dir: Optional[Path]
    weights: Path
    baselines: Dict[str, Dict[str, float]] = field(default_factory=dict)
    fitted: Dict[str, Any] = field(default_factory=dict)


def evaluate(cfg: Config, weights: Optional[Union[str, Path]] = None, *, device: DeviceSpec = None, seed: int = 123,
             output_dir: Optional[Union[str, Path]] = None, baselines: bool = False,
             fit: Optional[bool] = None) -> EvalResult:
    """Evaluate a checkpoint on ``cfg``'s first test dataset.

    Args:
        cfg: a validated config.
        weights: a checkpoint file, its folder or a run folder (default ``TEST.weight_path``);
            Pose2Mesh takes ``final.pth.tar`` first, PoseNet ``best.pth.tar``, as the original.
        device: see :func:`pose2mesh.device.select_device`.
        seed: seeds every RNG.
        output_dir: where the ``exp_*`` result folder is made (default experiment/).
        baselines: also evaluate the mean training mesh and the 2D nearest neighbours (k=20).
        fit: also fit the body model to every prediction and evaluate the fitted meshes
            (default ``TEST.fit``).

    Example::

        from pose2mesh.config import load_config
        from pose2mesh.engine import evaluate
        cfg = load_config("asset/yaml/pose2mesh_human36J_quick_synthetic.yml", ["TEST.max_samples", "64"])
        print(evaluate(cfg, "experiment/quickstart", device="cpu").metrics)
    """
    builders.seed_everything(seed)
    ctx = build_context(cfg, device)
    file = resolve_weights(weights or cfg.TEST.weight_path, prefer="final" if ctx.is_mesh else "best")
    state = load_checkpoint(file)
    load_model_weights(ctx.model, state, strict=True)
    log.info("weights: %s (epoch %s)", file, state.get("epoch", "?"))
    test_set = builders.build_datasets(cfg, cfg.DATASET.test_list[:1], "test", ctx.mesh_model)[0]
    run = None
    if ctx.is_main:
        run = create_run_dir(Path(output_dir) if output_dir is not None else None)
        record_run(run, cfg)
        attach_run_log(run)
        log.info("results folder: %s", run.result)
    results = run_inference(ctx.wrap_model(), ctx.criterion, ctx.test_loader(test_set, cfg.TEST.batch_size),
                            ctx.device, keep_mesh=ctx.is_mesh, max_samples=cfg.TEST.max_samples,
                            show_progress=ctx.is_main)
    if run is None:
        return EvalResult({}, None, file)
    out = EvalResult(ctx.evaluate(test_set, results, run.result), run.result, file)
    if cfg.TEST.vis and ctx.is_mesh:
        write_vis(results, ctx.mesh_model.face, run.vis)
    if baselines and ctx.is_mesh:
        from .baselines import evaluate_baselines

        out.baselines = evaluate_baselines(cfg, ctx.mesh_model, test_set, results, out.metrics, run.result)
    if (cfg.TEST.fit if fit is None else fit) and ctx.is_mesh:
        out.fitted = evaluate_fitted(ctx, test_set, results, out.metrics, run.result)
    return out


def evaluate_fitted(ctx: RunContext, test_set: Any, results: Dict[str, np.ndarray], raw_metrics: Dict[str, Any],
                    result_dir: Optional[Path], batch_size: int = 64) -> Dict[str, Any]:
    """Fit the body model to every predicted mesh and evaluate the fitted meshes with the
    dataset's own evaluation, on the same samples; prints both side by side."""
    import torch
    from tqdm import tqdm

    from ..fitting import fit_body
    from .baselines import format_table

    meshes = results["mesh_coord"]
    fitted = np.empty_like(meshes)
    fit_error = np.empty(len(meshes))
    for start in tqdm(range(0, len(meshes), batch_size), desc="fitting", leave=False, dynamic_ncols=True):
        chunk = torch.as_tensor(meshes[start:start + batch_size] / 1000.0, dtype=torch.float32, device=ctx.device)
        fit = fit_body(chunk, ctx.mesh_model)
        fitted[start:start + len(chunk)] = (fit.vertices.detach().float().cpu().numpy() * 1000.0)
        fit_error[start:start + len(chunk)] = fit.error.detach().double().mean(dim=1).cpu().numpy() * 1000.0
    res = dict(results)
    res["mesh_coord"] = fitted
    log.info("==> the body model fitted to every prediction")
    metrics = test_set.evaluate(res, result_dir=None)
    numeric = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
    rows = {"raw prediction": {k: float(v) for k, v in raw_metrics.items() if isinstance(v, (int, float))},
            "fitted body model": numeric}
    log.info("\nRaw and fitted meshes on the same %d samples (mm); mean fit residual %.2f mm:\n%s",
             len(meshes), float(fit_error.mean()), format_table(rows))
    summary = {"rows": rows, "mean_fit_residual_mm": float(fit_error.mean())}
    if result_dir is not None:
        with open(Path(result_dir) / "fitted.json", "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2)
    return summary
