"""The shared sample pipeline and evaluation helpers of pose2mesh.datasets.common, and the mixer."""
import json

import numpy as np
import pytest
import torch

from pose2mesh.config import Config
from pose2mesh.coord_utils import process_bbox, rigid_align
from pose2mesh.datasets import DATASETS, MultipleDatasets, build_dataset, dataset_class
from pose2mesh.datasets.common import (PoseMeshDataset, batch_joint_error, batch_mesh_error, crop_area, crop_pose2d,
                                       evaluate_joints, evaluate_mesh, group_means, make_sample, normalize_pose2d,
                                       per_sample_mesh_errors, write_result_json)

INPUT_SHAPE = (384, 288)


def test_normalize_pose2d_is_the_original_arithmetic():
    rng = np.random.default_rng(0)
    joints = rng.uniform(100, 400, size=(17, 2))
    bbox = process_bbox([90.0, 80.0, 330.0, 340.0], INPUT_SHAPE)
    crop, trans = crop_pose2d(joints, bbox, INPUT_SHAPE)
    # the original: crop, divide by (width, height), subtract the mean, divide by the std
    ref = crop / np.array([288.0, 384.0])
    ref = (ref - ref.mean(0)) / ref.std(0)
    out = normalize_pose2d(joints, bbox, INPUT_SHAPE)
    assert out.dtype == np.float32 and out.shape == (17, 2)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    # the crop keeps sub-pixel precision (no truncation)
    assert not np.allclose(crop, np.round(crop))
    # an aspect-corrected box fills the 288 x 384 frame
    assert crop_area(bbox, trans) == pytest.approx(288 * 384, rel=1e-4)


def test_normalize_degenerate_pose_gives_no_nan():
    out = normalize_pose2d(np.tile([[10.0, 20.0]], (17, 1)) + np.r_[np.zeros(16), 1.0][:, None] * [1, 0],
                           [0, 0, 100, 133], INPUT_SHAPE)
    assert np.all(np.isfinite(out))


def test_make_sample_schema():
    rng = np.random.default_rng(1)
    inputs, targets, meta = make_sample("posenet", rng.normal(size=(17, 2)), rng.normal(size=(17, 3)), 1)
    assert set(inputs) == {"pose2d"} and set(targets) == {"lift_pose3d"} and set(meta) == {"lift_pose3d_valid"}
    assert meta["lift_pose3d_valid"].shape == (17, 1)
    inputs, targets, meta = make_sample("pose2mesh_net", rng.normal(size=(19, 2)), rng.normal(size=(19, 3)),
                                        np.ones(19), mesh=rng.normal(size=(6890, 3)), reg_pose3d=rng.normal(size=(17, 3)),
                                        mesh_valid=0)
    assert set(targets) == {"mesh", "lift_pose3d", "reg_pose3d"}
    assert set(meta) == {"mesh_valid", "lift_pose3d_valid", "reg_pose3d_valid"}
    shapes = {k: v.shape for d in (inputs, targets, meta) for k, v in d.items()}
    assert shapes == {"pose2d": (19, 2), "mesh": (6890, 3), "lift_pose3d": (19, 3), "reg_pose3d": (17, 3),
                      "mesh_valid": (6890, 1), "lift_pose3d_valid": (19, 1), "reg_pose3d_valid": (17, 1)}
    assert all(v.dtype == np.float32 for d in (inputs, targets, meta) for v in d.values())
    assert meta["mesh_valid"].max() == 0
    with pytest.raises(ValueError, match="mesh"):
        make_sample("pose2mesh_net", np.zeros((17, 2)), np.zeros((17, 3)), 1)
    with pytest.raises(ValueError, match="lift_pose3d"):
        make_sample("posenet", np.zeros((17, 2)), np.zeros((16, 3)), 1)
    with pytest.raises(ValueError, match="mode"):
        make_sample("hmr", np.zeros((17, 2)), np.zeros((17, 3)), 1)


def _loop_eval(pred_mesh, gt_mesh, reg, root, eval_joints):
    """The original's per-sample loop (Human3.6M evaluate, SMPL-root variant)."""
    mpjpe, pa, mpvpe = [], [], []
    for pm, gm in zip(pred_mesh, gt_mesh):
        pj, gj = reg @ pm, reg @ gm
        pm, gm = pm - pj[root], gm - gj[root]
        pj, gj = reg @ pm, reg @ gm
        pj, gj = (pj - pj[root])[list(eval_joints)], (gj - gj[root])[list(eval_joints)]
        mpvpe.append(np.linalg.norm(pm - gm, axis=1))
        mpjpe.append(np.linalg.norm(pj - gj, axis=1))
        pa.append(np.linalg.norm(rigid_align(pj, gj) - gj, axis=1))
    return np.mean(mpjpe), np.mean(pa), np.mean(mpvpe)


def test_evaluate_mesh_matches_the_per_sample_loop():
    rng = np.random.default_rng(2)
    gt = rng.normal(size=(6, 50, 3)) * 300
    pred = gt + rng.normal(size=gt.shape) * 20 + np.array([5.0, -3.0, 40.0])
    reg = rng.uniform(size=(17, 50))
    reg /= reg.sum(1, keepdims=True)
    eval_joints = (1, 2, 3, 5, 8, 13)
    m = evaluate_mesh(pred, gt, reg, 0, eval_joints)
    np.testing.assert_allclose([m["mpjpe"], m["pa_mpjpe"], m["mpvpe"]], _loop_eval(pred, gt, reg, 0, eval_joints),
                               rtol=1e-9)
    assert m["pa_mpjpe"] < m["mpjpe"]
    per = per_sample_mesh_errors(pred, gt, reg, 0, eval_joints, align_mesh=True)
    assert per["mpvpe"].shape == (6, 50) and per["pa_mpvpe"].mean() < per["mpvpe"].mean()
    perfect = evaluate_mesh(gt, gt, reg, 0)
    assert max(perfect.values()) < 1e-6


def test_joint_helpers_and_batch_errors():
    rng = np.random.default_rng(3)
    gt = rng.normal(size=(4, 17, 3)) * 200
    pred = gt + rng.normal(size=gt.shape) * 10
    m = evaluate_joints(pred, gt, 0, (1, 2, 3))
    assert m["mpjpe"] == pytest.approx(batch_joint_error(torch.from_numpy(pred), gt, 0, (1, 2, 3)))
    j_err, v_err = batch_mesh_error(pred, gt, pred, gt, root=0)
    assert v_err == pytest.approx(np.linalg.norm((pred - pred[:, :1]) - (gt - gt[:, :1]), axis=-1).mean())
    assert j_err == pytest.approx(v_err)
    groups = group_means(np.array([[1.0, 3.0], [5.0, 5.0], [7.0, 9.0]]), [0, 1, 0], ["a", "b", "c"])
    assert groups["a"] == 5.0 and groups["b"] == 5.0 and np.isnan(groups["c"])


def test_write_result_json(tmp_path):
    path = write_result_json(tmp_path / "res", "Synthetic_test", {"MPJPE": np.float32(1.5), "bad": float("nan"),
                                                                    "n": np.int64(3), "per": np.arange(2)})
    with open(path) as f:
        data = json.load(f)
    assert data == {"MPJPE": 1.5, "bad": None, "n": 3, "per": [0, 1]}


class _Toy(PoseMeshDataset):
    name = "Toy"

    def __init__(self, split, cfg, n, tag):
        super().__init__(split, cfg)
        self.n, self.tag = n, tag

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return self.tag, i


def test_multiple_datasets_uniform_mixing():
    cfg = Config()
    a, b = _Toy("train", cfg, 10, "a"), _Toy("train", cfg, 3, "b")
    mix = MultipleDatasets([a, b], make_same_len=True, seed=1)
    assert len(mix) == 20
    items = [mix[i] for i in range(len(mix))]
    tags = np.array([t for t, _ in items])
    assert 0.2 < np.mean(tags == "a") < 0.8
    for i, (tag, j) in enumerate(items):
        pos = i % 10
        if tag == "a":
            assert j == pos
        elif pos < 9:  # three whole copies of b fit into 10: modulo; the last position is random
            assert j == pos % 3
        else:
            assert 0 <= j < 3
    assert [mix[i] for i in range(20)] == items  # deterministic
    assert mix.__getitems__([3, 17, 4]) == [mix[3], mix[17], mix[4]]
    mix.set_epoch(1)
    assert [mix[i] for i in range(20)] != items and a.epoch == 1
    cat = MultipleDatasets([a, b], make_same_len=False)
    assert len(cat) == 13 and cat[9] == ("a", 9) and cat[10] == ("b", 0) and cat[12] == ("b", 2)
    with pytest.raises(IndexError):
        cat[13]


def test_registry():
    assert set(DATASETS) == {"Human36M", "PW3D", "COCO", "MuCo", "AMASS", "SURREAL", "FreiHAND", "Synthetic"}
    assert dataset_class("Synthetic").__name__ == "SyntheticDataset"
    with pytest.raises(ValueError, match="known datasets: Human36M"):
        build_dataset("Human3.6M", "train", Config())


def test_flip_with_mesh_targets_is_refused():
    cfg = Config()
    cfg.AUG.flip = True
    with pytest.raises(ValueError, match="AUG.flip"):
        _Toy("train", cfg, 3, "a")
    cfg.MODEL.name = "posenet"
    _Toy("train", cfg, 3, "a")
