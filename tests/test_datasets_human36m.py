"""Human3.6M loader on a tiny fixture in the real file format (synthetic body)."""
import json
import time

import numpy as np
import pytest
import torch

from fixtures import check_sample, make_cfg, perfect_results, write_human36m
from pose2mesh.coord_utils import cam2pixel
from pose2mesh.datasets import build_dataset
from pose2mesh.datasets.common import normalize_cropped_pose2d
from pose2mesh.datasets.errors import DatasetError
from pose2mesh.datasets.human36m import Human36M


@pytest.fixture(scope="module")
def h36m(tmp_path_factory, smpl):
    data_dir = tmp_path_factory.mktemp("data")
    info = write_human36m(data_dir, smpl)
    return data_dir, info


def _ds(h36m, smpl, split="train", **cfg_kw):
    return Human36M(split, make_cfg(**cfg_kw), data_dir=h36m[0], mesh_model=smpl)


@pytest.mark.parametrize("mode", ["pose2mesh_net", "posenet"])
@pytest.mark.parametrize("input_set", ["human36", "coco"])
@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("use_gt_input", [True, False])
def test_schema_both_modes(h36m, smpl, mode, input_set, split, use_gt_input):
    if split == "test" and input_set == "coco" and not use_gt_input:
        with pytest.raises(ValueError, match="human36"):
            _ds(h36m, smpl, split, mode=mode, input_set=input_set, use_gt_input=False)
        return
    ds = _ds(h36m, smpl, split, mode=mode, input_set=input_set, use_gt_input=use_gt_input)
    assert len(ds) == h36m[1]["counts"][split]
    joints = 17 if input_set == "human36" else 19
    for sample in ds.__getitems__([0, len(ds) - 1]):
        check_sample(sample, mode, joints, 17, smpl.vertex_num)


def test_protocol_subjects_sampling_and_skips(h36m, smpl):
    train, test = _ds(h36m, smpl, "train"), _ds(h36m, smpl, "test")
    assert set(train.db["subject"]) == {1, 5, 6, 7, 8} and set(test.db["subject"]) == {9, 11}
    frames = {int(n.split("_")[-1][:-4]) - 1 for n in train.db["img_name"]}
    assert frames == {0, 5, 10, 50, 100}
    assert {int(n.split("_")[-1][:-4]) - 1 for n in test.db["img_name"]} == {0, 50, 100}
    assert not set(h36m[1]["no_fit"]) & set(train.db["img_name"])
    assert list(train.db["img_name"]) == sorted(train.db["img_name"])
    assert set(train.db["action"]) == {0, 1}


def test_camera_handling_matches_annotation(h36m, smpl):
    ds = _ds(h36m, smpl, "test")
    truth = h36m[1]["truth"]
    for i, name in enumerate(ds.db["img_name"]):
        np.testing.assert_allclose(ds.db["joint_cam"][i], truth[name]["joint_cam"], atol=1e-2)


def test_gt_input_is_projection_of_target(h36m, smpl):
    ds = _ds(h36m, smpl, "test", input_set="human36")
    for i in range(len(ds)):
        inputs, targets, _ = ds[i]
        root = ds.db["joint_cam"][i][0]
        proj = cam2pixel(targets["lift_pose3d"].astype(np.float64) + root, ds.db["focal"][i], ds.db["princpt"][i])
        np.testing.assert_allclose(inputs["pose2d"], normalize_cropped_pose2d(proj, ds.input_shape), atol=1e-4)
        # the mesh target and the annotated joints share the pelvis origin
        np.testing.assert_allclose(targets["reg_pose3d"][0], 0, atol=1e-4)


def test_coco_input_is_projection_of_mesh_joints(h36m, smpl):
    ds = _ds(h36m, smpl, "train", input_set="coco")
    verts, _ = ds.meshes.get([3])
    coco = ds.reg_coco @ verts[0].astype(np.float64)
    inputs, targets, _ = ds[3]
    np.testing.assert_allclose(targets["lift_pose3d"], coco - coco[17], atol=1e-2)
    proj = cam2pixel(coco, ds.db["focal"][3], ds.db["princpt"][3])
    np.testing.assert_allclose(inputs["pose2d"], normalize_cropped_pose2d(proj, ds.input_shape), atol=1e-4)


@pytest.mark.parametrize("input_set", ["human36", "coco"])
def test_fitting_threshold(h36m, smpl, input_set):
    ds = _ds(h36m, smpl, "train", input_set=input_set)
    bad = {np.nonzero(ds.db["img_name"] == n)[0][0] for n in h36m[1]["bad_fit"]}
    assert len(bad) == 2
    for i, (_, _, meta) in enumerate(ds.__getitems__(list(range(len(ds))))):
        assert meta["mesh_valid"].min() == (0.0 if i in bad else 1.0)
        assert meta["lift_pose3d_valid"].min() == (0.0 if (i in bad and input_set == "coco") else 1.0)
        assert meta["reg_pose3d_valid"].min() == 1.0
    posenet = _ds(h36m, smpl, "train", input_set=input_set, mode="posenet")
    valid = [posenet[i][2]["lift_pose3d_valid"].min() for i in sorted(bad)]
    assert valid == [0.0 if input_set == "coco" else 1.0] * 2


def test_detections_matched_by_image_name(h36m, smpl):
    ds = _ds(h36m, smpl, "test", input_set="human36", use_gt_input=False)
    data = json.loads((h36m[0] / "Human36M" / "absnet_output_on_testset.json").read_text())
    for i in (0, 5, len(ds) - 1):
        det = np.asarray(data[ds.db["img_name"][i]])
        np.testing.assert_allclose(ds[i][0]["pose2d"], normalize_cropped_pose2d(det, ds.input_shape), atol=1e-4)


def test_training_noise_is_deterministic_per_sample(h36m, smpl):
    ds = _ds(h36m, smpl, "train", input_set="human36", use_gt_input=False)
    gt = _ds(h36m, smpl, "train", input_set="human36", use_gt_input=True)
    a, b = ds[4][0]["pose2d"], ds[4][0]["pose2d"]
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - gt[4][0]["pose2d"]).max() > 1e-3


def test_evaluate_perfect_predictions(h36m, smpl, tmp_path, capsys):
    ds = _ds(h36m, smpl, "test", input_set="human36")
    metrics = ds.evaluate(perfect_results(ds), str(tmp_path))
    assert set(metrics) == {"h36m_mpjpe", "h36m_pa_mpjpe", "smpl_mpjpe", "mpvpe"}
    assert max(metrics.values()) < 1e-2
    out = capsys.readouterr().out
    assert "Protocol 2 H36M pose error (MPJPE) >> tot: 0.00" in out and "Directions: 0.00" in out
    assert "Protocol 2 SMPL mesh error (MPVPE) >> tot: 0.00" in out
    saved = json.loads((tmp_path / "Human36M_test.json").read_text())
    assert "protocol 2" in saved["protocol"] and saved["samples"] == len(ds)
    assert saved["per_action_mm"]["h36m_mpjpe"]["Directions"] < 1e-2


def test_evaluate_detects_errors_and_subset(h36m, smpl):
    ds = _ds(h36m, smpl, "test", input_set="human36")
    res = perfect_results(ds)
    res["mesh_coord"] = res["mesh_coord"] + np.array([10.0, 0.0, 0.0])  # a translation: root-aligned away
    assert ds.evaluate(res)["mpvpe"] < 1e-2
    res["mesh_coord"] = res["mesh_coord"] * 1.1
    assert ds.evaluate(res)["mpvpe"] > 1.0
    part = {k: v[:5] for k, v in perfect_results(ds).items()}
    assert ds.evaluate(part)["h36m_mpjpe"] < 1e-2


@pytest.mark.parametrize("input_set", ["human36", "coco"])
def test_evaluate_joint_perfect(h36m, smpl, input_set, capsys):
    ds = _ds(h36m, smpl, "test", input_set=input_set, mode="posenet")
    metrics = ds.evaluate_joint(perfect_results(ds))
    assert max(metrics.values()) < 1e-2
    assert "pose error (MPJPE) >> tot: 0.00" in capsys.readouterr().out


def test_registry_and_dataloader(h36m, smpl, monkeypatch):
    monkeypatch.setenv("POSE2MESH_DATA", str(h36m[0]))
    ds = build_dataset("Human36M", "train", make_cfg(input_set="human36"), mesh_model=smpl)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=8, shuffle=True)))
    assert batch[0]["pose2d"].shape == (8, 17, 2) and batch[1]["mesh"].shape == (8, smpl.vertex_num, 3)


def test_speed_pose2mesh_training(h36m, smpl):
    ds = _ds(h36m, smpl, "train", input_set="coco", use_gt_input=False)
    n, start = 0, time.perf_counter()
    while n < 300:
        for i in range(len(ds)):
            ds[i]
            n += 1
    rate = n / (time.perf_counter() - start)
    print(f"Human36M pose2mesh training samples/s (one process): {rate:.0f}")
    assert rate > 150  # target 500; the margin absorbs a loaded CI machine


def test_missing_and_malformed_files(h36m, smpl, tmp_path):
    import shutil

    data_dir = tmp_path / "data"
    shutil.copytree(h36m[0], data_dir)
    annot = data_dir / "Human36M" / "annotations"
    cam = annot / "Human36M_subject9_camera.json"
    cameras = json.loads(cam.read_text())
    del cameras["1"]["f"]
    cam.write_text(json.dumps(cameras))
    with pytest.raises(DatasetError, match=r"Human36M_subject9_camera\.json.*'f'"):
        Human36M("test", make_cfg(), data_dir=data_dir, mesh_model=smpl)
    (annot / "Human36M_subject11_joint_3d.json").write_text("{not json")
    (annot / "Human36M_subject9_camera.json").unlink()
    with pytest.raises(DatasetError, match=r"not found: .*Human36M_subject9_camera\.json"):
        Human36M("test", make_cfg(), data_dir=data_dir, mesh_model=smpl)
    (annot / "Human36M_subject9_camera.json").write_text(json.dumps(json.loads((h36m[0] / "Human36M" / "annotations" /
                                                                              "Human36M_subject9_camera.json").read_text())))
    with pytest.raises(DatasetError, match=r"Human36M_subject11_joint_3d\.json is not valid JSON"):
        Human36M("test", make_cfg(), data_dir=data_dir, mesh_model=smpl)
    data = json.loads((annot / "Human36M_subject1_data.json").read_text())
    del data["images"][0]["cam_idx"]
    (annot / "Human36M_subject1_data.json").write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=r"Human36M_subject1_data\.json: missing field 'cam_idx'"):
        Human36M("train", make_cfg(), data_dir=data_dir, mesh_model=smpl)


def test_on_demand_meshes_equal_cached(h36m, smpl):
    cached = _ds(h36m, smpl, "train")
    lazy = Human36M("train", make_cfg(), data_dir=h36m[0], mesh_model=smpl, mesh_cache_mb=0)
    assert cached.meshes.cached and not lazy.meshes.cached
    for a, b in zip(cached.__getitems__([0, 7, 30]), lazy.__getitems__([0, 7, 30])):
        np.testing.assert_allclose(a[1]["mesh"], b[1]["mesh"], atol=1e-5)
        np.testing.assert_allclose(a[0]["pose2d"], b[0]["pose2d"], atol=1e-5)


def test_default_mesh_model_from_config(h36m):
    cfg = make_cfg(input_set="human36")
    cfg.DATASET.body_model = "synthetic"
    ds = Human36M("test", cfg, data_dir=h36m[0])
    assert ds.mesh_model.source == "synthetic" and len(ds) == h36m[1]["counts"]["test"]
