"""Video stage between the 2D detector and the model: stable person ids and smooth keypoints.

Pure NumPy (SciPy for the assignment); arrays in, arrays out; no torch.

- :class:`OneEuroFilter`: the 1€ filter (Casiez, Roussel, Vogel, CHI 2012) over an array of any
  shape, one frame at a time. Missing values (NaN, or zero confidence) pass through and leave
  the filter's state as it was.
- :func:`smooth_track`: offline smoothing of one person's whole track ``(T, J, 3)``
  (x, y, confidence): a forward 1€ pass, then a backward 1€ pass over its output, in
  coordinates divided by the person's size, so the defaults hold for any image resolution and
  distance to the camera.
- :class:`Tracker`: frame-by-frame association of detections (``(J, 3)`` keypoints in pixels)
  to integer track ids: box overlap and an OKS-like keypoint similarity against each track's
  constant-velocity prediction, Hungarian assignment, new ids for unmatched detections, tracks
  ended after ``max_age`` missed frames.

Example::

    tracker = Tracker(max_age=15)
    ids = [tracker.update(people) for people in frames]         # people: list of (J, 3) arrays
    track = np.stack([...])                                     # (T, J, 3) of one id, NaN where absent
    smooth = smooth_track(track, fps=30.0)                      # same shape; confidence untouched
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Union

import numpy as np

from .errors import Pose2MeshError

__all__ = ["TrackingError", "OneEuroFilter", "smooth_track", "Tracker", "box_iou",
           "SMOOTH_MIN_CUTOFF", "SMOOTH_BETA", "SMOOTH_D_CUTOFF"]

# smooth_track's defaults at strength 1: cutoff frequencies in Hz, speeds in person sizes
# (keypoint-box diagonals) per second. Tuned on bench/bench_smoothing.py's synthetic motion with
# i.i.d. Human3.6M-style 2D errors (3 seeds x 4 sequences x 90 frames at 30 fps): the lowest 2D
# position error among the settings that cut the 2D acceleration error at least 20-fold.
SMOOTH_MIN_CUTOFF = 1.5
SMOOTH_BETA = 2.0
SMOOTH_D_CUTOFF = 1.0


class TrackingError(Pose2MeshError, ValueError):
    """Bad input to the tracking / smoothing stage (shapes, rates, parameters)."""


def _positive(name: str, value: float, allow_zero: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TrackingError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise TrackingError(f"{name} must be {'non-negative' if allow_zero else 'positive'} and finite, got {value!r}")
    return v


def box_iou(a: Union[Sequence[float], np.ndarray], b: Union[Sequence[float], np.ndarray]) -> float:
    """Intersection over union of two ``[x, y, w, h]`` boxes (0 when both are empty)."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


def _smoothing_factor(dt: np.ndarray, cutoff: Union[float, np.ndarray]) -> np.ndarray:
    """Exponential smoothing factor of a first-order low-pass at ``cutoff`` Hz over ``dt`` s:
    ``alpha = r / (r + 1)``, ``r = 2 pi cutoff dt``."""
    r = 2.0 * np.pi * cutoff * dt
    return r / (r + 1.0)


# ----------------------------------------------------------------------------------------------
# the 1€ filter

class OneEuroFilter:
    """The 1€ filter, element-wise over an array of fixed shape.

    Per element, with ``dt`` the time since that element was last filtered:
    ``dx = a(dt, d_cutoff) (x - x_prev) / dt + (1 - a(dt, d_cutoff)) dx_prev`` (a smoothed speed of
    the input, ``x_prev`` the previous input, as the authors' reference code),
    ``cutoff = min_cutoff + beta |dx|``, ``x_hat = a(dt, cutoff) x + (1 - a(dt, cutoff)) x_hat_prev``,
    with ``a(dt, fc) = r / (r + 1)``, ``r = 2 pi fc dt``. On a ramp of speed ``v`` the lag settles
    at ``v / (2 pi (min_cutoff + beta v))``. Slow motion is smoothed with the
    ``min_cutoff`` low-pass (less jitter); fast motion raises the cutoff (less lag).

    Args:
        fps: frame rate, Hz: the frame interval when :meth:`filter` gets no time stamp.
        min_cutoff: cutoff frequency at rest, Hz (lower: smoother, more lag).
        beta: cutoff increase per unit of speed (units of ``x`` per second); 0 is a plain
            first-order low-pass.
        d_cutoff: cutoff frequency of the speed estimate, Hz.

    Missing values: an element that is NaN, or whose confidence is 0 (``confidence`` of
    :meth:`filter`), is returned as given and its state is left untouched; when it comes back,
    its ``dt`` spans the gap, so after a long gap the filter follows the new value at once.
    """

    def __init__(self, fps: float = 30.0, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0):
        self.fps = _positive("fps", fps)
        self.min_cutoff = _positive("min_cutoff", min_cutoff)
        self.beta = _positive("beta", beta, allow_zero=True)
        self.d_cutoff = _positive("d_cutoff", d_cutoff)
        self.reset()

    def reset(self) -> None:
        """Forget every state; the next frame is passed through and starts the filter."""
        self.shape: Optional[tuple] = None
        self._x: Optional[np.ndarray] = None      # last filtered value (NaN: never seen)
        self._raw: Optional[np.ndarray] = None    # last input value (the speed is taken on inputs)
        self._dx: Optional[np.ndarray] = None     # last filtered speed
        self._t: Optional[np.ndarray] = None      # time each element was last filtered
        self._t_last: Optional[float] = None      # time of the last call

    def __repr__(self) -> str:
        return (f"OneEuroFilter(fps={self.fps:g}, min_cutoff={self.min_cutoff:g}, beta={self.beta:g}, "
                f"d_cutoff={self.d_cutoff:g})")

    def filter(self, x, t: Optional[float] = None, confidence=None) -> np.ndarray:
        """Filter one frame.

        Args:
            x: the frame's values, any shape, the same at every call (e.g. ``(J, 2)``).
            t: its time in seconds, increasing; default the last time plus ``1 / fps`` (0 first).
            confidence: optional, of ``x``'s shape or of ``x.shape[:-1]`` (one per row, e.g. per
                joint); elements with confidence <= 0 are missing.

        Returns:
            the filtered frame, float64, ``x``'s shape (missing elements as given).
        """
        x = np.array(x, dtype=np.float64)
        if self.shape is None:
            self.shape = x.shape
        elif x.shape != self.shape:
            raise TrackingError(f"OneEuroFilter: frame of shape {x.shape}, but the filter runs on {self.shape}; "
                                f"call reset() to start on a new shape")
        t = self._time(t)
        missing = ~np.isfinite(x)
        if confidence is not None:
            missing |= self._confidence_mask(confidence, x.shape)
        if self._x is None:
            self._x = np.full(x.shape, np.nan)
            self._raw = np.full(x.shape, np.nan)
            self._dx = np.zeros(x.shape)
            self._t = np.full(x.shape, -np.inf)
        assert self._raw is not None and self._dx is not None and self._t is not None
        seen = np.isfinite(self._x)
        first = ~missing & ~seen
        update = ~missing & seen
        out = x.copy()
        if update.any():
            dt = t - self._t[update]
            x_new = x[update]
            a_d = _smoothing_factor(dt, self.d_cutoff)
            dx = a_d * (x_new - self._raw[update]) / dt + (1.0 - a_d) * self._dx[update]
            a = _smoothing_factor(dt, self.min_cutoff + self.beta * np.abs(dx))
            filtered = a * x_new + (1.0 - a) * self._x[update]
            out[update] = filtered
            self._x[update] = filtered
            self._raw[update] = x_new
            self._dx[update] = dx
            self._t[update] = t
        if first.any():
            self._x[first] = x[first]
            self._raw[first] = x[first]
            self._dx[first] = 0.0
            self._t[first] = t
        self._t_last = t
        return out

    def _time(self, t: Optional[float]) -> float:
        if t is None:
            return 0.0 if self._t_last is None else self._t_last + 1.0 / self.fps
        try:
            t = float(t)
        except (TypeError, ValueError):
            raise TrackingError(f"OneEuroFilter: time stamp must be a number of seconds, got {t!r}") from None
        if not math.isfinite(t):
            raise TrackingError(f"OneEuroFilter: time stamp must be finite, got {t}")
        if self._t_last is not None and t <= self._t_last:
            raise TrackingError(f"OneEuroFilter: time stamps must increase, got {t} after {self._t_last}")
        return t

    @staticmethod
    def _confidence_mask(confidence, shape: tuple) -> np.ndarray:
        conf = np.asarray(confidence, dtype=np.float64)
        if conf.shape == shape:
            pass
        elif conf.shape == shape[:-1]:
            conf = np.broadcast_to(conf[..., None], shape)
        else:
            raise TrackingError(f"OneEuroFilter: confidence of shape {conf.shape} fits neither the frame {shape} "
                                f"nor its rows {shape[:-1]}")
        return ~(conf > 0)  # NaN confidence counts as missing


# ----------------------------------------------------------------------------------------------
# offline smoothing of one track

def _as_track(keypoints) -> np.ndarray:
    try:
        kp = np.array(keypoints, dtype=np.float64)
    except (TypeError, ValueError):
        raise TrackingError("smooth_track: keypoints must be a numeric T x J x 3 array") from None
    if kp.ndim != 3 or kp.shape[-1] not in (2, 3) or kp.shape[1] == 0:
        raise TrackingError(f"smooth_track: expected T x J x 3 (x, y, confidence) keypoints, got shape {kp.shape}")
    return kp


def _track_scale(xy: np.ndarray, valid: np.ndarray) -> float:
    """The person's size: median over frames of the diagonal of the box around its valid joints."""
    diagonals = []
    for pts, ok in zip(xy, valid):
        pts = pts[ok]
        if len(pts) >= 2:
            diagonals.append(float(np.linalg.norm(pts.max(axis=0) - pts.min(axis=0))))
    size = float(np.median(diagonals)) if diagonals else 0.0
    return size if size > 0 else 1.0


def smooth_track(keypoints, fps: float, strength: float = 1.0, *, min_cutoff: float = SMOOTH_MIN_CUTOFF,
                 beta: float = SMOOTH_BETA, d_cutoff: float = SMOOTH_D_CUTOFF, backward: bool = True) -> np.ndarray:
    """Smooth one person's 2D keypoints over a whole video (offline).

    A forward-backward 1€ pass: the forward pass's output is filtered again from the last frame
    to the first, which cancels most of the forward pass's lag (measured in
    ``bench/bench_smoothing.py``, where it beats a single forward pass). The coordinates are
    divided by the person's size (the median diagonal of its keypoint box) while filtering, so
    speeds are in person sizes per second and the defaults do not depend on the resolution or
    on the person's distance.

    Args:
        keypoints: ``(T, J, 3)`` x, y (pixels) and confidence per frame and joint (``(T, J, 2)``:
            all confident). Joints with confidence <= 0 or NaN coordinates are missing: they are
            returned as given and do not affect their neighbours in time.
        fps: the video's frame rate (Hz).
        strength: how strongly to smooth: the filter's cutoff frequency
            ``min_cutoff + beta |speed|`` is divided by ``strength`` (both terms). 1 is the tuned
            default, 2 halves the bandwidth (smoother, more lag on fast motion), 0.5 doubles it,
            and 0 turns smoothing off (the input comes back unchanged).
        min_cutoff, beta, d_cutoff: the 1€ parameters at strength 1 (see :class:`OneEuroFilter`;
            Hz, Hz per person size per second, Hz).
        backward: False keeps the forward pass only (causal, as an online filter would be).

    Returns:
        ``(T, J, 3)`` (or ``(T, J, 2)``) float64: smoothed coordinates, confidences unchanged.
    """
    kp = _as_track(keypoints)
    fps = _positive("smooth_track: fps", fps)
    strength = _positive("smooth_track: strength", strength, allow_zero=True)
    if strength == 0 or len(kp) < 2:
        return kp
    xy = kp[..., :2]
    valid = np.isfinite(xy).all(axis=-1)
    if kp.shape[-1] == 3:
        valid &= kp[..., 2] > 0
    scale = _track_scale(xy, valid)
    params = dict(fps=fps, min_cutoff=min_cutoff / strength, beta=beta / strength, d_cutoff=d_cutoff)
    normalized = xy / scale
    forward = OneEuroFilter(**params)
    passed = np.stack([forward.filter(frame, confidence=ok) for frame, ok in zip(normalized, valid)])
    if backward:
        reverse = OneEuroFilter(**params)
        passed = np.stack([reverse.filter(frame, confidence=ok)
                           for frame, ok in zip(passed[::-1], valid[::-1])])[::-1]
    out = kp.copy()
    out[..., :2] = np.where(valid[..., None], passed * scale, xy)
    return out


# ----------------------------------------------------------------------------------------------
# tracking

class _Track:
    __slots__ = ("track_id", "keypoints", "valid", "velocity", "missed", "hits")

    def __init__(self, track_id: int, keypoints: np.ndarray, valid: np.ndarray):
        self.track_id = track_id
        self.keypoints = keypoints        # J x 2, last matched position
        self.valid = valid                # J, joints seen at least once
        self.velocity = np.zeros(2)       # pixels per frame, of the mean of the shared joints
        self.missed = 0                   # frames since the last match
        self.hits = 1                     # detections matched so far


class _InstanceOrClassMethod:
    """``Tracker.run(frames, **params)`` on a fresh tracker, ``tracker.run(frames)`` on this one."""

    def __init__(self, fn):
        self.fn = fn
        self.__doc__ = fn.__doc__

    def __get__(self, obj, cls):
        if obj is not None:
            return self.fn.__get__(obj, cls)

        def run_fresh(frames_of_detections, **params):
            return self.fn(cls(**params), frames_of_detections)

        run_fresh.__doc__ = self.fn.__doc__
        return run_fresh


class Tracker:
    """Associate each frame's detections to stable integer track ids.

    Every live track is predicted into the new frame with its constant velocity (the mean motion
    of its joints, decaying by ``velocity_decay`` per missed frame). Its similarity to a detection
    is ``iou_weight * IoU + (1 - iou_weight) * OKS``: the IoU of the two keypoint boxes, and an
    OKS-like score ``mean_j exp(-d_j^2 / (2 s^2 k^2))`` over the joints valid in both (``d_j``
    pixel distance, ``s^2`` the mean box area, ``k = keypoint_sigma``). The Hungarian assignment
    (``scipy.optimize.linear_sum_assignment``) maximizes the total similarity; pairs below
    ``min_similarity`` are not matched. An unmatched detection starts a new track; a track
    unmatched for more than ``max_age`` consecutive frames ends (a person who comes back later
    gets a new id). Ids start at 0 and increase, never reused.

    Args:
        max_age: missed frames a track survives (a person absent for ``max_age`` frames keeps
            the id; for ``max_age + 1`` gets a new one).
        min_similarity: the least similarity of a match, in [0, 1].
        iou_weight: weight of the box IoU against the keypoint similarity, in [0, 1].
        keypoint_sigma: ``k`` of the keypoint similarity, a fraction of the person's size.
        confidence_threshold: joints with confidence <= this are not used.
        velocity_decay: factor in [0, 1] applied to the velocity per predicted frame.

    Example::

        ids_per_frame = Tracker.run(frames)                # frames: list of lists of (J, 3) arrays
        tracker = Tracker(max_age=10)
        ids = tracker.update(detections)                   # one frame
    """

    def __init__(self, max_age: int = 30, min_similarity: float = 0.1, iou_weight: float = 0.5,
                 keypoint_sigma: float = 0.1, confidence_threshold: float = 0.0, velocity_decay: float = 0.9):
        if isinstance(max_age, bool) or not isinstance(max_age, (int, np.integer)) or max_age < 0:
            raise TrackingError(f"Tracker: max_age must be a non-negative integer, got {max_age!r}")
        self.max_age = int(max_age)
        self.min_similarity = self._unit("min_similarity", min_similarity)
        self.iou_weight = self._unit("iou_weight", iou_weight)
        self.keypoint_sigma = _positive("Tracker: keypoint_sigma", keypoint_sigma)
        self.confidence_threshold = float(confidence_threshold)
        self.velocity_decay = self._unit("velocity_decay", velocity_decay)
        self.tracks: List[_Track] = []
        self.num_joints: Optional[int] = None
        self.next_id = 0
        self.frame = 0

    @staticmethod
    def _unit(name: str, value: float) -> float:
        v = _positive(f"Tracker: {name}", value, allow_zero=True)
        if v > 1:
            raise TrackingError(f"Tracker: {name} must lie in [0, 1], got {value!r}")
        return v

    def __repr__(self) -> str:
        return (f"Tracker(max_age={self.max_age}, min_similarity={self.min_similarity:g}, "
                f"iou_weight={self.iou_weight:g}, keypoint_sigma={self.keypoint_sigma:g}, "
                f"live tracks={len(self.tracks)}, next id={self.next_id})")

    # ---- input -----------------------------------------------------------------------------
    def _parse(self, detections) -> List[np.ndarray]:
        if isinstance(detections, np.ndarray):
            if detections.ndim != 3:
                raise TrackingError(f"Tracker.update: expected a list of J x 3 keypoint arrays (or an N x J x 3 "
                                    f"array), got an array of shape {detections.shape}")
            detections = list(detections)
        if not isinstance(detections, (list, tuple)):
            raise TrackingError(f"Tracker.update: expected a list of J x 3 keypoint arrays, got "
                                f"{type(detections).__name__}")
        parsed = []
        for i, det in enumerate(detections):
            try:
                arr = np.array(det, dtype=np.float64)
            except (TypeError, ValueError):
                raise TrackingError(f"Tracker.update: detection {i} is not a numeric J x 3 array") from None
            if arr.ndim != 2 or arr.shape[1] not in (2, 3) or arr.shape[0] == 0:
                raise TrackingError(f"Tracker.update: detection {i} has shape {arr.shape}, expected J x 3 "
                                    f"(x, y, confidence)")
            if self.num_joints is None:
                self.num_joints = arr.shape[0]
            elif arr.shape[0] != self.num_joints:
                raise TrackingError(f"Tracker.update: detection {i} has {arr.shape[0]} joints, the tracker has seen "
                                    f"{self.num_joints}-joint detections")
            if arr.shape[1] == 2:
                arr = np.concatenate([arr, np.ones((len(arr), 1))], axis=1)
            parsed.append(arr)
        return parsed

    # ---- similarity ------------------------------------------------------------------------
    @staticmethod
    def _box(xy: np.ndarray, valid: np.ndarray) -> Optional[np.ndarray]:
        """``[x, y, w, h]`` around the valid keypoints (float64), None without any."""
        pts = xy[valid]
        if len(pts) == 0:
            return None
        lo = pts.min(axis=0)
        return np.concatenate([lo, pts.max(axis=0) - lo])

    def _similarity(self, xy_t, valid_t, xy_d, valid_d) -> float:
        box_t, box_d = self._box(xy_t, valid_t), self._box(xy_d, valid_d)
        if box_t is None or box_d is None:
            return 0.0
        area_t, area_d = box_t[2] * box_t[3], box_d[2] * box_d[3]
        iou = box_iou(box_t, box_d)
        both = valid_t & valid_d
        if both.any():
            # the squared scale: the mean box area, at least the squared mean box diagonal / 100
            diag = 0.5 * (np.linalg.norm(box_t[2:]) + np.linalg.norm(box_d[2:]))
            s2 = max(0.5 * (area_t + area_d), (diag / 10.0) ** 2, 1e-6)
            d2 = ((xy_t[both] - xy_d[both]) ** 2).sum(axis=1)
            oks = float(np.exp(-d2 / (2.0 * s2 * self.keypoint_sigma ** 2)).mean())
        else:
            oks = 0.0
        return self.iou_weight * float(iou) + (1.0 - self.iou_weight) * oks

    def _predict(self, track: _Track) -> np.ndarray:
        """The track's keypoints extrapolated to the current frame."""
        steps = track.missed + 1
        travel = sum(self.velocity_decay ** k for k in range(steps))
        return track.keypoints + track.velocity * travel

    # ---- the step --------------------------------------------------------------------------
    def update(self, detections: Sequence[np.ndarray]) -> List[int]:
        """Assign the detections of the next frame to tracks.

        Args:
            detections: the frame's people, each ``(J, 3)`` (x, y in pixels, confidence) or
                ``(J, 2)``; the same ``J`` for the whole video. An empty list is a frame
                without people.

        Returns:
            one track id per detection, in the same order. A detection with no valid joint
            (all confidences <= ``confidence_threshold`` or NaN) gets -1 and is not tracked.
        """
        from scipy.optimize import linear_sum_assignment

        dets = self._parse(detections)
        xy = [d[:, :2] for d in dets]
        valid = [np.isfinite(d[:, :2]).all(axis=1) & (d[:, 2] > self.confidence_threshold) for d in dets]
        usable = [i for i, v in enumerate(valid) if v.any()]
        ids = [-1] * len(dets)

        matched_tracks = set()
        if self.tracks and usable:
            predicted = [self._predict(t) for t in self.tracks]
            sim = np.array([[self._similarity(predicted[ti], t.valid, xy[di], valid[di]) for di in usable]
                            for ti, t in enumerate(self.tracks)])
            rows, cols = linear_sum_assignment(-sim)
            for ti, ci in zip(rows, cols):
                if sim[ti, ci] < self.min_similarity or sim[ti, ci] <= 0:
                    continue
                di = usable[ci]
                track = self.tracks[ti]
                self._advance(track, xy[di], valid[di])
                ids[di] = track.track_id
                matched_tracks.add(ti)
        for di in usable:
            if ids[di] == -1:
                track = _Track(self.next_id, np.where(valid[di][:, None], xy[di], 0.0), valid[di].copy())
                self.next_id += 1
                self.tracks.append(track)
                matched_tracks.add(len(self.tracks) - 1)
                ids[di] = track.track_id
        survivors = []
        for ti, track in enumerate(self.tracks):
            if ti not in matched_tracks:
                track.missed += 1
            if track.missed <= self.max_age:
                survivors.append(track)
        self.tracks = survivors
        self.frame += 1
        return ids

    def _advance(self, track: _Track, xy: np.ndarray, valid: np.ndarray) -> None:
        """Move a track to its matched detection and update its velocity."""
        both = track.valid & valid
        if both.any():
            gap = track.missed + 1
            motion = (xy[both] - track.keypoints[both]).mean(axis=0) / gap
            track.velocity = motion if track.hits == 1 else 0.5 * track.velocity + 0.5 * motion
        else:
            track.velocity = np.zeros(2)
        track.keypoints = np.where(valid[:, None], xy, track.keypoints)
        track.valid = track.valid | valid
        track.missed = 0
        track.hits += 1

    @_InstanceOrClassMethod
    def run(self, frames_of_detections: Sequence[Sequence[np.ndarray]]) -> List[List[int]]:
        """Track a whole video: :meth:`update` on every frame in order.

        ``Tracker.run(frames, **params)`` tracks with a fresh ``Tracker(**params)``;
        ``tracker.run(frames)`` continues this tracker.

        Returns:
            per frame, the ids of its detections in their order.
        """
        if isinstance(frames_of_detections, np.ndarray) and frames_of_detections.ndim == 4:
            frames_of_detections = list(frames_of_detections)
        if not isinstance(frames_of_detections, (list, tuple)):
            raise TrackingError(f"Tracker.run: expected a list of frames (each a list of J x 3 arrays), got "
                                f"{type(frames_of_detections).__name__}")
        return [self.update(frame) for frame in frames_of_detections]
