"""Reading the annotation files: JSON with clear errors, fields by name, COCO-style indexes."""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterable, List, Optional, Tuple

import numpy as np

from .errors import DatasetError

__all__ = ["read_json", "require", "as_array", "coco_index"]


def read_json(path: os.PathLike, what: str = "annotation file", hint: str = "") -> Any:
    """Read a JSON file; a missing or malformed file raises :class:`DatasetError` naming it.

    Args:
        path: the file.
        what: what the file is, for the message (``"3DPW annotation file"``).
        hint: where the file comes from (appended to the message of a missing file).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        msg = f"{what} not found: {path}"
        raise DatasetError(msg + (f" ({hint})" if hint else ""))
    try:
        with open(path, "r") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{what} {path} is not valid JSON: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{what} {path} cannot be read: {exc}") from None


def require(record: Any, field: str, path: os.PathLike, where: str = "") -> Any:
    """``record[field]``; a missing field (or a record that is not a mapping) raises
    :class:`DatasetError` naming the file, the field and the record it was looked up in."""
    if isinstance(record, dict) and field in record:
        return record[field]
    place = f" in {where}" if where else ""
    if not isinstance(record, dict):
        raise DatasetError(f"{os.fspath(path)}: expected an object with field '{field}'{place}, "
                           f"got {type(record).__name__}")
    raise DatasetError(f"{os.fspath(path)}: missing field '{field}'{place}")


def as_array(value: Any, field: str, path: os.PathLike, shape: Optional[Iterable[int]] = None,
             where: str = "", dtype=np.float32) -> np.ndarray:
    """A numeric array read from a JSON field, reshaped to ``shape`` (-1 allowed); anything else
    (strings, ragged lists, the wrong number of values) raises :class:`DatasetError`."""
    place = f" in {where}" if where else ""
    try:
        arr = np.asarray(value, dtype=dtype)
        if shape is not None:
            arr = arr.reshape(tuple(shape))
    except (TypeError, ValueError):
        want = f" of shape {tuple(shape)}" if shape is not None else ""
        raise DatasetError(f"{os.fspath(path)}: field '{field}'{place} is not a numeric array{want}") from None
    return arr


def coco_index(data: Any, path: os.PathLike) -> Tuple[Dict[int, dict], List[dict]]:
    """Images by id and the annotation list of a COCO-format file (``images``, ``annotations``).

    Raises:
        DatasetError: a missing list, an image without ``id`` or an annotation without
            ``image_id``, or an annotation whose image is not in the file.
    """
    images = require(data, "images", path)
    anns = require(data, "annotations", path)
    if not isinstance(images, list) or not isinstance(anns, list):
        raise DatasetError(f"{os.fspath(path)}: 'images' and 'annotations' must be lists")
    by_id = {}
    for i, img in enumerate(images):
        by_id[require(img, "id", path, f"images[{i}]")] = img
    for i, ann in enumerate(anns):
        image_id = require(ann, "image_id", path, f"annotations[{i}]")
        if image_id not in by_id:
            raise DatasetError(f"{os.fspath(path)}: annotations[{i}] refers to image_id {image_id}, "
                               "which is not in 'images'")
    return by_id, anns
