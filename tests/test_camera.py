"""The demo's closed-form weak-perspective camera fit (pose2mesh.camera)."""
import numpy as np
import pytest
import torch

from pose2mesh.camera import (ORIGINAL_CROP_SIZE, WeakPerspectiveCamera, crop_box, fit_weak_perspective,
                              reprojection_error)


def _joints(rng, n=17):
    """Root-relative joints in metres, body-sized, camera frame (y down)."""
    return rng.normal(scale=[0.25, 0.45, 0.15], size=(n, 3))


def test_recovers_known_scale_and_translation_exactly():
    rng = np.random.default_rng(0)
    P = _joints(rng)
    truth = WeakPerspectiveCamera(scale=213.7, translation=np.array([412.3, 255.9]))
    cam = fit_weak_perspective(P, truth.project(P))
    assert cam.scale == pytest.approx(truth.scale, rel=1e-12)
    np.testing.assert_allclose(cam.translation, truth.translation, rtol=0, atol=1e-9)
    assert cam.rms < 1e-9


def test_is_the_least_squares_optimum_with_noise():
    rng = np.random.default_rng(1)
    P = _joints(rng)
    p = 180.0 * P[:, :2] + np.array([300.0, 200.0]) + rng.normal(scale=6.0, size=(17, 2))
    cam = fit_weak_perspective(P, p)
    # the same problem as a generic linear least squares in (a, b_x, b_y)
    A = np.zeros((34, 3))
    A[0::2, 0], A[1::2, 0] = P[:, 0], P[:, 1]
    A[0::2, 1], A[1::2, 2] = 1.0, 1.0
    sol = np.linalg.lstsq(A, p.reshape(-1), rcond=None)[0]
    assert cam.scale == pytest.approx(sol[0], rel=1e-10)
    np.testing.assert_allclose(cam.translation, sol[1:], atol=1e-8)
    # and no perturbation of the parameters lowers the squared error
    best = reprojection_error(cam, P, p)[0]
    for d in rng.normal(size=(50, 3)) * [1.0, 0.5, 0.5]:
        other = WeakPerspectiveCamera(cam.scale + d[0], cam.translation + d[1:])
        assert reprojection_error(other, P, p)[0] > best
    assert cam.rms == pytest.approx(np.sqrt(best / 17), rel=1e-10)


def test_weights_select_joints():
    rng = np.random.default_rng(2)
    P = _joints(rng)
    p = 150.0 * P[:, :2] + 50.0
    p[3] += 400.0  # an outlier (say, an undetected joint at the image corner)
    w = np.ones(17)
    w[3] = 0.0
    cam = fit_weak_perspective(P, p, w)
    assert cam.scale == pytest.approx(150.0, rel=1e-12)
    np.testing.assert_allclose(cam.translation, [50.0, 50.0], atol=1e-9)
    # weighted least squares equals the unweighted fit on duplicated rows
    w2 = rng.integers(1, 4, size=17).astype(float)
    dup = np.repeat(np.arange(17), w2.astype(int))
    a, b = fit_weak_perspective(P, p, w2), fit_weak_perspective(P[dup], p[dup])
    assert a.scale == pytest.approx(b.scale, rel=1e-10)
    np.testing.assert_allclose(a.translation, b.translation, atol=1e-8)


@pytest.mark.cuda
def test_matches_the_original_optimizer_on_noise_free_input(device):
    """The original ran Adam (lr 0.1, 0.05 after 500 steps, 0.001 after 1000) for 1,500 steps on
    the L1 error of ``(X + t) * s * r + r`` in a 500-pixel crop; noise-free, its optimum is ours."""
    rng = np.random.default_rng(3)
    P = _joints(rng)
    truth = WeakPerspectiveCamera(scale=240.0, translation=np.array([330.0, 260.0]))
    target = truth.project(P)
    box = crop_box(target)
    expected = truth.to_crop_params(box)
    k = ORIGINAL_CROP_SIZE / box[2]
    target_crop = torch.tensor((target - box[:2]) * k, dtype=torch.float64, device=device)
    torch.manual_seed(0)
    cam_param = torch.nn.Parameter(torch.rand(1, 3, dtype=torch.float64).to(device))
    opt = torch.optim.Adam([cam_param], lr=0.1)
    X = torch.tensor(P[:, :2], device=device)
    r = ORIGINAL_CROP_SIZE / 2
    for step in range(1500):
        loss = torch.nn.functional.l1_loss((X + cam_param[0, 1:]) * cam_param[0, 0] * r + r, target_crop)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step in (500, 1000):
            for g in opt.param_groups:
                g["lr"] = 0.05 if step == 500 else 0.001
    np.testing.assert_allclose(cam_param.detach().cpu().numpy()[0], expected, atol=2e-3)


def test_crop_params_round_trip_and_convention():
    """``(s, tx, ty)`` reproduce the original's projection in its 500-pixel crop of the box."""
    from pose2mesh.datasets.common import crop_pose2d

    rng = np.random.default_rng(4)
    P = _joints(rng)
    cam = WeakPerspectiveCamera(scale=190.0, translation=np.array([640.0, 355.0]))
    pix = cam.project(P)
    box = crop_box(pix)
    assert box[2] == pytest.approx(box[3])
    s, tx, ty = cam.to_crop_params(box)
    r = ORIGINAL_CROP_SIZE / 2
    original = (P[:, :2] + [tx, ty]) * s * r + r
    crop, _ = crop_pose2d(pix, box, (ORIGINAL_CROP_SIZE, ORIGINAL_CROP_SIZE))
    np.testing.assert_allclose(original, crop, atol=1e-3)  # float32 affine in the crop helper
    back = WeakPerspectiveCamera.from_crop_params([s, tx, ty], box)
    assert back.scale == pytest.approx(cam.scale, rel=1e-12)
    np.testing.assert_allclose(back.translation, cam.translation, atol=1e-9)


def test_translation3d_projects_like_the_weak_camera_at_the_root():
    rng = np.random.default_rng(5)
    P = _joints(rng)
    P[:, 2] = 0.0  # at the root's depth the perspective and weak cameras agree exactly
    cam = WeakPerspectiveCamera(scale=120.0, translation=np.array([90.0, 400.0]))
    f, c = 2000.0, np.array([319.5, 239.5])
    T = cam.translation3d(f, c)
    Q = P + T
    persp = f * Q[:, :2] / Q[:, 2:] + c
    np.testing.assert_allclose(persp, cam.project(P), atol=1e-9)


def test_degenerate_and_bad_inputs():
    rng = np.random.default_rng(6)
    P = _joints(rng)
    mirrored = -150.0 * P[:, :2] + 10.0  # only a mirrored camera fits
    cam = fit_weak_perspective(P, mirrored)
    assert cam.scale == pytest.approx(1e-6)  # the constrained optimum, a > 0
    with pytest.raises(ValueError, match="two weighted"):
        fit_weak_perspective(P, mirrored, np.eye(17)[0])
    with pytest.raises(ValueError, match="non-finite"):
        fit_weak_perspective(P * np.nan, mirrored)
    with pytest.raises(ValueError, match="3D points"):
        fit_weak_perspective(P[:5], mirrored)
    with pytest.raises(ValueError, match="coincide"):
        fit_weak_perspective(np.zeros((17, 3)), mirrored)


def test_batched_camera_fit_equals_one_fit_per_person():
    from pose2mesh.camera import fit_weak_perspective, fit_weak_perspective_batch

    rng = np.random.default_rng(5)
    P = rng.normal(size=(6, 17, 3))
    p = 200.0 * P[..., :2] + rng.normal(size=(6, 1, 2)) * 50 + rng.normal(size=(6, 17, 2))
    w = (rng.random((6, 17)) > 0.3).astype(float)
    scales, shifts, rms = fit_weak_perspective_batch(P, p, w)
    for k in range(6):
        cam = fit_weak_perspective(P[k], p[k], w[k])
        assert np.isclose(cam.scale, scales[k]) and np.allclose(cam.translation, shifts[k]) and np.isclose(cam.rms, rms[k])
    w[3] = 0
    w[3, 0] = 1
    with pytest.raises(ValueError, match="person 3 needs at least two weighted points"):
        fit_weak_perspective_batch(P, p, w)
