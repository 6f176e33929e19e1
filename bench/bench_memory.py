"""Peak resident memory of a Pose2Mesh training step and of an evaluation forward, ours vs the
original's formulation, each case in a fresh process (``resource.getrusage`` ``ru_maxrss``).

    python bench/bench_memory.py [--train_batches 16,64] [--eval_batches 16,64] [--original_train64] [--smoke]

A training step is forward + backward + an Adam step (the original's optimizer) in training
mode; evaluation is one forward under ``torch.no_grad``. The model is the full Pose2Mesh on the
6890-vertex synthetic body (human36 joints), random weights. "idle" is the same process after
building the model and graphs, before the step, so "step" = peak - idle is what the step adds.
The original's formulation at a batch-64 training step needs about 4x its batch-16 step
(~14 GB on the synthetic body's 10,752-vertex padded graph, ~22 GB on SMPL's 12,288), too much
to run by default on this 23 GB shared machine: it runs only with ``--original_train64``. ``--smoke`` runs tiny sizes, for breakage.
"""
from __future__ import annotations

from bench_common import body_graphs, machine, set_threads, table  # noqa: I001 (first: sets OMP_WAIT_POLICY)

import argparse
import json
import resource
import subprocess
import sys


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # KiB on Linux


def worker(impl: str, mode: str, batch: int, hid_dim: int, divisor: int, threads: int) -> dict:
    import torch

    from original_formulation import OriginalFormulation
    from pose2mesh.models import pose2mesh_net

    set_threads(threads)
    js, _, (_, graph_L, _, _) = body_graphs("human36")
    torch.manual_seed(0)
    model = pose2mesh_net.get_model(js.num_joints, graph_L, hid_dim=hid_dim, channel_divisor=divisor)
    net = OriginalFormulation(model) if impl == "original" else model
    x = torch.randn(batch, js.num_joints, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3) if mode == "train" else None
    idle = _rss_gb()
    if mode == "train":
        model.train()
        mesh, pose3d = net(x)
        (mesh.abs().mean() + pose3d.abs().mean()).backward()
        optimizer.step()
    else:
        model.eval()
        with torch.no_grad():
            net(x)
    return {"idle_gb": idle, "peak_gb": _rss_gb()}


def start_case(impl: str, mode: str, batch: int, args) -> subprocess.Popen:
    cmd = [sys.executable, __file__, "--worker", impl, mode, str(batch), "--hid_dim", str(args.hid_dim),
           "--divisor", str(args.divisor), "--threads", str(args.threads)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_case(proc: subprocess.Popen, what: str) -> dict:
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{stderr[-2000:]}")
    return json.loads(stdout.strip().splitlines()[-1])


def run_case(impl: str, mode: str, batch: int, args) -> dict:
    return finish_case(start_case(impl, mode, batch, args), f"{impl} {mode} batch {batch}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train_batches", default="16,64")
    p.add_argument("--eval_batches", default="16,64")
    p.add_argument("--original_train64", action="store_true", help="also run the original's batch-64 step")
    p.add_argument("--hid_dim", type=int, default=4096)
    p.add_argument("--divisor", type=int, default=1)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--worker", nargs=3, metavar=("IMPL", "MODE", "BATCH"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        impl, mode, batch = args.worker
        print(json.dumps(worker(impl, mode, int(batch), args.hid_dim, args.divisor, args.threads)))
        return 0
    set_threads(args.threads)
    print(f"# bench_memory: {machine()}")
    print(f"# command: python bench/bench_memory.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    if args.smoke:  # one training step each, both processes at once (peak RSS is per process)
        args.hid_dim, args.divisor = 64, 16
        procs = {impl: start_case(impl, "train", 2, args) for impl in ("ours", "original")}
        res = {impl: finish_case(proc, impl) for impl, proc in procs.items()}
        print(table(["case", "batch", "original peak GB", "ours peak GB"],
                    [["training step (smoke)", 2, f"{res['original']['peak_gb']:.2f}", f"{res['ours']['peak_gb']:.2f}"]]))
        return 0
    rows = []
    for mode, batches in (("train", args.train_batches), ("eval", args.eval_batches)):
        for batch in [int(b) for b in batches.split(",") if b]:
            ours = run_case("ours", mode, batch, args)
            skip_original = mode == "train" and batch >= 64 and not args.original_train64
            orig = None if skip_original else run_case("original", mode, batch, args)
            what = "training step (fwd+bwd+Adam)" if mode == "train" else "eval forward"
            rows.append([what, batch,
                         f"{orig['peak_gb']:.2f}" if orig else "not run",
                         f"{ours['peak_gb']:.2f}",
                         f"{orig['peak_gb'] - orig['idle_gb']:.2f}" if orig else "-",
                         f"{ours['peak_gb'] - ours['idle_gb']:.2f}",
                         f"{orig['peak_gb'] / ours['peak_gb']:.2f}x" if orig else "-"])
            print(f"# {what} batch {batch}: ours {ours}, original {orig}", flush=True)
    print(table(["case", "batch", "original peak GB", "ours peak GB", "original step GB", "ours step GB",
                 "original / ours"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
