"""Latency of the demo's stages, per person: model forward, camera fit, rendering per backend.

    python bench/bench_demo.py [--gpu cpu] [--joint_set human36] [--repeat 20] [--hid_dim 4096 --divisor 1]

The model is the full-size Pose2Mesh (PoseNet 4096 wide, the original MeshNet channels) on the
synthetic body, with random weights (the weights do not change the time). Rendering draws a
6890-vertex body at 640 x 480; each OpenGL backend is timed in its own process (PyOpenGL binds
one platform per process). The original's camera fit (1,500 Adam steps) is timed once for
comparison. Times are medians over ``--repeat`` runs after warm-up.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

# as the entry points: OpenMP threads sleep while waiting (set before torch is imported)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

W, H = 640, 480


def _median_ms(fn, repeat: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def _body_scene():
    """A posed-looking synthetic body at 4 m, filling about 350 pixels of height."""
    import torch

    from pose2mesh.body_models import SMPL
    from pose2mesh.render import Intrinsics, RenderMesh

    smpl = SMPL(synthetic=True)
    verts, _ = smpl(torch.zeros(1, 72), torch.zeros(1, 10))
    v = verts[0].double().numpy() * [1, -1, -1] + [0.0, 0.2, 4.0]
    return [RenderMesh(v, smpl.face, (0.6, 0.8, 1.0))], Intrinsics(800.0, 800.0, (W - 1) / 2, (H - 1) / 2)


def bench_render(backend: str, repeat: int) -> dict:
    from pose2mesh.render import MeshRenderer

    meshes, intr = _body_scene()
    r = MeshRenderer(W, H, backend=backend)
    bg = np.zeros((H, W, 3), np.uint8)
    ms = _median_ms(lambda: r.render(meshes, intr, background=bg), repeat)
    coverage = float(r.render(meshes, intr, background=bg).mask.mean())
    r.close()
    return {"backend": backend, "ms": ms, "coverage": coverage}


def bench_model(args) -> list:
    import torch

    from pose2mesh.camera import fit_weak_perspective
    from pose2mesh.config import Config
    from pose2mesh.inference import Predictor
    from pose2mesh.device import select_device
    from pose2mesh.joints import get_joint_set

    device, _ = select_device(args.gpu)
    cfg = Config()
    cfg.DATASET.input_joint_set = args.joint_set
    cfg.DATASET.body_model = "synthetic"
    cfg.MODEL.posenet_hid_dim = args.hid_dim
    cfg.MODEL.meshnet_channel_divisor = args.divisor
    js = get_joint_set(args.joint_set)
    dm = Predictor(cfg, None, device)  # random weights: they do not change the time
    params = sum(p.numel() for p in dm.model.parameters())

    rng = np.random.default_rng(0)
    pose = np.concatenate([rng.uniform(100, 400, (js.num_joints, 2)), np.ones((js.num_joints, 1))], 1)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def forward(n):
        dm.predict([pose] * n)
        sync()

    rows = [("model forward, 1 person", _median_ms(lambda: forward(1), args.repeat), 1)]
    rows.append(("model forward, 4 people (per person)", _median_ms(lambda: forward(4), args.repeat) / 4, 4))
    pred = dm.predict([pose])
    joints, target = pred.joints3d[0], pose[:dm.num_fit_joints, :2]
    rows.append(("camera fit, closed form", _median_ms(lambda: fit_weak_perspective(joints, target), 200), 1))

    # the original: Adam on three parameters, 1,500 steps (timed once)
    cam = torch.nn.Parameter(torch.rand(1, 3))
    opt = torch.optim.Adam([cam], lr=0.1)
    X, Y = torch.tensor(joints[None, :, :2], dtype=torch.float32), torch.tensor(target[None], dtype=torch.float32)
    t0 = time.perf_counter()
    for _ in range(1500):
        loss = torch.nn.functional.l1_loss((X + cam[None, :, 1:]) * cam[None, :, :1] * 250 + 250, Y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    rows.append(("camera fit, original (1,500 Adam steps)", 1e3 * (time.perf_counter() - t0), 1))
    return rows, params, device


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gpu", default="cpu")
    p.add_argument("--joint_set", default="human36", choices=("human36", "coco", "smpl"))
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--hid_dim", type=int, default=4096)
    p.add_argument("--divisor", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--render_only", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.render_only:  # child process: one backend, JSON on stdout
        print(json.dumps(bench_render(args.render_only, args.repeat)))
        return

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from pose2mesh.render import available_backends

    rows, params, device = bench_model(args)
    render_rows = []
    for backend in available_backends():
        env = dict(os.environ, POSE2MESH_RENDERER="auto")
        env.pop("PYOPENGL_PLATFORM", None)
        res = subprocess.run([sys.executable, __file__, "--render_only", backend, "--repeat", str(args.repeat)],
                             capture_output=True, text=True, env=env)
        if res.returncode != 0:
            render_rows.append((f"render 640x480, {backend}", float("nan"), res.stderr.strip().splitlines()[-1]))
            continue
        info = json.loads(res.stdout.strip().splitlines()[-1])
        render_rows.append((f"render 640x480, {backend}", info["ms"], f"{100 * info['coverage']:.0f}% of pixels"))

    print(f"Pose2Mesh demo latency on {device} ({torch.get_num_threads()} threads), joint set {args.joint_set}, "
          f"model {params / 1e6:.1f} M parameters (hid_dim {args.hid_dim}, channel divisor {args.divisor}), "
          f"median of {args.repeat}")
    print(f"{'stage':48s} {'ms':>10s}")
    for name, ms, _ in rows:
        print(f"{name:48s} {ms:10.2f}")
    fwd, fit = rows[0][1], rows[2][1]
    print(f"{'model + camera fit, 1 person':48s} {fwd + fit:10.2f}   (target < 100 ms on CPU)")
    for name, ms, note in render_rows:
        print(f"{name:48s} {ms:10.2f}   6890 vertices, {note}")


if __name__ == "__main__":
    main()
