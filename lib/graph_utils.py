"""The graphs of MeshNet: the mesh coarsened into a binary tree of levels, the joint graph on top.

:func:`build_coarse_graphs` returns what the original release's function of the same name
returned for the same inputs (released weights index vertices in its order):

- ``graph_Adj``: ``levels + 1`` adjacencies (``scipy.sparse.csr_matrix``, float64). Levels
  ``0 .. levels - 1`` are the mesh and its coarsenings, padded with isolated fake vertices and
  permuted so that vertices ``2i`` and ``2i + 1`` merge into vertex ``i`` of the next level;
  the last is the joint graph (skeleton + flip pairs + self loops) in joint order.
- ``graph_L``: their normalized Laplacians, the mesh levels rescaled as ``L / (2 lmax) - I``
  (:func:`pose2mesh.coarsening.rescale_laplacian`), the joint graph's *not* rescaled.
- ``graph_perm``: ``levels + 1`` vertex orders (lists of ints, finest first; see
  :func:`pose2mesh.coarsening.binary_tree_permutations`). The last one is the coarsest *mesh*
  level's, although that level's graph is replaced by the joint graph.
- ``graph_perm_reverse``: (V_0,) int64 array with ``graph_perm_reverse[v]`` the padded position
  of mesh vertex ``v``; ``output[:, graph_perm_reverse[:num_vertices]]`` un-permutes a model output.

The result is cached on disk under ``paths.cache_dir() / 'graphs'``, keyed by a hash of the
inputs and :data:`GRAPH_CODE_VERSION`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import scipy.sparse as sp
import torch

from . import paths
from .coarsening import coarsen, inverse_permutation, largest_eigenvalue, normalized_laplacian, rescale_laplacian

__all__ = [
    "GRAPH_CODE_VERSION",
    "mesh_adjacency",
    "joint_adjacency",
    "build_coarse_graphs",
    "sparse_python_to_torch",
    "coarse_vertices",
    "coarse_faces",
]

logger = logging.getLogger(__name__)

# Bump when anything changes what build_coarse_graphs returns: it invalidates cached graphs.
GRAPH_CODE_VERSION = "pose2mesh-graphs-1"

Pairs = Sequence[Sequence[int]]
GraphTuple = Tuple[List[sp.csr_matrix], List[sp.csr_matrix], List[List[int]], np.ndarray]


def mesh_adjacency(faces: np.ndarray, num_vertices: Optional[int] = None) -> sp.csr_matrix:
    """Vertex adjacency of a triangle mesh, weighted as the original's ``build_graph``.

    Each face ``(a, b, c)`` contributes the directed edges ``a->b``, ``b->c``, ``a->c``. An
    edge seen ``k > 1`` times in the same direction weighs ``k - 1``, otherwise ``k``; the matrix
    is then symmetrized with the elementwise maximum. On a manifold mesh every edge weighs 1.

    Args:
        faces: (F, 3) vertex indices.
        num_vertices: defaults to ``faces.max() + 1`` (the original's choice).

    Returns:
        (V, V) symmetric CSR, float64.
    """
    faces = _check_faces(faces)
    n = int(faces.max()) + 1 if num_vertices is None else int(num_vertices)
    src = faces[:, [0, 1, 0]].ravel()
    dst = faces[:, [1, 2, 2]].ravel()
    counts = sp.csr_matrix((np.ones(src.size), (src, dst)), shape=(n, n))
    counts.sum_duplicates()
    counts.data = np.where(counts.data > 1, counts.data - 1, counts.data)
    adj = sp.csr_matrix(counts.maximum(counts.T))
    adj.eliminate_zeros()
    adj.sort_indices()
    return adj


def joint_adjacency(num_joints: int, skeleton: Pairs, flip_pairs: Pairs) -> np.ndarray:
    """The joint graph: bones and flip pairs as undirected edges, plus self loops.

    Args:
        num_joints: J.
        skeleton: bones ``(i, j)``.
        flip_pairs: extra edges ``(i, j)`` (left/right pairs; finger links for the hand).

    Returns:
        (J, J) float64 with ones on edges and on the diagonal.
    """
    adj = np.zeros((num_joints, num_joints))
    for i, j in list(skeleton) + list(flip_pairs):
        if not (0 <= i < num_joints and 0 <= j < num_joints):
            raise ValueError(f"joint pair ({i}, {j}) is out of range for {num_joints} joints")
        adj[i, j] = adj[j, i] = 1
    return adj + np.eye(num_joints)


def build_coarse_graphs(mesh_face: np.ndarray, joint_num: int, skeleton: Pairs, flip_pairs: Pairs,
                        levels: int = 9, *, cache: bool = True,
                        cache_dir: Optional[Union[str, os.PathLike]] = None) -> GraphTuple:
    """Build (or load from the cache) the graphs of MeshNet; see the module docstring.

    Args:
        mesh_face: (F, 3) mesh faces.
        joint_num: number of joints J (the original's parameter name; ``num_joints`` elsewhere).
        skeleton: bones of the joint set.
        flip_pairs: extra joint-graph edges (the joint set's ``graph_pairs``).
        levels: number of mesh coarsenings (9 for SMPL, 6 for MANO in the original).
        cache: read and write the on-disk cache.
        cache_dir: cache folder (default ``paths.cache_dir() / 'graphs'``).

    Returns:
        ``(graph_Adj, graph_L, graph_perm, graph_perm_reverse)``: fresh objects on every call
        (callers may modify them).
    """
    faces = _check_faces(mesh_face)
    if int(levels) < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    levels = int(levels)
    num_joints = int(joint_num)
    skeleton = [tuple(int(k) for k in pair) for pair in skeleton]
    flip_pairs = [tuple(int(k) for k in pair) for pair in flip_pairs]

    path = None
    if cache:
        folder = Path(cache_dir) if cache_dir is not None else paths.cache_dir() / "graphs"
        path = folder / f"{_cache_key(faces, num_joints, skeleton, flip_pairs, levels)}.npz"
        cached = _load_graphs(path, levels)
        if cached is not None:
            return cached

    result = _build(faces, num_joints, skeleton, flip_pairs, levels)
    if path is not None:
        try:
            _save_graphs(path, result)
        except OSError as err:  # a read-only cache is not fatal
            logger.warning("could not cache the graphs in %s: %s", path, err)
    return result


def _build(faces: np.ndarray, num_joints: int, skeleton: Pairs, flip_pairs: Pairs, levels: int) -> GraphTuple:
    joint_adj = sp.csr_matrix(joint_adjacency(num_joints, skeleton, flip_pairs))
    joint_adj.eliminate_zeros()
    graph_adj, graph_lap, graph_perm = coarsen(mesh_adjacency(faces), levels)
    assert graph_perm is not None  # levels >= 1
    graph_adj[-1] = joint_adj
    graph_lap[-1] = normalized_laplacian(joint_adj)  # the joint graph is not rescaled
    for i in range(levels):
        graph_lap[i] = rescale_laplacian(graph_lap[i], largest_eigenvalue(graph_lap[i]))
    return graph_adj, graph_lap, graph_perm, inverse_permutation(graph_perm[0])


def _check_faces(faces) -> np.ndarray:
    faces = np.asarray(faces)
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.shape[0] == 0:
        raise ValueError(f"mesh faces must be an (F, 3) array with F > 0, got shape {faces.shape}")
    if faces.dtype.kind not in "iu":
        if faces.dtype.kind != "f" or not np.all(np.isfinite(faces)) or np.any(faces != np.round(faces)):
            raise ValueError(f"mesh faces must hold integer vertex indices, got dtype {faces.dtype}")
    faces = faces.astype(np.int64)
    if faces.min() < 0:
        raise ValueError("mesh faces hold a negative vertex index")
    return faces


# ----------------------------------------------------------------------------------------------
# Disk cache
# ----------------------------------------------------------------------------------------------

def _cache_key(faces: np.ndarray, num_joints: int, skeleton, flip_pairs, levels: int) -> str:
    h = hashlib.sha256()
    h.update(GRAPH_CODE_VERSION.encode())
    h.update(json.dumps({"faces_shape": list(faces.shape), "joint_num": num_joints, "skeleton": skeleton,
                         "flip_pairs": flip_pairs, "levels": levels}).encode())
    h.update(np.ascontiguousarray(faces, dtype="<i8").tobytes())
    return h.hexdigest()


def _save_graphs(path: Path, graphs: GraphTuple) -> None:
    adj, lap, perm, perm_reverse = graphs
    arrays = {"version": np.array(GRAPH_CODE_VERSION), "num_levels": np.array(len(adj)),
              "graph_perm_reverse": np.asarray(perm_reverse, dtype=np.int64)}
    for i, p in enumerate(perm):
        arrays[f"graph_perm_{i}"] = np.asarray(p, dtype=np.int64)
    for prefix, mats in (("A", adj), ("L", lap)):
        for i, m in enumerate(mats):
            arrays[f"{prefix}_{i}_data"] = m.data
            arrays[f"{prefix}_{i}_indices"] = m.indices
            arrays[f"{prefix}_{i}_indptr"] = m.indptr
            arrays[f"{prefix}_{i}_shape"] = np.asarray(m.shape, dtype=np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]  # mypy matches **arrays against allow_pickle
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_graphs(path: Path, levels: int) -> Optional[GraphTuple]:
    """The cached graphs, or None when the file is missing, unreadable or inconsistent."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["version"]) != GRAPH_CODE_VERSION or int(z["num_levels"]) != levels + 1:
                raise ValueError("cache file from another version")
            num = levels + 1

            def csr(prefix: str, i: int) -> sp.csr_matrix:
                shape = tuple(int(s) for s in z[f"{prefix}_{i}_shape"])
                m = sp.csr_matrix((z[f"{prefix}_{i}_data"], z[f"{prefix}_{i}_indices"], z[f"{prefix}_{i}_indptr"]),
                                  shape=shape)
                m.check_format(full_check=False)
                return m

            adj = [csr("A", i) for i in range(num)]
            lap = [csr("L", i) for i in range(num)]
            perm = [z[f"graph_perm_{i}"].tolist() for i in range(num)]
            perm_reverse = np.array(z["graph_perm_reverse"], dtype=np.int64)
        for i in range(levels):
            if adj[i].shape != (len(perm[i]), len(perm[i])) or lap[i].shape != adj[i].shape:
                raise ValueError("inconsistent level sizes")
        if not np.array_equal(np.sort(perm_reverse), np.arange(len(perm[0]))):
            raise ValueError("graph_perm_reverse is not a permutation")
        return adj, lap, perm, perm_reverse
    except Exception as err:  # noqa: BLE001 (any unreadable cache file is rebuilt, never fatal)
        logger.warning("ignoring unreadable graph cache %s (%s); rebuilding", path, err)
        return None


# ----------------------------------------------------------------------------------------------
# Helpers for the model and for visualisation
# ----------------------------------------------------------------------------------------------

def sparse_python_to_torch(sp_python: sp.spmatrix) -> torch.Tensor:
    """A scipy sparse matrix as a float32 torch sparse COO tensor (coalesced).

    Args:
        sp_python: (N, M) any scipy sparse matrix.

    Returns:
        (N, M) ``torch.sparse_coo_tensor``, float32.
    """
    coo = sp.coo_matrix(sp_python)
    indices = torch.from_numpy(np.vstack((coo.row, coo.col)).astype(np.int64))
    values = torch.from_numpy(coo.data.astype(np.float32))
    return torch.sparse_coo_tensor(indices, values, size=coo.shape, check_invariants=False).coalesce()


def coarse_vertices(vertices: np.ndarray, graph_perm: Sequence[Sequence[int]]) -> List[np.ndarray]:
    """Vertex positions of every mesh level (for visualisation): merged vertices are averaged.

    Args:
        vertices: (V, 3) mesh vertices in the mesh's own order.
        graph_perm: the permutations returned by :func:`build_coarse_graphs`.

    Returns:
        one (V_i, 3) array per level, finest first, in each level's padded order; fake
        vertices (and coarse vertices made of fakes only) are NaN.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    perm0 = np.asarray(graph_perm[0], dtype=np.int64)
    if vertices.ndim != 2 or perm0.size < vertices.shape[0]:
        raise ValueError(f"expected (V, D) vertices with V <= {perm0.size}, got {vertices.shape}")
    level = np.full((perm0.size, vertices.shape[1]), np.nan)
    real = perm0 < vertices.shape[0]
    level[real] = vertices[perm0[real]]
    out = [level]
    for _ in range(1, len(graph_perm)):
        pairs = level.reshape(-1, 2, level.shape[1])
        valid = ~np.isnan(pairs[..., :1])
        num = valid.sum(axis=1)
        with np.errstate(invalid="ignore"):
            level = np.where(valid, pairs, 0.0).sum(axis=1) / num
        level[num[:, 0] == 0] = np.nan
        out.append(level)
    return out


def coarse_faces(faces: np.ndarray, graph_perm: Sequence[Sequence[int]]) -> List[np.ndarray]:
    """Triangles of every mesh level (for visualisation), in each level's padded vertex order.

    A face of level ``i + 1`` is a face of level ``i`` with its vertices mapped to their
    parents (``k -> k // 2``); faces that collapse to an edge or a point are dropped, and
    duplicates (in any vertex order) kept once.

    Args:
        faces: (F, 3) faces of the mesh in its own vertex order.
        graph_perm: the permutations returned by :func:`build_coarse_graphs`.

    Returns:
        one (F_i, 3) int64 array per level, finest first.
    """
    faces = _check_faces(faces)
    position = inverse_permutation(graph_perm[0])
    level = position[faces]
    out = [level]
    for _ in range(1, len(graph_perm)):
        level = level // 2
        distinct = (level[:, 0] != level[:, 1]) & (level[:, 1] != level[:, 2]) & (level[:, 0] != level[:, 2])
        level = level[distinct]
        _, first = np.unique(np.sort(level, axis=1), axis=0, return_index=True)
        level = level[np.sort(first)]
        out.append(level)
    return out
