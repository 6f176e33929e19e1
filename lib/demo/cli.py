"""The demo's command line: a photo (or 2D poses) in, meshes over it out; ``--input_video`` for video.

``python demo/run.py [--input_pose POSE] [--input_img IMG | --input_video VIDEO] [--joint_set ...]``

Per image:

1. 2D poses: read from ``--input_pose`` (:mod:`.inputs`), or found in ``--input_img`` by the
   built-in detector (:mod:`pose2mesh.detection`; ``coco`` bodies, ``mano`` hands). From a file,
   several people (or ``--multi``) go through the original demo's confidence and duplicate
   filters; the detector finds the most prominent person, or everyone with ``--multi``.
2. :class:`pose2mesh.inference.Predictor`: all people in one batch, a closed-form
   weak-perspective camera each.
3. Every person rendered into one scene over the image (:mod:`.rendering`), and the files of
   :func:`run_photo` written (:mod:`.outputs`).

The body model and the weights used are always printed; nothing falls back silently.
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..errors import Pose2MeshError
from ..inference import JOINT_SETS, POSE_THRESHOLD
from .common import DETECTABLE_JOINT_SETS, DemoError

__all__ = ["parse_args", "run", "run_photo", "main"]

log = logging.getLogger("pose2mesh.demo")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="demo/run.py",
        description="Pose2Mesh demo: 3D human (or hand) meshes from a photo, a video or 2D poses, rendered over "
                    "the image.",
        epilog="examples: python demo/run.py --gpu 0 --input_pose demo/synthetic_pose_human36.npy --joint_set human36 "
               "| python demo/run.py --input_img photo.jpg --multi | python demo/run.py --input_video clip.mp4")
    p.add_argument("--gpu", type=str, default="0",
                   help="CUDA device index as the original (falls back to CPU without CUDA); 'cpu' for CPU")
    p.add_argument("--input_pose", type=str, default=None,
                   help="2D pose(s) in image pixels: .npy (J x 2, J x 3 with confidence, or N x J x C) or .json "
                        "(a J x C list, COCO-format keypoints, OpenPose or MMPose output); without it the "
                        "built-in detector finds them in --input_img")
    p.add_argument("--input_img", type=str, default=None,
                   help="the photo (default with --input_pose: a black canvas of the pose's extent)")
    p.add_argument("--input_video", type=str, default=None,
                   help="a video file OpenCV reads, or a folder of frames: detect, track, smooth, predict per frame")
    p.add_argument("--joint_set", type=str, default=None, choices=JOINT_SETS,
                   help="joint order of the input pose (default: the checkpoint's config.yaml, else coco); "
                        "the detector gives coco (bodies) or mano (hands)")
    p.add_argument("--checkpoint", type=str, default=None,
                   help="Pose2Mesh weights (.pth.tar, or a run folder); default: the original release's path for "
                        "the joint set, under experiment/")
    p.add_argument("--cfg", type=str, default=None,
                   help="config YAML giving MODEL sizes and DATASET.body_model (default: the config.yaml beside "
                        "the checkpoint's folder, else the original's sizes)")
    p.add_argument("--body_model", type=str, default=None, choices=("official", "synthetic"),
                   help="official SMPL/MANO files or the generated synthetic body (default: the config's "
                        "DATASET.body_model, else official)")
    p.add_argument("--output_dir", type=str, default=None, help="where results go (default: demo/result/)")
    p.add_argument("--multi", action="store_true",
                   help="every person (automatic when the pose file holds several); without it the detector "
                        "keeps the most prominent one")
    p.add_argument("--no_fit", action="store_true",
                   help="no SMPL / MANO parameter fit (by default every mesh is fitted: parameters in "
                        "demo_smpl.npz / demo_mano.npz, the fitted mesh as OBJ beside the raw one)")
    p.add_argument("--show", choices=("raw", "fit", "both"), default="fit",
                   help="which mesh the pictures show: the network's vertices, the fitted body model (default), "
                        "or both (demo_mesh.png raw, demo_mesh_fit.png fitted)")
    v = p.add_argument_group("video")
    v.add_argument("--fps", type=float, default=None,
                   help="frame rate of a folder of frames (default 30) or to override the video's")
    v.add_argument("--smooth", type=float, default=1.0,
                   help="keypoint smoothing strength per track (1: the tuned default; 2: smoother; 0: off)")
    v.add_argument("--no_smooth", action="store_true", help="no keypoint smoothing (same as --smooth 0)")
    v.add_argument("--save_obj", action="store_true", help="also write one OBJ per track and frame")
    v.add_argument("--min_track_frames", type=int, default=3,
                   help="drop tracks seen in fewer frames (false detections), in videos of at least twice "
                        "as many frames (default 3; 1 keeps every detection)")
    v.add_argument("--max_frames", type=int, default=0, help="stop after this many frames (0: all)")
    p.add_argument("--debug", action="store_true", help="full tracebacks instead of one-line errors")
    args = p.parse_args(argv)
    if args.input_img in (".", ""):  # the original's 'no image' value
        args.input_img = None
    if args.input_video is None and args.input_pose is None and args.input_img is None:
        p.error("give --input_pose (2D poses), --input_img (a photo) or --input_video")
    if args.input_video is not None and (args.input_pose is not None or args.input_img is not None):
        p.error("--input_video takes no --input_pose or --input_img")
    if args.no_smooth:
        args.smooth = 0.0
    if args.smooth < 0:
        p.error("--smooth must be >= 0")
    if args.min_track_frames < 1:
        p.error("--min_track_frames must be >= 1")
    return args


# ----------------------------------------------------------------------------------------------
# the 2D poses of one photo

def check_detectable(joint_set: Optional[str]) -> None:
    if joint_set is not None and joint_set not in DETECTABLE_JOINT_SETS:
        raise DemoError(f"the built-in detector gives --joint_set coco (body keypoints) or mano (hand landmarks), "
                        f"not {joint_set}: for {joint_set}, pass --input_pose with 2D joints in its order")


def detect_people(image: np.ndarray, joint_set: str, multi: bool, where: str, detector=None):
    """The detector's people (or hands) in one photo: ``(poses, mirrored, outside, name)``."""
    from ..detection import make_detector

    check_detectable(joint_set)
    own = detector is None
    detector = detector or make_detector(joint_set)
    try:
        found = detector.detect(image, multi=multi)
    finally:
        if own:
            detector.close()
    what = "hand" if joint_set == "mano" else "person"
    if not found:
        raise DemoError(f"no {what} found in {where} by {detector.name}; pass --input_pose with 2D keypoints from "
                        f"another detector (a COCO results .json)")
    log.info("detector: %s, %d %s%s found", detector.name, len(found), what, "" if len(found) == 1 else "s")
    return [d.keypoints for d in found], [d.left for d in found], detector.name


def _read_image_or_canvas(image_path: Optional[str]):
    from ..vis import read_image

    return read_image(image_path) if image_path is not None else None


# ----------------------------------------------------------------------------------------------
# one photo

def run_photo(args: argparse.Namespace, detector=None) -> Dict[str, Any]:
    """The photo demo for parsed arguments; returns the summary also written as JSON.

    Files written to the output folder:

    - ``demo_pose2d.png``: the 2D poses over the image;
    - ``demo_mesh.png``: the meshes over the image (all people in one scene);
    - one person: ``demo_mesh.obj`` (the predicted vertices, metres, root-relative);
      several: ``demo_mesh_{i}.obj`` and ``demo_mesh_{i}.png`` (person ``i`` alone);
    - unless ``--no_fit``: ``demo_mesh_fit[_{i}].obj`` (the fitted SMPL / MANO mesh) and
      ``demo_smpl[_{i}].npz`` / ``demo_mano[_{i}].npz`` (its parameters, with smplx's names);
      the pictures show the fitted mesh (``--show fit``), the network's (``raw``) or both;
    - ``demo_keypoints.json``: the 2D keypoints used, in the COCO results format;
    - ``demo_result.json``: body model, weights, cameras (ours and the original's ``(s, tx, ty)``),
      translations, lifted 3D joints, flags (partly outside the image), timings.
    """
    from ..inference import canvas_size
    from ..render import MeshRenderer
    from ..vis import person_color, save_obj, write_image
    from .inputs import check_layout, read_poses, select_people
    from .outputs import keypoint_record, output_folder, write_json, write_keypoints
    from .prediction import build_predictor
    from .rendering import draw_poses, render_meshes, scene_meshes

    detecting = args.input_pose is None
    if detecting:
        check_detectable(args.joint_set)
        if detector is None:
            from ..detection import _import_mediapipe

            _import_mediapipe()  # the extra missing: say so before loading anything
    poses_in = None if detecting else read_poses(args.input_pose, args.input_img, args.joint_set)
    image = _read_image_or_canvas(args.input_img)
    predictor = build_predictor(args)
    joint_set = predictor.joint_set
    t_detect = 0.0
    detector_name = None
    if detecting:
        t0 = time.perf_counter()
        raw, mirrored, detector_name = detect_people(image, joint_set.name, args.multi, args.input_img, detector)
        t_detect = time.perf_counter() - t0
        keep = list(range(len(raw)))
        multi = args.multi
        source = str(args.input_img)
    else:
        assert poses_in is not None  # read above when not detecting
        check_layout(poses_in, joint_set.name, str(args.input_pose))
        raw, mirrored = poses_in.people, poses_in.mirrored
        multi = args.multi or len(raw) > 1
        source = str(args.input_pose)
        from ..inference import complete_poses

        completed, _ = complete_poses(raw, joint_set, source)
        keep = select_people(list(completed)) if multi else [0]
        if not keep:
            raise DemoError(f"{args.input_pose}: no person left after the confidence and duplicate filters "
                            f"(confidence sum >= 1.5, joints valid above {POSE_THRESHOLD})")
    people = [raw[i] for i in keep]
    flips = [bool(mirrored[i]) for i in keep] if mirrored else None

    if image is None:  # the original's black canvas
        width, height = canvas_size(np.concatenate([np.asarray(p)[:, :2] for p in people]))
        image = np.zeros((height, width, 3), np.uint8)
    pred = predictor.predict(people, image_size=(image.shape[1], image.shape[0]),
                             mirrored=flips if joint_set.name == "mano" else None)
    out_dir = output_folder(args.output_dir)
    has_conf = detecting or all(np.shape(p)[1] == 3 for p in people)
    height, width = image.shape[:2]
    if args.input_img is not None:
        conf = pred.poses_2d[..., 2] > POSE_THRESHOLD
        if conf.any() and (pred.outside[conf.any(1)].mean() > 0.5):
            log.warning("warning: most joints lie outside the %d x %d image %s: is the pose in its pixels?",
                        width, height, args.input_img)
    log.info("joint set: %s (%d joints), %d %s on %s", joint_set.name, joint_set.num_joints, len(keep),
             "person" if len(keep) == 1 else "people", predictor.device)
    n = len(keep)
    for k, i in enumerate(keep):
        cam = pred.cameras[k]
        log.info("person %d: camera scale %.1f px/m, translation (%.1f, %.1f) px, fit RMS %.1f px", i, cam.scale,
                 *cam.translation, cam.rms)
        if cam.scale <= 1e-5:
            log.warning("warning: person %d: the mesh's joints do not match the pose (degenerate camera fit)", i)
        if pred.outside[k] > 0:
            log.warning("warning: person %d is partly outside the image (%.0f%% of its joints): predicted anyway",
                        i, 100 * pred.outside[k])

    # fitting: SMPL / MANO parameters of every mesh, one batch
    kind = "mano" if joint_set.name == "mano" else "smpl"
    fit, fitted, t_fit = None, None, 0.0
    if not args.no_fit:
        from .fitting import fit_meshes

        t0 = time.perf_counter()
        fit, fitted = fit_meshes(predictor.body_model, pred.vertices, pred.mirrored)
        t_fit = time.perf_counter() - t0
        errors_mm = 1e3 * fit.mean_error.detach().cpu().numpy()
        log.info("%s fit: mean vertex distance %s mm (%.1f s)", kind.upper(),
                 ", ".join(f"{e:.1f}" for e in errors_mm), t_fit)
    show = args.show if fitted is not None else "raw"
    shown = fitted if show == "fit" else None  # None: the network's vertices

    renderer = MeshRenderer(width, height)
    colors = [person_color(k) for k in range(n)]
    t0 = time.perf_counter()
    mesh_img = render_meshes(renderer, image, pred, colors=colors, vertices=shown)
    t_render = time.perf_counter() - t0

    files: Dict[str, str] = {}
    person_files: List[Dict[str, str]] = [{} for _ in range(n)]
    pose_img = draw_poses(image, list(pred.poses_2d), joint_set, has_conf, colors if multi else None)
    files["pose2d"] = str(write_image(out_dir / "demo_pose2d.png", pose_img))
    files["mesh_image"] = str(write_image(out_dir / "demo_mesh.png", mesh_img))
    if show == "both":
        files["mesh_fit_image"] = str(write_image(out_dir / "demo_mesh_fit.png", render_meshes(
            renderer, image, pred, colors=colors, vertices=fitted)))
    from .rendering import intrinsics_of

    meshes = scene_meshes(pred, colors=colors, vertices=shown)
    for k, i in enumerate(keep):
        suffix = f"_{i}" if multi else ""
        person_files[k]["mesh"] = str(save_obj(pred.vertices[k], pred.faces_of(k), out_dir / f"demo_mesh{suffix}.obj"))
        if fit is not None:
            from .fitting import write_params

            assert fitted is not None  # fit_meshes returns both
            person_files[k]["mesh_fit"] = str(save_obj(fitted[k], pred.faces_of(k),
                                                       out_dir / f"demo_mesh_fit{suffix}.obj"))
            person_files[k]["params"] = write_params(out_dir / f"demo_{kind}{suffix}.npz", fit.select(k), kind)
        if multi:
            alone = renderer.render([meshes[k]], intrinsics_of(pred), background=image).image
            person_files[k]["mesh_image"] = str(write_image(out_dir / f"demo_mesh_{i}.png", alone))
    renderer_name = renderer.describe()
    renderer.close()

    image_id = _image_id(args.input_img)
    records = []
    for k in range(n):
        kp = np.asarray(people[k], dtype=np.float64)
        extra: Dict[str, Any] = {}
        if joint_set.name == "mano":
            extra["handedness"] = "left" if pred.mirrored[k] else "right"
        if pred.outside[k] > 0:
            extra["partly_outside"] = True
        records.append(keypoint_record(image_id, kp if kp.shape[1] == 3 else pred.poses_2d[k, :len(kp)], **extra))
    files["keypoints"] = str(write_keypoints(out_dir / "demo_keypoints.json", records))

    summary = {
        "body_model": predictor.describe_body(),
        "weights": str(predictor.weights),
        "epoch": predictor.epoch,
        "config": str(predictor.config_path) if predictor.config_path else None,
        "joint_set": joint_set.name,
        "input_pose": None if detecting else str(args.input_pose),
        "detector": detector_name,
        "image": args.input_img,
        "image_size": [width, height],
        "renderer": renderer_name,
        "camera_model": {"focal_px": pred.focal, "principal_px": list(pred.principal),
                         "crop_size": 500, "note": "weak perspective u = scale * X + translation; "
                                                    "original_cam_param (s, tx, ty) is for the 500 px crop_box"},
        "people": [_person_summary(pred, k, i, person_files[k], joint_set.name == "mano",
                                   None if fit is None else float(1e3 * fit.mean_error[k]))
                   for k, i in enumerate(keep)],
        "fit": None if fit is None else {"model": kind, "shown": show,
                                         "note": "parameters of the right-hand MANO for mirrored (left) hands"
                                         if kind == "mano" else "SMPL pose (72), shape (10), trans (3)"},
        "files": files,
        "timing_ms": {"load": 1e3 * predictor.load_seconds, "detect": 1e3 * t_detect,
                      "model_per_person": 1e3 * pred.timings["model"] / n,
                      "camera_fit_per_person": 1e3 * pred.timings["camera"] / n, "render": 1e3 * t_render,
                      "body_fit_per_person": 1e3 * t_fit / n},
    }
    write_json(out_dir / "demo_result.json", summary)
    log.info("timing: %smodel %.1f ms, camera fit %.2f ms per person; render %.1f ms (%s)",
             f"detect {1e3 * t_detect:.0f} ms, " if detecting else "", 1e3 * pred.timings["model"] / n,
             1e3 * pred.timings["camera"] / n, 1e3 * t_render, renderer_name)
    written = {Path(p).name for p in files.values()} | {Path(p).name for f in person_files for p in f.values()}
    log.info("wrote %s", ", ".join(sorted(written | {"demo_result.json"})) + f" to {out_dir}")
    return summary


def _image_id(image_path: Optional[str]) -> int:
    from .inputs import _image_id_of

    value = _image_id_of(image_path)
    return value if value is not None else 0


def _person_summary(pred, k: int, index: int, files: Dict[str, str], hand: bool = False,
                    fit_error_mm: Optional[float] = None) -> Dict[str, Any]:
    from ..camera import crop_box

    cam = pred.cameras[k]
    entry = {
        "index": index,
        "scale_px_per_m": cam.scale,
        "translation_px": cam.translation.tolist(),
        "fit_rms_px": cam.rms,
        "original_cam_param": pred.crop_params(k).tolist(),
        "crop_box": crop_box(pred.poses_2d[k, :, :2]).tolist(),
        "translation_m": pred.translations[k].tolist(),
        "lifted_joints_mm": np.round(pred.lifted_mm[k], 3).tolist(),
        "partly_outside": bool(pred.outside[k] > 0),
        "outside_fraction": round(float(pred.outside[k]), 3),
        "files": files,
    }
    if fit_error_mm is not None:
        entry["fit_mean_vertex_distance_mm"] = round(fit_error_mm, 3)
    if hand:
        entry["handedness"] = "left" if pred.mirrored[k] else "right"
    return entry


# ----------------------------------------------------------------------------------------------

def run(args: argparse.Namespace) -> Dict[str, Any]:
    """The demo for parsed arguments: a video, or one photo / pose file."""
    if args.input_video is not None:
        from .video import run_video

        return run_video(args)
    return run_photo(args)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``demo/run.py``, through the project's one guarded main
    (:func:`pose2mesh.cli.run_guarded`): 0 on success; a user error prints one line (its
    traceback with ``--debug``) and exits 2; Ctrl-C exits 130 with the files written so far
    complete; a bug propagates with its full traceback."""
    from ..cli import run_guarded, setup_console_logging

    args = parse_args(argv)
    setup_console_logging(args.debug)

    def go() -> int:
        try:
            run(args)
        except Pose2MeshError as err:
            msg = str(err)
            if type(err).__name__ == "BodyModelError" and "--body_model" not in msg:
                raise DemoError(msg.rstrip(".") + "; in the demo: --body_model synthetic uses the generated "
                                                  "synthetic body") from err
            raise
        return 0

    return run_guarded(go, args.debug, interrupted="interrupted: the files written so far are complete")
