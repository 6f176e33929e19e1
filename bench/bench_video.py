"""Video demo speed: frames per second per stage, end to end, on a 640 x 480 clip; and the model
batched over frames against a per-frame loop.

    python bench/bench_video.py [--frames 60] [--multi] [--hid_dim 4096 --divisor 1] [--threads 0] [--smoke]

The clip pans over real photos shipped with scikit-image (the astronaut and the cameraman side
by side, scaled to 480 pixels high), written as an MP4. The whole video demo runs on it
(``pose2mesh.demo.video.run_video``: decode, BlazePose detection, tracking, smoothing, the model
batched over frames, camera fits, rendering, encoding). The model has random weights of the chosen
size on the synthetic body (the weights do not change the time). Without the detector extra, or
with ``--smoke``, the detector is replaced by fixed keypoints (its row then says so).
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import bench_common  # noqa: F401  (sets OMP_WAIT_POLICY before torch is imported)
import numpy as np
from bench_common import machine, set_threads, table

W, H = 640, 480


def make_clip(path: Path, frames: int, fps: float = 30.0) -> None:
    """A pan from left to right over two real people (512-pixel photos scaled to 480 high)."""
    import cv2
    import skimage.data as skdata

    wide = np.concatenate([skdata.astronaut(), np.repeat(skdata.camera()[..., None], 3, 2)], 1)
    wide = cv2.resize(wide, (960, 480), interpolation=cv2.INTER_AREA)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (W, H))
    for t in range(frames):
        x = int(round(t * (960 - W) / max(frames - 1, 1)))
        writer.write(np.ascontiguousarray(wide[:, x:x + W][:, :, ::-1]))
    writer.release()


class FixedKeypoints:
    """A detector stand-in: one plausible person per frame, moving slowly."""

    name = "fixed keypoints (no detector)"

    def __init__(self):
        self.t = 0

    def detect(self, image, multi=False):
        from pose2mesh.detection import Detection

        rng = np.random.default_rng(self.t)
        base = np.array([[0, -80], [-8, -88], [8, -88], [-16, -84], [16, -84], [-30, -60], [30, -60], [-40, -30],
                         [40, -30], [-45, 0], [45, 0], [-18, 0], [18, 0], [-20, 45], [20, 45], [-20, 90], [20, 90]],
                        dtype=np.float64) * 2.0 + [200 + 2 * self.t, 240]
        kp = np.concatenate([base + rng.normal(0, 1, base.shape), np.full((17, 1), 0.9)], 1)
        self.t += 1
        lo, hi = kp[:, :2].min(0), kp[:, :2].max(0)
        return [Detection(kp, 0.9, np.r_[lo, hi - lo])]

    def close(self):
        pass


def make_run(root: Path, hid_dim: int, divisor: int) -> Path:
    """A run folder (config.yaml + random weights) of the chosen model size, coco joint set."""
    from pose2mesh.checkpoint import save_checkpoint
    from pose2mesh.config import Config, save_config
    from pose2mesh.engine.builders import build_graphs, build_mesh_model, build_model
    from pose2mesh.joints import get_joint_set

    cfg = Config()
    cfg.DATASET.input_joint_set = "coco"
    cfg.DATASET.body_model = "synthetic"
    cfg.MODEL.posenet_hid_dim = hid_dim
    cfg.MODEL.meshnet_channel_divisor = divisor
    js = get_joint_set("coco")
    model = build_model(cfg, js, build_graphs(build_mesh_model(cfg), js))
    save_checkpoint(root / "checkpoint" / "final.pth.tar",
                    {"epoch": 0, "model_state_dict": model.state_dict(), "optim_state_dict": {},
                     "scheduler_state_dict": {}, "train_log": [], "test_log": []})
    save_config(cfg, str(root / "config.yaml"))
    return root


def batched_vs_loop(run: Path, frames: int, repeat: int):
    """Seconds for the model + cameras over ``frames`` poses: one batched call vs one call per frame."""
    from pose2mesh.inference import Predictor

    pred = Predictor.from_checkpoint(run)
    poses = np.stack([FixedKeypoints().detect(None)[0].keypoints for _ in range(frames)])
    pred.predict(poses[:2], image_size=(W, H))  # warm-up
    t_batch, t_loop = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        pred.predict(poses, image_size=(W, H))
        t_batch.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for p in poses:
            pred.predict(p[None], image_size=(W, H))
        t_loop.append(time.perf_counter() - t0)
    return float(np.median(t_batch)), float(np.median(t_loop))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--multi", action="store_true", help="detect every person (the masked multi-person search)")
    p.add_argument("--hid_dim", type=int, default=4096)
    p.add_argument("--divisor", type=int, default=1)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--repeat", type=int, default=3, help="repeats of the batched-vs-loop comparison")
    p.add_argument("--smoke", action="store_true", help="4 frames, a tiny model, no detector: checks it runs")
    args = p.parse_args()
    if args.smoke:
        args.frames, args.hid_dim, args.divisor, args.repeat = 4, 64, 16, 1
    set_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)

    from pose2mesh.demo import parse_args
    from pose2mesh.demo.video import run_video
    from pose2mesh.detection import detector_available

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_clip(tmp / "clip.mp4", args.frames)
        run = make_run(tmp / "run", args.hid_dim, args.divisor)
        detector = None if (detector_available() and not args.smoke) else FixedKeypoints()
        argv = ["--gpu", "cpu", "--input_video", str(tmp / "clip.mp4"), "--checkpoint", str(run),
                "--output_dir", str(tmp / "out")] + (["--multi"] if args.multi else [])
        t0 = time.perf_counter()
        summary = run_video(parse_args(argv), detector=detector)
        wall = time.perf_counter() - t0
        t_batch, t_loop = batched_vs_loop(run, args.frames, args.repeat)

    fps = summary["frames_per_second"]
    sec = summary["seconds"]
    command = "python bench/bench_video.py " + " ".join(sys.argv[1:])
    print(f"# command: {command.strip()}")
    print(f"# machine: {machine()}")
    print(f"# clip: {args.frames} frames, {W} x {H}, {summary['fps']:.0f} fps; detector: {summary['detector']}"
          f"{' (multi-person search)' if args.multi else ''}; model: hid_dim {args.hid_dim}, channel divisor "
          f"{args.divisor}, random weights; renderer: {summary['renderer']}")
    print(f"# {summary['frames']} frames, {sum(t['detections'] for t in summary['tracks'].values())} detections, "
          f"{len(summary['tracks'])} tracks")
    rows = []
    for stage in ("decode", "detect", "track", "smooth", "model", "camera", "fit", "render", "encode"):
        rows.append((stage, sec[stage], fps[stage] if fps[stage] is not None else float("nan")))
    rows.append(("end to end (after model load)", summary["frames_written"] / fps["end_to_end"], fps["end_to_end"]))
    print(table(("stage", "seconds", "frames / s"), rows))
    print()
    print(table(("model + cameras over the clip's poses", "seconds", "frames / s", "speed-up"),
                [("one batched call (Predictor.predict)", t_batch, args.frames / t_batch, t_loop / t_batch),
                 ("one call per frame", t_loop, args.frames / t_loop, 1.0)]))
    print(f"# whole run incl. model load: {wall:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
