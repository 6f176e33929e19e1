"""SURREAL and FreiHAND loaders on tiny fixtures in the real file formats (synthetic body and hand)."""
import json

import numpy as np
import pytest

from fixtures import (check_sample, make_cfg, perfect_results, synthetic_mano, synthetic_smpl, write_freihand,
                      write_surreal)
from pose2mesh.coord_utils import cam2pixel
from pose2mesh.datasets.common import normalize_cropped_pose2d
from pose2mesh.datasets.errors import DatasetError
from pose2mesh.datasets.freihand import FreiHAND
from pose2mesh.datasets.surreal import SURREAL


@pytest.fixture(scope="module")
def models():
    return synthetic_smpl(), synthetic_mano()


@pytest.fixture(scope="module")
def data(tmp_path_factory, models):
    data_dir = tmp_path_factory.mktemp("data")
    return data_dir, {"SURREAL": write_surreal(data_dir, models[0]), "FreiHAND": write_freihand(data_dir, models[1])}


def _surreal(data, models, split="test", **kw):
    return SURREAL(split, make_cfg(input_set="smpl", target_set="smpl", **kw), data_dir=data[0], mesh_model=models[0])


def _freihand(data, models, split="test", **kw):
    return FreiHAND(split, make_cfg(input_set="mano", target_set="mano", **kw), data_dir=data[0], mesh_model=models[1])


@pytest.mark.parametrize("mode", ["pose2mesh_net", "posenet"])
@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("use_gt_input", [True, False])
def test_schema_both_modes(data, models, mode, split, use_gt_input):
    for ds, joints, verts in ((_surreal(data, models, split, mode=mode, use_gt_input=use_gt_input), 24, models[0].vertex_num),
                              (_freihand(data, models, split, mode=mode, use_gt_input=use_gt_input), 21, 778)):
        assert len(ds) == data[1][ds.name]["count"]
        for sample in ds.__getitems__(list(range(len(ds)))):
            check_sample(sample, mode, joints, joints, verts)


def test_surreal_input_is_projection_and_detections(data, models):
    ds = _surreal(data, models, "train")
    verts, joints = ds.meshes.get(np.arange(len(ds)))
    for i in range(len(ds)):
        inputs, targets, _ = ds[i]
        np.testing.assert_allclose(targets["reg_pose3d"], joints[i] - joints[i, 0], atol=1e-3)
        proj = cam2pixel(targets["lift_pose3d"] + joints[i, 0], ds.db["focal"][i], ds.db["princpt"][i])
        np.testing.assert_allclose(inputs["pose2d"], normalize_cropped_pose2d(proj, ds.input_shape), atol=1e-4)
    det = _surreal(data, models, "test", use_gt_input=False)
    items = json.loads((data[0] / "SURREAL" / "data" / "hrnet_output_on_valset.json").read_text())
    by_image = {d["image_id"]: np.asarray(d["keypoints"])[:, :2] for d in items}
    for i in range(len(det)):
        expect = normalize_cropped_pose2d(by_image[det.db["img_id"][i]], det.input_shape)
        np.testing.assert_allclose(det[i][0]["pose2d"], expect, atol=1e-4)


def test_surreal_evaluate_perfect(data, models, tmp_path, capsys):
    ds = _surreal(data, models)
    assert max(ds.evaluate(perfect_results(ds), str(tmp_path)).values()) < 1e-2
    out = capsys.readouterr().out
    assert "Pose error (MPJPE): 0.00 mm" in out and "Mesh error (MPVPE): 0.00 mm" in out
    assert "SMPL" in json.loads((tmp_path / "SURREAL_test.json").read_text())["protocol"]
    posenet = _surreal(data, models, mode="posenet")
    assert max(posenet.evaluate_joint(perfect_results(posenet)).values()) < 1e-2


def test_freihand_train_targets_and_gt_input(data, models):
    ds = _freihand(data, models, "train", use_gt_input=True)
    verts, joints = ds.meshes.get(np.arange(len(ds)))
    for i in range(len(ds)):
        inputs, targets, meta = ds[i]
        assert meta["mesh_valid"].min() == 1.0
        np.testing.assert_allclose(targets["mesh"] * 1000, verts[i] - joints[i, 0], atol=1e-2)
        proj = cam2pixel(targets["lift_pose3d"] + joints[i, 0], ds.db["focal"][i], ds.db["princpt"][i])
        np.testing.assert_allclose(inputs["pose2d"], normalize_cropped_pose2d(proj, ds.input_shape), atol=1e-4)
    assert max(ds.evaluate(perfect_results(ds)).values()) < 1e-2


def test_freihand_test_has_no_targets(data, models):
    ds = _freihand(data, models, "test")
    _, targets, meta = ds[0]
    assert all(v.max() == 0 for v in meta.values()) and np.abs(targets["mesh"]).max() == 0


def test_freihand_prediction_file(data, models, tmp_path, capsys):
    ds = _freihand(data, models, "test")
    assert list(ds.db["img_id"]) == sorted(ds.db["img_id"])
    rng = np.random.default_rng(0)
    mesh = rng.normal(0, 50, (len(ds), 778, 3))
    order = np.arange(len(ds))[::-1]  # results arrive in any order; the file is ordered by image id
    metrics = ds.evaluate({"index": order, "mesh_coord": mesh[order]}, str(tmp_path))
    assert metrics == {}
    out = capsys.readouterr().out
    assert "pred.json" in out and "ordered by image id" in out and "0.00" not in out
    joints_file, mesh_file = json.loads((tmp_path / "pred.json").read_text())
    assert np.asarray(joints_file).shape == (len(ds), 21, 3) and np.asarray(mesh_file).shape == (len(ds), 778, 3)
    np.testing.assert_allclose(mesh_file, mesh, atol=1e-9)
    np.testing.assert_allclose(joints_file, np.einsum("jv,nvc->njc", ds.reg_mano, mesh), atol=1e-6)


def test_errors(data, models, tmp_path):
    with pytest.raises(ValueError, match="smpl"):
        SURREAL("test", make_cfg(input_set="coco"), data_dir=data[0], mesh_model=models[0])
    root = tmp_path / "FreiHAND" / "data"
    root.mkdir(parents=True)
    src = data[0] / "FreiHAND" / "data"
    for name in ("freihand_eval_coco.json", "freihand_eval_data.json"):
        (root / name).write_text((src / name).read_text())
    with pytest.raises(DatasetError, match=r"not found: .*hrnet_output_on_testset\.json"):
        _freihand((tmp_path, None), models, "test")
    ev = json.loads((src / "freihand_eval_data.json").read_text())
    del ev["1"]["cam_param"]["princpt"]
    (root / "freihand_eval_data.json").write_text(json.dumps(ev))
    with pytest.raises(DatasetError, match=r"freihand_eval_data\.json: missing field 'princpt' in db_idx 1"):
        _freihand((tmp_path, None), models, "test")
    sroot = tmp_path / "SURREAL" / "data"
    sroot.mkdir(parents=True)
    val = json.loads((data[0] / "SURREAL" / "data" / "val.json").read_text())
    val["annotations"][0]["smpl_param"]["gender"] = "x"
    (sroot / "val.json").write_text(json.dumps(val))
    with pytest.raises(DatasetError, match=r"val\.json: field 'gender'"):
        SURREAL("test", make_cfg(input_set="smpl"), data_dir=tmp_path, mesh_model=models[0])
