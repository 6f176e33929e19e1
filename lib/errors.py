"""The project's one error root.

Every error that means "the input is wrong" (a file, a value, a flag) derives from
:class:`Pose2MeshError`. The entry points print such an error as one line (the traceback with
``--debug``); any other exception is a bug and prints its full traceback. Subclasses keep the
built-in base their callers already catch (``ValueError``, ``RuntimeError``) as a second base.
"""
from __future__ import annotations

__all__ = ["Pose2MeshError", "OutputError"]


class Pose2MeshError(Exception):
    """Bad input or an impossible request, explained in the message. Exit code 2 by default."""

    exit_code: int = 2


class OutputError(Pose2MeshError, OSError):
    """An output (checkpoint, run folder, result file) that cannot be written: the message names
    the file and why (disk full, permission, read-only)."""
