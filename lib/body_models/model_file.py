"""Reading SMPL / MANO model files without chumpy, and without trusting them.

The official model files are Python 2 pickles written by chumpy. They hold numpy arrays, scipy
sparse matrices and chumpy ``Ch`` objects (``chumpy.ch.Ch``, and ``chumpy.reordering.Select``
in the MANO files). chumpy does not import on Python 3.11 with NumPy 2, and ``pickle.load``
executes whatever callable a file names, so :func:`load_model_file` uses a restricted
unpickler:

- the numpy globals that rebuild arrays (``_reconstruct``, ``ndarray``, ``dtype``, ``scalar``),
  ``_codecs.encode`` (bytes in protocol-2 pickles), the builtin ``set``/``frozenset``;
- scipy's ``csc_matrix`` / ``csr_matrix`` and chumpy's ``Ch`` / ``Select``, which are replaced
  by inert placeholders that only record their pickled state; after loading, the placeholders
  are converted to ``np.ndarray`` (chumpy) or ``scipy.sparse`` matrices built from their
  ``data``/``indices``/``indptr`` arrays;
- any other global is refused with :class:`BodyModelError` naming it, before it is called.

``.npz`` files with the same keys are read with ``allow_pickle=False``.
"""
from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any, Dict, Iterable, Union

import numpy as np
import scipy.sparse

from ..errors import Pose2MeshError

__all__ = ["BodyModelError", "load_model_file", "missing_file_error", "find_model_file"]

PathLike = Union[str, os.PathLike]


class BodyModelError(Pose2MeshError, ValueError):
    """A body model file is missing, truncated, or holds something other than arrays."""


def missing_file_error(what: str, expected: PathLike, accepted: Iterable[str], source: str) -> BodyModelError:
    """One message naming the expected path, the accepted file names and where they come from."""
    names = ", ".join(accepted)
    return BodyModelError(
        f"{what} not found: expected {expected} (accepted file names: {names}). {source}")


class _Placeholder:
    """Stands in for a chumpy or scipy object during unpickling: it only keeps its state."""

    qualname = ""

    def __init__(self, *args: Any) -> None:
        self.args = args
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _placeholder(qualname: str) -> type:
    return type("Placeholder_" + qualname.replace(".", "_"), (_Placeholder,), {"qualname": qualname})


_CH = _placeholder("chumpy.ch.Ch")
_SELECT = _placeholder("chumpy.reordering.Select")
_CSC = _placeholder("scipy.sparse.csc_matrix")
_CSR = _placeholder("scipy.sparse.csr_matrix")


def _numpy_global(name: str) -> Any:
    try:
        from numpy._core import multiarray  # NumPy >= 2
    except ImportError:  # pragma: no cover - NumPy 1.x
        from numpy.core import multiarray  # type: ignore[no-redef]
    return getattr(multiarray, name)


def _allowed_globals() -> Dict[tuple, Any]:
    import codecs

    allowed: Dict[tuple, Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,
        ("__builtin__", "set"): set,
        ("builtins", "set"): set,
        ("__builtin__", "frozenset"): frozenset,
        ("builtins", "frozenset"): frozenset,
        ("chumpy.ch", "Ch"): _CH,
        ("chumpy.reordering", "Select"): _SELECT,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = _numpy_global("_reconstruct")
        allowed[(module, "scalar")] = _numpy_global("scalar")
    for module in ("scipy.sparse.csc", "scipy.sparse._csc"):
        allowed[(module, "csc_matrix")] = _CSC
    for module in ("scipy.sparse.csr", "scipy.sparse._csr"):
        allowed[(module, "csr_matrix")] = _CSR
    return allowed


_ALLOWED = _allowed_globals()


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, path: PathLike) -> None:
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise BodyModelError(
                f"{self._path}: refusing to load a model file that references the global "
                f"'{module}.{name}'; a SMPL/MANO model file holds only numpy arrays, scipy sparse "
                "matrices and chumpy arrays") from None

    def persistent_load(self, pid: Any) -> Any:
        raise BodyModelError(f"{self._path}: refusing a pickle with persistent ids ({pid!r})")


def _state_dict(obj: _Placeholder, path: PathLike) -> dict:
    state = obj.state
    # Python 2 pickles of objects with __slots__ give (dict, slots); keep the dict part
    if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], (dict, type(None))):
        state = dict(state[0] or {}, **(state[1] or {}))
    if not isinstance(state, dict):
        raise BodyModelError(f"{path}: a {obj.qualname} object without a readable state")
    return state


def _to_plain(obj: Any, path: PathLike, depth: int = 0) -> Any:
    """Replace placeholders (recursively) by numpy arrays and scipy sparse matrices."""
    if depth > 50:
        raise BodyModelError(f"{path}: model file nested too deeply")
    if isinstance(obj, _Placeholder):
        state = _state_dict(obj, path)
        if isinstance(obj, (_CSC, _CSR)):
            try:
                shape: Any = state.get("_shape", state.get("shape"))  # file content: checked by tuple(int(...))
                matrix_type = scipy.sparse.csc_matrix if isinstance(obj, _CSC) else scipy.sparse.csr_matrix
                return matrix_type((np.asarray(state["data"]), np.asarray(state["indices"]),
                                    np.asarray(state["indptr"])), shape=tuple(int(s) for s in shape))
            except (KeyError, TypeError, ValueError) as exc:
                raise BodyModelError(f"{path}: unreadable sparse matrix ({exc})") from None
        if isinstance(obj, _SELECT):
            try:
                source = np.asarray(_to_plain(state["a"], path, depth + 1))
                result = source.ravel()[np.asarray(state["idxs"]).ravel()]
                if state.get("preferred_shape") is not None:
                    result = result.reshape(state["preferred_shape"])
                return np.array(result)
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                raise BodyModelError(f"{path}: unreadable chumpy Select ({exc})") from None
        if "x" not in state:
            raise BodyModelError(f"{path}: a chumpy array without its values ('x')")
        return np.array(_to_plain(state["x"], path, depth + 1))
    if isinstance(obj, dict):
        return {key: _to_plain(value, path, depth + 1) for key, value in obj.items()}
    if isinstance(obj, list):
        return [_to_plain(value, path, depth + 1) for value in obj]
    if isinstance(obj, tuple):
        return tuple(_to_plain(value, path, depth + 1) for value in obj)
    return obj


def _load_pickle(path: Path) -> Dict[str, Any]:
    with open(path, "rb") as f:
        try:
            data = _RestrictedUnpickler(f, path).load()
        except BodyModelError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
                IndexError, KeyError, UnicodeDecodeError, MemoryError) as exc:
            raise BodyModelError(
                f"{path}: not a readable model pickle (truncated or corrupt?): "
                f"{type(exc).__name__}: {exc}") from None
    if not isinstance(data, dict):
        raise BodyModelError(f"{path}: a model file must hold a dict, found {type(data).__name__}")
    return _to_plain(data, path)


def _load_npz(path: Path) -> Dict[str, Any]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            out = {}
            for key in npz.files:
                value = npz[key]
                out[key] = value.item() if value.ndim == 0 else value
            return out
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise BodyModelError(f"{path}: not a readable .npz model file: {type(exc).__name__}: {exc}") from None


def load_model_file(path: PathLike) -> Dict[str, Any]:
    """Read an official SMPL / MANO model file (``.pkl`` or ``.npz``) into plain arrays.

    Args:
        path: the model file.
    Returns:
        dict of the file's keys; chumpy arrays become ``np.ndarray``, ``J_regressor`` may stay a
        ``scipy.sparse`` matrix.
    Raises:
        BodyModelError: the file is missing, truncated, or references anything besides the
            numpy / scipy / chumpy array objects such files hold.
    """
    path = Path(path)
    if not path.is_file():
        raise BodyModelError(f"model file not found: {path}")
    if path.suffix == ".npz":
        return _load_npz(path)
    return _load_pickle(path)


def find_model_file(directory: PathLike, accepted: Iterable[str], what: str, source: str) -> Path:
    """The first of the ``accepted`` file names present in ``directory``.

    Raises:
        BodyModelError: none is there; the message names the expected path, the accepted names
            and ``source`` (where the files come from).
    """
    directory = Path(directory)
    accepted = list(accepted)
    for name in accepted:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    raise missing_file_error(what, directory / accepted[0], accepted, source)
