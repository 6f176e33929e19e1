"""Reading the annotation files: JSON with clear errors, fields by name, COCO-style indexes."""
from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from .errors import DatasetError

__all__ = ["read_json", "read_json_object", "require", "as_array", "coco_index", "read_detections", "stack_rows",
           "read_smpl_param", "read_intrinsics"]

PathLike = Union[str, os.PathLike]  # a file name: anything os.fspath takes


def read_json(path: PathLike, what: str = "annotation file", hint: str = "") -> Any:
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


def read_json_object(path: PathLike, what: str, hint: str, mapping: str) -> dict:
    """:func:`read_json` of a file that must hold a JSON object; anything else raises
    :class:`DatasetError` ("expected an object mapping <mapping>")."""
    data = read_json(path, what, hint)
    if not isinstance(data, dict):
        raise DatasetError(f"{os.fspath(path)}: expected an object mapping {mapping}")
    return data


def require(record: Any, field: str, path: PathLike, where: str = "") -> Any:
    """``record[field]``; a missing field (or a record that is not a mapping) raises
    :class:`DatasetError` naming the file, the field and the record it was looked up in."""
    if isinstance(record, dict) and field in record:
        return record[field]
    place = f" in {where}" if where else ""
    if not isinstance(record, dict):
        raise DatasetError(f"{os.fspath(path)}: expected an object with field '{field}'{place}, "
                           f"got {type(record).__name__}")
    raise DatasetError(f"{os.fspath(path)}: missing field '{field}'{place}")


def as_array(value: Any, field: str, path: PathLike, shape: Optional[Iterable[int]] = None,
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


def coco_index(data: Any, path: PathLike) -> Tuple[Dict[int, dict], List[dict]]:
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

SMPL_PARAM_SHAPES = {"pose": (72,), "shape": (10,), "trans": (3,)}


def read_smpl_param(param: Any, path: PathLike, where: str,
                    fields: Sequence[str] = ("pose", "shape", "trans")) -> Dict[str, np.ndarray]:
    """The SMPL parameters ``fields`` of a record ('pose' (72,), 'shape' (10,), 'trans' (3,)),
    with :func:`require` and :func:`as_array`'s errors."""
    return {k: as_array(require(param, k, path, where), k, path, SMPL_PARAM_SHAPES[k], where) for k in fields}


def read_intrinsics(cam: Any, path: PathLike, where: str) -> Dict[str, np.ndarray]:
    """'focal' and 'princpt' (2,) of a ``cam_param`` record."""
    return {k: as_array(require(cam, k, path, where), k, path, (2,)) for k in ("focal", "princpt")}


def read_detections(path: PathLike, what: str, hint: str, key: str, keys: Iterable[Any], num_joints: int,
                    fields: str = "image_id, annotation_id, keypoints",
                    convert: Callable[[Any], Any] = lambda k: k) -> np.ndarray:
    """2D detections of a JSON list of ``{<key>, keypoints}`` records, one row per entry of ``keys``.

    Args:
        path, what, hint: the file and its description, as for :func:`read_json`.
        key: the record field that identifies a sample (``"image_id"``, ``"annotation_id"``).
        keys: the samples' identifiers, in dataset order.
        num_joints: the joints of a record's ``keypoints`` (``num_joints x C``, the first two
            columns kept).
        fields: the record's fields, for the message of a file that is not a list.
        convert: applied to the record's and the samples' identifiers before matching.
    Returns:
        ``(len(keys), num_joints, 2)`` float32.
    Raises:
        DatasetError: a file that is not a list, a malformed record, or a sample without one.
    """
    data = read_json(path, what, hint)
    if not isinstance(data, list):
        raise DatasetError(f"{os.fspath(path)}: expected a list of {{{fields}}} records")
    by_key = {}
    for i, item in enumerate(data):
        where = f"record {i}"
        kps = as_array(require(item, "keypoints", path, where), "keypoints", path, (num_joints, -1), where)[:, :2]
        by_key[convert(require(item, key, path, where))] = kps
    keys = list(keys)
    det = np.zeros((len(keys), num_joints, 2), dtype=np.float32)
    for i, k in enumerate(keys):
        k = convert(k)
        if k not in by_key:
            raise DatasetError(f"{os.fspath(path)}: no detection for {key} {k}")
        det[i] = by_key[k]
    return det


def stack_rows(rows: Sequence[dict], keys: Iterable[str],
               float_shapes: Iterable[Tuple[str, Tuple[int, ...]]]) -> Dict[str, np.ndarray]:
    """Per-sample records as per-field arrays: ``keys`` as they are (``np.array``), the fields of
    ``float_shapes`` (name, per-sample shape) stacked as float32 (``(0, *shape)`` with no rows)."""
    db: Dict[str, np.ndarray] = {k: np.array([r[k] for r in rows]) for k in keys}
    for k, shape in float_shapes:
        db[k] = np.stack([r[k] for r in rows]).astype(np.float32) if rows else np.zeros((0,) + tuple(shape), np.float32)
    return db
