"""Data pipeline throughput, per DataLoader worker (one process, one torch thread).

    python bench/bench_data.py [--batch 64] [--seconds 3] [--json out.json]

Rows:
- the synthetic dataset in both modes (``posenet``, ``pose2mesh_net``) for each input joint
  set, training split with synthesized errors, fetched as a DataLoader worker does with
  automatic batching (``__getitems__``: one batched SMPL evaluation per batch of random
  indices), and sequentially through ``__getitem__`` (the chunk cache, as in testing);
- ``synthesize_pose`` (vectorized) against a per-keypoint loop implementation of the
  original algorithm (``synthesize_pose_loop.py``), calls per second on the same input.

Samples/s are medians over repeated timed runs of about ``--seconds`` each. Share the machine
with nothing else for stable figures.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np
import torch

from bench_common import machine, table
from pose2mesh.body_models import SMPL
from pose2mesh.config import Config
from pose2mesh.datasets.synthetic import SyntheticDataset
from pose2mesh.noise_utils import synthesize_pose
from synthesize_pose_loop import synthesize_pose_loop


def _rate(run_once, items_per_run: int, seconds: float, repeats: int = 3) -> float:
    """Median items per second over ``repeats`` runs of about ``seconds`` each."""
    run_once()  # warm-up
    rates = []
    for _ in range(repeats):
        count, start = 0, time.perf_counter()
        while True:
            run_once()
            count += items_per_run
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
        rates.append(count / elapsed)
    return statistics.median(rates)


def bench_synthetic(smpl, mode: str, input_set: str, batch: int, seconds: float):
    cfg = Config()
    cfg.MODEL.name = mode
    cfg.DATASET.input_joint_set = input_set
    cfg.DATASET.use_gt_input = False
    cfg.DATASET.body_model = "synthetic"
    cfg.DATASET.synthetic_train_size = 100000
    ds = SyntheticDataset("train", cfg, smpl)
    rng = np.random.default_rng(0)
    batched = _rate(lambda: ds.__getitems__(rng.integers(0, len(ds), batch).tolist()), batch, seconds)
    position = [0]

    def sequential():
        for _ in range(batch):
            ds[position[0] % len(ds)]
            position[0] += 1

    return batched, _rate(sequential, batch, seconds)


def bench_synthesize_pose(seconds: float):
    rng = np.random.default_rng(0)
    joints = np.concatenate([rng.uniform(0, 288, size=(17, 1)), rng.uniform(0, 384, size=(17, 1)),
                             np.ones((17, 1))], axis=1)
    area = 288.0 * 384.0
    vectorized = _rate(lambda: synthesize_pose(joints, area, rng=rng), 1, seconds)
    loop = _rate(lambda: synthesize_pose_loop(joints, area, rng), 1, seconds)
    return vectorized, loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=64, help="indices per DataLoader batch")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one timed run")
    parser.add_argument("--json", default="", help="also write the figures to this file")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as in a DataLoader worker

    smpl = SMPL(synthetic=True)
    rows = []
    print(f"# bench_data: {machine()}")
    print(f"# command: python bench/bench_data.py {' '.join(sys.argv[1:])}")
    table_rows = []
    for mode in ("posenet", "pose2mesh_net"):
        for input_set in ("human36", "coco", "smpl"):
            batched, sequential = bench_synthetic(smpl, mode, input_set, args.batch, args.seconds)
            rows.append({"what": f"Synthetic {mode} {input_set}", "batched_per_s": batched,
                         "sequential_per_s": sequential})
            table_rows.append([f"synthetic train, {mode}, {input_set} input", f"{batched:,.0f}",
                               f"{sequential:,.0f}", f"{batched / sequential:.1f}x"])
    print(table(["synthetic dataset (synthesized errors)", "batched samples/s", "one by one samples/s",
                 "batched vs one by one"], table_rows))

    vectorized, loop = bench_synthesize_pose(args.seconds)
    rows.append({"what": "synthesize_pose", "vectorized_calls_per_s": vectorized, "loop_calls_per_s": loop,
                 "speedup": vectorized / loop})
    print()
    print(table(["synthesize_pose (17 COCO keypoints)", "calls/s", "vs the original's loop"],
                [["vectorized (pose2mesh.noise_utils)", f"{vectorized:,.0f}", f"{vectorized / loop:.1f}x"],
                 ["per-keypoint loop (original algorithm)", f"{loop:,.0f}", "1.0x"]]))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
