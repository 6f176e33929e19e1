"""Training and evaluation, callable from Python.

``train(cfg, device=..., seed=..., output_dir=..., resume=...)`` runs :class:`Trainer`;
``evaluate(cfg, weights, ...)`` tests a checkpoint. The command lines (``main/train.py``,
``main/test.py``) parse their arguments into these calls (:mod:`pose2mesh.cli`).
"""
from .evaluator import EvalResult, evaluate
from .trainer import Trainer, TrainingError, TrainResult, train

__all__ = ["train", "evaluate", "Trainer", "TrainResult", "EvalResult", "TrainingError"]
