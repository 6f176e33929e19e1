"""Samples/s of the Human3.6M loader (the real code path, on a fixture in the real file format)
in both modes, in one process and through a 1-worker DataLoader.

    python bench/bench_loaders.py [--frames 400] [--smoke]

The fixture (tests/fixtures.py) is written with the synthetic body into a temporary folder;
every 5th frame is kept for training, as protocol 2 does. Figures are per worker.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the fixture writers
from bench_common import machine  # noqa: E402
from fixtures import synthetic_smpl, write_human36m  # noqa: E402
from pose2mesh.config import load_config  # noqa: E402
from pose2mesh.datasets.human36m import Human36M  # noqa: E402


def rate(fn, n: int) -> float:
    start = time.perf_counter()
    fn()
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=400, help="frames per sequence in the fixture")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for breakage not timing")
    args = parser.parse_args()
    frames = 20 if args.smoke else args.frames
    torch.set_num_threads(1)
    smpl = synthetic_smpl()
    with tempfile.TemporaryDirectory() as tmp:
        write_human36m(tmp, smpl, frames=tuple(range(0, frames, 1)))
        print(f"# bench_loaders: {machine()}")
        print(f"# command: python bench/bench_loaders.py {' '.join(sys.argv[1:])}")
        print(f"# Human3.6M fixture in the real format, {frames} frames per sequence, 1 torch thread")
        print("| mode | samples | in-process samples/s | 1 worker samples/s |")
        print("|---|---|---|---|")
        for mode in ("pose2mesh_net", "posenet"):
            cfg = load_config()
            cfg.MODEL.name = mode
            cfg.DATASET.input_joint_set = "human36"
            cfg.DATASET.body_model = "synthetic"
            ds = Human36M("train", cfg, data_dir=tmp, mesh_model=smpl)
            n = len(ds)
            in_proc = rate(lambda ds=ds, n=n: [ds[i] for i in range(n)], n)
            loader = DataLoader(ds, batch_size=32, num_workers=1, shuffle=True)
            one_worker = rate(lambda loader=loader: [None for _ in loader], n)
            print(f"| {mode} | {n} | {in_proc:,.0f} | {one_worker:,.0f} |")


if __name__ == "__main__":
    main()
