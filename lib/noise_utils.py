"""Synthesized 2D detector errors: the COCO error model and the Human3.6M error table.

COCO error model (:func:`synthesize_pose`)
------------------------------------------
The original release (``lib/noise_utils.py``, after Moon et al.'s PoseFix) replaces each of the
17 COCO keypoints by one of four kinds of point, around the ground truth ``g`` or around the
keypoint's left/right partner ``o`` (an *inversion*), at distances set by the keypoint's OKS
sigma and the box area: ``d(ks) = sqrt(-2 area (2 sigma)^2 ln ks)`` is the distance at which
the OKS of that keypoint falls to ``ks``.

=========  ======  ====================  ============================================
kind       centre  radius r (uniform)    rejected when the point is within ...
=========  ======  ====================  ============================================
jitter     g       [d(.85), d(.50)]      r of o
miss       g or o  [d(.50), d(.10)]      d(.50) of the other centre
inversion  o       [0, d(.50)]           r of g
good       g       [0, d(.85)]           r of o
=========  ======  ====================  ============================================

The direction is uniform; ``o`` takes part only when the partner is visible. Kind
probabilities depend on the keypoint and on how many keypoints are visible (tables below, the
original's); the original's swap errors need other people's keypoints and are switched off
there (``swap_prob = 0``), so ``num_overlap`` has no effect, as in the original.

The original draws 500 (good: 125; miss: 2000 per centre) candidate points per kind and picks
one uniformly among those that pass the rejection test; a miss picks from the pool of all
passing candidates around ``g`` plus a quarter as many resampled from those around ``o``. We
sample the same distribution directly, vectorized over keypoints:

- a uniformly chosen passing candidate is one draw of ``(r, angle)`` conditioned on passing.
  The passing set is, for each ``r``, an arc of the circle of radius ``r``, so we draw ``r``
  with density proportional to the arc fraction ``1 - arccos(kappa(r)) / pi`` (rejection on
  ``r`` alone) and then the angle uniformly on the arc;
- the arc fraction is at least 1/2 for every kind (the excluded disc never covers more than
  half of the circle), so "no candidate passes" has probability below ``2**-125`` and is
  treated as impossible;
- the miss pool's split between the two centres is ``n_g`` vs ``n_o // 4`` with
  ``n ~ Binomial(2000, p)``, ``p`` the mean arc fraction (integrated numerically).

Keypoints are processed in two passes because the original visits them in order and an
inversion centre is the partner's *already synthesized* position when the partner comes first.

Human3.6M error table (:func:`generate_h36m_error`)
---------------------------------------------------
Per-joint Gaussian errors (pixels in a 256-pixel crop) with a detection rate ``weight``: a
joint gets its error with probability ``weight``, otherwise none.
"""
from __future__ import annotations

from typing import Optional, Tuple, Union

import numpy as np

from .joints import get_joint_set

__all__ = ["COCO_KPS_SIGMAS", "COCO_KPS_SYMMETRY", "ERROR_TYPES", "keypoint_distance", "error_type_probabilities",
           "synthesize_pose", "H36M_ERROR_JOINTS", "H36M_ERROR_MEAN", "H36M_ERROR_STD", "H36M_ERROR_WEIGHT",
           "generate_h36m_error"]

# OKS sigmas of the 17 COCO keypoints (COCO keypoint evaluation), as the original
COCO_KPS_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89,
                            .89]) / 10.0
COCO_KPS_SYMMETRY = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
_NUM_KPS = 17
_N = 500  # the original's candidate count per kind (good: N // 4; miss: 4 N per centre)

ERROR_TYPES = ("jitter", "miss", "inversion", "good")
_JITTER, _MISS, _INV, _GOOD = range(4)


def keypoint_distance(ks: float, area: float, sigmas: np.ndarray = COCO_KPS_SIGMAS) -> np.ndarray:
    """Distance (pixels) at which each keypoint's OKS falls to ``ks`` for a box of ``area`` px^2."""
    return np.sqrt(-2.0 * area * (2.0 * sigmas) ** 2 * np.log(ks))


def _partner() -> np.ndarray:
    partner = np.full(_NUM_KPS, -1)
    for a, b in COCO_KPS_SYMMETRY:
        partner[a], partner[b] = b, a
    return partner


_PARTNER = _partner()
_FACE = np.arange(_NUM_KPS) <= 4
_UPPER = (np.arange(_NUM_KPS) >= 5) & (np.arange(_NUM_KPS) <= 10)


def _probability_table(num_valid: int) -> np.ndarray:
    j = np.arange(_NUM_KPS)
    nose_knee_ankle = (j == 0) | ((j >= 13) & (j <= 16))
    eyes_ears_upper = (j >= 1) & (j <= 10)
    if num_valid <= 10:
        jitter = np.where(nose_knee_ankle, 0.15, np.where(eyes_ears_upper, 0.20, 0.25))
    else:
        jitter = np.where(nose_knee_ankle, 0.10, np.where(eyes_ears_upper, 0.15, 0.20))
    shoulder_ankle = np.isin(j, (5, 6, 15, 16))
    miss_table = (0.15, 0.20, 0.25) if num_valid <= 5 else (0.10, 0.13, 0.15) if num_valid <= 10 else (0.02, 0.05, 0.10)
    miss = np.where(_FACE, miss_table[0], np.where(shoulder_ankle, miss_table[1], miss_table[2]))
    inv = np.where(_FACE, 0.01, np.where(_UPPER, 0.03, 0.06))
    good = 1.0 - (jitter + miss + inv)
    table = np.stack([jitter, miss, inv, good], axis=1)
    table.flags.writeable = False
    return table


_PROBABILITY_TABLES = tuple(_probability_table(n) for n in range(_NUM_KPS + 1))


def error_type_probabilities(num_valid: int) -> np.ndarray:
    """``(17, 4)`` base probabilities of jitter, miss, inversion, good for ``num_valid`` visible
    keypoints (the original's tables), before removing the inversion of keypoints without a
    visible partner and renormalizing. Read-only."""
    return _PROBABILITY_TABLES[int(num_valid)]


def _arc(r: np.ndarray, d: np.ndarray, excl: np.ndarray,
         own_radius: Union[np.ndarray, bool]) -> Tuple[np.ndarray, np.ndarray]:
    """The passing arc of a circle of radius ``r`` around one centre, the other centre at
    distance ``d`` excluding a disc of radius ``excl`` (``r`` itself where ``own_radius``).

    A point at angle ``t`` from the direction of the other centre passes when
    ``cos t <= kappa = (d^2 + r^2 - excl^2) / (2 d r)``, i.e. for ``t`` in
    ``[alpha, 2 pi - alpha]`` with ``alpha = arccos(clip(kappa))``.

    Returns:
        the passing fraction ``1 - alpha / pi`` (at least 1/2 for every kind) and ``alpha``.
    """
    num = d * d + np.where(own_radius, 0.0, r * r - excl * excl)
    den = 2.0 * d * r
    degenerate = den == 0
    kappa = num / np.where(degenerate, 1.0, den)
    if degenerate.any():
        # d == 0 (centres coincide) or r == 0 (the point is the centre): all or nothing passes;
        # the tie num == 0 (exclusion radius r itself) is decided by rounding in the original: half
        kappa = np.where(degenerate, np.where(num > 0, np.inf, np.where(num < 0, -np.inf, 0.0)), kappa)
    alpha = np.arccos(np.minimum(np.maximum(kappa, -1.0), 1.0))
    return 1.0 - alpha * (1.0 / np.pi), alpha


_MIDPOINTS = (np.arange(64) + 0.5) / 64
_CANDIDATES = 16  # radius candidates per keypoint and round; each passes with probability >= 1/2


def _synthesize_pass(rng: np.random.Generator, out: np.ndarray, idx: np.ndarray, partner: np.ndarray,
                     has_other: np.ndarray, kind: np.ndarray, r_lo: np.ndarray, r_hi: np.ndarray, d50: np.ndarray,
                     u_split: np.ndarray) -> None:
    """Synthesize keypoints ``idx`` in place (all arrays indexed like ``idx``); the partners'
    positions are read from ``out`` as they are now."""
    k = len(idx)
    g = out[idx, :2]
    o = np.where(has_other[:, None], out[partner, :2], g)
    own_radius = kind != _MISS

    # a miss comes from the pool of passing candidates around g (n_g) and a quarter as many
    # resampled from those around o (n_o // 4), n ~ Binomial(2000, mean pass fraction)
    around_o = kind == _INV
    miss = np.flatnonzero((kind == _MISS) & has_other)
    if len(miss):
        dist = np.hypot(*(o[miss] - g[miss]).T)
        r = r_lo[miss, None] + (r_hi - r_lo)[miss, None] * _MIDPOINTS
        p_pass = _arc(r, dist[:, None], d50[miss, None], False)[0].mean(axis=1)
        n = rng.binomial(4 * _N, np.concatenate([p_pass, p_pass]))
        n_g, n_o = n[:len(miss)], n[len(miss):] // 4
        around_o[miss] = u_split[miss] * (n_g + n_o) >= n_g
    center = np.where(around_o[:, None], o, g)
    delta = np.where(around_o[:, None], g, o) - center
    d = np.hypot(delta[:, 0], delta[:, 1])

    # the radius: rejection sampling with acceptance = the circle's passing fraction; the
    # direction: uniform on the passing arc
    radius, alpha = np.empty(k), np.empty(k)
    todo = np.arange(k)
    while len(todo):
        u = rng.uniform(size=(2, len(todo), _CANDIDATES))
        cand = r_lo[todo, None] + (r_hi - r_lo)[todo, None] * u[0]
        frac, arc = _arc(cand, d[todo, None], d50[todo, None], own_radius[todo, None])
        free = ~has_other[todo, None]
        ok = (u[1] < frac) | free
        hit = ok.any(axis=1)
        first = ok.argmax(axis=1)
        rows = np.arange(len(todo))
        radius[todo] = cand[rows, first]
        alpha[todo] = np.where(free[:, 0], 0.0, arc[rows, first])
        todo = todo[~hit]
    theta = np.arctan2(delta[:, 1], delta[:, 0]) + alpha + rng.uniform(size=k) * (2.0 * np.pi - 2.0 * alpha)
    out[idx, 0] = center[:, 0] + radius * np.cos(theta)
    out[idx, 1] = center[:, 1] + radius * np.sin(theta)
    out[idx, 2] = 1.0


_NO_INVERSION = np.array([1.0, 1.0, 0.0, 1.0])
# distances at OKS 0.10, 0.50, 0.85 for a unit area, (3, 17)
_UNIT_DISTANCES = np.stack([keypoint_distance(ks, 1.0) for ks in (0.10, 0.50, 0.85)])
_ARANGE = np.arange(_NUM_KPS)
# keypoints whose partner comes later (or who have none) see the partner's original position;
# the others see the partner's synthesized one (the original visits keypoints in order)
_PASSES = (np.flatnonzero((_PARTNER < 0) | (_PARTNER > _ARANGE)),
           np.flatnonzero((_PARTNER >= 0) & (_PARTNER < _ARANGE)))


def synthesize_pose(joints: np.ndarray, area: float, num_overlap: int = 0, rng: Optional[np.random.Generator] = None,
                    return_error_types: bool = False):
    """Replace the 17 COCO keypoints by a plausible detector output (the original's error model).

    Args:
        joints: ``(17, 3)``: x, y (pixels), visibility (> 0 visible), COCO keypoint order.
        area: the person box area in the same pixel units (the original used the crop frame).
        num_overlap: the original's count of overlapping people; it only sets swap errors, which
            the original switches off, so it has no effect (kept for the original's signature).
        rng: random generator (default: a fresh one).
        return_error_types: also return the ``(17,)`` kind chosen per keypoint, indices into
            :data:`ERROR_TYPES`.
    Returns:
        ``(17, 3)`` float64 keypoints, every visibility set to 1 (as the original); with
        ``return_error_types`` a tuple ``(keypoints, kinds)``.
    """
    joints = np.asarray(joints, dtype=np.float64)
    if joints.shape != (_NUM_KPS, 3):
        raise ValueError(f"synthesize_pose: expected 17 COCO keypoints as a (17, 3) array of x, y, visibility, "
                         f"got shape {joints.shape}")
    if not np.isfinite(joints).all():
        raise ValueError("synthesize_pose: keypoints contain NaN or inf")
    if not (np.isfinite(area) and area > 0):
        raise ValueError(f"synthesize_pose: area must be a positive number, got {area!r}")
    if int(num_overlap) < 0:
        raise ValueError(f"synthesize_pose: num_overlap must be >= 0, got {num_overlap!r}")
    rng = np.random.default_rng() if rng is None else rng
    d10, d50, d85 = _UNIT_DISTANCES * np.sqrt(float(area))
    visible = joints[:, 2] > 0
    partner = np.maximum(_PARTNER, 0)
    has_other = (_PARTNER >= 0) & visible[partner]

    # the kind of every keypoint (the inversion needs a visible partner)
    p = error_type_probabilities(int(visible.sum())) * np.where(has_other[:, None], 1.0, _NO_INVERSION)
    cum = np.cumsum(p, axis=1)
    u = rng.uniform(size=(2, _NUM_KPS))
    kind = (u[0][:, None] * cum[:, -1:] > cum[:, :-1]).sum(axis=1)
    zero = np.zeros(_NUM_KPS)
    r_lo = np.stack([d85, d50, zero, zero], axis=1)[_ARANGE, kind]
    r_hi = np.stack([d50, d10, d50, d85], axis=1)[_ARANGE, kind]

    out = joints.copy()
    for idx in _PASSES:
        _synthesize_pass(rng, out, idx, partner[idx], has_other[idx], kind[idx], r_lo[idx], r_hi[idx], d50[idx],
                         u[1, idx])
    return (out, kind) if return_error_types else out


# --------------------------------------------------------------------------------------------
# Human3.6M: per-joint Gaussian detector errors.
# Source: the original release's data/Human36M/noise_stats.py, "Data provided by Chang, J.Y.,
# Moon, G., Lee, K.M.: AbsPoseLifter: Absolute 3D human pose lifting network from a single noisy
# 2D human pose. arXiv:1910.12029 (2020)". Pixels in a 256 x 256 crop.
# --------------------------------------------------------------------------------------------
_H36M_ERROR_TABLE = {
    # joint: (mean x, mean y), (std x, std y), detection weight
    "Pelvis": ((-0.06, -2.37), (1.33, 2.13), 1.00),
    "R_Hip": ((-0.83, -2.07), (3.41, 2.69), 1.00),
    "R_Knee": ((-0.04, -1.01), (1.74, 2.20), 0.95),
    "R_Ankle": ((0.52, -3.40), (1.39, 2.14), 0.93),
    "L_Hip": ((0.78, -2.79), (3.26, 2.28), 1.00),
    "L_Knee": ((0.42, -0.15), (1.53, 1.99), 0.94),
    "L_Ankle": ((-0.15, -3.78), (1.39, 2.39), 0.93),
    "Torso": ((-0.05, 0.10), (1.36, 1.74), 0.99),
    "Neck": ((0.14, -2.56), (1.18, 1.15), 0.99),
    "Head": ((0.09, 0.49), (1.35, 0.87), 0.99),
    "Nose": ((0.13, -0.26), (0.78, 0.59), 0.98),
    "L_Shoulder": ((-0.19, 0.31), (2.51, 1.48), 0.99),
    "L_Elbow": ((0.11, -0.60), (1.79, 1.76), 0.95),
    "L_Wrist": ((-0.02, 0.88), (2.02, 2.10), 0.91),
    "R_Shoulder": ((0.52, -0.12), (2.23, 1.73), 0.99),
    "R_Elbow": ((0.06, -0.44), (1.93, 1.63), 0.95),
    "R_Wrist": ((0.05, 0.16), (2.02, 2.24), 0.90),
}
# in the human36 joint set's order (the table's own order puts Head before Nose)
H36M_ERROR_JOINTS: Tuple[str, ...] = get_joint_set("human36").names
H36M_ERROR_MEAN = np.array([_H36M_ERROR_TABLE[n][0] for n in H36M_ERROR_JOINTS], dtype=np.float64)
H36M_ERROR_STD = np.array([_H36M_ERROR_TABLE[n][1] for n in H36M_ERROR_JOINTS], dtype=np.float64)
H36M_ERROR_WEIGHT = np.array([_H36M_ERROR_TABLE[n][2] for n in H36M_ERROR_JOINTS], dtype=np.float64)


def generate_h36m_error(rng: np.random.Generator, size: Optional[int] = None) -> np.ndarray:
    """Draw Human3.6M 2D detector errors (pixels in a 256-pixel crop), human36 joint order.

    Each joint's error is ``N(mean, std)`` per axis, kept with probability ``weight`` and zero
    otherwise (the original's ``generate_syn_error``).

    Returns:
        ``(17, 2)`` float32, or ``(size, 17, 2)`` with ``size``.
    """
    shape = (17,) if size is None else (int(size), 17)
    noise = rng.normal(H36M_ERROR_MEAN, H36M_ERROR_STD, size=shape + (2,))
    keep = H36M_ERROR_WEIGHT > rng.uniform(0.0, 1.0, size=shape)
    return (noise * keep[..., None]).astype(np.float32)
