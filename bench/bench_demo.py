"""Latency of the demo's stages: model forward, camera fit, rendering per backend; then, on a
photo of several real people, detection, the model batched over them, camera and render per
person, and the multi-person search's recall.

    python bench/bench_demo.py [--gpu cpu] [--joint_set human36] [--repeat 20] [--hid_dim 4096 --divisor 1]
                               [--no_photo] [--smoke]

The model is the full-size Pose2Mesh (PoseNet 4096 wide, the original MeshNet channels) on the
synthetic body, with random weights (the weights do not change the time). Rendering draws a
6890-vertex body at 640 x 480; each OpenGL backend is timed in its own process (PyOpenGL binds
one platform per process). The original's camera fit (1,500 Adam steps) is timed once for
comparison. The photo section needs the detector extra; its photos ship with scikit-image and
matplotlib. Times are medians over ``--repeat`` runs after warm-up.
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


def real_people():
    """Photos of one person each, shipped with packages (public domain): the astronaut Eileen
    Collins and the cameraman (scikit-image), Grace Hopper (matplotlib); RGB, 512 pixels high."""
    import cv2
    import matplotlib.cbook
    import skimage.data as skdata

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        hopper = cv2.imdecode(np.frombuffer(f.read(), np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
    hopper = cv2.resize(hopper, (round(hopper.shape[1] * 512 / hopper.shape[0]), 512), interpolation=cv2.INTER_AREA)
    return {"astronaut": skdata.astronaut(), "cameraman": np.repeat(skdata.camera()[..., None], 3, 2),
            "hopper": np.ascontiguousarray(hopper)}


def compose(photos, order, scale=1.0):
    """The photos side by side (one person per tile), scaled; returns the image and tile x ranges."""
    import cv2

    tiles = [photos[name] for name in order]
    if scale != 1.0:
        tiles = [cv2.resize(t, (round(t.shape[1] * scale), round(t.shape[0] * scale)), interpolation=cv2.INTER_AREA)
                 for t in tiles]
    xs = np.cumsum([0] + [t.shape[1] for t in tiles])
    return np.ascontiguousarray(np.concatenate(tiles, 1)), list(zip(xs[:-1], xs[1:]))


def bench_photo(args):
    """Stage times on a photo of three real people (detection, the model batched over them, camera
    and render per person), then the multi-person search's recall over arrangements and sizes."""
    import itertools

    from pose2mesh.config import Config
    from pose2mesh.demo.rendering import render_meshes
    from pose2mesh.detection import BodyDetector
    from pose2mesh.inference import Predictor
    from pose2mesh.render import MeshRenderer

    photos = real_people()
    image, _ = compose(photos, ("astronaut", "cameraman", "hopper"))
    h, w = image.shape[:2]
    cfg = Config()
    cfg.DATASET.input_joint_set = "coco"
    cfg.DATASET.body_model = "synthetic"
    cfg.MODEL.posenet_hid_dim = args.hid_dim
    cfg.MODEL.meshnet_channel_divisor = args.divisor
    predictor = Predictor(cfg, None, "cpu")
    few = max(1, args.repeat // 5)
    with BodyDetector() as det:
        people = det.detect(image, multi=True)
        if not people:
            return [("photo: nobody found", float("nan"), "")], []
        n = len(people)
        poses = np.stack([p.keypoints for p in people])
        rows = [(f"detect, most prominent person ({w} x {h} photo)",
                 _median_ms(lambda: det.detect(image, multi=False), few), ""),
                (f"detect, every person (masked search, {n} found)",
                 _median_ms(lambda: det.detect(image, multi=True), few, warmup=0), ""),
                ("model, batched over the people (per person)", _median_ms(lambda: predictor.forward(poses), args.repeat) / n,
                 f"{n} people in one forward"),
                ("model, one person per forward", _median_ms(lambda: predictor.forward(poses[:1]), args.repeat), "")]
        res = predictor.predict(poses, image_size=(w, h))
        cam_ms = 1e3 * np.median([predictor.predict(poses, image_size=(w, h)).timings["camera"]
                                  for _ in range(args.repeat)]) / n
        rows.append(("camera fit per person", cam_ms, "closed form"))
        renderer = MeshRenderer(w, h)
        rows.append(("render per person (all in one scene)",
                     _median_ms(lambda: render_meshes(renderer, image, res), few) / n, renderer.backend))
        renderer.close()

        recall_rows = []
        if not args.smoke:
            names = list(photos)
            arrangements = [o for k in (2, 3) for o in itertools.permutations(names, k)]
            for scale in (1.0, 0.5):
                found_total, truth_total, false_pos, secs = 0, 0, 0, []
                for order in arrangements:
                    img, tiles = compose(photos, order, scale)
                    t0 = time.perf_counter()
                    dets = det.detect(img, multi=True)
                    secs.append(time.perf_counter() - t0)
                    hit = set()
                    for d in dets:
                        head = d.keypoints[:5, 0][d.keypoints[:5, 2] > 0.3]
                        x = float(head.mean()) if len(head) else float(d.keypoints[:, 0].mean())
                        tile = next((i for i, (a, b) in enumerate(tiles) if a <= x < b), None)
                        if tile is None or tile in hit:
                            false_pos += 1
                        else:
                            hit.add(tile)
                    found_total += len(hit)
                    truth_total += len(order)
                recall_rows.append((f"{len(arrangements)} photos of 2-3 people, {int(512 * scale)} px high",
                                    truth_total, found_total, found_total / truth_total, false_pos,
                                    1e3 * float(np.mean(secs))))
    return rows, recall_rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gpu", default="cpu")
    p.add_argument("--joint_set", default="human36", choices=("human36", "coco", "smpl"))
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--hid_dim", type=int, default=4096)
    p.add_argument("--divisor", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--no_photo", action="store_true", help="skip the real-photo section (detector extra)")
    p.add_argument("--smoke", action="store_true", help="tiny model, one repeat, software rendering: checks it runs")
    p.add_argument("--render_only", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.smoke:
        args.repeat, args.hid_dim, args.divisor = 1, 64, 16

    if args.render_only:  # child process: one backend, JSON on stdout
        print(json.dumps(bench_render(args.render_only, args.repeat)))
        return

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from pose2mesh.render import available_backends

    rows, params, device = bench_model(args)
    render_rows = []
    for backend in (["software"] if args.smoke else available_backends()):
        env = dict(os.environ, POSE2MESH_RENDERER="auto")
        env.pop("PYOPENGL_PLATFORM", None)
        res = subprocess.run([sys.executable, __file__, "--render_only", backend, "--repeat", str(args.repeat)],
                             capture_output=True, text=True, env=env)
        if res.returncode != 0:
            render_rows.append((f"render 640x480, {backend}", float("nan"), res.stderr.strip().splitlines()[-1]))
            continue
        info = json.loads(res.stdout.strip().splitlines()[-1])
        render_rows.append((f"render 640x480, {backend}", info["ms"], f"6890 vertices, {100 * info['coverage']:.0f}% of pixels"))

    from bench_common import machine, table

    print(f"# command: python bench/bench_demo.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"# machine: {machine()}")
    print(f"# Pose2Mesh demo latency on {device}, joint set {args.joint_set}, model {params / 1e6:.1f} M parameters "
          f"(hid_dim {args.hid_dim}, channel divisor {args.divisor}), random weights, median of {args.repeat}")
    fwd, fit = rows[0][1], rows[2][1]
    lines = [(name, ms, "") for name, ms, _ in rows]
    lines.append(("model + camera fit, 1 person", fwd + fit, "target < 100 ms on CPU"))
    lines += render_rows
    print(table(("stage", "ms", "note"), lines))

    from pose2mesh.detection import detector_available

    if args.no_photo or not detector_available():
        print("\n# photo section skipped (" + ("--no_photo" if args.no_photo else "no detector extra") + ")")
        return
    photo_rows, recall_rows = bench_photo(args)
    print("\n# a photo of three real people side by side (astronaut, cameraman, Grace Hopper, 512 px high), "
          "BlazePose (MediaPipe) on CPU")
    print(table(("stage", "ms", "note"), photo_rows))
    if recall_rows:
        print("\n# multi-person search recall: every 2- and 3-person arrangement of the three photos side by side")
        print(table(("photos", "people", "found", "recall", "false detections", "ms per photo"), recall_rows))


if __name__ == "__main__":
    main()
