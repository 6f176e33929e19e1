"""Speed and accuracy of fitting SMPL / MANO parameters to meshes (pose2mesh.fitting), against a
plain Adam fit of the same parameters.

    python bench/bench_fitting.py [--repeat 5] [--batch 64] [--adam_steps 1000] [--threads 0] [--smoke]

The meshes are the synthetic body / hand at random poses (every joint 1 rad about a random axis,
root up to 2 rad), shapes uniform in [-2, 2], translations of ~0.3 m; "noisy" adds Gaussian noise
per coordinate (20 mm body, 4 mm hand). Errors are mean vertex distances to the clean mesh, mm.
ms/mesh at batch 1 is the median over ``--repeat`` meshes (wall clock, and the process's CPU
time, steadier on a shared machine); meshes/s at ``--batch``; ``final_steps=0`` skips the last
iteration on all 6,890 vertices (the fit then uses a fixed subset of 1,200). "warm start"
fits the next frame of a small motion from the previous frame's fit (``init=``). Adam: lr 0.02 on
(pose, shape, trans) from the zero pose, autograd through the SMPL layer, until it reaches our
fit's error or ``--adam_steps``.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402

import bench_common as bc  # noqa: E402  (sets OMP_WAIT_POLICY before torch is imported)
from pose2mesh.body_models import MANO, SMPL  # noqa: E402
from pose2mesh.fitting import fit_body  # noqa: E402


def meshes(model, joints: int, batch: int, seed: int, sigma: float):
    gen = torch.Generator().manual_seed(seed)
    axis = torch.nn.functional.normalize(torch.randn(batch, joints, 3, generator=gen), dim=-1)
    pose = axis.clone()
    pose[:, 0] *= 2.0
    pose = pose.reshape(batch, -1)
    shape = torch.rand(batch, 10, generator=gen) * 4 - 2
    trans = torch.randn(batch, 3, generator=gen) * 0.3
    with torch.no_grad():
        clean, _ = model(pose, shape, trans)
    noisy = clean + torch.randn(clean.shape, generator=gen) * sigma
    return pose, shape, trans, clean, noisy


def mm(a, b) -> float:
    return float((a - b).norm(dim=-1).mean()) * 1000


def adam_fit(model, joints: int, target: torch.Tensor, goal_mm: float, steps: int):
    """Plain Adam from the zero pose; returns (steps taken, seconds, CPU seconds, error mm reached)."""
    batch = target.shape[0]
    pose = torch.zeros(batch, joints * 3, requires_grad=True)
    shape = torch.zeros(batch, 10, requires_grad=True)
    trans = (target.mean(1) - model(torch.zeros(batch, joints * 3), torch.zeros(batch, 10))[0].mean(1)).detach()
    trans.requires_grad_(True)
    opt = torch.optim.Adam([pose, shape, trans], lr=0.02)
    start, cpu = time.perf_counter(), time.process_time()
    err, taken = float("inf"), 0
    while taken < steps:
        taken += 1
        opt.zero_grad()
        verts = model(pose, shape, trans)[0]
        loss = ((verts - target) ** 2).sum(-1).mean()
        loss.backward()
        opt.step()
        err = float((verts.detach() - target).norm(dim=-1).mean()) * 1000
        if err <= goal_mm:
            break
    return taken, time.perf_counter() - start, time.process_time() - cpu, err


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--adam_steps", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: the cores this process may use)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat (checks that it runs)")
    args = ap.parse_args()
    if args.smoke:
        args.repeat, args.batch, args.adam_steps = 1, 2, 5
    threads = bc.set_threads(args.threads)
    print(f"machine: {bc.machine()}")
    print(f"command: python bench/bench_fitting.py {' '.join(sys.argv[1:])} (threads {threads})")
    print(f"float32 matmul rate now: {bc.matmul_gflops(512 if args.smoke else 2048):.0f} GFLOP/s "
          "(a yardstick for how loaded the machine is)\n")

    rows = []
    models = [("SMPL", SMPL(synthetic=True), 24, 0.020), ("MANO", MANO(synthetic=True), 16, 0.004)]
    adam_row = None
    for name, model, joints, sigma in models:
        variants = [("closed-form start + LM", {})]
        if name == "SMPL":  # MANO fits all its 778 vertices from the start
            variants.append(("the same, final_steps=0", {"final_steps": 0}))
        for label, options in variants:
            # batch 1, one mesh at a time
            times, cpu, errs, noisy_errs, raw_errs = [], [], [], [], []
            for seed in range(args.repeat + 1):
                _, _, _, clean, noisy = meshes(model, joints, 1, 100 + seed, sigma)
                t0, c0 = time.perf_counter(), time.process_time()
                fit = fit_body(clean, model, **options)
                if seed:  # the first is warm-up
                    times.append(time.perf_counter() - t0)
                    cpu.append(time.process_time() - c0)
                errs.append(mm(fit.vertices, clean))
                noisy_errs.append(mm(fit_body(noisy, model, **options).vertices, clean))
                raw_errs.append(mm(noisy, clean))
            rows.append([name, label, 1, 1e3 * statistics.median(times), 1e3 * statistics.median(cpu),
                         1 / statistics.median(times), max(errs), statistics.mean(raw_errs),
                         statistics.mean(noisy_errs)])
            # a big batch
            _, _, _, clean, noisy = meshes(model, joints, args.batch, 7, sigma)
            fit_body(clean[:2], model, **options)
            t0, c0 = time.perf_counter(), time.process_time()
            fit = fit_body(clean, model, **options)
            elapsed, used = time.perf_counter() - t0, time.process_time() - c0
            per = fit.error.mean(1) * 1000
            noisy_fit = fit_body(noisy, model, **options)
            rows.append([name, label, args.batch, 1e3 * elapsed / args.batch, 1e3 * used / args.batch,
                         args.batch / elapsed, float(per.max()), mm(noisy, clean), mm(noisy_fit.vertices, clean)])
        # video: next frame from the previous fit
        pose, shape, trans, clean, _ = meshes(model, joints, 1, 11, sigma)
        first = fit_body(clean, model)
        gen = torch.Generator().manual_seed(12)
        warm_times, warm_cpu, warm_errs = [], [], []
        for step in range(args.repeat + 1):
            pose = pose + torch.randn(pose.shape, generator=gen) * 0.05
            with torch.no_grad():
                nxt, _ = model(pose, shape, trans + 0.01 * step)
            t0, c0 = time.perf_counter(), time.process_time()
            first = fit_body(nxt, model, init=first)
            if step:
                warm_times.append(time.perf_counter() - t0)
                warm_cpu.append(time.process_time() - c0)
            warm_errs.append(mm(first.vertices, nxt))
        rows.append([name, "warm start (init = previous frame)", 1, 1e3 * statistics.median(warm_times),
                     1e3 * statistics.median(warm_cpu), 1 / statistics.median(warm_times), max(warm_errs), "", ""])
        if name == "SMPL":
            _, _, _, clean, _ = meshes(model, joints, 1, 100, sigma)
            goal = max(errs)
            steps, seconds, used, reached = adam_fit(model, joints, clean, goal, args.adam_steps)
            adam_row = [name, f"plain Adam, {steps} steps (goal {goal:.3f} mm)", 1, 1e3 * seconds, 1e3 * used,
                        1 / seconds, reached, "", ""]
    rows.append(adam_row)
    print(bc.table(["model", "method", "batch", "ms / mesh", "CPU ms / mesh", "meshes / s", "clean: max fit err mm",
                    "noisy input err mm", "noisy: fit err mm"], rows))
    print("\nms / mesh: wall clock; CPU ms / mesh: this process's CPU time (all threads), steadier than the "
          "wall clock on a shared machine.")


if __name__ == "__main__":
    main()
