"""What temporal smoothing of the 2D input buys, measured: acceleration error and MPVPE.

    python bench/bench_smoothing.py --checkpoint RUN/checkpoint/final.pth.tar [--sequences 4]
        [--frames 90] [--fps 30] [--keys 5] [--strengths 0.5,1,2] [--seed 0] [--threads 0] [--smoke]

Synthetic motion on the synthetic body (not paper numbers): each sequence interpolates ``--keys``
key poses drawn as the synthetic dataset draws its samples
(:func:`pose2mesh.datasets.synthetic.sample_body_params`): every SMPL joint rotation by a C2
rotation spline (``scipy.spatial.transform.RotationSpline``) through the keys, the heading by a
random walk about the vertical axis, the root by a cubic spline through positions drifting
around the first key's; one shape and one camera (the first key's) per sequence. The 2D input
is the input joint set regressed from the mesh and projected, plus the project's training-time
detector-like error (:func:`pose2mesh.datasets.common.synthesize_input_error`, drawn afresh
every frame, i.i.d. in time): for ``human36`` the Human3.6M per-joint Gaussian table, for
``coco`` ``synthesize_pose`` (jitter, misses, inversions, swaps); other joint sets have no error
model and are refused.

The model (``--checkpoint``: a run's ``.pth.tar`` or folder; its ``config.yaml`` gives the sizes,
joint set and body model: :meth:`pose2mesh.inference.Predictor.from_checkpoint`, as the demo
builds it) runs on every frame in batches (:meth:`~pose2mesh.inference.Predictor.forward`), on
each version of the 2D input:

- ``ground-truth 2D``: no error (what the model does at best);
- ``noisy, no smoothing``: the baseline;
- ``1€ forward``: :func:`pose2mesh.tracking.smooth_track` with ``backward=False`` (causal,
  what an online filter gives);
- ``1€ forward-backward, strength s``: :func:`~pose2mesh.tracking.smooth_track` (the default).

Figures (mm; the evaluation of the synthetic test set: the ``target`` joints regressed from
root-relative meshes): MPJPE and PA-MPJPE on the target set's evaluation joints, MPVPE, and the
acceleration error (:func:`pose2mesh.metrics.accel_error`, SPIN / VIBE's, mm / frame^2) of those
joints, per sequence, averaged over all frames; and for the 2D input its mean error (pixels) and
its acceleration error (pixels / frame^2) against the projected ground truth.
``--smoke`` runs one short sequence through a tiny random-weight model (breakage, not figures).
"""
from __future__ import annotations

import argparse
import sys
import time

from bench_common import machine, set_threads, table  # noqa: I001 (first: sets OMP_WAIT_POLICY)

import numpy as np

TARGET_ACCEL_RATIO = 0.5    # the acceleration error at least halved
TARGET_MPVPE_SLACK = 2.0    # mm: MPVPE not worse by more than this


def build_predictor(args):
    """(Predictor, label): the checkpoint's model, or a tiny random-weight one (smoke)."""
    from pose2mesh.config import Config
    from pose2mesh.device import select_device
    from pose2mesh.inference import Predictor

    device, _ = select_device(args.gpu)
    if args.checkpoint is None:
        cfg = Config()
        cfg.DATASET.input_joint_set = "human36"
        cfg.DATASET.body_model = "synthetic"
        cfg.MODEL.posenet_hid_dim = 64
        cfg.MODEL.meshnet_channel_divisor = 16
        return Predictor(cfg, None, device), "random weights (smoke)"
    predictor = Predictor.from_checkpoint(args.checkpoint, device=device, cfg=args.cfg)
    epoch = f", epoch {predictor.epoch}" if predictor.epoch is not None else ""
    return predictor, f"{predictor.weights}{epoch} (config {predictor.config_path})"


def make_sequences(mesh_model, input_set, target_set, sequences: int, frames: int, fps: float, keys: int,
                   seed: int):
    """Ground truth of every sequence: 'joint_img' (S, T, J, 2) pixels, 'mesh' (S, T, V, 3) mm
    root-relative (target set's root), 'box' (S, T, 4) the crop boxes of the projected joints."""
    import torch
    from scipy.interpolate import CubicSpline
    from scipy.spatial.transform import Rotation, RotationSpline

    from pose2mesh.coord_utils import cam2pixel
    from pose2mesh.datasets.synthetic import sample_body_params

    reg_in = torch.as_tensor(np.asarray(mesh_model.joint_regressor(input_set.name)), dtype=torch.float32)
    reg_t = torch.as_tensor(np.asarray(mesh_model.joint_regressor(target_set.name)), dtype=torch.float32)
    key_times = np.linspace(0.0, (frames - 1) / fps, keys)
    times = np.arange(frames) / fps
    out = {"joint_img": [], "mesh": []}
    for s in range(sequences):
        rng = np.random.default_rng(np.random.SeedSequence([seed, s]))
        params = [sample_body_params(rng) for _ in range(keys)]
        first = params[0]
        headings = np.concatenate([[0.0], np.cumsum(rng.normal(0.0, 0.4, keys - 1))])
        orient0 = Rotation.from_rotvec(first["pose"][:3])
        pose_keys = np.stack([p["pose"].reshape(24, 3) for p in params])  # keys x 24 x 3
        pose_keys[:, 0] = (Rotation.from_euler("y", headings[:, None]) * orient0).as_rotvec()
        drift = np.cumsum(np.concatenate([np.zeros((1, 3)), rng.normal(0.0, 1.0, (keys - 1, 3)) * [250, 0, 250]]), 0)
        root_keys = first["root"] + drift
        pose = np.stack([RotationSpline(key_times, Rotation.from_rotvec(pose_keys[:, j]))(times).as_rotvec()
                         for j in range(24)], axis=1)  # T x 24 x 3
        root = CubicSpline(key_times, root_keys, axis=0, bc_type="natural")(times)  # T x 3 mm
        with torch.no_grad():
            verts, _ = mesh_model(torch.as_tensor(pose.reshape(frames, 72), dtype=torch.float32),
                                  torch.as_tensor(np.tile(first["shape"], (frames, 1)), dtype=torch.float32))
            verts = verts.float() * 1000.0
            joints_in = torch.einsum("jv,tvc->tjc", reg_in, verts)
            root_t = torch.einsum("v,tvc->tc", reg_t[target_set.root], verts)
        mesh = (verts - root_t[:, None]).double().numpy()
        joint_cam = (joints_in - root_t[:, None]).double().numpy() + root[:, None]
        out["joint_img"].append(cam2pixel(joint_cam, first["focal"], first["princpt"])[..., :2])
        out["mesh"].append(mesh)
    return {k: np.stack(v) for k, v in out.items()}


def add_detector_error(joint_img: np.ndarray, joint_set, input_shape, seed: int) -> np.ndarray:
    """The training-time 2D error model, applied in each frame's crop and mapped back to pixels."""
    from pose2mesh.aug_utils import affine_transform, invert_affine
    from pose2mesh.coord_utils import get_bbox, process_bbox
    from pose2mesh.datasets.common import crop_area, crop_pose2d, synthesize_input_error

    if joint_set.name not in ("human36", "coco"):
        raise SystemExit(f"bench_smoothing: no detector error model for the {joint_set.name} joint set "
                         f"(human36 and coco have one)")
    noisy = np.empty_like(joint_img)
    for s, seq in enumerate(joint_img):
        rng = np.random.default_rng(np.random.SeedSequence([seed, 7919, s]))
        for t, pose in enumerate(seq):
            bbox = process_bbox(get_bbox(pose), input_shape)
            crop, trans = crop_pose2d(pose, bbox, input_shape)
            crop = synthesize_input_error(joint_set.name, crop, input_shape, crop_area(bbox, trans), rng)
            noisy[s, t] = affine_transform(crop, invert_affine(trans))
    return noisy


def _zero_depth(xy: np.ndarray) -> np.ndarray:
    """(T, J, 2) -> (T, J, 3) with z = 0, for the 3D acceleration error."""
    return np.concatenate([xy, np.zeros(xy.shape[:-1] + (1,))], axis=-1)


def evaluate(predictor, inputs: np.ndarray, gt_img: np.ndarray, gt_mesh: np.ndarray, target_set):
    """Run the model on every frame; the figures of one row."""
    from pose2mesh.datasets.common import per_sample_mesh_errors
    from pose2mesh.metrics import accel_error

    S, T = inputs.shape[:2]
    flat = inputs.reshape(S * T, *inputs.shape[2:])
    meshes, _, _ = predictor.forward(flat)  # metres, root-relative, body-model vertex order
    pred = meshes.reshape(S, T, -1, 3) * 1000.0  # mm
    reg = np.asarray(predictor.body_model.joint_regressor(target_set.name), dtype=np.float64)
    errors = per_sample_mesh_errors(pred.reshape(S * T, -1, 3), gt_mesh.reshape(S * T, -1, 3), reg, target_set.root,
                                    target_set.eval_joints)
    idx = list(target_set.eval_joints) or list(range(len(reg)))
    accel, accel_2d = [], []
    for s in range(S):
        joints = []
        for mesh in (pred[s], gt_mesh[s]):
            j = np.einsum("jv,tvc->tjc", reg, mesh)
            joints.append((j - j[:, target_set.root:target_set.root + 1])[:, idx])
        accel.append(accel_error(joints[0], joints[1]))
        accel_2d.append(accel_error(_zero_depth(inputs[s]), _zero_depth(gt_img[s])))
    return {"err2d": float(np.linalg.norm(inputs - gt_img, axis=-1).mean()),
            "accel2d": float(np.concatenate(accel_2d).mean()),
            "mpjpe": float(errors["mpjpe"].mean()), "pa_mpjpe": float(errors["pa_mpjpe"].mean()),
            "mpvpe": float(errors["mpvpe"].mean()), "accel": float(np.concatenate(accel).mean())}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=None,
                   help="a run's .pth.tar (or its folder); its config.yaml describes the model")
    p.add_argument("--cfg", default=None, help="config YAML (default: the config.yaml beside the run folder)")
    p.add_argument("--gpu", default="cpu", help="'cpu' or a CUDA index")
    p.add_argument("--sequences", type=int, default=4)
    p.add_argument("--frames", type=int, default=90)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--keys", type=int, default=5, help="key poses per sequence")
    p.add_argument("--strengths", default="0.5,1,2", help="smooth_track strengths of the forward-backward rows")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: the cores this process may use)")
    p.add_argument("--smoke", action="store_true", help="one short sequence, tiny random-weight model")
    args = p.parse_args(argv)
    if args.smoke:
        args.checkpoint, args.sequences, args.frames, args.keys, args.strengths = None, 1, 12, 3, "1"
    elif args.checkpoint is None:
        p.error("--checkpoint is required (train one: python main/train.py --gpu cpu "
                "--cfg asset/yaml/pose2mesh_human36J_quick_synthetic.yml); --smoke runs without")
    if args.keys < 2 or args.frames < args.keys or args.sequences < 1:
        p.error("needs --keys >= 2, --frames >= --keys and --sequences >= 1")
    set_threads(args.threads)
    strengths = [float(v) for v in args.strengths.split(",") if v]

    from pose2mesh.joints import get_joint_set
    from pose2mesh.tracking import SMOOTH_BETA, SMOOTH_D_CUTOFF, SMOOTH_MIN_CUTOFF, smooth_track

    t0 = time.perf_counter()
    predictor, weights = build_predictor(args)
    input_set = predictor.joint_set
    target_set = get_joint_set(predictor.cfg.DATASET.target_joint_set)
    input_shape = tuple(int(v) for v in predictor.cfg.MODEL.input_shape)
    gt = make_sequences(predictor.body_model, input_set, target_set, args.sequences, args.frames, args.fps, args.keys,
                        args.seed)
    noisy = add_detector_error(gt["joint_img"], input_set, input_shape, args.seed)

    def smoothed(**kw):
        conf = np.ones(noisy.shape[:-1] + (1,))
        return np.stack([smooth_track(np.concatenate([seq, c], -1), args.fps, **kw)[..., :2]
                         for seq, c in zip(noisy, conf)])

    cases = [("ground-truth 2D", gt["joint_img"]), ("noisy, no smoothing", noisy),
             ("noisy, 1€ forward (causal)", smoothed(backward=False))]
    cases += [(f"noisy, 1€ forward-backward, strength {s:g}", smoothed(strength=s)) for s in strengths]
    results = [(name, evaluate(predictor, x, gt["joint_img"], gt["mesh"], target_set)) for name, x in cases]

    error_model = "Human3.6M per-joint Gaussian table" if input_set.name == "human36" else "synthesize_pose (COCO)"
    print(f"# bench_smoothing: {machine()}")
    print(f"# command: python bench/bench_smoothing.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(f"# weights: {weights}; body model: {predictor.describe_body()}")
    print(f"# motion: {args.sequences} sequences x {args.frames} frames at {args.fps:g} fps, {args.keys} key poses "
          f"each; input {input_set.name}, 2D error: {error_model}; target {target_set.name} joints "
          f"(synthetic data, not paper numbers)")
    print(f"# smooth_track defaults at strength 1: min_cutoff {SMOOTH_MIN_CUTOFF:g} Hz, beta {SMOOTH_BETA:g}, "
          f"d_cutoff {SMOOTH_D_CUTOFF:g} Hz (coordinates in person sizes); {time.perf_counter() - t0:.0f} s in all")
    base = results[1][1]
    rows = [[name, r["err2d"], r["accel2d"], r["mpjpe"], r["pa_mpjpe"], r["mpvpe"],
             f"{r['mpvpe'] - base['mpvpe']:+.2f}", r["accel"], f"{r['accel'] / base['accel']:.2f}x"]
            for name, r in results]
    print(table(["2D input", "2D error px", "2D accel px/f²", "MPJPE mm", "PA-MPJPE mm", "MPVPE mm", "MPVPE vs noisy",
                 "accel mm/f²", "accel vs noisy"], rows))
    default = dict(results).get("noisy, 1€ forward-backward, strength 1")
    if default is not None:
        ok = (default["accel"] <= TARGET_ACCEL_RATIO * base["accel"]
              and default["mpvpe"] <= base["mpvpe"] + TARGET_MPVPE_SLACK)
        print(f"\n# target (strength 1): acceleration error at most {TARGET_ACCEL_RATIO:g}x, MPVPE at most "
              f"+{TARGET_MPVPE_SLACK:g} mm: {'met' if ok else 'NOT met'} ({default['accel'] / base['accel']:.2f}x, "
              f"{default['mpvpe'] - base['mpvpe']:+.2f} mm)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
