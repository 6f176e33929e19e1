"""Small mesh-construction toolkit for the synthetic body and hand: tubes, grids, caps.

A closed surface is assembled from quad patches that share vertex loops:

- a *rectangle loop* of a ``p x q`` grid is its boundary, ``2 (p + q)`` nodes, walked from the
  corner (0, 0) along the first axis; a tube whose rings have that structure can be closed by
  a ``p x q`` grid cap, and a ``p x q`` window cut out of a grid gives a loop a tube can start
  from;
- tubes are rings of vertex indices joined by quads;
- faces are oriented consistently afterwards (:func:`orient_faces`), outward by signed volume.

Everything here is combinatorial or elementwise floating point (no BLAS), so the topology is
the same on every machine.
"""
from __future__ import annotations

from collections import deque
from typing import Dict, List, Sequence, Tuple, Union

import numpy as np
import scipy.optimize
import scipy.sparse
import scipy.sparse.csgraph

__all__ = ["MeshBuilder", "rect_loop", "disk_directions", "coons_patch", "orient_faces",
           "split_longest_edges", "taubin_smooth", "vertex_adjacency", "check_closed_manifold",
           "parallel_frames", "interp_table", "resample_polyline", "polyline_length", "Tube",
           "point_segment_distance", "skinning_weights", "fit_vertex_regressor", "move_to_indices",
           "boundary_vertices", "blurred_part_masks", "bone_axis_points"]


def rect_loop(p: int, q: int) -> List[Tuple[int, int]]:
    """Boundary nodes ``(i, j)`` of a ``p x q`` cell grid, ``2 (p + q)`` of them, in loop order."""
    loop = [(i, 0) for i in range(p)]
    loop += [(p, j) for j in range(q)]
    loop += [(i, q) for i in range(p, 0, -1)]
    loop += [(0, j) for j in range(q, 0, -1)]
    return loop


def disk_directions(p: int, q: int) -> np.ndarray:
    """Unit 2-D directions of the rectangle loop's nodes (square-to-disk mapping), (2(p+q), 2)."""
    loop = np.array(rect_loop(p, q), dtype=np.float64)
    s = 2.0 * loop[:, 0] / p - 1.0
    t = 2.0 * loop[:, 1] / q - 1.0
    x = s * np.sqrt(1.0 - t * t / 2.0)
    y = t * np.sqrt(1.0 - s * s / 2.0)
    return np.stack([x, y], axis=1)


def coons_patch(boundary: np.ndarray, p: int, q: int) -> np.ndarray:
    """Grid node positions (p+1, q+1, 3) interpolating a rectangle loop's positions (Coons)."""
    grid = np.zeros((p + 1, q + 1, 3))
    for k, (i, j) in enumerate(rect_loop(p, q)):
        grid[i, j] = boundary[k]
    s = (np.arange(p + 1) / p)[:, None, None]
    t = (np.arange(q + 1) / q)[None, :, None]
    bottom, top = grid[:, :1], grid[:, q:]
    left, right = grid[:1, :], grid[p:, :]
    bilinear = ((1 - s) * (1 - t) * grid[0, 0] + s * (1 - t) * grid[p, 0]
                + (1 - s) * t * grid[0, q] + s * t * grid[p, q])
    return (1 - t) * bottom + t * top + (1 - s) * left + s * right - bilinear


def parallel_frames(centers: np.ndarray, u0: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rotation-minimising frames along a polyline: tangents, u and v = tangent x u."""
    n = len(centers)
    tangents = np.zeros((n, 3))
    tangents[1:-1] = centers[2:] - centers[:-2]
    tangents[0] = centers[1] - centers[0]
    tangents[-1] = centers[-1] - centers[-2]
    tangents /= np.linalg.norm(tangents, axis=1, keepdims=True)
    us = np.zeros((n, 3))
    u = u0 - np.sum(u0 * tangents[0]) * tangents[0]
    u /= np.linalg.norm(u)
    for r in range(n):
        u = u - np.sum(u * tangents[r]) * tangents[r]
        u /= np.linalg.norm(u)
        us[r] = u
    vs = np.cross(tangents, us)
    return tangents, us, vs


class MeshBuilder:
    """Accumulates vertices (with a part label) and quads / triangles."""

    def __init__(self) -> None:
        self.verts: List[np.ndarray] = []
        self.parts: List[int] = []
        self.quads: List[Tuple[int, int, int, int]] = []
        self.tris: List[Tuple[int, int, int]] = []

    @property
    def num_vertices(self) -> int:
        return len(self.verts)

    def add_vertices(self, positions: np.ndarray, part: int) -> np.ndarray:
        start = len(self.verts)
        for pos in np.asarray(positions, dtype=np.float64).reshape(-1, 3):
            self.verts.append(pos)
            self.parts.append(part)
        return np.arange(start, len(self.verts))

    def connect_rings(self, ring_a: Sequence[int], ring_b: Sequence[int]) -> None:
        """Quads between two loops of equal length, or triangles when ``ring_b`` is twice as long."""
        la, lb = len(ring_a), len(ring_b)
        if la == lb:
            for i in range(la):
                j = (i + 1) % la
                self.quads.append((ring_a[i], ring_a[j], ring_b[j], ring_b[i]))
        elif lb == 2 * la:
            for i in range(la):
                j = (i + 1) % la
                b0, b1, b2 = ring_b[2 * i], ring_b[2 * i + 1], ring_b[(2 * i + 2) % lb]
                self.tris.append((ring_a[i], b1, b0))
                self.tris.append((ring_a[i], ring_a[j], b1))
                self.tris.append((ring_a[j], b2, b1))
        else:
            raise ValueError(f"cannot join loops of {la} and {lb} vertices")

    def grid_quads(self, grid_index: np.ndarray, skip_cells=()) -> None:
        """Quads of a node-index grid (P+1, Q+1), except cells in ``skip_cells``."""
        skip = set(skip_cells)
        p, q = grid_index.shape[0] - 1, grid_index.shape[1] - 1
        for i in range(p):
            for j in range(q):
                if (i, j) in skip:
                    continue
                self.quads.append((grid_index[i, j], grid_index[i + 1, j],
                                   grid_index[i + 1, j + 1], grid_index[i, j + 1]))

    def faces(self) -> np.ndarray:
        tris = list(self.tris)
        for a, b, c, d in self.quads:
            tris.append((a, b, c))
            tris.append((a, c, d))
        return np.array(tris, dtype=np.int64)


def _edge_key(a: int, b: int) -> Tuple[int, int]:
    return (a, b) if a < b else (b, a)


def orient_faces(faces: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """Consistent winding by breadth-first propagation from face 0, outward (positive volume)."""
    faces = faces.copy()
    edge_faces: Dict[Tuple[int, int], List[int]] = {}
    for f, tri in enumerate(faces):
        for k in range(3):
            edge_faces.setdefault(_edge_key(tri[k], tri[(k + 1) % 3]), []).append(f)
    done = np.zeros(len(faces), dtype=bool)
    for seed in range(len(faces)):
        if done[seed]:
            continue
        done[seed] = True
        queue = deque([seed])
        while queue:
            f = queue.popleft()
            tri = faces[f]
            for k in range(3):
                a, b = tri[k], tri[(k + 1) % 3]
                for g in edge_faces[_edge_key(a, b)]:
                    if g == f or done[g]:
                        continue
                    other = list(faces[g])
                    # consistent neighbours traverse the shared edge in opposite directions
                    ia = other.index(a)
                    if other[(ia + 1) % 3] == b:
                        faces[g] = faces[g][::-1]
                    done[g] = True
                    queue.append(g)
    v0, v1, v2 = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    volume = np.sum(v0 * np.cross(v1, v2)) / 6.0
    if volume < 0:
        faces = faces[:, ::-1].copy()
    return faces


def split_longest_edges(verts: np.ndarray, faces: np.ndarray, count: int, parts: np.ndarray):
    """Add ``count`` vertices by splitting the longest edges at their midpoints.

    Each split replaces the two triangles beside the edge by four, so a manifold stays one
    (rim edges of an open surface are never split). Ties are broken by vertex indices, so the result
    does not depend on the machine.
    """
    vert_list = [v for v in verts]
    part_list = list(parts)
    face_list = [list(f) for f in faces]
    for _ in range(count):
        edge_faces: Dict[Tuple[int, int], List[int]] = {}
        for f, tri in enumerate(face_list):
            for k in range(3):
                edge_faces.setdefault(_edge_key(tri[k], tri[(k + 1) % 3]), []).append(f)
        interior = [e for e, fs in edge_faces.items() if len(fs) == 2]  # never split a rim edge
        best = max(interior, key=lambda e: (float(np.sum((vert_list[e[0]] - vert_list[e[1]]) ** 2)), -e[0], -e[1]))
        a, b = best
        m = len(vert_list)
        vert_list.append((vert_list[a] + vert_list[b]) / 2.0)
        part_list.append(part_list[a])
        for f in edge_faces[best]:
            tri = face_list[f]
            k = [idx for idx in range(3) if tri[idx] not in best][0]
            c = tri[k]
            # keep the winding of the original triangle (c, x, y)
            x, y = tri[(k + 1) % 3], tri[(k + 2) % 3]
            face_list[f] = [c, x, m]
            face_list.append([c, m, y])
    return np.array(vert_list), np.array(face_list, dtype=np.int64), np.array(part_list)


def vertex_adjacency(faces: np.ndarray, num_vertices: int):
    """Sparse symmetric 0/1 adjacency (V, V) of the mesh edges."""
    import scipy.sparse

    rows = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2], faces[:, 1], faces[:, 2], faces[:, 0]])
    cols = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0], faces[:, 0], faces[:, 1], faces[:, 2]])
    adj = scipy.sparse.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(num_vertices, num_vertices)).tocsr()
    adj.data[:] = 1.0
    return adj


def taubin_smooth(verts: np.ndarray, faces: np.ndarray, iterations: int, lam: float = 0.5,
                  mu: float = -0.53, fixed_weight=None) -> np.ndarray:
    """Taubin (lambda|mu) smoothing with uniform weights; ``fixed_weight`` (V,) in [0, 1] damps it."""
    adj = vertex_adjacency(faces, len(verts))
    degree = np.asarray(adj.sum(axis=1)).ravel()
    scale = np.ones(len(verts)) if fixed_weight is None else 1.0 - np.asarray(fixed_weight)
    out = verts.copy()
    for _ in range(iterations):
        for factor in (lam, mu):
            mean = (adj @ out) / degree[:, None]
            out = out + factor * scale[:, None] * (mean - out)
    return out


def check_closed_manifold(faces: np.ndarray, num_vertices: int) -> None:
    """Raise ValueError unless the mesh is a closed, consistently oriented, connected 2-manifold
    of genus 0: every edge in two faces traversed in opposite directions, every vertex used and
    surrounded by one fan of faces, one component, Euler characteristic 2."""
    directed = {}
    for tri in faces:
        for k in range(3):
            e = (int(tri[k]), int(tri[(k + 1) % 3]))
            if e in directed:
                raise ValueError(f"edge {e} used twice in the same direction")
            directed[e] = True
    for a, b in directed:
        if (b, a) not in directed:
            raise ValueError(f"boundary edge {(a, b)}")
    used = np.unique(faces)
    if len(used) != num_vertices:
        raise ValueError("unused vertices")
    n_comp, _ = scipy.sparse.csgraph.connected_components(vertex_adjacency(faces, num_vertices))
    if n_comp != 1:
        raise ValueError(f"{n_comp} connected components")
    # every vertex's faces form one fan (a disk): its link is a single cycle
    link: Dict[int, Dict[int, int]] = {}
    for tri in faces:
        for k in range(3):
            link.setdefault(int(tri[k]), {})[int(tri[(k + 1) % 3])] = int(tri[(k + 2) % 3])
    for v, nxt in link.items():
        start = next(iter(nxt))
        cur, steps = start, 0
        while True:
            step = nxt.get(cur)
            steps += 1
            if step is None or step == start or steps > len(nxt):
                break
            cur = step
        if step != start or steps != len(nxt):
            raise ValueError(f"vertex {v} is not a manifold vertex")
    euler = num_vertices - len(directed) // 2 + len(faces)
    if euler != 2:
        raise ValueError(f"Euler characteristic {euler}, expected 2 (a sphere)")


def interp_table(x: float, table: Sequence[Tuple[float, ...]]) -> np.ndarray:
    """Piecewise-linear interpolation of the columns of ``table`` (first column = abscissa)."""
    arr = np.asarray(table, dtype=np.float64)
    return np.array([np.interp(x, arr[:, 0], arr[:, k]) for k in range(1, arr.shape[1])])


def resample_polyline(points: np.ndarray, n: int, smooth: int = 3) -> Tuple[np.ndarray, np.ndarray]:
    """``n`` points evenly spaced by arc length along a (slightly smoothed) polyline, and their
    arc-length fraction in [0, 1]."""
    pts = np.asarray(points, dtype=np.float64)
    points_dense = [pts[0]]
    for a, b in zip(pts[:-1], pts[1:]):
        for t in np.linspace(0, 1, 21)[1:]:
            points_dense.append(a + t * (b - a))
    dense = np.array(points_dense)
    for _ in range(smooth * 10):
        dense[1:-1] = 0.5 * dense[1:-1] + 0.25 * (dense[:-2] + dense[2:])
    seg = np.sqrt(np.sum((dense[1:] - dense[:-1]) ** 2, axis=1))
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    targets = np.linspace(0.0, arc[-1], n)
    out = np.stack([np.interp(targets, arc, dense[:, k]) for k in range(3)], axis=1)
    return out, targets / arc[-1]


def polyline_length(points: Union[Sequence[Sequence[float]], np.ndarray]) -> float:
    pts = np.asarray(points, dtype=np.float64)
    return float(np.sum(np.sqrt(np.sum((pts[1:] - pts[:-1]) ** 2, axis=1))))


class Tube:
    """A limb: starts from an existing loop, follows a centre line, ends in a grid cap."""

    def __init__(self, control: Sequence[Sequence[float]], radii: Sequence[Tuple[float, float, float]],
                 u_hint: Sequence[float], cap: Tuple[int, int], cap_height: float, part: int,
                 double_at: float = -1.0) -> None:
        self.control = np.asarray(control, dtype=np.float64)
        self.radii = radii  # (arc fraction, radius along u, radius along v)
        self.u_hint = np.asarray(u_hint, dtype=np.float64)
        self.cap = cap
        self.cap_height = cap_height
        self.part = part
        self.double_at = double_at

    def length(self) -> float:
        return polyline_length(self.control)

    def build(self, mb: MeshBuilder, ring0: Sequence[int], n_rings: int) -> None:
        ring0 = list(ring0)
        p0 = np.array([mb.verts[i] for i in ring0])
        control = self.control.copy()
        control[0] = p0.mean(axis=0)
        centers, fractions = resample_polyline(control, n_rings)
        tangents, us, vs = parallel_frames(centers, self.u_hint)
        rel = p0 - centers[0]
        d = np.stack([np.sum(rel * us[0], axis=1), np.sum(rel * vs[0], axis=1)], axis=1)
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        prev = ring0
        doubled = False
        for r in range(1, n_rings):
            ru, rv = interp_table(fractions[r], self.radii)
            if not doubled and 0 <= self.double_at <= fractions[r]:
                mid = d + np.roll(d, -1, axis=0)
                mid /= np.linalg.norm(mid, axis=1, keepdims=True)
                d = np.stack([d, mid], axis=1).reshape(-1, 2)
                self.cap = (2 * self.cap[0], 2 * self.cap[1])
                doubled = True
            pos = centers[r] + ru * d[:, :1] * us[r] + rv * d[:, 1:] * vs[r]
            ring = list(mb.add_vertices(pos, self.part))
            mb.connect_rings(prev, ring)
            prev = ring
        self._close(mb, prev, tangents[-1])

    def _close(self, mb: MeshBuilder, ring: List[int], axis: np.ndarray) -> None:
        p, q = self.cap
        boundary = np.array([mb.verts[i] for i in ring])
        grid = coons_patch(boundary, p, q)
        s = (2.0 * np.arange(p + 1) / p - 1.0)[:, None]
        t = (2.0 * np.arange(q + 1) / q - 1.0)[None, :]
        r2 = np.clip(s * s + t * t - s * s * t * t, 0.0, 1.0)
        grid = grid + self.cap_height * np.sqrt(1.0 - r2)[:, :, None] * axis
        index = -np.ones((p + 1, q + 1), dtype=np.int64)
        for k, (i, j) in enumerate(rect_loop(p, q)):
            index[i, j] = ring[k]
        for i in range(1, p):
            for j in range(1, q):
                index[i, j] = mb.add_vertices(grid[i, j], self.part)[0]
        mb.grid_quads(index)


def point_segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip(((points - a) @ ab) / max(float(ab @ ab), 1e-12), 0.0, 1.0)
    closest = a + t[:, None] * ab
    return np.sqrt(np.sum((points - closest) ** 2, axis=1))


def skinning_weights(verts: np.ndarray, faces: np.ndarray, parts: np.ndarray, joints: np.ndarray,
                     ends: np.ndarray, part_joints, sharpness: float, smooth_iterations: int = 15) -> np.ndarray:
    """Smooth linear-blend-skinning weights (V, J).

    A vertex of part ``p`` is softly assigned (softmax of ``-distance / sharpness``) to the bones
    ``part_joints[p]`` (bone ``j`` runs from ``joints[j]`` to ``ends[j]``); the weights are then
    averaged over mesh neighbours ``smooth_iterations`` times, tiny ones dropped, rows normalised.
    """
    num_joints = len(joints)
    dist = np.stack([point_segment_distance(verts, joints[j], ends[j]) for j in range(num_joints)], axis=1)
    allowed = np.zeros((len(verts), num_joints), dtype=bool)
    for part, js in part_joints.items():
        allowed[np.ix_(parts == part, list(js))] = True
    logits = np.where(allowed, -dist / sharpness, -np.inf)
    logits -= logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    weights /= weights.sum(axis=1, keepdims=True)
    adj = vertex_adjacency(faces, len(verts))
    degree = np.asarray(adj.sum(axis=1)).ravel()
    for _ in range(smooth_iterations):
        weights = 0.5 * weights + 0.5 * (adj @ weights) / degree[:, None]
    weights[weights < 1e-3] = 0.0
    return weights / weights.sum(axis=1, keepdims=True)


def fit_vertex_regressor(verts: np.ndarray, targets: np.ndarray, neighbours: int = 48) -> scipy.sparse.csc_matrix:
    """Sparse non-negative rows summing to one whose vertex combination gives each target.

    Each row combines the ``neighbours`` nearest vertices (non-negative least squares with a
    strong sum-to-one constraint and a little ridge, so the weights spread over a ring).
    """
    rows, cols, vals = [], [], []
    order = np.argsort(np.sum((verts[None] - targets[:, None]) ** 2, axis=2), axis=1, kind="stable")
    for j, target in enumerate(targets):
        k = neighbours
        while True:
            near = order[j, :k]
            ridge = 0.02
            a = np.vstack([verts[near].T, 10.0 * np.ones((1, k)), ridge * np.eye(k)])
            b = np.concatenate([target, [10.0], np.full(k, ridge / k)])
            w, _ = scipy.optimize.nnls(a, b)
            w /= w.sum()
            keep = w > 1e-4
            w = np.where(keep, w, 0.0) / w[keep].sum()
            if np.linalg.norm(w @ verts[near] - target) < 2e-3 or k >= 8 * neighbours:
                break
            k *= 2
        rows += [j] * int(keep.sum())
        cols += list(near[keep])
        vals += list(w[keep])
    return scipy.sparse.csc_matrix((vals, (rows, cols)), shape=(len(targets), len(verts)))


def move_to_indices(verts: np.ndarray, targets: np.ndarray, indices: Sequence[int]) -> np.ndarray:
    """A vertex permutation putting the vertex nearest each target at the given index."""
    perm = np.arange(len(verts))  # new position k holds old vertex perm[k]
    assigned: List[int] = []
    for target, index in zip(targets, indices):
        d2 = np.sum((verts[perm] - target) ** 2, axis=1)
        d2[assigned] = np.inf
        nearest = int(np.argmin(d2))
        perm[index], perm[nearest] = perm[nearest], perm[index]
        assigned.append(int(index))
    return perm


def boundary_vertices(faces: np.ndarray, num_vertices: int) -> np.ndarray:
    """(V,) bool: vertices on an edge that only one face uses."""
    count: Dict[Tuple[int, int], int] = {}
    for tri in faces:
        for k in range(3):
            e = _edge_key(int(tri[k]), int(tri[(k + 1) % 3]))
            count[e] = count.get(e, 0) + 1
    out = np.zeros(num_vertices, dtype=bool)
    for (a, b), c in count.items():
        if c == 1:
            out[a] = out[b] = True
    return out


def blurred_part_masks(faces: np.ndarray, parts: np.ndarray, num_parts: int, iterations: int = 30) -> np.ndarray:
    """(V, num_parts) part indicators averaged over mesh neighbours: smooth across part seams."""
    adj = vertex_adjacency(faces, len(parts))
    degree = np.asarray(adj.sum(axis=1)).ravel()
    soft = np.stack([(parts == p).astype(np.float64) for p in range(num_parts)], axis=1)
    for _ in range(iterations):
        soft = 0.5 * soft + 0.5 * (adj @ soft) / degree[:, None]
    return soft


def bone_axis_points(verts: np.ndarray, weights: np.ndarray, joints: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """(V, 3) skinning-weighted mean of each vertex's closest points on the bones: a smooth
    "centre" from which ``verts - result`` points outwards."""
    out = np.zeros_like(verts)
    for j in range(len(joints)):
        ab = ends[j] - joints[j]
        t = np.clip(np.sum((verts - joints[j]) * ab, axis=1) / max(float(np.sum(ab * ab)), 1e-12), 0.0, 1.0)
        out += weights[:, j:j + 1] * (joints[j] + t[:, None] * ab)
    return out
