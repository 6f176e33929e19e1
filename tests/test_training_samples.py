"""Training samples as the original release computes them, on the fixtures.

Each expectation is computed here by a transcription of the original's arithmetic (its
``get_bbox``, ``process_bbox``, three-point crop matrix, ``replace_joint_img`` area, MuCo
``get_fitting_error`` with ``transform_joint_to_other_db``, FreiHAND ``__getitem__``), not by
the loaders' own helpers.
"""
import json

import cv2
import numpy as np
import pytest

import pose2mesh.noise_utils as noise_utils
from fixtures import make_cfg, synthetic_mano, write_coco, write_freihand, write_human36m, write_muco
from pose2mesh.datasets.coco import COCO
from pose2mesh.datasets.freihand import FreiHAND
from pose2mesh.datasets.human36m import Human36M
from pose2mesh.datasets.multiple import MultipleDatasets
from pose2mesh.datasets.muco import MuCo

# the original's joint names (data/MuCo/dataset.py, data/Human36M/dataset.py)
ORIG_MUCO_NAMES = ("Head_top", "Thorax", "R_Shoulder", "R_Elbow", "R_Wrist", "L_Shoulder", "L_Elbow", "L_Wrist",
                   "R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "Pelvis", "Spine", "Head", "R_Hand",
                   "L_Hand", "R_Toe", "L_Toe")
ORIG_H36M_NAMES = ("Pelvis", "R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "Torso", "Neck", "Nose", "Head",
                   "L_Shoulder", "L_Elbow", "L_Wrist", "R_Shoulder", "R_Elbow", "R_Wrist")
ORIG_H36M_FLIP_PAIRS = ((1, 4), (2, 5), (3, 6), (14, 11), (15, 12), (16, 13))


# --------------------------------------------------------------------------------------------
# transcriptions of the original's helpers
# --------------------------------------------------------------------------------------------

def orig_get_bbox(joint_img):
    x, y = joint_img[:, 0], joint_img[:, 1]
    return np.array([x.min(), y.min(), x.max() - x.min(), y.max() - y.min()]).astype(np.float32)


def orig_process_bbox(bbox, aspect_ratio):
    x, y, w, h = bbox
    box = np.array([x, y, (x + (w - 1)) - x, (y + (h - 1)) - y])
    w, h = box[2], box[3]
    cx, cy = box[0] + w / 2.0, box[1] + h / 2.0
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    return np.array([cx - w / 2.0, cy - h / 2.0, w, h])


def orig_crop_matrix(box, out_w, out_h):
    """``get_affine_transform(center, scale, 0, (out_w, out_h))``: three points through cv2."""
    center = np.array([box[0] + box[2] * 0.5, box[1] + box[3] * 0.5], dtype=np.float32)
    src, dst = np.zeros((3, 2), np.float32), np.zeros((3, 2), np.float32)
    src[0], src[1] = center, center + np.array([0.0, -0.5 * np.float32(box[2])])
    dst[0] = [out_w * 0.5, out_h * 0.5]
    dst[1] = dst[0] + np.array([0.0, -0.5 * out_w])
    for pts in (src, dst):
        d = pts[0] - pts[1]
        pts[2] = pts[1] + np.array([-d[1], d[0]], dtype=np.float32)
    return cv2.getAffineTransform(src, dst)


def orig_apply(points, trans):
    return np.array([trans @ np.array([p[0], p[1], 1.0]) for p in points])


def orig_replace_area(box, trans):
    """The ``area`` of the original's ``replace_joint_img`` (COCO input, training)."""
    xmin, ymin, xmax, ymax = box[0], box[1], box[0] + box[2], box[1] + box[3]
    p1, p2, p3 = orig_apply([(xmin, ymin), (xmax, ymin), (xmax, ymax)], trans)
    return np.sqrt(((p2 - p1) ** 2).sum()) * np.sqrt(((p3 - p2) ** 2).sum())


def orig_normalize(crop, out_w, out_h):
    xy = crop[:, :2] / np.array([[out_w, out_h]])
    return (xy - xy.mean(axis=0)) / xy.std(axis=0)


def orig_flip_2d(kp, width, pairs):
    kp = kp.copy()
    kp[:, 0] = width - kp[:, 0] - 1
    for a, b in pairs:
        kp[a], kp[b] = kp[b].copy(), kp[a].copy()
    return kp


def orig_flip_3d(kp, pairs):
    kp = kp.copy()
    for a, b in pairs:
        kp[a], kp[b] = kp[b].copy(), kp[a].copy()
    kp[:, 0] = -kp[:, 0]
    return kp


def orig_muco_fitting_error(joint_cam_h36m, mesh_cam, reg_h36m):
    """The original's ``MuCo.get_fitting_error(joint_cam_h36m, mesh_cam)``, called with the
    Human3.6M joints regressed from the mesh where the MuCo annotation was meant."""
    muco_joint = joint_cam_h36m - joint_cam_h36m[ORIG_MUCO_NAMES.index("Pelvis")]
    muco_valid = np.ones((21, 3), dtype=np.float32)
    h36m_joint = np.zeros((17, 3), dtype=np.float32)
    h36m_valid = np.zeros((17, 3), dtype=np.float32)
    for src, name in enumerate(ORIG_MUCO_NAMES):
        if name in ORIG_H36M_NAMES:
            h36m_joint[ORIG_H36M_NAMES.index(name)] = muco_joint[src]
            h36m_valid[ORIG_H36M_NAMES.index(name)] = muco_valid[src]
    h36m_joint = h36m_joint[h36m_valid == 1].reshape(-1, 3)
    from_smpl = np.dot(reg_h36m, mesh_cam)[h36m_valid == 1].reshape(-1, 3)
    from_smpl = from_smpl - from_smpl.mean(0)[None] + h36m_joint.mean(0)[None]
    return np.sqrt(((h36m_joint - from_smpl) ** 2).sum(1)).mean()


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def data(tmp_path_factory, smpl):
    data_dir = tmp_path_factory.mktemp("data")
    info = {"Human36M": write_human36m(data_dir, smpl), "COCO": write_coco(data_dir, smpl),
            "MuCo": write_muco(data_dir, smpl), "FreiHAND": write_freihand(data_dir, synthetic_mano())}
    return data_dir, info


def _cfg(mode="posenet", input_set="coco", use_gt_input=False, flip=False, rotate_factor=0.0):
    target_set = "mano" if input_set == "mano" else "human36"
    cfg = make_cfg(mode, input_set, target_set, use_gt_input=use_gt_input)
    cfg.AUG.flip, cfg.AUG.rotate_factor = flip, rotate_factor
    return cfg


class _Recorder:
    """Records the 2D joints a loader hands to ``assemble`` and the area it hands to
    ``synthesize_pose``."""

    def __init__(self, monkeypatch, ds):
        self.joint_img, self.areas = [], []
        real_assemble, real_synth = ds.assemble, noise_utils.synthesize_pose

        def assemble(rng, joint_img, *args, **kwargs):
            self.joint_img.append(np.array(joint_img, dtype=np.float64))
            return real_assemble(rng, joint_img, *args, **kwargs)

        def synthesize(joints, area, *args, **kwargs):
            self.areas.append(float(area))
            return real_synth(joints, area, *args, **kwargs)

        monkeypatch.setattr(ds, "assemble", assemble)
        monkeypatch.setattr(noise_utils, "synthesize_pose", synthesize)


# --------------------------------------------------------------------------------------------
# 1. the area of the COCO error model
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["Human36M", "COCO", "MuCo"])
def test_error_model_area_is_the_originals(monkeypatch, data, smpl, name):
    """Human3.6M and COCO scale the COCO error model with the tight box around the projected
    joints mapped into the crop; MuCo with the aspect-expanded crop box."""
    cls = {"Human36M": Human36M, "COCO": COCO, "MuCo": MuCo}[name]
    ds = cls("train", _cfg(), data_dir=data[0], mesh_model=smpl)
    rec = _Recorder(monkeypatch, ds)
    ds.__getitems__(list(range(len(ds))))
    assert len(rec.areas) == len(ds) == len(rec.joint_img)
    height, width = ds.input_shape
    expected = []
    for joint_img in rec.joint_img:
        tight = orig_get_bbox(joint_img)
        box = orig_process_bbox(tight.copy(), width / height)
        trans = orig_crop_matrix(box, width, height)
        expected.append(orig_replace_area(box if name == "MuCo" else tight, trans))
    np.testing.assert_allclose(rec.areas, expected, rtol=1e-4)
    if name != "MuCo":  # not the crop box's 288 x 384 (which makes the radii up to 2.4x larger)
        assert np.mean(np.array(expected) / (width * height)) < 0.8


# --------------------------------------------------------------------------------------------
# order of synthesized errors and flip
# --------------------------------------------------------------------------------------------

def test_h36m_errors_are_added_before_the_flip(monkeypatch, data, smpl):
    """The original's Human3.6M loader adds the per-joint error table in the unflipped crop and
    flips afterwards (so a joint's error moves with it to its mirror joint)."""
    errors = np.random.default_rng(7).normal(0.0, 6.0, (17, 2)) + np.array([4.0, -3.0])
    monkeypatch.setattr(noise_utils, "generate_h36m_error", lambda rng, size=None: errors.copy())
    truth = data[1]["Human36M"]["truth"]
    seen = set()
    for epoch in range(3):
        ds = Human36M("train", _cfg(input_set="human36", flip=True), data_dir=data[0], mesh_model=smpl)
        ds.set_epoch(epoch)
        height, width = ds.input_shape
        samples = ds.__getitems__(list(range(len(ds))))
        for i, (inputs, targets, _) in enumerate(samples):
            t = truth[ds.db["img_name"][i]]
            cam = np.asarray(t["joint_cam"])
            joint_img = cam[:, :2] / cam[:, 2:] * np.asarray(t["focal"]) + np.asarray(t["princpt"])
            box = orig_process_bbox(orig_get_bbox(joint_img).copy(), width / height)
            crop = orig_apply(joint_img, orig_crop_matrix(box, width, height))
            noisy = crop + errors / 256.0 * np.array([width, height])
            plain = orig_normalize(noisy, width, height)
            flipped = orig_normalize(orig_flip_2d(noisy, width, ORIG_H36M_FLIP_PAIRS), width, height)
            is_flipped = bool(np.allclose(inputs["pose2d"], flipped, atol=1e-3))
            assert is_flipped or np.allclose(inputs["pose2d"], plain, atol=1e-3), (epoch, i)
            rel = cam - cam[0]
            lift = orig_flip_3d(rel, ORIG_H36M_FLIP_PAIRS) if is_flipped else rel
            np.testing.assert_allclose(targets["lift_pose3d"], lift, atol=1e-2)
            seen.add(is_flipped)
    assert seen == {True, False}


# --------------------------------------------------------------------------------------------
# 2. FreiHAND takes no augmentation
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["posenet", "pose2mesh_net"])
def test_freihand_ignores_flip(data, mode):
    """``posenet_manoJ_train_freihand.yml`` sets ``flip: True``; the original's FreiHAND loader
    sets ``rot, flip = 0, 0``: every sample is the unflipped crop of the HRNet detection."""
    ds = FreiHAND("train", _cfg(mode, "mano", flip=True, rotate_factor=30.0), data_dir=data[0],
                  mesh_model=synthetic_mano())
    dets = json.loads((data[0] / "FreiHAND" / "data" / "hrnet_output_on_trainset.json").read_text())
    dets = {d["image_id"]: np.asarray(d["keypoints"], dtype=np.float64) for d in dets}
    height, width = ds.input_shape
    expected = []
    for img_id in ds.db["img_id"]:
        det = dets[int(img_id)]
        box = orig_process_bbox(orig_get_bbox(det).copy(), width / height)
        expected.append(orig_normalize(orig_apply(det, orig_crop_matrix(box, width, height)), width, height))
    reference = ds.__getitems__(list(range(len(ds))))
    for epoch in range(4):
        ds.set_epoch(epoch)
        for (inputs, targets, _), exp, ref in zip(ds.__getitems__(list(range(len(ds)))), expected, reference):
            np.testing.assert_allclose(inputs["pose2d"], exp, atol=1e-4)
            np.testing.assert_array_equal(targets["lift_pose3d"], ref[1]["lift_pose3d"])


# --------------------------------------------------------------------------------------------
# 3. repeated draws in one epoch
# --------------------------------------------------------------------------------------------

def _mixer(data, smpl, epoch):
    cfg = _cfg(flip=True)
    mix = MultipleDatasets([Human36M("train", cfg, data_dir=data[0], mesh_model=smpl),
                            COCO("train", cfg, data_dir=data[0], mesh_model=smpl)], make_same_len=True, seed=3)
    mix.set_epoch(epoch)
    return mix


def test_repeated_draws_differ_and_positions_reproduce(data, smpl):
    mix = _mixer(data, smpl, epoch=2)
    by_sample = {}
    for pos in range(len(mix)):
        by_sample.setdefault(mix.locate(pos), []).append(pos)
    repeats = [p for p in by_sample.values() if len(p) >= 2]
    assert repeats, "the mixer draws the 3 COCO samples many times per epoch"
    pairs = [(p[0], p[1]) for p in repeats]
    first = mix.__getitems__([a for a, _ in pairs])
    second = mix.__getitems__([b for _, b in pairs])
    for (a, b), s1, s2 in zip(pairs, first, second):
        assert not np.allclose(s1[0]["pose2d"], s2[0]["pose2d"]), (a, b)  # fresh errors per draw
    # the same (epoch, position) is the same sample: read again, singly, or by a new mixer
    again = _mixer(data, smpl, epoch=2)
    positions = [a for a, _ in pairs] + [7, 0]
    for pos, s1, s2 in zip(positions, mix.__getitems__(positions), again.__getitems__(positions)):
        np.testing.assert_array_equal(s1[0]["pose2d"], s2[0]["pose2d"])
        np.testing.assert_array_equal(s1[0]["pose2d"], mix[pos][0]["pose2d"])
    other_epoch = _mixer(data, smpl, epoch=3)
    assert not np.allclose(mix[pairs[0][0]][0]["pose2d"], other_epoch[pairs[0][0]][0]["pose2d"])


def test_direct_access_keys_on_the_index(data, smpl):
    """Without the mixer the DataLoader's index is the draw: a sample read twice is the same."""
    ds = COCO("train", _cfg(flip=True), data_dir=data[0], mesh_model=smpl)
    np.testing.assert_array_equal(ds[1][0]["pose2d"], ds.__getitems__([1])[0][0]["pose2d"])
    drawn = ds.draw_items([1, 1], [10, 11])
    assert not np.allclose(drawn[0][0]["pose2d"], drawn[1][0]["pose2d"])


# --------------------------------------------------------------------------------------------
# 4. MuCo's fitting check
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["pose2mesh_net", "posenet"])
def test_muco_masks_targets_as_the_original(data, smpl, mode):
    ds = MuCo("train", _cfg(mode, use_gt_input=True), data_dir=data[0], mesh_model=smpl)
    verts, _ = ds.meshes.get(np.arange(len(ds)))
    errors = []
    for i, (_, targets, meta) in enumerate(ds.__getitems__(list(range(len(ds))))):
        mesh_cam = verts[i].astype(np.float64)
        joint_cam_h36m = ds.reg_h36m @ mesh_cam
        mesh_rel, h36m_rel = mesh_cam - joint_cam_h36m[0], joint_cam_h36m - joint_cam_h36m[0]
        error = orig_muco_fitting_error(h36m_rel, mesh_rel, ds.reg_h36m)
        errors.append(error)
        valid = 0.0 if (mode == "pose2mesh_net" and error > 45) else 1.0
        for key, flags in meta.items():
            assert np.all(flags == valid), (i, key, error)
    np.testing.assert_allclose(ds.reindexed_fitting_error(verts.astype(np.float64)), errors, rtol=1e-4)
    assert min(errors) > 45.0  # the original's check rejects every fixture sample


def test_muco_corrected_check_is_opt_in(data, smpl):
    cfg = _cfg("pose2mesh_net", use_gt_input=True)
    cfg.DATASET.muco_check_fit_against_annotation = True
    ds = MuCo("train", cfg, data_dir=data[0], mesh_model=smpl)
    bad = data[1]["MuCo"]["bad_fit_index"]
    flags = [meta["mesh_valid"].min() for _, _, meta in ds.__getitems__(list(range(len(ds))))]
    assert flags == [0.0 if i == bad else 1.0 for i in range(len(ds))]


# --------------------------------------------------------------------------------------------
# rotation augmentation and the mesh targets
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("rotate_mesh_targets", [False, True])
def test_rotation_of_mesh_targets(data, smpl, rotate_mesh_targets):
    """The original rotated only the lifted joints; ``AUG.rotate_mesh_targets`` rotates the
    mesh and regression targets too."""
    cfg = _cfg("pose2mesh_net", "human36", use_gt_input=True, rotate_factor=30.0)
    cfg.AUG.rotate_mesh_targets = rotate_mesh_targets
    ds = Human36M("train", cfg, data_dir=data[0], mesh_model=smpl)
    plain = Human36M("train", _cfg("pose2mesh_net", "human36", use_gt_input=True), data_dir=data[0], mesh_model=smpl)
    idx = list(range(12))
    rotated = 0
    for (_, t, _), (_, t0, _) in zip(ds.__getitems__(idx), plain.__getitems__(idx)):
        if np.allclose(t["lift_pose3d"], t0["lift_pose3d"], atol=1e-3):
            np.testing.assert_allclose(t["mesh"], t0["mesh"], atol=1e-6)
            continue
        rotated += 1
        # the in-plane rotation that takes the plain lifted joints to the augmented ones
        a, b = t0["lift_pose3d"][:, :2].astype(np.float64), t["lift_pose3d"][:, :2].astype(np.float64)
        angle = np.arctan2((a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]).sum(), (a * b).sum(1).sum())
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        mesh_xy = t0["mesh"][:, :2].astype(np.float64) @ rot.T if rotate_mesh_targets else t0["mesh"][:, :2]
        np.testing.assert_allclose(t["mesh"][:, :2], mesh_xy, atol=1e-4)
        reg_xy = t0["reg_pose3d"][:, :2].astype(np.float64) @ rot.T if rotate_mesh_targets else t0["reg_pose3d"][:, :2]
        np.testing.assert_allclose(t["reg_pose3d"][:, :2], reg_xy, atol=1e-2)
    assert rotated > 0
