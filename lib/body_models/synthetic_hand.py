"""A synthetic, procedurally generated right hand in the official MANO file format.

NOT the MANO model: a stand-in with MANO's sizes: 778 vertices, 1538 faces (a surface open at
the wrist, whose rim has 16 vertices, like MANO's), the 16 MANO joints and their tree, 10 shape
directions, 135 pose-corrective columns (zero), 45 x 45 pose PCA components and a mean pose.

Metres, wrist at the origin, fingers along +x, palm facing -y, thumb towards -z (a right
hand). The palm is a tube from the wrist rim (16 vertices, doubled to 32), closed at the
knuckles by a grid cap with four finger windows; the thumb starts from a window in the palm's
side. The fingertip vertices the original uses (:data:`MANO_FINGERTIP_VERTICES`, and 444 beside
445 for manopth's middle tip) are moved to those indices.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np
import scipy.sparse

from ..joints import MANO_FINGERTIP_VERTICES
from .mesh_build import (
    MeshBuilder,
    Tube,
    blurred_part_masks,
    bone_axis_points,
    boundary_vertices,
    coons_patch,
    disk_directions,
    fit_vertex_regressor,
    interp_table,
    move_to_indices,
    orient_faces,
    rect_loop,
    skinning_weights,
    split_longest_edges,
    taubin_smooth,
)

__all__ = ["MANO_PARENTS", "build_synthetic_hand", "hand_design_joints"]

NUM_VERTS = 778
NUM_FACES = 1538
# MANO joint order: wrist, index 1-3, middle 1-3, pinky 1-3, ring 1-3, thumb 1-3
MANO_PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)

_PALM_HALF_WIDTH, _PALM_HALF_THICKNESS, _KNUCKLE_X = 0.045, 0.014, 0.082
_WRIST_LOOP, _PALM_LOOP = (5, 3), (10, 6)
_FINGER_WINDOW = (1, 4)            # finger rings: 10 vertices
_FINGER_CELLS = {"index": 1, "middle": 3, "ring": 6, "pinky": 8}
_THUMB_WINDOW = (2, 2)             # thumb ring: 8 vertices
# (first joint index, lengths of the three phalanges + tip, radius)
_FINGERS = {"index": (1, (0.040, 0.024, 0.020), 0.0088), "middle": (4, (0.044, 0.028, 0.021), 0.0092),
            "ring": (10, (0.041, 0.026, 0.020), 0.0086), "pinky": (7, (0.032, 0.019, 0.018), 0.0076)}
_PART_PALM, _PART_THUMB = 0, 5
_FINGER_PART = {"index": 1, "middle": 2, "pinky": 3, "ring": 4}


def _finger_z(name: str) -> float:
    cell = _FINGER_CELLS[name]
    return -_PALM_HALF_WIDTH + 2 * _PALM_HALF_WIDTH * (cell + 0.5) / _PALM_LOOP[0]


def hand_design_joints() -> Tuple[np.ndarray, np.ndarray]:
    """The 16 designed joints and the 5 fingertips (thumb, index, middle, ring, pinky)."""
    joints = np.zeros((16, 3))
    tips = {}
    for name, (first, lengths, _) in _FINGERS.items():
        z = _finger_z(name)
        x = _KNUCKLE_X + 0.006
        joints[first] = (x, 0.0, z)
        for k, length in enumerate(lengths):
            x += length
            if k < 2:
                joints[first + k + 1] = (x, 0.0, z * (1.0 + 0.03 * (k + 1)))
        tips[name] = np.array([x + 0.002, 0.0, z * 1.09])
    joints[13] = (0.022, -0.006, -0.030)
    joints[14] = (0.050, -0.010, -0.052)
    joints[15] = (0.077, -0.012, -0.066)
    tips["thumb"] = np.array([0.100, -0.012, -0.076])
    return joints, np.array([tips[n] for n in ("thumb", "index", "middle", "ring", "pinky")])


def _palm_profile(x: float) -> Tuple[float, float]:
    """Half width (z) and half thickness (y) of the palm at x."""
    w, t = interp_table(x, ((0.0, 0.030, 0.016), (0.02, 0.036, 0.017), (0.05, 0.044, 0.016),
                            (_KNUCKLE_X, _PALM_HALF_WIDTH, _PALM_HALF_THICKNESS)))
    return w, t


def _tubes(joints: np.ndarray, tips: np.ndarray) -> Dict[str, Tube]:
    tubes = {}
    for name, (first, _, radius) in _FINGERS.items():
        z = _finger_z(name)
        control = [(_KNUCKLE_X, 0.0, z), joints[first], joints[first + 1], joints[first + 2],
                   tips[("index", "middle", "ring", "pinky").index(name) + 1]]
        radii = ((0.0, radius * 1.05, radius * 0.95), (0.5, radius * 0.95, radius * 0.85),
                 (0.85, radius * 0.85, radius * 0.75), (1.0, radius * 0.55, radius * 0.45))
        tubes[name] = Tube(control, radii, (0.0, 0.0, 1.0), _FINGER_WINDOW, 0.0, _FINGER_PART[name])
    control = [(0.02, -0.012, -0.032), joints[14], joints[15], tips[0]]
    radii = ((0.0, 0.014, 0.012), (0.3, 0.012, 0.011), (0.8, 0.0095, 0.0085), (1.0, 0.006, 0.005))
    tubes["thumb"] = Tube(control, radii, (0.0, 1.0, 0.0), _THUMB_WINDOW, 0.004, _PART_THUMB)
    return tubes


def _build_surface(palm_rings: int, finger_rings: Dict[str, int]):
    joints, tips = hand_design_joints()
    mb = MeshBuilder()
    wp, wq = _WRIST_LOOP
    d = disk_directions(wp, wq)
    w, t = _palm_profile(0.0)
    wrist = mb.add_vertices(np.stack([np.zeros(len(d)), t * d[:, 1], w * d[:, 0]], axis=1), _PART_PALM)
    pp, pq = _PALM_LOOP
    d = disk_directions(pp, pq)
    xs = np.linspace(0.008, _KNUCKLE_X, palm_rings)
    palm = np.zeros((palm_rings, len(d)), dtype=np.int64)
    for r, x in enumerate(xs):
        w, t = _palm_profile(x)
        palm[r] = mb.add_vertices(np.stack([np.full(len(d), x), t * d[:, 1], w * d[:, 0]], axis=1), _PART_PALM)
    mb.connect_rings(list(wrist), list(palm[0]))
    # thumb window on the -z side of the palm (loop positions 2p+q .. 2(p+q) are the -z side)
    tp, tq = _THUMB_WINDOW
    i0, r0 = 2 * pp + pq + 2, 1
    skip = {(r0 + cr, i0 + ci) for ci in range(tp) for cr in range(tq)}
    loops = {"thumb": [palm[r0 + jr, i0 + ii] for ii, jr in rect_loop(tp, tq)]}
    n_around = palm.shape[1]
    for r in range(palm_rings - 1):
        for i in range(n_around):
            if (r, i) not in skip:
                j = (i + 1) % n_around
                mb.quads.append((palm[r, i], palm[r, j], palm[r + 1, j], palm[r + 1, i]))
    # knuckle cap with the finger windows
    boundary = np.array([mb.verts[i] for i in palm[-1]])
    grid = coons_patch(boundary, pp, pq)
    s = (2.0 * np.arange(pp + 1) / pp - 1.0)[:, None]
    tt = (2.0 * np.arange(pq + 1) / pq - 1.0)[None, :]
    grid[:, :, 0] += 0.006 * np.sqrt(np.clip(1.0 - s * s - tt * tt + s * s * tt * tt, 0.0, 1.0))
    index = -np.ones((pp + 1, pq + 1), dtype=np.int64)
    for k, (i, j) in enumerate(rect_loop(pp, pq)):
        index[i, j] = palm[-1][k]
    for i in range(1, pp):
        for j in range(1, pq):
            index[i, j] = mb.add_vertices(grid[i, j], _PART_PALM)[0]
    fp, fq = _FINGER_WINDOW
    cells = set()
    for name, cell in _FINGER_CELLS.items():
        cells |= {(cell + ci, 1 + cj) for ci in range(fp) for cj in range(fq)}
        loops[name] = [index[cell + ii, 1 + jj] for ii, jj in rect_loop(fp, fq)]
    mb.grid_quads(index, cells)
    for name, tube in _tubes(joints, tips).items():
        tube.build(mb, loops[name], finger_rings[name])
    verts, parts, faces = np.array(mb.verts), np.array(mb.parts), mb.faces()
    used = np.zeros(len(verts), dtype=bool)
    used[faces.ravel()] = True
    new_index = -np.ones(len(verts), dtype=np.int64)
    new_index[used] = np.arange(int(used.sum()))
    return verts[used], new_index[faces], parts[used], joints, tips


def _vertex_count(palm_rings: int, counts: Dict[str, int]) -> int:
    """Vertices of :func:`_build_surface` without building it: the wrist rim, the palm rings
    less the thumb window's interior, the knuckle cap's interior, the tubes' rings and caps."""
    n = 16 + 32 * palm_rings - (_THUMB_WINDOW[0] - 1) * (_THUMB_WINDOW[1] - 1)
    n += (_PALM_LOOP[0] - 1) * (_PALM_LOOP[1] - 1) - 4 * (_FINGER_WINDOW[0] - 1) * (_FINGER_WINDOW[1] - 1)
    for name, rings in counts.items():
        window = _THUMB_WINDOW if name == "thumb" else _FINGER_WINDOW
        n += (rings - 1) * 2 * sum(window) + (window[0] - 1) * (window[1] - 1)
    return n


def _ring_plan(palm_rings: int = 7) -> Tuple[int, Dict[str, int], int]:
    """Tube ring counts (by one common spacing) with a vertex total just below 778."""
    joints, tips = hand_design_joints()
    tubes = _tubes(joints, tips)
    best: Optional[Dict[str, int]] = None
    for step in np.arange(0.012, 0.004, -0.0001):
        counts = {name: int(round(tube.length() / step)) + 1 for name, tube in tubes.items()}
        if _vertex_count(palm_rings, counts) > NUM_VERTS:
            break
        best = counts
    assert best is not None, "no ring spacing fits the vertex budget"
    return palm_rings, best, _vertex_count(palm_rings, best)


def _hand_shape_directions(verts: np.ndarray, faces: np.ndarray, parts: np.ndarray, joints: np.ndarray,
                           weights: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """10 shape directions (V, 3, 10): size, finger length, palm width, finger thickness,
    palm length, thumb length, palm thickness, finger spread, index/pinky length, fleshiness.
    Part masks and outward vectors are smooth over the surface (no creases at the seams)."""
    x, y, z = verts[:, 0], verts[:, 1], verts[:, 2]
    soft = blurred_part_masks(faces, parts, 6, 10)
    palm, thumb = soft[:, _PART_PALM], soft[:, _PART_THUMB]
    radial = verts - bone_axis_points(verts, weights, joints, ends)
    beyond = np.clip((x - _KNUCKLE_X) / 0.08, 0.0, 1.0) * (1.0 - thumb)
    dirs = np.zeros(verts.shape + (10,))
    dirs[:, :, 0] = 0.04 * verts
    dirs[:, 0, 1] = 0.008 * beyond
    dirs[:, 2, 2] = 0.06 * z * (1.0 - 0.5 * beyond)
    dirs[:, :, 3] = 0.12 * radial * (1.0 - palm)[:, None]
    dirs[:, 0, 4] = 0.006 * np.clip(x / _KNUCKLE_X, 0.0, 1.0)
    dirs[:, :, 5] = 0.1 * (verts - joints[13]) * (thumb * np.clip((x - joints[13, 0]) / 0.08, 0.0, 1.0))[:, None]
    dirs[:, 1, 6] = 0.08 * y * palm
    dirs[:, 2, 7] = 0.04 * z * beyond
    dirs[:, 0, 8] = 0.006 * beyond * np.clip(-z / 0.03, -1.0, 1.0)
    dirs[:, :, 9] = 0.06 * radial * palm[:, None]
    return dirs


def _pose_pca(rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plausible finger poses (flexion correlated along and across fingers), their mean and PCA."""
    n = 2000
    curl = np.clip(rng.normal(0.35, 0.3, (n, 1)) + rng.normal(0.0, 0.15, (n, 5)), -0.1, 1.0)
    poses = np.zeros((n, 15, 3))
    # MANO order of the 15 non-root joints: index, middle, pinky, ring, thumb (three each)
    finger_of_slot = (1, 2, 4, 3, 0)  # column in ``curl`` (thumb, index, middle, ring, pinky)
    for slot, finger in enumerate(finger_of_slot):
        for k, gain in enumerate((1.1, 1.4, 0.9)):
            angle = gain * curl[:, finger] + rng.normal(0.0, 0.05, n)
            if finger == 0:
                poses[:, 3 * slot + k] = angle[:, None] * np.array([0.3, -0.7, -0.5]) * 0.8
            else:
                poses[:, 3 * slot + k, 2] = -angle
                if k == 0:
                    poses[:, 3 * slot + k, 1] = rng.normal(0.0, 0.08, n)
    flat = poses.reshape(n, 45)
    mean = flat.mean(axis=0)
    _, sing, vt = np.linalg.svd(flat - mean, full_matrices=True)
    signs = np.sign(vt[np.arange(45), np.argmax(np.abs(vt), axis=1)])
    components = vt * signs[:, None]
    coeffs = (flat - mean) @ components.T
    return mean, components, coeffs[:100]


def build_synthetic_hand() -> Dict[str, object]:
    """All arrays of the synthetic hand, keyed as in the official MANO pickle."""
    palm_rings, counts, planned = _ring_plan()
    verts, faces, parts, joints, tips = _build_surface(palm_rings, counts)
    assert len(verts) == planned, (len(verts), planned)
    faces = orient_faces(faces, verts)
    verts, faces, parts = split_longest_edges(verts, faces, NUM_VERTS - len(verts), parts)
    assert len(faces) == NUM_FACES, len(faces)
    rim = boundary_vertices(faces, len(verts))
    verts = taubin_smooth(verts, faces, 8, fixed_weight=rim.astype(np.float64))

    tip_order = list(MANO_FINGERTIP_VERTICES) + [444]
    tip_targets = np.concatenate([tips, tips[2:3] - np.array([[0.0005, 0.0, 0.0]])])
    perm = move_to_indices(verts, tip_targets, tip_order)
    inverse = np.empty_like(perm)
    inverse[perm] = np.arange(len(perm))
    verts, parts, faces = verts[perm], parts[perm], inverse[faces]

    ends = np.zeros((16, 3))
    children = {p: j for j, p in reversed(list(enumerate(MANO_PARENTS))) if p >= 0}
    children[0] = 4  # the wrist's bone runs to the middle finger's base
    for j in range(16):
        ends[j] = joints[children[j]] if j in children else 0.0
    for j, tip in zip((15, 3, 6, 12, 9), tips):
        ends[j] = tip
    part_joints = {_PART_PALM: (0, 1, 4, 7, 10, 13), 1: (0, 1, 2, 3), 2: (0, 4, 5, 6), 3: (0, 7, 8, 9),
                   4: (0, 10, 11, 12), _PART_THUMB: (0, 13, 14, 15)}
    weights = skinning_weights(verts, faces, parts, joints, ends, part_joints, 0.004, 6)
    j_regressor = fit_vertex_regressor(verts, joints, neighbours=24)
    shapedirs = _hand_shape_directions(verts, faces, parts, joints, weights, ends)
    mean, components, coeffs = _pose_pca(np.random.default_rng(20200823))
    kintree = np.array([[4294967295] + list(MANO_PARENTS[1:]), list(range(16))], dtype=np.int64)
    return {
        "v_template": verts,
        "f": faces.astype(np.uint32),
        "shapedirs": shapedirs,
        "posedirs": np.zeros((len(verts), 3, 135)),
        "J_regressor": scipy.sparse.csc_matrix(j_regressor),
        "J": np.asarray(j_regressor @ verts),
        "weights": weights,
        "kintree_table": kintree,
        "hands_components": components,
        "hands_mean": mean,
        "hands_coeffs": coeffs,
        "bs_type": "lrotmin",
        "bs_style": "lbs",
    }
