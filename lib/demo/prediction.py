"""The demo's model stage: a :class:`pose2mesh.inference.Predictor` from the command line's flags."""
from __future__ import annotations

import argparse
import logging
import time

from ..inference import Predictor

__all__ = ["build_predictor"]

log = logging.getLogger("pose2mesh.demo")


def build_predictor(args: argparse.Namespace) -> Predictor:
    """Weights, config, joint set and body model from ``--checkpoint``, ``--cfg``, ``--joint_set``,
    ``--body_model`` and ``--gpu``; logs what was chosen (nothing falls back silently)."""
    from ..device import select_device

    device, _ = select_device(args.gpu)
    t0 = time.perf_counter()
    if args.joint_set is None and args.checkpoint is None:
        args.joint_set = "coco"  # the original demo's default
    predictor = Predictor.from_checkpoint(args.checkpoint, joint_set=args.joint_set, body_model=args.body_model,
                                          device=device, cfg=args.cfg)
    predictor.load_seconds = time.perf_counter() - t0
    args.joint_set = predictor.joint_set.name
    log.info("body model: %s", predictor.describe_body())
    epoch = predictor.epoch
    log.info("weights: %s%s", predictor.weights, f" (epoch {epoch})" if epoch is not None else "")
    return predictor
