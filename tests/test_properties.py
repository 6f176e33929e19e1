"""Property-based tests of the geometry (hypothesis): invariances and round trips that must hold
for every input, not only for the hand-picked examples of the modules' own tests
(test_losses_metrics.py, test_aug_utils.py, test_graph_coarsening.py, test_graph_utils.py)."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.spatial import ConvexHull
from scipy.spatial.transform import Rotation

from pose2mesh.aug_utils import (affine_transform, flip_2d_joint, flip_3d_joint, get_affine_transform,
                                 invert_affine)
from pose2mesh.coarsening import coarsen, inverse_permutation, permute_adjacency, permute_data
from pose2mesh.datasets.mesh_batch import rotate_root
from pose2mesh.graph_utils import build_coarse_graphs, mesh_adjacency
from pose2mesh.joints import JOINT_SETS
from pose2mesh.metrics import pa_mpjpe, rigid_align, rigid_align_batch

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

seeds = st.integers(0, 2 ** 32 - 1)
unit_quaternions = st.lists(st.floats(-1, 1), min_size=4, max_size=4).filter(
    lambda q: np.linalg.norm(q) > 0.1).map(lambda q: np.asarray(q) / np.linalg.norm(q))
scales = st.floats(0.05, 20.0)
translations = st.lists(st.floats(-2000, 2000), min_size=3, max_size=3).map(np.asarray)
joint_set_names = st.sampled_from(sorted(JOINT_SETS))


def spread_points(seed: int, n: int) -> np.ndarray:
    """n x 3 points (mm) that span 3D well (no near-coplanar sets, where the rotation is ill-posed)."""
    rng = np.random.default_rng(seed)
    while True:
        pts = rng.normal(scale=300.0, size=(n, 3))
        s = np.linalg.svd(pts - pts.mean(0), compute_uv=False)
        if s[-1] > 0.2 * s[0]:
            return pts


def similarity(points: np.ndarray, q: np.ndarray, s: float, t: np.ndarray) -> np.ndarray:
    return s * points @ Rotation.from_quat(q).as_matrix().T + t


# ----------------------------------------------------------------------------- Procrustes

@SETTINGS
@given(seeds, st.integers(4, 30), unit_quaternions, scales, translations)
def test_rigid_align_recovers_a_similarity_copy(seed, n, q, s, t):
    A = spread_points(seed, n)
    B = similarity(A, q, s, t)
    np.testing.assert_allclose(rigid_align(A, B), B, atol=1e-6 * (1 + s) * 1000)
    np.testing.assert_allclose(rigid_align(B, A), A, atol=1e-6 * 1000)
    batch = rigid_align_batch(A[None], B[None])[0]
    np.testing.assert_allclose(batch, B, atol=1e-6 * (1 + s) * 1000)
    torch_batch = rigid_align_batch(torch.as_tensor(A[None]), torch.as_tensor(B[None]))[0].numpy()
    np.testing.assert_allclose(torch_batch, B, atol=1e-6 * (1 + s) * 1000)


@SETTINGS
@given(seeds, st.integers(4, 30), unit_quaternions, scales, translations)
def test_pa_mpjpe_is_invariant_to_similarity_transforms_of_the_prediction(seed, n, q, s, t):
    target = spread_points(seed, n)
    pred = target + np.random.default_rng(seed + 1).normal(scale=30.0, size=target.shape)
    base = pa_mpjpe(pred[None], target[None])
    moved = pa_mpjpe(similarity(pred, q, s, t)[None], target[None])
    np.testing.assert_allclose(moved, base, rtol=1e-6, atol=1e-6)
    assert np.all(base <= np.linalg.norm(pred - target, axis=-1).mean() * n)  # finite and sane


# ----------------------------------------------------------------------------- flips

@SETTINGS
@given(seeds, joint_set_names, st.floats(1.0, 4000.0))
def test_flip_is_an_involution(seed, name, width):
    js = JOINT_SETS[name]
    rng = np.random.default_rng(seed)
    kp2 = np.column_stack([rng.uniform(0, width, js.num_joints), rng.uniform(0, 1000, js.num_joints),
                           rng.uniform(0, 1, js.num_joints)])
    kp3 = rng.normal(scale=500, size=(js.num_joints, 3))
    np.testing.assert_allclose(flip_2d_joint(flip_2d_joint(kp2, width, js.flip_pairs), width, js.flip_pairs), kp2,
                               atol=1e-9 * width)
    np.testing.assert_array_equal(flip_3d_joint(flip_3d_joint(kp3, js.flip_pairs), js.flip_pairs), kp3)
    once = flip_3d_joint(kp3, js.flip_pairs)
    if js.flip_pairs:  # one flip mirrors and swaps the pairs: not the identity
        a, b = js.flip_pairs[0]
        np.testing.assert_array_equal(once[a], kp3[b] * [-1, 1, 1])


# ----------------------------------------------------------------------------- affine maps

@SETTINGS
@given(st.lists(st.floats(-500, 2500), min_size=2, max_size=2), st.floats(1.0, 3000.0), st.floats(-180, 180),
       st.sampled_from([(64, 64), (256, 256), (384, 288)]), seeds)
def test_affine_transform_and_its_inverse_round_trip(center, size, rot, out, seed):
    T = get_affine_transform(center, size, rot, out)
    T_inv = get_affine_transform(center, size, rot, out, inv=True)
    pts = np.random.default_rng(seed).uniform(-1000, 3000, size=(20, 2))
    np.testing.assert_allclose(affine_transform(affine_transform(pts, T), T_inv), pts, atol=1e-7 * 3000)
    np.testing.assert_allclose(T_inv, invert_affine(T), rtol=1e-9, atol=1e-9 * 3000)
    np.testing.assert_allclose(invert_affine(invert_affine(T)), T, rtol=1e-9, atol=1e-9 * 3000)
    np.testing.assert_allclose(affine_transform(np.asarray(center, dtype=float), T), np.asarray(out) / 2,
                               atol=1e-7 * 3000)


# ----------------------------------------------------------------------------- rotations

axis_angles = st.lists(st.floats(-1, 1), min_size=3, max_size=3).filter(lambda v: np.linalg.norm(v) > 1e-3).flatmap(
    lambda v: st.floats(1e-4, np.pi - 1e-3).map(lambda a: np.asarray(v) / np.linalg.norm(v) * a))


@SETTINGS
@given(st.lists(axis_angles, min_size=1, max_size=8))
def test_axis_angle_rotation_matrix_round_trip(aas):
    """smplx's batch_rodrigues (what SMPL_Layer / ManoLayer use) against scipy, both ways."""
    from smplx.lbs import batch_rodrigues

    aa = np.stack(aas)
    R = batch_rodrigues(torch.as_tensor(aa, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(R, Rotation.from_rotvec(aa).as_matrix(), atol=1e-7)
    # smplx takes the angle as |aa + 1e-8| (as the original): orthonormal to ~1e-8, not to rounding
    np.testing.assert_allclose(R @ np.swapaxes(R, 1, 2), np.broadcast_to(np.eye(3), R.shape), atol=1e-7)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-7)
    np.testing.assert_allclose(Rotation.from_matrix(R).as_rotvec(), aa, atol=1e-6)


@SETTINGS
@given(st.lists(axis_angles, min_size=1, max_size=6), unit_quaternions)
def test_rotate_root_then_back_restores_the_root_orientation(roots, q):
    pose = np.zeros((len(roots), 72))
    pose[:, :3] = np.stack(roots)
    pose[:, 3:] = 0.1
    R = Rotation.from_quat(q).as_matrix()
    back = rotate_root(rotate_root(pose, R), R.T)
    np.testing.assert_allclose(Rotation.from_rotvec(back[:, :3]).as_matrix(),
                               Rotation.from_rotvec(pose[:, :3]).as_matrix(), atol=1e-9)
    np.testing.assert_array_equal(back[:, 3:], pose[:, 3:])


# ----------------------------------------------------------------------------- coarsening

def hull_mesh(seed: int, n: int) -> np.ndarray:
    """The faces of the convex hull of n random points on a sphere: a closed, connected mesh."""
    pts = np.random.default_rng(seed).normal(size=(n, 3))
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)
    return ConvexHull(pts).simplices.astype(np.int64)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seeds, st.integers(8, 80), st.integers(1, 4))
def test_coarsening_permutations_are_bijections_undone_by_their_reverse(seed, n, levels):
    faces = hull_mesh(seed, n)
    A = mesh_adjacency(faces, n)
    adjacencies, _, perms = coarsen(A, levels)
    assert len(perms) == levels + 1
    for level, perm in enumerate(perms):
        perm = np.asarray(perm)
        np.testing.assert_array_equal(np.sort(perm), np.arange(perm.size))  # a bijection of 0..M'-1
        inv = inverse_permutation(perm)
        np.testing.assert_array_equal(inv[perm], np.arange(perm.size))
        np.testing.assert_array_equal(perm[inv], np.arange(perm.size))
        if level + 1 < len(perms):  # the binary tree: 2 vertices per coarse vertex
            assert perm.size == 2 * len(perms[level + 1])
    # the padded, permuted finest graph is the mesh's, renumbered
    M = A.shape[0]
    P0 = np.asarray(perms[0])
    inv0 = inverse_permutation(P0)
    padded = permute_adjacency(A, P0)
    np.testing.assert_array_equal(padded[inv0[:M]][:, inv0[:M]].toarray(), A.toarray())
    assert sp.csr_matrix(padded).nnz == sp.csr_matrix(A).nnz  # fake vertices are isolated
    np.testing.assert_array_equal(adjacencies[0].toarray(), padded.toarray())
    # per-vertex data: permuted, then read back through the reverse permutation
    x = np.random.default_rng(seed).normal(size=(M, 3))
    np.testing.assert_array_equal(permute_data(x, P0)[inv0[:M]], x)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seeds, st.integers(10, 60))
def test_build_coarse_graphs_reverse_index_unpermutes_the_output(seed, n):
    faces = hull_mesh(seed, n)
    js = JOINT_SETS["human36"]
    adj, lap, perm, perm_reverse = build_coarse_graphs(faces, js.num_joints, js.skeleton, js.graph_pairs,
                                                       levels=3, cache=False)
    x = np.random.default_rng(seed).normal(size=(n, 3))
    out = permute_data(x, perm[0])  # what the network's finest level holds
    np.testing.assert_array_equal(out[np.asarray(perm_reverse)[:n]], x)
    for L in lap[:-1]:  # rescaled Laplacians keep their spectrum in [-1, 0] for L / (2 lmax) - I
        eig = np.linalg.eigvalsh(L.toarray())
        assert eig.min() >= -1 - 1e-9 and eig.max() <= 1e-9
