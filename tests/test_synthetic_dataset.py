"""The synthetic dataset: schema, projection consistency, determinism, errors, evaluation."""
import json

import numpy as np
import pytest
import torch

from pose2mesh.config import Config
from pose2mesh.coord_utils import cam2pixel, get_bbox, process_bbox
from pose2mesh.datasets import build_dataset
from pose2mesh.datasets.common import normalize_pose2d
from pose2mesh.datasets.synthetic import SyntheticDataset


def _cfg(mode="pose2mesh_net", input_set="coco", target_set="human36", use_gt_input=True, body="smpl"):
    cfg = Config()
    cfg.MODEL.name = mode
    cfg.DATASET.input_joint_set = input_set
    cfg.DATASET.target_joint_set = target_set
    cfg.DATASET.use_gt_input = use_gt_input
    cfg.DATASET.synthetic_train_size = 40
    cfg.DATASET.synthetic_test_size = 24
    cfg.DATASET.synthetic_body = body
    cfg.DATASET.body_model = "synthetic"
    return cfg


def _equal(a, b, atol=0.0):
    return all(np.allclose(x[k], y[k], rtol=0, atol=atol) for x, y in zip(a, b) for k in x)


@pytest.mark.parametrize("input_set", ["human36", "coco", "smpl"])
def test_schema_both_modes(smpl, input_set):
    for mode in ("posenet", "pose2mesh_net"):
        ds = SyntheticDataset("train", _cfg(mode, input_set), smpl, chunk_size=8)
        assert len(ds) == 40 and ds.joint_set.name == input_set and ds.mesh_model is smpl
        inputs, targets, meta = ds[5]
        j = ds.joint_set.num_joints
        assert inputs["pose2d"].shape == (j, 2) and targets["lift_pose3d"].shape == (j, 3)
        assert meta["lift_pose3d_valid"].shape == (j, 1)
        if mode == "pose2mesh_net":
            assert targets["mesh"].shape == (6890, 3) and targets["reg_pose3d"].shape == (17, 3)
            assert meta["mesh_valid"].shape == (6890, 1) and meta["reg_pose3d_valid"].shape == (17, 1)
            assert 0.5 < np.ptp(targets["mesh"][:, 1]) < 2.5  # metres
        assert all(v.dtype == np.float32 and np.all(np.isfinite(v)) for d in (inputs, targets, meta) for v in d.values())
        assert np.abs(targets["lift_pose3d"][ds.joint_set.root]).max() < 1e-3  # root-relative, mm


def test_ground_truth_input_is_the_projection_of_the_3d_target(smpl):
    ds = SyntheticDataset("test", _cfg("pose2mesh_net", "human36"), smpl, chunk_size=8)
    reg = smpl.joint_regressor("human36")
    for i in (0, 7, 8, 23):
        raw = ds.raw(i)
        inputs, targets, _ = ds[i]
        # projecting the root-relative target, put back at the root, gives the 2D input
        joint_cam = targets["lift_pose3d"].astype(np.float64) + raw["joint_cam"][0]
        img = cam2pixel(joint_cam, raw["focal"], raw["princpt"])[:, :2]
        np.testing.assert_allclose(img, raw["joint_img"], atol=1e-3)
        bbox = process_bbox(get_bbox(img), ds.input_shape)
        np.testing.assert_allclose(inputs["pose2d"], normalize_pose2d(img, bbox, ds.input_shape), atol=1e-3)
        # the regression target is the target joints regressed from the mesh target
        reg_from_mesh = reg @ (targets["mesh"].astype(np.float64) * 1000)
        np.testing.assert_allclose(targets["reg_pose3d"], reg_from_mesh - reg_from_mesh[0], atol=1e-2)
        # and human36 input = human36 target here: lifted and regressed joints agree
        np.testing.assert_allclose(targets["lift_pose3d"], targets["reg_pose3d"], atol=1e-2)


def test_deterministic_per_index_seed_and_split(smpl):
    cfg = _cfg("pose2mesh_net", "coco", use_gt_input=False)
    a = SyntheticDataset("train", cfg, smpl, chunk_size=8)
    b = SyntheticDataset("train", cfg, smpl, chunk_size=16)
    assert _equal(a[3], a[3])
    # other chunkings and batched access give the same samples (up to batch-size-dependent float32 rounding, < 1e-3 mm)
    assert _equal(a[11], b[11], atol=1e-3)
    for s, t in zip(a.__getitems__([11, 2, 39]), [a[11], a[2], a[39]]):
        assert _equal(s, t, atol=1e-3)
    assert not _equal(a[11], a[12])
    assert not np.allclose(a.params(3)["pose"], SyntheticDataset("test", cfg, smpl).params(3)["pose"])
    assert not np.allclose(a.params(3)["pose"], SyntheticDataset("train", cfg, smpl, seed=1).params(3)["pose"])
    # a new epoch draws new errors for the same body
    before = a[11]
    a.set_epoch(1)
    after = a[11]
    assert np.array_equal(before[1]["mesh"], after[1]["mesh"])
    assert not np.array_equal(before[0]["pose2d"], after[0]["pose2d"])
    with pytest.raises(IndexError):
        a[40]


@pytest.mark.parametrize("input_set", ["human36", "coco"])
def test_training_inputs_get_synthesized_errors(smpl, input_set):
    noisy = SyntheticDataset("train", _cfg("posenet", input_set, use_gt_input=False), smpl, chunk_size=8)
    clean = SyntheticDataset("train", _cfg("posenet", input_set, use_gt_input=True), smpl, chunk_size=8)
    test = SyntheticDataset("test", _cfg("posenet", input_set, use_gt_input=False), smpl, chunk_size=8)
    test_gt = SyntheticDataset("test", _cfg("posenet", input_set, use_gt_input=True), smpl, chunk_size=8)
    diffs = [np.abs(noisy[i][0]["pose2d"] - clean[i][0]["pose2d"]).max() for i in range(6)]
    assert min(diffs) > 1e-3
    assert np.array_equal(noisy[0][1]["lift_pose3d"], clean[0][1]["lift_pose3d"])
    assert _equal(test[2], test_gt[2])  # no detector: ground truth at test time


def test_dataloader_uses_batched_access(smpl):
    ds = SyntheticDataset("train", _cfg(), smpl, chunk_size=8)
    calls = []
    original = ds.generate

    def counting(indices):
        calls.append(len(indices))
        return original(indices)

    ds.generate = counting
    loader = torch.utils.data.DataLoader(ds, batch_size=10, shuffle=True, num_workers=0)
    inputs, targets, meta = next(iter(loader))
    assert inputs["pose2d"].shape == (10, 19, 2) and targets["mesh"].shape == (10, 6890, 3)
    assert calls == [10]


def test_evaluate_perfect_and_perturbed(smpl, tmp_path, capsys):
    ds = build_dataset("Synthetic", "test", _cfg(), mesh_model=smpl)
    gt = np.stack([ds[i][1]["mesh"] for i in range(6)]) * 1000
    perfect = ds.evaluate({"mesh_coord": gt, "mesh_coord_target": gt}, result_dir=str(tmp_path))
    assert max(perfect.values()) < 1e-3
    noisy = ds.evaluate({"mesh_coord": gt + np.random.default_rng(0).normal(size=gt.shape) * 10,
                         "mesh_coord_target": gt})
    assert 10 < noisy["MPVPE"] < 20 and noisy["PA-MPJPE"] <= noisy["MPJPE"] + 1e-9
    assert "not paper numbers" in capsys.readouterr().out
    data = json.loads((tmp_path / "Synthetic_test.json").read_text())
    assert data["samples"] == 6 and set(data["metrics_mm"]) == {"MPJPE", "PA-MPJPE", "MPVPE"}
    joints = np.stack([ds[i][1]["lift_pose3d"] for i in range(6)])
    assert ds.evaluate_joint({"joint_coord": joints, "joint_coord_target": joints})["MPJPE"] < 1e-6


def test_hand_variant():
    from pose2mesh.body_models import MANO

    cfg = _cfg("pose2mesh_net", "mano", "mano", body="mano")
    ds = SyntheticDataset("train", cfg, MANO(synthetic=True), chunk_size=8)
    inputs, targets, meta = ds[3]
    assert inputs["pose2d"].shape == (21, 2) and targets["mesh"].shape == (778, 3)
    assert targets["reg_pose3d"].shape == (21, 3) and 0.05 < np.ptp(targets["mesh"], axis=0).max() < 0.4
    with pytest.raises(ValueError, match="mano"):
        SyntheticDataset("train", _cfg("pose2mesh_net", "coco", "human36", body="mano"), MANO(synthetic=True))


def test_wrong_mesh_model_is_refused(smpl):
    with pytest.raises(ValueError, match="778"):
        SyntheticDataset("train", _cfg("pose2mesh_net", "mano", "mano", body="mano"), smpl)
