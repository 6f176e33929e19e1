"""The video demo: frames in, tracked and smoothed meshes rendered over every frame out.

``python demo/run.py --input_video clip.mp4 [--multi] [--smooth 1 | --no_smooth] [--save_obj]``

Two passes over the frames, so that the model runs batched over the whole video and the
smoothing can look both ways in time:

1. decode every frame, detect (:mod:`pose2mesh.detection`), give ids (:mod:`.tracking`);
   the keypoints are written as soon as this pass ends;
2. smooth each track's keypoints, run :class:`pose2mesh.inference.Predictor` once over every
   person of every frame (in chunks), fit the cameras; unless ``--no_fit``, fit SMPL / MANO
   parameters to each track's meshes frame by frame, each frame's fit started from the previous
   frame's (:mod:`.fitting`);
3. decode again, render each frame's meshes over it, encode ``demo_video.mp4``.

Ctrl-C during pass 1 stops detecting and carries on with the frames done; during pass 3 it
closes the video at the last frame written. Either way the video plays and
``demo_keypoints.json`` is complete for the frames it covers.

Outputs (``--output_dir``, default ``demo/result/``): ``demo_video.mp4`` (every input frame at
its rate), ``demo_keypoints.json`` (COCO results format, ``image_id`` = frame index from 0,
``track_id`` on every entry), ``demo_track_{id}.npz`` per track (vertices per frame, frames,
cameras, keypoints), unless ``--no_fit`` per track its parameter sequence
(``demo_track_{id}_smpl.npz`` / ``_mano.npz``), ``demo_track_{id}.bvh`` and ``demo_track_{id}.glb``,
``tracks/track_{id}/frame_{i}.obj`` with ``--save_obj``, and
``demo_result.json`` with frames per second per stage.
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

from .common import DemoError

__all__ = ["FrameSource", "VideoWriter", "run_video", "IMAGE_SUFFIXES"]

log = logging.getLogger("pose2mesh.demo")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
DEFAULT_FPS = 30.0


class FrameSource:
    """The frames of a video file (what OpenCV reads) or of a folder of images, as RGB uint8.

    Iterating yields ``(index, frame)`` from 0 and can be repeated (the file is reopened).

    Raises:
        DemoError: missing path, a file OpenCV cannot open, a video or folder without frames.
    """

    def __init__(self, path: str, fps: Optional[float] = None, max_frames: int = 0):
        import cv2

        self.path = Path(path)
        self.max_frames = int(max_frames or 0)
        if not self.path.exists():
            raise DemoError(f"video {self.path} does not exist")
        if self.path.is_dir():
            self.files: Optional[List[Path]] = sorted(p for p in self.path.iterdir()
                                                      if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self.files:
                raise DemoError(f"video folder {self.path} has no frames (no {', '.join(IMAGE_SUFFIXES)} files)")
            from ..vis import read_image

            first = read_image(self.files[0])
            self.fps = float(fps or DEFAULT_FPS)
            self.count: Optional[int] = len(self.files)
        else:
            self.files = None
            cap = cv2.VideoCapture(str(self.path))
            try:
                if not cap.isOpened():
                    raise DemoError(f"video {self.path} cannot be read (not a video OpenCV decodes)")
                ok, frame = cap.read()
                if not ok or frame is None:
                    raise DemoError(f"video {self.path} has no frames (empty or not a video OpenCV decodes)")
                rate = cap.get(cv2.CAP_PROP_FPS)
                self.fps = float(fps or (rate if rate and np.isfinite(rate) and 0 < rate < 1000 else DEFAULT_FPS))
                count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
                self.count = count if count > 0 else None
            finally:
                cap.release()
            first = np.ascontiguousarray(frame[:, :, ::-1])
        self.height, self.width = first.shape[:2]
        if self.max_frames and self.count:
            self.count = min(self.count, self.max_frames)
        elif self.max_frames:
            self.count = None

    def __iter__(self) -> Iterator[Tuple[int, np.ndarray]]:
        import cv2

        if self.files is not None:
            from ..vis import read_image

            for i, p in enumerate(self.files):
                if self.max_frames and i >= self.max_frames:
                    return
                frame = read_image(p)
                if frame.shape[:2] != (self.height, self.width):
                    raise DemoError(f"frame {p} is {frame.shape[1]} x {frame.shape[0]}, the first frame "
                                    f"{self.width} x {self.height}: the frames of a video share one size")
                yield i, frame
            return
        cap = cv2.VideoCapture(str(self.path))
        try:
            i = 0
            while not self.max_frames or i < self.max_frames:
                ok, frame = cap.read()
                if not ok or frame is None:
                    return
                yield i, np.ascontiguousarray(frame[:, :, ::-1])
                i += 1
        finally:
            cap.release()


class VideoWriter:
    """An MP4 file (MPEG-4 part 2, ``mp4v``) written frame by frame from RGB uint8 frames."""

    def __init__(self, path: Path, fps: float, size: Tuple[int, int]):
        import cv2

        self.path = Path(path)
        self.frames = 0
        fourcc = cv2.VideoWriter_fourcc(*"mp4v")  # type: ignore[attr-defined]  # in cv2, missing from its stubs
        self._writer: Optional[cv2.VideoWriter] = cv2.VideoWriter(str(self.path), fourcc, float(fps),
                                                                  (int(size[0]), int(size[1])))
        if not self._writer.isOpened():
            raise DemoError(f"cannot write the video {self.path} (OpenCV has no MP4 encoder here)")

    def write(self, rgb: np.ndarray) -> None:
        if self._writer is None:
            raise ValueError(f"the video {self.path} is closed")
        self._writer.write(np.ascontiguousarray(rgb[:, :, ::-1]))
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


def _progress(iterable, total: Optional[int], desc: str):
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="frame", leave=False, dynamic_ncols=True)


def _timed_frames(source: FrameSource, times: Dict[str, float], limit: Optional[int] = None):
    """The source's ``(index, frame)`` pairs (at most ``limit``), each one's decoding time added
    to ``times['decode']``."""
    it = iter(source)
    count = 0
    while limit is None or count < limit:
        t0 = time.perf_counter()
        try:
            item = next(it)
        except StopIteration:
            return
        times["decode"] += time.perf_counter() - t0
        count += 1
        yield item


def run_video(args: argparse.Namespace, detector=None) -> Dict[str, Any]:
    """The video demo for parsed arguments (``--input_video``); returns the summary also written
    as ``demo_result.json``. ``detector`` replaces the built-in one (an object with
    ``detect(image, multi) -> list of Detection``, ``name`` and ``close()``)."""
    from ..detection import make_detector
    from ..render import MeshRenderer
    from ..vis import person_color, save_obj
    from .cli import check_detectable
    from .outputs import keypoint_record, output_folder, write_json, write_keypoints
    from .prediction import build_predictor
    from .rendering import render_meshes
    from .tracking import FrameTracker, smooth_tracks

    source = FrameSource(args.input_video, args.fps, args.max_frames)
    check_detectable(args.joint_set)
    if detector is None:
        from ..detection import _import_mediapipe

        _import_mediapipe()  # the extra missing: say so before loading anything
    predictor = build_predictor(args)
    joint_set = predictor.joint_set
    check_detectable(joint_set.name)
    hands = joint_set.name == "mano"
    own_detector = detector is None
    if own_detector:
        detector = make_detector(joint_set.name, video=not args.multi)
    out_dir = output_folder(args.output_dir)
    log.info("video: %s, %d x %d at %.2f fps%s; detector: %s", source.path, source.width, source.height, source.fps,
             f", {source.count} frames" if source.count else "", detector.name)

    times = {k: 0.0 for k in ("decode", "detect", "track", "smooth", "model", "camera", "fit", "render", "encode")}
    interrupted = None
    tracker = FrameTracker(hands=hands)
    frames_done = 0
    t_start = time.perf_counter()
    # ---- pass 1: decode, detect, track
    try:
        bar = _progress(_timed_frames(source, times), source.count, "detect")
        for i, frame in bar:
            t1 = time.perf_counter()
            found = detector.detect(frame, multi=args.multi)
            t2 = time.perf_counter()
            tracker.update(i, found)
            times["detect"] += t2 - t1
            times["track"] += time.perf_counter() - t2
            frames_done = i + 1
        bar.close()
    except KeyboardInterrupt:
        interrupted = "detection"
        log.warning("interrupted: carrying on with the %d frames detected", frames_done)
    finally:
        if own_detector:
            detector.close()
    if frames_done == 0:
        raise DemoError(f"video {source.path}: no frame was decoded")

    # tracks seen in very few frames of a longer video are false detections (flags, posters)
    min_frames = args.min_track_frames if frames_done >= 2 * args.min_track_frames else 1
    short = {tid for tid, members in tracker.tracks().items() if len(members) < min_frames}
    if short:
        tracker.people = [p for p in tracker.people if p.track_id not in short]
        log.info("dropped %d track%s seen in fewer than %d frames", len(short), "" if len(short) == 1 else "s",
                 min_frames)

    def keypoint_records(smoothed: bool) -> List[Dict[str, Any]]:
        recs = []
        for p in tracker.people:
            extra: Dict[str, Any] = {"track_id": p.track_id}
            if hands:
                extra["handedness"] = "left" if p.left else "right"
            if p.outside > 0:
                extra["partly_outside"] = True
            kp = p.smoothed if smoothed and p.smoothed is not None else p.keypoints
            if smoothed:
                extra["keypoints_detected"] = [round(float(v), 3) for v in p.keypoints.reshape(-1)]
            recs.append(keypoint_record(p.frame, kp, p.score, **extra))
        return recs

    files: Dict[str, str] = {
        "keypoints": str(write_keypoints(out_dir / "demo_keypoints.json", keypoint_records(False)))}
    tracks = tracker.tracks()
    people = tracker.people
    log.info("%d frames, %d detections, %d tracks", frames_done, len(people), len(tracks))

    # ---- smoothing and the model, batched over every person of every frame
    t0 = time.perf_counter()
    smooth_tracks(tracks, source.fps, args.smooth)
    times["smooth"] = time.perf_counter() - t0
    keypoints_smoothed: List[np.ndarray] = []
    for p in people:
        assert p.smoothed is not None  # smooth_tracks sets every tracked person's
        keypoints_smoothed.append(p.smoothed)
    files["keypoints"] = str(write_keypoints(out_dir / "demo_keypoints.json", keypoint_records(True)))
    pred = None
    if people:
        pred = predictor.predict(keypoints_smoothed, image_size=(source.width, source.height),
                                 mirrored=[p.left for p in people] if hands else None)
        times["model"], times["camera"] = pred.timings["model"], pred.timings["camera"]
    else:
        log.warning("warning: nobody was found in any frame of %s: the video is written without meshes", source.path)
    by_frame: Dict[int, List[int]] = {}
    for k, p in enumerate(people):
        by_frame.setdefault(p.frame, []).append(k)

    track_files: Dict[int, str] = {}
    fit_files: Dict[int, Dict[str, Any]] = {}
    kind = "mano" if hands else "smpl"
    fitted_all: Optional[np.ndarray] = None
    if pred is not None:
        fitted_all = pred.vertices.copy()
        row_of = {id(p): k for k, p in enumerate(people)}
        for tid, members in tracks.items():
            idx = [row_of[id(m)] for m in members]
            path = out_dir / f"demo_track_{tid}.npz"
            np.savez_compressed(
                path, vertices=pred.vertices[idx].astype(np.float32), frames=np.array([people[k].frame for k in idx]),
                faces=pred.faces_of(idx[0]), translations=pred.translations[idx],
                camera_scale=np.array([pred.cameras[k].scale for k in idx]),
                camera_translation=np.array([pred.cameras[k].translation for k in idx]),
                keypoints=np.stack([keypoints_smoothed[k] for k in idx]),
                keypoints_detected=np.stack([people[k].keypoints for k in idx]),
                joints3d=pred.joints3d[idx], fps=source.fps, left=bool(people[idx[0]].left))
            track_files[tid] = str(path)
            if not args.no_fit:
                from ..export import write_bvh, write_glb
                from .fitting import fit_track, write_params

                t0 = time.perf_counter()
                seq, fitted = fit_track(predictor.body_model, pred.vertices[idx], left=bool(people[idx[0]].left))
                times["fit"] += time.perf_counter() - t0
                fitted_all[idx] = fitted
                fit_files[tid] = {
                    "params": write_params(out_dir / f"demo_track_{tid}_{kind}.npz", seq, kind),
                    "bvh": str(write_bvh(out_dir / f"demo_track_{tid}.bvh", seq, predictor.body_model, source.fps)),
                    "glb": str(write_glb(out_dir / f"demo_track_{tid}.glb", seq, predictor.body_model, source.fps)),
                    "mean_vertex_distance_mm": round(float(1e3 * seq.mean_error.mean()), 3)}
            if args.save_obj:
                folder = out_dir / "tracks" / f"track_{tid}"
                folder.mkdir(parents=True, exist_ok=True)
                for k in idx:
                    save_obj(pred.vertices[k], pred.faces_of(k), folder / f"frame_{people[k].frame:06d}.obj")

    show = "raw" if args.no_fit else args.show
    shown = fitted_all if show in ("fit", "both") else None

    # ---- pass 2: decode again, render, encode
    renderer = MeshRenderer(source.width, source.height)
    writer = VideoWriter(out_dir / "demo_video.mp4", source.fps, (source.width, source.height))
    files["video"] = str(writer.path)
    try:
        for i, frame in _progress(_timed_frames(source, times, frames_done), frames_done, "render"):
            t1 = time.perf_counter()
            rows = by_frame.get(i, [])
            if rows:
                assert pred is not None  # people in this frame: the model ran
                colors = [person_color(people[k].track_id) for k in rows]
                frame = render_meshes(renderer, frame, pred, indices=rows, colors=colors, vertices=shown)
            t2 = time.perf_counter()
            writer.write(frame)
            times["render"] += t2 - t1
            times["encode"] += time.perf_counter() - t2
    except KeyboardInterrupt:
        interrupted = interrupted or "rendering"
        log.warning("interrupted: the video ends at frame %d", writer.frames)
    finally:
        writer.close()
        renderer_name = renderer.describe()
        renderer.close()
    t_total = time.perf_counter() - t_start

    n_people = max(len(people), 1)
    fps_table = {
        "decode": 2 * frames_done / times["decode"] if times["decode"] else None,
        "detect": frames_done / times["detect"] if times["detect"] else None,
        "track": frames_done / times["track"] if times["track"] else None,
        "smooth": frames_done / times["smooth"] if times["smooth"] else None,
        "model": frames_done / times["model"] if times["model"] else None,
        "camera": frames_done / times["camera"] if times["camera"] else None,
        "fit": frames_done / times["fit"] if times["fit"] else None,
        "render": writer.frames / times["render"] if times["render"] else None,
        "encode": writer.frames / times["encode"] if times["encode"] else None,
        "end_to_end": writer.frames / t_total if t_total else None,
    }
    summary = {
        "body_model": predictor.describe_body(),
        "weights": str(predictor.weights),
        "epoch": predictor.epoch,
        "joint_set": joint_set.name,
        "video": str(source.path),
        "image_size": [source.width, source.height],
        "fps": source.fps,
        "frames": frames_done,
        "frames_written": writer.frames,
        "interrupted": interrupted,
        "detector": detector.name,
        "renderer": renderer_name,
        "smoothing_strength": args.smooth,
        "fit": None if args.no_fit else {"model": kind, "shown": show, "started_from": "the previous frame's fit"},
        "tracks": {str(tid): {"frames": [members[0].frame, members[-1].frame],
                              "detections": len(members), "file": track_files.get(tid),
                              "fit": fit_files.get(tid)}
                   for tid, members in tracks.items()},
        "partly_outside": int(sum(p.outside > 0 for p in people)),
        "frames_per_second": {k: (round(v, 2) if v is not None else None) for k, v in fps_table.items()},
        "seconds": {k: round(v, 3) for k, v in times.items()},
        "model_people_per_second": round(n_people / times["model"], 1) if times["model"] else None,
        "files": files,
    }
    write_json(out_dir / "demo_result.json", summary)
    log.info("frames per second: %s", ", ".join(f"{k} {v:.1f}" for k, v in fps_table.items() if v is not None))
    log.info("wrote demo_video.mp4 (%d frames), demo_keypoints.json, %d track file%s, demo_result.json to %s",
             writer.frames, len(track_files), "" if len(track_files) == 1 else "s", out_dir)
    if interrupted:
        raise KeyboardInterrupt
    return summary
