"""A synthetic, procedurally generated body in the official SMPL file format.

NOT the SMPL model: a stand-in so that everything runs on a fresh machine with nothing
downloaded. It has SMPL's sizes (6890 vertices, 13776 faces, the 24-joint tree and its
parents, 10 shape directions, 207 pose-corrective columns, which are zero) so that graph
coarsening, regressors and networks have the shapes they have with the real model.

Construction (all in metres, y up, the body faces +z, its left is +x, T-pose):

- a torso tube (rings of 48 vertices) closed by two grid caps; the legs start from two
  windows cut out of the bottom cap, the neck from a window in the top cap, the arms from
  windows cut out of the torso's sides; the head doubles the 16-vertex neck ring to 32 and is
  closed by a grid cap; hands and feet are closed by grid caps;
- ring counts are chosen so that the vertex total is just below 6890, the last few vertices
  are added by splitting the longest edges, then the surface is Taubin-smoothed;
- the five face-keypoint vertices (nose, eyes, ears; :data:`SMPL_FACE_KEYPOINT_VERTICES`) are
  moved to SMPL's indices so that the 29-joint regressor points at a nose, eyes and ears.

Skinning weights are a soft assignment to the bones allowed for each body part, smoothed over
the mesh. ``J_regressor`` (and the Human3.6M and COCO regressors) are sparse, non-negative
combinations of nearby vertices that reproduce the designed joint positions.
Everything that decides the topology (ring counts, edge splits, the keypoint permutation) is
computed with correctly rounded elementwise arithmetic only (no BLAS, no exp), so the face list
is identical on every machine and thread count.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np

from ..joints import JOINT_SETS, SMPL_FACE_KEYPOINT_VERTICES
from .mesh_build import (
    MeshBuilder,
    Tube,
    blurred_part_masks,
    bone_axis_points,
    check_closed_manifold,
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

__all__ = ["SMPL_PARENTS", "build_synthetic_body"]

NUM_VERTS = 6890
SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)

# designed joint positions, floor at y = 0 (left side, the right side is mirrored in x)
_JOINTS_LEFT = {
    0: (0.0, 0.94, 0.0),      # pelvis
    1: (0.085, 0.87, 0.0),    # hip
    3: (0.0, 1.05, -0.01),    # spine1
    4: (0.095, 0.49, 0.01),   # knee
    6: (0.0, 1.17, -0.015),   # spine2
    7: (0.10, 0.085, -0.025),  # ankle
    9: (0.0, 1.25, -0.01),    # spine3
    10: (0.11, 0.025, 0.10),  # foot (toe base)
    12: (0.0, 1.45, -0.02),   # neck
    13: (0.075, 1.375, -0.02),  # collar
    15: (0.0, 1.555, 0.005),  # head
    16: (0.175, 1.395, -0.02),  # shoulder
    18: (0.44, 1.40, -0.03),  # elbow
    20: (0.69, 1.40, -0.02),  # wrist
    22: (0.78, 1.40, -0.015),  # hand
}
_MIRROR = {1: 2, 4: 5, 7: 8, 10: 11, 13: 14, 16: 17, 18: 19, 20: 21, 22: 23}
# where the bone of each leaf joint ends
_LEAF_ENDS_LEFT = {10: (0.11, 0.03, 0.20), 15: (0.0, 1.70, 0.005), 22: (0.875, 1.40, -0.01)}

# the template is shifted so that the pelvis sits where SMPL's template has it
_PELVIS_TARGET = np.array([0.0, -0.22, 0.0])

PART_TORSO, PART_LEG_L, PART_LEG_R, PART_ARM_L, PART_ARM_R, PART_HEAD = range(6)
_PART_JOINTS = {
    PART_TORSO: (0, 1, 2, 3, 6, 9, 12, 13, 14, 16, 17),
    PART_LEG_L: (0, 1, 4, 7, 10),
    PART_LEG_R: (0, 2, 5, 8, 11),
    PART_ARM_L: (9, 13, 16, 18, 20, 22),
    PART_ARM_R: (9, 14, 17, 19, 21, 23),
    PART_HEAD: (9, 12, 15),
}


def design_joints() -> np.ndarray:
    """The 24 designed joint positions (floor at y = 0), (24, 3)."""
    joints = np.zeros((24, 3))
    for j, pos in _JOINTS_LEFT.items():
        joints[j] = pos
        if j in _MIRROR:
            joints[_MIRROR[j]] = (-pos[0], pos[1], pos[2])
    return joints


def _bone_ends(joints: np.ndarray) -> np.ndarray:
    """End point of each joint's bone (its child, or a designed tip for leaves), (24, 3)."""
    ends = np.zeros((24, 3))
    first_child = {}
    for j, parent in enumerate(SMPL_PARENTS):
        if parent >= 0 and parent not in first_child:
            first_child[parent] = j
    first_child[9] = 12  # spine3 continues to the neck
    for j in range(24):
        if j in first_child:
            ends[j] = joints[first_child[j]]
    for j, pos in _LEAF_ENDS_LEFT.items():
        ends[j] = pos
        if j in _MIRROR:
            ends[_MIRROR[j]] = (-pos[0], pos[1], pos[2])
    return ends


# ----------------------------------------------------------------------------------- geometry
# torso: half-width (x), half-depth (z) and centre z against height
_TORSO_PROFILE = ((0.80, 0.150, 0.092, 0.000), (0.86, 0.172, 0.104, 0.000), (0.94, 0.170, 0.104, -0.005),
                  (1.04, 0.145, 0.094, 0.000), (1.14, 0.150, 0.098, 0.005), (1.24, 0.168, 0.108, 0.010),
                  (1.32, 0.182, 0.104, 0.000), (1.40, 0.186, 0.090, -0.015), (1.46, 0.150, 0.070, -0.020))
_TORSO_P, _TORSO_Q = 16, 8          # torso rings: 2 (16 + 8) = 48 vertices
_ARM_WINDOW = (6, 5)                # arm windows: 6 ring positions x 5 rings -> 22-vertex arm rings
_LEG_WINDOW = (6, 6)                # leg windows in the bottom cap -> 24-vertex leg rings
_NECK_WINDOW = (4, 4)               # neck window in the top cap -> 16-vertex neck, 32 after doubling


def _limb_tubes() -> Dict[str, Tube]:
    tubes = {}
    for side, sign in (("L", 1.0), ("R", -1.0)):
        leg = [(0.085, 0.79, 0.0), (0.092, 0.62, 0.005), (0.095, 0.49, 0.01), (0.10, 0.25, -0.01),
               (0.10, 0.10, -0.03), (0.10, 0.045, 0.02), (0.11, 0.035, 0.12), (0.11, 0.03, 0.185)]
        leg_radii = ((0.0, 0.090, 0.090), (0.15, 0.078, 0.082), (0.36, 0.052, 0.056), (0.45, 0.054, 0.060),
                     (0.62, 0.040, 0.044), (0.74, 0.032, 0.036), (0.80, 0.040, 0.042), (0.90, 0.045, 0.030),
                     (1.0, 0.038, 0.018))
        tubes["leg" + side] = Tube([(sign * x, y, z) for x, y, z in leg], leg_radii, (1.0, 0.0, 0.0),
                                    _LEG_WINDOW, 0.012, PART_LEG_L if sign > 0 else PART_LEG_R)
        arm = [(0.18, 1.385, -0.02), (0.26, 1.395, -0.025), (0.44, 1.40, -0.03), (0.69, 1.40, -0.02),
               (0.78, 1.40, -0.015), (0.865, 1.398, -0.01)]
        # radius along u (~z) and along v (~y)
        arm_radii = ((0.0, 0.058, 0.062), (0.12, 0.050, 0.052), (0.38, 0.040, 0.040), (0.50, 0.040, 0.040),
                     (0.76, 0.030, 0.024), (0.82, 0.042, 0.018), (0.92, 0.044, 0.014), (1.0, 0.036, 0.010))
        tubes["arm" + side] = Tube([(sign * x, y, z) for x, y, z in arm], arm_radii, (0.0, 0.0, 1.0),
                                    _ARM_WINDOW, 0.012, PART_ARM_L if sign > 0 else PART_ARM_R)
    head_radii = []
    for f in np.linspace(0.0, 1.0, 21):
        y = 1.462 + f * (1.672 - 1.462)
        e = np.sqrt(max(0.0, 1.0 - ((y - 1.585) / 0.12) ** 2))
        neck = 0.052 if y < 1.53 else 0.0
        head_radii.append((f, max(0.080 * e, neck), max(0.098 * e, neck * 0.95)))
    tubes["head"] = Tube([(0.0, 1.462, -0.02), (0.0, 1.50, -0.01), (0.0, 1.56, 0.005), (0.0, 1.672, 0.005)],
                          head_radii, (1.0, 0.0, 0.0), _NECK_WINDOW, 0.03, PART_HEAD, double_at=0.28)
    return tubes


def _ring_counts(budget: int) -> Tuple[int, Dict[str, int], int]:
    """Torso ring count and per-limb ring counts with a vertex total just below ``budget``."""
    tubes = _limb_tubes()
    torso_len = _TORSO_PROFILE[-1][0] - _TORSO_PROFILE[0][0]
    ring = {"legL": 24, "legR": 24, "armL": 22, "armR": 22, "head": 16}

    def total(torso_rings: int, counts: Dict[str, int]) -> int:
        n = torso_rings * 48 - 2 * (_ARM_WINDOW[0] - 1) * (_ARM_WINDOW[1] - 1)
        n += 2 * (_TORSO_P - 1) * (_TORSO_Q - 1) - 2 * (_LEG_WINDOW[0] - 1) * (_LEG_WINDOW[1] - 1)
        n -= (_NECK_WINDOW[0] - 1) * (_NECK_WINDOW[1] - 1)
        for name, rings in counts.items():
            tube = tubes[name]
            if name == "head":
                f = np.linspace(0, 1, rings)[1:]
                n += int(np.sum(np.where(f < tube.double_at, 16, 32)))
                n += (2 * _NECK_WINDOW[0] - 1) * (2 * _NECK_WINDOW[1] - 1)
            else:
                n += (rings - 1) * ring[name] + (tube.cap[0] - 1) * (tube.cap[1] - 1)
        return n

    best: Optional[Tuple[int, Dict[str, int]]] = None
    for step in np.arange(0.030, 0.010, -0.0005):
        torso_rings = int(round(torso_len / step)) + 1
        counts = {name: int(round(t.length() / step)) + 1 for name, t in tubes.items()}
        if total(torso_rings, counts) <= budget:
            best = (torso_rings, counts)
        else:
            break
    assert best is not None, "no ring spacing fits the vertex budget"
    torso_rings, counts = best
    # top up with whole rings on the limbs, alternating sides, while they fit
    changed = True
    while changed:
        changed = False
        for name in ("legL", "legR", "armL", "armR"):
            trial = dict(counts)
            trial[name] += 1
            if total(torso_rings, trial) <= budget:
                counts = trial
                changed = True
    return torso_rings, counts, total(torso_rings, counts)


def _build_surface() -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    mb = MeshBuilder()
    torso_rings, counts, planned = _ring_counts(NUM_VERTS)
    p, q = _TORSO_P, _TORSO_Q
    d = disk_directions(p, q)  # d[:, 0] along x, d[:, 1] along z
    ys = np.linspace(_TORSO_PROFILE[0][0], _TORSO_PROFILE[-1][0], torso_rings)
    torso = np.zeros((torso_rings, 2 * (p + q)), dtype=np.int64)
    for r, y in enumerate(ys):
        a, b, zc = interp_table(y, _TORSO_PROFILE)
        pos = np.stack([a * d[:, 0], np.full(len(d), y), zc + b * d[:, 1]], axis=1)
        torso[r] = mb.add_vertices(pos, PART_TORSO)
    # arm windows on the sides, centred at shoulder height: loop positions 16..24 are the +x side
    ap, aq = _ARM_WINDOW
    r_top = int(np.searchsorted(ys, 1.435)) - 1
    r0 = r_top - aq
    windows = {"armL": (p + 1, r0), "armR": (2 * p + q + 1, r0)}
    skip = set()
    loops = {}
    for name, (i0, w_r0) in windows.items():
        for ci in range(ap):
            for cr in range(aq):
                skip.add((w_r0 + cr, i0 + ci))
        loops[name] = [torso[w_r0 + jr, i0 + ii] for ii, jr in rect_loop(ap, aq)]
    n_around = torso.shape[1]
    for r in range(torso_rings - 1):
        for i in range(n_around):
            if (r, i) in skip:
                continue
            j = (i + 1) % n_around
            mb.quads.append((torso[r, i], torso[r, j], torso[r + 1, j], torso[r + 1, i]))
    # caps: bottom with the leg windows, top with the neck window
    for which, ring, height in (("bottom", torso[0], -0.035), ("top", torso[-1], 0.02)):
        boundary = np.array([mb.verts[i] for i in ring])
        grid = coons_patch(boundary, p, q)
        s = (2.0 * np.arange(p + 1) / p - 1.0)[:, None]
        t = (2.0 * np.arange(q + 1) / q - 1.0)[None, :]
        r2 = np.clip(s * s + t * t - s * s * t * t, 0.0, 1.0)
        grid[:, :, 1] += height * np.sqrt(1.0 - r2)
        index = -np.ones((p + 1, q + 1), dtype=np.int64)
        for k, (i, j) in enumerate(rect_loop(p, q)):
            index[i, j] = ring[k]
        for i in range(1, p):
            for j in range(1, q):
                index[i, j] = mb.add_vertices(grid[i, j], PART_TORSO)[0]
        if which == "bottom":
            lp, lq = _LEG_WINDOW
            cap_windows = {"legL": (p // 2 + 1, 1), "legR": (p // 2 - 1 - lp, 1)}
            # the +x half of the grid is at high i (d_x = s)
        else:
            lp, lq = _NECK_WINDOW
            cap_windows = {"head": ((p - lp) // 2, (q - lq) // 2)}
        cells = set()
        for name, (i0, j0) in cap_windows.items():
            for ci in range(lp):
                for cj in range(lq):
                    cells.add((i0 + ci, j0 + cj))
            loops[name] = [index[i0 + ii, j0 + jj] for ii, jj in rect_loop(lp, lq)]
        mb.grid_quads(index, cells)
    for name, tube in _limb_tubes().items():
        tube.build(mb, loops[name], counts[name])

    verts = np.array(mb.verts)
    parts = np.array(mb.parts)
    faces = mb.faces()
    # drop the nodes inside the windows (never referenced) and renumber
    used = np.zeros(len(verts), dtype=bool)
    used[faces.ravel()] = True
    new_index = -np.ones(len(verts), dtype=np.int64)
    new_index[used] = np.arange(int(used.sum()))
    verts, parts, faces = verts[used], parts[used], new_index[faces]
    assert len(verts) == planned, (len(verts), planned)
    faces = orient_faces(faces, verts)
    verts, faces, parts = split_longest_edges(verts, faces, NUM_VERTS - len(verts), parts)
    return verts, faces, parts


# ------------------------------------------------------------------------------ model arrays
def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _shape_directions(verts: np.ndarray, faces: np.ndarray, parts: np.ndarray, joints: np.ndarray,
                      weights: np.ndarray) -> np.ndarray:
    """10 shape directions (V, 3, 10), each meant for betas in about [-3, 3].

    0 overall size, 1 weight (girth of the trunk and limbs), 2 leg length, 3 arm length,
    4 shoulder width, 5 hip width, 6 torso length, 7 belly, 8 head size, 9 limb muscle.
    """
    x, y, z = verts[:, 0], verts[:, 1], verts[:, 2]
    dirs = np.zeros(verts.shape + (10,))
    floor_centre = np.array([0.0, verts[:, 1].min(), 0.0])
    dirs[:, :, 0] = 0.035 * (verts - floor_centre)
    # outward vectors from the bone axes and part masks, both smooth over the surface, so that
    # no direction creases the seams between parts
    radial = verts - bone_axis_points(verts, weights, joints, _bone_ends(joints))
    soft = blurred_part_masks(faces, parts, 6)
    trunk, head = soft[:, PART_TORSO], soft[:, PART_HEAD]
    limbs = soft[:, [PART_LEG_L, PART_LEG_R, PART_ARM_L, PART_ARM_R]].sum(axis=1)
    arms = soft[:, PART_ARM_L] + soft[:, PART_ARM_R]
    neck_down = 1.0 - _smoothstep(y, joints[12, 1] - 0.02, joints[12, 1] + 0.05)
    dirs[:, :, 1] = 0.10 * radial * (1.2 * trunk + 0.8 * limbs + 0.3 * head * neck_down)[:, None]
    hip_y, ankle_y = joints[1, 1], joints[7, 1]
    dirs[:, 1, 2] = -0.04 * _smoothstep(hip_y - y, 0.0, hip_y - ankle_y)
    shoulder_x, hand_x = joints[16, 0], _bone_ends(joints)[22, 0]
    dirs[:, 0, 3] = 0.025 * np.sign(x) * _smoothstep(np.abs(x), shoulder_x, hand_x) * arms
    upper = _smoothstep(y, joints[6, 1], joints[16, 1])
    dirs[:, 0, 4] = 0.02 * np.clip(x / shoulder_x, -1.0, 1.0) * upper * (1.0 - head)
    lower = 1.0 - _smoothstep(y, joints[0, 1], joints[3, 1] + 0.05)
    dirs[:, 0, 5] = 0.018 * np.clip(x / joints[1, 0], -1.2, 1.2) * lower * (1.0 - arms)
    dirs[:, 1, 6] = 0.02 * _smoothstep(y, joints[0, 1], joints[12, 1])
    belly = np.exp(-(((y - joints[3, 1]) / 0.10) ** 2)) * trunk * np.clip(z / 0.1, 0.0, 1.0)
    dirs[:, 2, 7] = 0.03 * belly
    dirs[:, 0, 7] = 0.01 * belly * np.sign(x) * np.clip(np.abs(x) / 0.15, 0.0, 1.0)
    head_centre = np.array([0.0, joints[15, 1] + 0.03, joints[15, 2]])
    dirs[:, :, 8] = 0.04 * (verts - head_centre) * (head * _smoothstep(y, joints[12, 1], joints[15, 1]))[:, None]
    dirs[:, :, 9] = 0.08 * radial * limbs[:, None]
    return dirs


def _face_keypoint_targets(joints: np.ndarray) -> np.ndarray:
    """Nose, left eye, right eye, left ear, right ear positions on the synthetic head."""
    hx, hy, hz = joints[15]
    return np.array([[0.0, hy + 0.02, hz + 0.115], [0.032, hy + 0.05, hz + 0.085],
                     [-0.032, hy + 0.05, hz + 0.085], [0.082, hy + 0.03, hz - 0.005],
                     [-0.082, hy + 0.03, hz - 0.005]])


def _add_face_features(verts: np.ndarray, parts: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """A nose (a bump on the front of the head) so that the front is visible."""
    hx, hy, hz = joints[15]
    nose = np.array([0.0, hy + 0.015, hz + 0.09])
    d2 = np.sum((verts - nose) ** 2, axis=1)
    bump = 0.025 / (1.0 + d2 / (2 * 0.014 ** 2)) ** 2 * (parts == PART_HEAD)  # no exp: same bits everywhere
    out = verts.copy()
    out[:, 2] += bump
    return out


def build_synthetic_body() -> Dict[str, object]:
    """All arrays of the synthetic body, keyed as in the official SMPL pickle (plus regressors)."""
    verts, faces, parts = _build_surface()
    verts = taubin_smooth(verts, faces, 12)
    design = design_joints()
    verts = _add_face_features(verts, parts, design)
    shift = _PELVIS_TARGET - design[0]
    verts = verts + shift
    joints = design + shift

    perm = move_to_indices(verts, _face_keypoint_targets(joints), SMPL_FACE_KEYPOINT_VERTICES)
    inverse = np.empty_like(perm)
    inverse[perm] = np.arange(len(perm))
    verts, parts, faces = verts[perm], parts[perm], inverse[faces]
    check_closed_manifold(faces, len(verts))

    weights = skinning_weights(verts, faces, parts, joints, _bone_ends(joints), _PART_JOINTS, 0.02, 40)
    j_regressor = fit_vertex_regressor(verts, joints)
    shapedirs = _shape_directions(verts, faces, parts, joints, weights)
    kintree = np.array([[4294967295] + list(SMPL_PARENTS[1:]), list(range(24))], dtype=np.int64)
    h36m, coco = _dataset_regressor_targets(joints, verts)
    return {
        "v_template": verts,
        "f": faces.astype(np.uint32),
        "shapedirs": shapedirs,
        "posedirs": np.zeros((len(verts), 3, 207)),
        "J_regressor": j_regressor,
        "J": np.asarray(j_regressor @ verts),
        "weights": weights,
        "kintree_table": kintree,
        "bs_type": "lrotmin",
        "bs_style": "lbs",
        "J_regressor_h36m": fit_vertex_regressor(verts, h36m).toarray().astype(np.float32),
        "J_regressor_coco": fit_vertex_regressor(verts, coco).toarray().astype(np.float32),
    }


def _dataset_regressor_targets(joints: np.ndarray, verts: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Designed positions of the Human3.6M (17) and COCO (17) joints on the synthetic body."""
    names = JOINT_SETS["smpl"].names
    J = {n: joints[i] for i, n in enumerate(names)}
    face = _face_keypoint_targets(joints)
    h36m_pos = {
        "Pelvis": J["Pelvis"], "R_Hip": J["R_Hip"], "R_Knee": J["R_Knee"], "R_Ankle": J["R_Ankle"],
        "L_Hip": J["L_Hip"], "L_Knee": J["L_Knee"], "L_Ankle": J["L_Ankle"],
        "Torso": (J["Spine"] + J["Chest"]) / 2, "Neck": J["Neck"] + np.array([0.0, 0.02, 0.01]),
        "Nose": face[0] - np.array([0.0, 0.0, 0.03]), "Head": J["Head"] + np.array([0.0, 0.09, 0.0]),
        "L_Shoulder": J["L_Shoulder"], "L_Elbow": J["L_Elbow"], "L_Wrist": J["L_Wrist"],
        "R_Shoulder": J["R_Shoulder"], "R_Elbow": J["R_Elbow"], "R_Wrist": J["R_Wrist"],
    }
    h36m = np.array([h36m_pos[n] for n in JOINT_SETS["human36"].names])
    coco_pos = {
        "Nose": face[0], "L_Eye": face[1], "R_Eye": face[2], "L_Ear": face[3], "R_Ear": face[4],
        "L_Shoulder": J["L_Shoulder"], "R_Shoulder": J["R_Shoulder"], "L_Elbow": J["L_Elbow"],
        "R_Elbow": J["R_Elbow"], "L_Wrist": J["L_Wrist"], "R_Wrist": J["R_Wrist"],
        "L_Hip": J["L_Hip"] + np.array([0.01, 0.0, 0.0]), "R_Hip": J["R_Hip"] - np.array([0.01, 0.0, 0.0]),
        "L_Knee": J["L_Knee"], "R_Knee": J["R_Knee"], "L_Ankle": J["L_Ankle"], "R_Ankle": J["R_Ankle"],
    }
    coco = np.array([coco_pos[n] for n in JOINT_SETS["coco"].names[:17]])
    return h36m, coco
