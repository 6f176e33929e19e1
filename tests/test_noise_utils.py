"""Synthesized 2D errors: same distribution as the original release's code.

The reference draws (../shared/reference/synthesize_pose_displacements.npz) were produced by
the original ``noise_utils.synthesize_pose``; we compare distributions per joint with a
two-sample Kolmogorov-Smirnov test, and check that the same test rejects a wrong model.
"""
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import ks_2samp

from pose2mesh.noise_utils import (COCO_KPS_SIGMAS, ERROR_TYPES, H36M_ERROR_JOINTS, H36M_ERROR_MEAN, H36M_ERROR_STD,
                                   H36M_ERROR_WEIGHT, error_type_probabilities, generate_h36m_error,
                                   keypoint_distance, synthesize_pose)

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "synthesize_pose_displacements.npz"
KS_THRESHOLD = 1e-3


@pytest.fixture(scope="module")
def reference():
    if not REFERENCE.exists():
        pytest.skip(f"reference draws not found at {REFERENCE}")
    ref = np.load(REFERENCE)
    return ref["joints"], float(ref["area"]), ref["displacement"]


def _displacements(joints, area, n, seed):
    rng = np.random.default_rng(seed)
    return np.stack([np.linalg.norm(synthesize_pose(joints, area, rng=rng)[:, :2] - joints[:, :2], axis=1)
                     for _ in range(n)])


def _ks_pvalues(a, b):
    return np.array([ks_2samp(a[:, j], b[:, j]).pvalue for j in range(a.shape[1])])


def test_same_distribution_as_original(reference):
    joints, area, ref = reference
    p = _ks_pvalues(_displacements(joints, area, len(ref), seed=20201), ref)
    assert np.all(p > KS_THRESHOLD), f"KS p-values {np.round(p, 5)}"


def test_ks_check_rejects_doubled_sigma(reference):
    """Doubling every OKS sigma is the same as multiplying the area by 4 (distances scale with
    sigma * sqrt(area)); the check above must fail for it."""
    joints, area, ref = reference
    p = _ks_pvalues(_displacements(joints, 4 * area, len(ref), seed=20201), ref)
    assert np.any(p < KS_THRESHOLD)


def test_error_type_rates_all_visible():
    """With all 17 keypoints visible every kind always has a candidate, so the rates are the
    original's table for more than 10 visible keypoints (good = 1 - the rest)."""
    expected = np.zeros((17, 4))
    for j in range(17):
        jitter = 0.10 if j == 0 or 13 <= j <= 16 else 0.15 if 1 <= j <= 10 else 0.20
        miss = 0.02 if j <= 4 else 0.05 if j in (5, 6, 15, 16) else 0.10
        inv = 0.0 if j == 0 else 0.01 if j <= 4 else 0.03 if j <= 10 else 0.06  # the nose has no partner
        good = 1 - jitter - miss - (0.01 if j == 0 else inv)
        expected[j] = [jitter, miss, inv, good]
    expected /= expected.sum(axis=1, keepdims=True)
    rng = np.random.default_rng(5)
    joints = np.concatenate([rng.uniform(0, 300, size=(17, 2)), np.ones((17, 1))], axis=1)
    n = 3000
    counts = np.zeros((17, 4))
    for _ in range(n):
        _, kinds = synthesize_pose(joints, 300 * 300, rng=rng, return_error_types=True)
        counts[np.arange(17), kinds] += 1
    rates = counts / n
    sd = np.sqrt(expected * (1 - expected) / n)
    assert np.all(np.abs(rates - expected) <= 4.5 * sd + 1e-9), np.round(rates - expected, 3)
    assert ERROR_TYPES == ("jitter", "miss", "inversion", "good")


def test_invisible_partner_means_no_inversion_and_more_missing():
    rng = np.random.default_rng(6)
    joints = np.concatenate([rng.uniform(0, 300, size=(17, 2)), np.ones((17, 1))], axis=1)
    joints[[2, 4, 6, 8, 10, 12, 14], 2] = 0  # 10 visible: the "<= 10" tables apply
    table = error_type_probabilities(10)
    kinds = np.stack([synthesize_pose(joints, 9e4, rng=rng, return_error_types=True)[1] for _ in range(1500)])
    assert not np.any(kinds[:, 1] == 2)  # L_Eye's partner is invisible: no inversion
    expected_jitter = table[1, 0] / (1 - table[1, 2])
    assert abs(np.mean(kinds[:, 1] == 0) - expected_jitter) < 4.5 * np.sqrt(expected_jitter * 0.8 / 1500)
    assert np.mean(kinds[:, 16] == 2) > 0  # R_Ankle's partner is visible


def test_output_format_and_validation():
    rng = np.random.default_rng(7)
    joints = np.concatenate([rng.uniform(0, 300, size=(17, 2)), np.zeros((17, 1))], axis=1)
    joints[0, 2] = 1
    out = synthesize_pose(joints, 5000.0, rng=rng)
    assert out.shape == (17, 3) and np.all(out[:, 2] == 1) and np.all(np.isfinite(out))
    np.testing.assert_array_equal(joints[:, 2], np.r_[1, np.zeros(16)])  # input untouched
    with pytest.raises(ValueError, match="17"):
        synthesize_pose(joints[:16], 5000.0)
    with pytest.raises(ValueError, match="area"):
        synthesize_pose(joints, -1.0)
    bad = joints.copy()
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        synthesize_pose(bad, 5000.0)


def test_seeded_draws_are_reproducible():
    joints = np.concatenate([np.random.default_rng(8).uniform(0, 300, size=(17, 2)), np.ones((17, 1))], axis=1)
    a = synthesize_pose(joints, 9e4, rng=np.random.default_rng(1))
    b = synthesize_pose(joints, 9e4, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)


def test_keypoint_distance_is_the_oks_level():
    d = keypoint_distance(0.5, 1e4)
    # OKS of one keypoint at distance d: exp(-d^2 / (2 area (2 sigma)^2))
    np.testing.assert_allclose(np.exp(-d ** 2 / (2 * 1e4 * (2 * COCO_KPS_SIGMAS) ** 2)), 0.5)


def test_h36m_error_table_order_and_statistics():
    assert H36M_ERROR_JOINTS[9] == "Nose" and H36M_ERROR_JOINTS[10] == "Head"
    np.testing.assert_allclose(H36M_ERROR_MEAN[9], [0.13, -0.26])  # Nose (listed after Head in the source)
    np.testing.assert_allclose(H36M_ERROR_STD[10], [1.35, 0.87])  # Head
    noise = generate_h36m_error(np.random.default_rng(9), size=40000)
    assert noise.shape == (40000, 17, 2) and noise.dtype == np.float32
    assert generate_h36m_error(np.random.default_rng(9)).shape == (17, 2)
    kept = np.any(noise != 0, axis=-1)
    np.testing.assert_allclose(kept.mean(axis=0), H36M_ERROR_WEIGHT, atol=0.006)
    for j in range(17):
        sample = noise[kept[:, j], j].astype(np.float64)
        np.testing.assert_allclose(sample.mean(axis=0), H36M_ERROR_MEAN[j], atol=0.06)
        np.testing.assert_allclose(sample.std(axis=0), H36M_ERROR_STD[j], rtol=0.03)
