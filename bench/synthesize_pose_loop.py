"""A per-keypoint loop implementation of the original release's COCO error model, for timing.

It follows the original algorithm step by step (for every keypoint: draw 500 jitter, 2 x 2000
miss, 500 inversion and 125 good candidate points, reject those too close to the other
centre, then pick a kind and one of its candidates), so that ``bench_data.py`` can compare
:func:`pose2mesh.noise_utils.synthesize_pose` with the cost of the original approach. Not used
by the package.
"""
from __future__ import annotations

import numpy as np

from pose2mesh.noise_utils import COCO_KPS_SYMMETRY, error_type_probabilities, keypoint_distance

_N = 500


def _partner(j: int) -> int:
    for a, b in COCO_KPS_SYMMETRY:
        if j in (a, b):
            return b if j == a else a
    return -1


def synthesize_pose_loop(joints: np.ndarray, area: float, rng: np.random.Generator) -> np.ndarray:
    """The original algorithm, one keypoint at a time; ``(17, 3)`` like ``synthesize_pose``."""
    d10, d50, d85 = (keypoint_distance(ks, area) for ks in (0.10, 0.50, 0.85))
    out = np.array(joints, dtype=np.float64, copy=True)
    table = error_type_probabilities(int(np.sum(joints[:, 2] > 0)))
    for j in range(17):
        partner = _partner(j)
        has_partner = partner >= 0 and joints[partner, 2] > 0
        centers = [out[j, :2].copy()] + ([out[partner, :2].copy()] if has_partner else [])

        def candidates(center: int, count: int, r_lo: float, r_hi: float, exclusion=None) -> np.ndarray:
            angle = rng.uniform(0.0, 2.0 * np.pi, count)
            r = rng.uniform(r_lo, r_hi, count)
            x = centers[center][0] + r * np.cos(angle)
            y = centers[center][1] + r * np.sin(angle)
            keep = np.ones(count, dtype=bool)
            for i, c in enumerate(centers):
                if i != center:
                    keep &= np.sqrt((c[0] - x) ** 2 + (c[1] - y) ** 2) > (r if exclusion is None else exclusion)
            return np.stack([x[keep], y[keep]], axis=1)

        jitter = candidates(0, _N, d85[j], d50[j])
        miss = [candidates(0, 4 * _N, d50[j], d10[j], d50[j])]
        if has_partner:
            around_partner = candidates(1, 4 * _N, d50[j], d10[j], d50[j])
            if len(around_partner):
                miss.append(around_partner[rng.integers(0, len(around_partner), len(around_partner) // 4)])
        miss = np.concatenate(miss)
        inversion = candidates(1, _N, 0.0, d50[j]) if has_partner else np.empty((0, 2))
        good = candidates(0, _N // 4, 0.0, d85[j])

        pools = (jitter, miss, inversion, good)
        p = np.array([table[j, k] if len(pool) else 0.0 for k, pool in enumerate(pools)])
        if p.sum() == 0:
            out[j] = 0
            continue
        pool = pools[rng.choice(4, p=p / p.sum())]
        out[j, :2] = pool[rng.integers(len(pool))]
        out[j, 2] = 1.0
    return out
