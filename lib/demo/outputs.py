"""The demo's files: keypoints in the COCO results format, summaries, meshes.

Every JSON file is written to a temporary name and renamed, so an interrupted run never leaves a
half-written one (an older complete file stays until the new one is whole).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .common import DemoError

__all__ = ["output_folder", "write_json", "keypoint_record", "write_keypoints"]


def output_folder(path: Optional[str]) -> Path:
    """``--output_dir``, else ``demo/result/``; created when missing."""
    from ..paths import repo_root

    out = Path(path) if path else repo_root() / "demo" / "result"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DemoError(f"cannot create the output folder {out} ({err.strerror})") from None
    return out


def write_json(path: Path, data: Any, indent: Optional[int] = 1) -> Path:
    """Write JSON atomically (temporary file, then rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=indent)
        f.write("\n")
    os.replace(tmp, path)
    return path


def keypoint_record(image_id: int, keypoints: np.ndarray, score: Optional[float] = None,
                    **extra: Any) -> Dict[str, Any]:
    """One entry of the COCO results format: ``{"image_id", "category_id": 1, "keypoints":
    [x, y, score] * K, "score"}`` (pixels of the input image), plus ``extra`` fields."""
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.shape[1] == 2:
        kp = np.concatenate([kp, np.ones((len(kp), 1))], 1)
    rec: Dict[str, Any] = {"image_id": int(image_id), "category_id": 1,
                           "keypoints": [round(float(v), 3) for v in kp[:, :3].reshape(-1)],
                           "score": round(float(kp[:, 2].mean() if score is None else score), 4)}
    rec.update(extra)
    return rec


def write_keypoints(path: Path, records: Sequence[Dict[str, Any]]) -> Path:
    """``demo_keypoints.json``: a list of :func:`keypoint_record` entries (``--input_pose`` reads it)."""
    return write_json(path, list(records), indent=None)


def round_list(a: np.ndarray, digits: int = 4) -> List:
    return np.round(np.asarray(a, dtype=np.float64), digits).tolist()
