"""What every stage of the demo shares: its error class and the original demo's constants."""
from __future__ import annotations

from ..errors import Pose2MeshError
from ..inference import POSE_THRESHOLD

__all__ = ["DemoError", "POSE_THRESHOLD", "DET_SCORE_THRESHOLD", "MIN_JOINT_DIFF", "DETECTABLE_JOINT_SETS"]

# the original run.py's multi-person filters (tuned for HigherHRNet outputs)
DET_SCORE_THRESHOLD = 1.5  # a person is kept when its confidences sum to at least this
MIN_JOINT_DIFF = 20.0      # pixels: closer (mean over shared valid joints) is a duplicate

# joint sets the built-in detector feeds: COCO body keypoints, hand landmarks
DETECTABLE_JOINT_SETS = ("coco", "mano")


class DemoError(Pose2MeshError):
    """A user error of the demo: reported as one line, exit status 2."""
