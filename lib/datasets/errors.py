"""The error every dataset loader raises for a missing or malformed annotation file.

A :class:`DatasetError` names the file, and the field when one is missing or malformed, so
that a user with a broken download sees what to fetch again instead of a ``KeyError`` deep in a
data-loader worker.
"""
from __future__ import annotations

from ..errors import Pose2MeshError

__all__ = ["DatasetError"]


class DatasetError(Pose2MeshError, ValueError):
    """A dataset file that is missing, unreadable or lacks a field the loader needs."""
