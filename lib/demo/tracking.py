"""The demo's video stage between detection and the model: track ids, then smooth each track.

Over :mod:`pose2mesh.tracking` (``Tracker`` for ids, ``smooth_track`` for the forward-backward
1€ filter). A frame's detections come in as ``(K, 3)`` keypoints; tracks go out as arrays over
the frames where the person was seen.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..tracking import Tracker, smooth_track

__all__ = ["TrackedPerson", "FrameTracker", "smooth_tracks"]


@dataclass
class TrackedPerson:
    """One detection in one frame, with its track id."""

    frame: int
    track_id: int
    keypoints: np.ndarray          # K x 3 as detected (pixels, confidence)
    score: float
    left: bool = False
    outside: float = 0.0
    smoothed: Optional[np.ndarray] = None  # K x 3 after smoothing (set by smooth_tracks)


class FrameTracker:
    """Frame-by-frame ids for a video's detections (a thin layer over :class:`Tracker`).

    Hands of different sides are tracked apart (a left hand never continues a right hand's track).
    """

    def __init__(self, max_age: int = 30, hands: bool = False):
        import scipy.optimize  # noqa: F401  (the assignment solver: imported here, not in the first frame)

        self._trackers: Dict[bool, Tracker] = {}
        self.max_age = max_age
        self.hands = hands
        self.people: List[TrackedPerson] = []

    def update(self, frame: int, detections: Sequence) -> List[TrackedPerson]:
        """Give ids to one frame's detections (objects with ``keypoints``, ``score``, ``left``,
        ``outside``, as :class:`pose2mesh.detection.Detection`)."""
        out: List[TrackedPerson] = []
        for side in (False, True):
            group = [d for d in detections if bool(getattr(d, "left", False)) == side]
            if not group and side not in self._trackers:
                continue
            tracker = self._trackers.setdefault(side, Tracker(max_age=self.max_age))
            ids = tracker.update([np.asarray(d.keypoints, dtype=np.float64) for d in group])
            for d, tid in zip(group, ids):
                if tid < 0:
                    continue
                # hands: one id space for both sides, even ids for right hands, odd for left
                track_id = 2 * tid + int(side) if self.hands else tid
                out.append(TrackedPerson(frame, track_id, np.asarray(d.keypoints, dtype=np.float64),
                                         float(d.score), bool(side), float(getattr(d, "outside", 0.0))))
        self.people.extend(out)
        return out

    def tracks(self) -> Dict[int, List[TrackedPerson]]:
        """The people by track id, in frame order."""
        out: Dict[int, List[TrackedPerson]] = {}
        for p in self.people:
            out.setdefault(p.track_id, []).append(p)
        return out


def smooth_tracks(tracks: Dict[int, List[TrackedPerson]], fps: float, strength: float) -> None:
    """Set every person's ``smoothed`` keypoints: each track's frames (gaps as missing values)
    through :func:`pose2mesh.tracking.smooth_track`; ``strength`` 0 copies them unchanged."""
    for people in tracks.values():
        first, last = people[0].frame, people[-1].frame
        k = people[0].keypoints.shape[0]
        series = np.full((last - first + 1, k, 3), np.nan)
        series[..., 2] = 0.0
        for p in people:
            series[p.frame - first] = p.keypoints
        smooth = smooth_track(series, fps=fps, strength=strength) if strength > 0 else series
        for p in people:
            p.smoothed = smooth[p.frame - first].copy()
