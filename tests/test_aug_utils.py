"""Geometry of the crop / rotation / flip pipeline: round trips and 2D-3D consistency."""
import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pose2mesh.aug_utils import (affine_transform, augm_params, flip_2d_joint, flip_3d_joint, get_affine_transform,
                                 invert_affine, j2d_processing, j3d_processing)
from pose2mesh.coord_utils import cam2pixel, get_bbox, pixel2cam, process_bbox, world2cam
from pose2mesh.joints import get_joint_set

INPUT_SHAPE = (384, 288)  # (height, width)
RES = (288, 384)  # (width, height)


def _three_point_affine(center, scale, rot, output_size, inv=False):
    """The original's construction: three point pairs through cv2.getAffineTransform."""
    def rotate(pt, rad):
        sn, cs = np.sin(rad), np.cos(rad)
        return np.array([pt[0] * cs - pt[1] * sn, pt[0] * sn + pt[1] * cs])

    def third(a, b):
        direct = a - b
        return b + np.array([-direct[1], direct[0]])

    src_w, (dst_w, dst_h) = scale[0], output_size
    src = np.zeros((3, 2), np.float32)
    dst = np.zeros((3, 2), np.float32)
    src[0] = center
    src[1] = center + rotate([0, -0.5 * src_w], np.deg2rad(rot))
    dst[0] = [0.5 * dst_w, 0.5 * dst_h]
    dst[1] = dst[0] + np.array([0, -0.5 * dst_w])
    src[2] = third(src[0], src[1])
    dst[2] = third(dst[0], dst[1])
    return cv2.getAffineTransform(dst, src) if inv else cv2.getAffineTransform(src, dst)


@pytest.mark.parametrize("rot", [0.0, 17.0, -63.5])
@pytest.mark.parametrize("inv", [False, True])
def test_affine_matches_three_point_construction(rot, inv):
    center, scale = np.array([311.0, 207.5]), np.array([150.0, 200.0])
    ours = get_affine_transform(center, scale, rot, RES, inv=inv)
    ref = _three_point_affine(center, scale, rot, RES, inv=inv)
    np.testing.assert_allclose(ours, ref, atol=2e-3)


@settings(max_examples=30, deadline=None)
@given(rot=st.floats(-180, 180), w=st.floats(5, 500), cx=st.floats(-100, 1000), cy=st.floats(-100, 1000))
def test_affine_inverse_round_trip(rot, w, cx, cy):
    trans = get_affine_transform((cx, cy), (w, w * 4 / 3), rot, RES)
    inv = get_affine_transform((cx, cy), (w, w * 4 / 3), rot, RES, inv=True)
    np.testing.assert_allclose(inv, invert_affine(trans), rtol=1e-9, atol=1e-6)
    pts = np.random.default_rng(0).uniform(-50, 600, size=(19, 2))
    np.testing.assert_allclose(affine_transform(affine_transform(pts, trans), inv), pts, atol=1e-6)


def test_bbox_center_maps_to_frame_center():
    bbox = process_bbox(np.array([100.0, 50.0, 80.0, 200.0]), INPUT_SHAPE)
    _, trans = j2d_processing(np.array([[bbox[0] + bbox[2] / 2, bbox[1] + bbox[3] / 2]]), RES, bbox, 30.0, False, None)
    np.testing.assert_allclose(affine_transform(np.array([bbox[0] + bbox[2] / 2, bbox[1] + bbox[3] / 2]), trans),
                               [RES[0] / 2, RES[1] / 2], atol=1e-4)


def test_process_bbox_original_semantics():
    # w, h lose one pixel, then the shorter side grows to width / height = 288 / 384 = 0.75
    box = process_bbox([10.0, 20.0, 101.0, 51.0], INPUT_SHAPE)
    np.testing.assert_allclose(box[2:], [100.0, 100.0 / 0.75], rtol=1e-6)
    np.testing.assert_allclose(box[:2] + box[2:] / 2, [10 + 50.0, 20 + 25.0], rtol=1e-6)
    tall = process_bbox([0.0, 0.0, 11.0, 301.0], INPUT_SHAPE, scale=1.25)
    np.testing.assert_allclose(tall[2:], [300 * 0.75 * 1.25, 300 * 1.25], rtol=1e-6)
    assert process_bbox([0, 0, 0.5, 10], INPUT_SHAPE) is None
    assert process_bbox([0, 0, 5, 10], None, aspect_ratio=1.0)[2] == pytest.approx(9.0)
    with pytest.raises(ValueError):
        process_bbox([0, 0, 5, 10])


def test_projection_round_trip():
    rng = np.random.default_rng(1)
    world = rng.normal(size=(17, 3)) * 300
    R, _ = cv2.Rodrigues(rng.normal(size=3))
    t = np.array([10.0, -40.0, 5000.0])
    cam = world2cam(world, R, t)
    img = cam2pixel(cam, (1100.0, 1090.0), (500.0, 480.0))
    np.testing.assert_allclose(pixel2cam(img, (500.0, 480.0), (1100.0, 1090.0)), cam, rtol=1e-9)
    box = get_bbox(img)
    assert box[0] == pytest.approx(img[:, 0].min(), rel=1e-6) and box[3] == pytest.approx(np.ptp(img[:, 1]), rel=1e-5)


@pytest.mark.parametrize("name", ["human36", "coco", "smpl"])
def test_flip_twice_is_identity(name):
    js = get_joint_set(name)
    kp = np.random.default_rng(2).uniform(0, 288, size=(js.num_joints, 3))
    np.testing.assert_allclose(flip_2d_joint(flip_2d_joint(kp, 288, js.flip_pairs), 288, js.flip_pairs), kp)
    np.testing.assert_allclose(flip_3d_joint(flip_3d_joint(kp, js.flip_pairs), js.flip_pairs), kp)
    # and the inputs are not modified
    before = kp.copy()
    flip_2d_joint(kp, 288, js.flip_pairs)
    j3d_processing(kp, 30, True, js.flip_pairs)
    np.testing.assert_array_equal(kp, before)


@settings(max_examples=25, deadline=None)
@given(rot=st.floats(-90, 90), flip=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_2d_and_3d_augmentations_agree(rot, flip, seed):
    """Rotating / flipping the 3D joints, then projecting and cropping without augmentation,
    equals cropping the projected joints with the augmentation, when the box is centred on the
    principal point (the in-plane rotation is about the camera axis). The 2D flip maps x to
    W - x - 1, the 3D flip to -X: one pixel apart by the original's pixel convention."""
    js = get_joint_set("human36")
    rng = np.random.default_rng(seed)
    joints = rng.normal(size=(17, 3)) * np.array([250.0, 400.0, 150.0]) + np.array([0.0, 0.0, 4000.0])
    f, c = np.array([1200.0, 1200.0]), np.array([512.0, 500.0])
    img = cam2pixel(joints, f, c)
    half = 1.2 * np.abs(img[:, :2] - c).max()
    bbox = process_bbox([c[0] - half, c[1] - half, 2 * half + 1, 2 * half + 1], INPUT_SHAPE)
    np.testing.assert_allclose(bbox[:2] + bbox[2:] / 2, c, atol=1e-3)

    aug_2d, _ = j2d_processing(img, RES, bbox, rot, flip, js.flip_pairs)
    joints_aug = j3d_processing(joints, rot, flip, js.flip_pairs).astype(np.float64)
    via_3d, _ = j2d_processing(cam2pixel(joints_aug, f, c), RES, bbox, 0.0, False, None)
    if flip:
        via_3d[:, 0] -= 1.0
    np.testing.assert_allclose(aug_2d[:, :2], via_3d[:, :2], atol=2e-2)


def test_augm_params_distribution():
    rng = np.random.default_rng(3)
    assert augm_params(False, True, 30.0, rng) == (False, 0.0)
    draws = [augm_params(True, True, 30.0, rng) for _ in range(4000)]
    flips = np.mean([f for f, _ in draws])
    rots = np.array([r for _, r in draws])
    assert abs(flips - 0.5) < 0.04
    assert abs(np.mean(rots == 0) - 0.5) < 0.04
    assert np.abs(rots).max() <= 60.0 + 1e-9
    assert not any(f for f, _ in (augm_params(True, False, 0.0, rng) for _ in range(50)))
