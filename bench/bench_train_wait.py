"""How much of a training step waits on data: a short training run on the synthetic dataset.

    python bench/bench_train_wait.py [--steps 12] [--workers 0,1] [--batch 16] [--threads 0] [--smoke]

The run is the trainer's step (``pose2mesh.engine``: MeshCriterion's named losses, the YAML's
optimizer, ``zero_grad`` / ``backward`` / ``step``) with a reduced model (MeshNet channels / 4,
PoseNet 1024 wide), batch 16, the synthetic body, human36 input joints, on the data that
``pose2mesh.datasets.build_dataset('Synthetic', 'train', cfg, mesh_model)`` serves through a
DataLoader with ``num_workers`` 0 and 1. For each it reports the time blocked in
``next(loader)`` and the whole step time (median and total over the steps after the first, which
starts the workers), and the fraction of the step spent waiting. With one worker the loading
overlaps the step, but on a 2-core machine the worker competes with the compute threads.
Samples/s of the data pipeline alone: ``bench/bench_data.py``. ``--smoke``: 2 steps, tiny model.
"""
from __future__ import annotations

from bench_common import machine, set_threads, table  # noqa: I001 (first: sets OMP_WAIT_POLICY)

import argparse
import statistics
import sys
import time


def run(workers: int, args) -> dict:
    import torch
    from torch.utils.data import DataLoader

    from pose2mesh.config import Config
    from pose2mesh.datasets import build_dataset
    from pose2mesh.engine import builders
    from pose2mesh.engine.loop import MeshCriterion
    from pose2mesh.joints import get_joint_set

    cfg = Config()
    cfg.DATASET.input_joint_set = "human36"
    cfg.DATASET.target_joint_set = "human36"
    cfg.DATASET.body_model = "synthetic"
    cfg.DATASET.synthetic_train_size = max(args.batch * (args.steps + 2), 64)
    cfg.MODEL.meshnet_channel_divisor = args.divisor
    cfg.MODEL.posenet_hid_dim = args.hid_dim
    builders.seed_everything(0)
    mesh_model = builders.build_mesh_model(cfg)
    joint_set = get_joint_set("human36")
    graphs = builders.build_graphs(mesh_model, joint_set)
    model = builders.build_model(cfg, joint_set, graphs).train()
    criterion = MeshCriterion(cfg, mesh_model.face, mesh_model.joint_regressor(cfg.DATASET.target_joint_set))
    optimizer = builders.build_optimizer(cfg, model.parameters())
    dataset = build_dataset("Synthetic", "train", cfg, mesh_model)
    loader = DataLoader(dataset, batch_size=args.batch, shuffle=True, num_workers=workers, drop_last=True,
                        generator=torch.Generator().manual_seed(0))
    waits, steps = [], []
    it = iter(loader)
    for _ in range(args.steps):
        t0 = time.perf_counter()
        inputs, targets, meta = next(it)
        t1 = time.perf_counter()
        out = criterion.predict(model, inputs["pose2d"].float())
        losses = criterion(out, targets, meta, epoch=1)
        total = sum(losses.values())
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        t2 = time.perf_counter()
        waits.append(t1 - t0)
        steps.append(t2 - t0)
    del it
    first_wait = waits[0]
    waits, steps = waits[1:] or waits, steps[1:] or steps
    return {"workers": workers, "first_wait": first_wait, "wait_med": statistics.median(waits),
            "step_med": statistics.median(steps), "wait_frac": sum(waits) / sum(steps),
            "samples_s": args.batch * len(steps) / sum(steps)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--workers", default="0,1")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--divisor", type=int, default=4, help="MODEL.meshnet_channel_divisor")
    p.add_argument("--hid_dim", type=int, default=1024, help="MODEL.posenet_hid_dim")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args(argv)
    if args.smoke:
        args.steps, args.batch, args.divisor, args.hid_dim = 2, 2, 16, 64
    set_threads(args.threads)
    print(f"# bench_train_wait: {machine()}")
    print(f"# command: python bench/bench_train_wait.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(f"# model: MeshNet channels / {args.divisor}, PoseNet {args.hid_dim} wide; batch {args.batch}; "
          f"{args.steps} steps (the first, which starts the loader, left out of the figures)")
    rows = []
    results = [run(int(w), args) for w in args.workers.split(",") if w]
    base = results[0]
    for r in results:
        rows.append([r["workers"], 1e3 * r["first_wait"], 1e3 * r["wait_med"], 1e3 * r["step_med"],
                     f"{r['wait_frac']:.1%}", r["samples_s"], f"{r['samples_s'] / base['samples_s']:.2f}x"])
    print(table(["num_workers", "first next() ms", "wait ms (median)", "step ms (median)", "waiting / step",
                 "train samples/s", f"vs num_workers {base['workers']}"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
