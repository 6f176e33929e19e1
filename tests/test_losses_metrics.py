"""Losses and metrics: the original's values, hand-computed cases, invariances."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

import pose2mesh.paths
from pose2mesh.losses import CoordLoss, EdgeLengthLoss, LaplacianLoss, NormalVectorLoss
from pose2mesh.metrics import (accel_error, mpjpe, mpvpe, pa_mpjpe, pa_mpvpe, rigid_align, rigid_align_batch,
                               rigid_transform_3d)

REFERENCE = Path(pose2mesh.paths.repo_root()).parent / "shared" / "reference"


def tetra_mesh():
    verts = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    return verts, faces


def loop_normal_loss(out, gt, faces):
    """The original's NormalVectorLoss, face by face."""
    vals = []
    for b in range(out.shape[0]):
        for f in faces:
            o, g = out[b, f].double(), gt[b, f].double()
            g1, g2 = (g[1] - g[0]) / (g[1] - g[0]).norm(), (g[2] - g[0]) / (g[2] - g[0]).norm()
            n = torch.cross(g1, g2, dim=0)
            n = n / n.norm()
            for e in (o[1] - o[0], o[2] - o[0], o[2] - o[1]):
                vals.append(abs(float(e @ n / e.norm())))
    return float(np.mean(vals))


def loop_edge_loss(out, gt, faces):
    vals = []
    for b in range(out.shape[0]):
        for f in faces:
            for i, j in ((0, 1), (0, 2), (1, 2)):
                vals.append(abs(float((out[b, f[i]] - out[b, f[j]]).norm() - (gt[b, f[i]] - gt[b, f[j]]).norm())))
    return float(np.mean(vals))


# ---------------------------------------------------------------- losses

def test_coord_loss_masked_l1_by_hand():
    pred = torch.tensor([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]])
    target = torch.zeros(1, 2, 3)
    valid = torch.tensor([[[1.0], [0.0]]])
    loss = CoordLoss()
    assert loss(pred, target, valid).item() == pytest.approx((1 + 2 + 3) / 6)  # masked entries count in the mean
    assert loss(pred, target).item() == pytest.approx(21 / 6)


@pytest.mark.cuda
def test_normal_and_edge_losses_by_hand_and_against_loops(device):
    verts, faces = tetra_mesh()
    gt = verts[None].to(device)
    normal, edge = NormalVectorLoss(faces).to(device), EdgeLengthLoss(faces).to(device)
    assert normal(gt, gt).item() == pytest.approx(0.0, abs=1e-7)
    assert edge(gt, gt).item() == pytest.approx(0.0, abs=1e-7)
    # scaling by 2 doubles every edge: mean | 2|e| - |e| | = mean |e|; normals unchanged
    edges = [1, 1, np.sqrt(2)] * 3 + [np.sqrt(2)] * 3
    assert edge(2 * gt, gt).item() == pytest.approx(np.mean(edges), rel=1e-6)
    assert normal(2 * gt + 0.3, gt).item() == pytest.approx(0.0, abs=1e-6)
    torch.manual_seed(0)
    out = gt + 0.2 * torch.randn(3, 4, 3).to(device)
    gt3 = gt.expand(3, 4, 3) + 0.05 * torch.randn(3, 4, 3).to(device)
    assert normal(out, gt3).item() == pytest.approx(loop_normal_loss(out, gt3, faces), rel=1e-5)
    assert edge(out, gt3).item() == pytest.approx(loop_edge_loss(out, gt3, faces), rel=1e-5)
    assert "face" not in normal.state_dict() and "face" not in edge.state_dict()


@pytest.mark.cuda
def test_edge_loss_gradient_finite_for_degenerate_edges(device):
    verts, faces = tetra_mesh()
    out = torch.zeros(1, 4, 3, device=device, requires_grad=True)
    EdgeLengthLoss(faces).to(device)(out, verts[None].to(device)).backward()
    assert torch.isfinite(out.grad).all()


def test_laplacian_loss_matches_dense_original_construction():
    verts, faces = tetra_mesh()
    nv = 5  # one isolated vertex
    lap = np.zeros((nv, nv), np.float32)
    for a, b in ((0, 1), (1, 0), (1, 2), (2, 1), (2, 0), (0, 2)):
        lap[faces[:, a], faces[:, b]] = -1
    lap[np.arange(nv), np.arange(nv)] = -lap.sum(1)
    lap /= (np.diag(lap) + 1e-8)[:, None]
    x = torch.randn(2, nv, 3)
    expected = np.stack([lap @ x[i].numpy() for i in range(2)])
    expected = (expected ** 2).sum(2)
    assert LaplacianLoss(faces, nv)(x).item() == pytest.approx(expected.mean(), rel=1e-5)
    assert LaplacianLoss(faces, nv, average=True)(x).item() == pytest.approx(expected.sum() / 2, rel=1e-5)


# ---------------------------------------------------------------- metrics

def test_mpjpe_mpvpe_by_hand():
    pred = np.array([[[3.0, 4.0, 0.0], [1.0, 1.0, 1.0]]])
    target = np.array([[[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]])
    np.testing.assert_allclose(mpjpe(pred, target), [[5.0, 0.0]])
    np.testing.assert_allclose(mpvpe(torch.from_numpy(pred), torch.from_numpy(target)).numpy(), [[5.0, 0.0]])
    with pytest.raises(ValueError):
        mpjpe(pred, target[:, :1])


@pytest.mark.skipif(not (REFERENCE / "rigid_align.npz").is_file(), reason="no reference rigid_align.npz")
def test_rigid_align_matches_original():
    ref = np.load(REFERENCE / "rigid_align.npz")
    for a, b, aligned in zip(ref["A"], ref["B"], ref["aligned"]):
        np.testing.assert_allclose(rigid_align(a, b), aligned, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(rigid_align_batch(ref["A"], ref["B"]), ref["aligned"], rtol=1e-9, atol=1e-9)
    batch_t = rigid_align_batch(torch.from_numpy(ref["A"]), torch.from_numpy(ref["B"])).numpy()
    np.testing.assert_allclose(batch_t, ref["aligned"], rtol=1e-8, atol=1e-8)


def test_rigid_align_reflection_branch_batch_equals_single():
    rng = np.random.RandomState(1)
    A = rng.randn(6, 14, 3)
    B = rng.randn(6, 14, 3)
    B[3:] = A[3:] * np.array([-1.0, 1.0, 1.0]) + 0.01 * rng.randn(3, 14, 3)  # mirrored: det(R) < 0 branch
    dets = [np.linalg.det(rigid_transform_3d(a, b)[1]) for a, b in zip(A, B)]
    assert all(d > 0 for d in dets)  # always a proper rotation
    single = np.stack([rigid_align(a, b) for a, b in zip(A, B)])
    np.testing.assert_allclose(rigid_align_batch(A, B), single, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(rigid_align_batch(torch.from_numpy(A), torch.from_numpy(B)).numpy(), single,
                               rtol=1e-8, atol=1e-8)


def test_pa_metrics_zero_for_similarity_copies():
    rng = np.random.RandomState(0)
    target = rng.randn(5, 14, 3) * 100
    R = Rotation.random(5, random_state=2).as_matrix()
    pred = 1.7 * np.einsum("nij,nkj->nki", R, target) + rng.randn(5, 1, 3) * 50
    assert mpjpe(pred, target).mean() > 10
    assert pa_mpjpe(pred, target).max() < 1e-8
    assert pa_mpvpe(torch.from_numpy(pred).float(), torch.from_numpy(target).float()).max() < 1e-3
    # PA error never exceeds the plain error of the same prediction (alignment minimises it)
    noisy = target + rng.randn(5, 14, 3) * 5
    assert pa_mpjpe(noisy, target).mean() <= mpjpe(noisy, target).mean() + 1e-9


def test_accel_error_constant_velocity_and_by_hand():
    t = np.arange(10, dtype=np.float64)[:, None, None]
    gt = np.zeros((10, 2, 3)) + t * np.array([1.0, -2.0, 0.5])
    pred = gt + np.array([3.0, 1.0, 0.0])  # constant offset: same acceleration
    np.testing.assert_allclose(accel_error(pred, gt), np.zeros(8), atol=1e-12)
    # one frame displaced by d: accelerations around it change by d, -2d, d
    bumped = gt.copy()
    bumped[4, :, 0] += 1.0
    expected = np.zeros(8)
    expected[[2, 3, 4]] = [1.0, 2.0, 1.0]
    np.testing.assert_allclose(accel_error(bumped, gt), expected, atol=1e-12)
    np.testing.assert_allclose(accel_error(torch.from_numpy(bumped), torch.from_numpy(gt)).numpy(), expected)
    # an invisible frame removes the three accelerations that use it (the original's roll logic)
    vis = np.ones(10, bool)
    vis[4] = False
    kept = accel_error(bumped, gt, vis)
    np.testing.assert_allclose(kept, np.delete(expected, [2, 3, 4]))
    torch_kept = accel_error(torch.from_numpy(bumped), torch.from_numpy(gt), torch.from_numpy(vis))
    np.testing.assert_allclose(torch_kept.numpy(), kept)
