"""3DPW loader on a tiny fixture in the real file format (synthetic body)."""
import json

import numpy as np
import pytest

from fixtures import check_sample, make_cfg, perfect_results, write_pw3d
from pose2mesh.coord_utils import cam2pixel
from pose2mesh.joints import add_pelvis_and_neck
from pose2mesh.datasets.common import normalize_cropped_pose2d
from pose2mesh.datasets.errors import DatasetError
from pose2mesh.datasets.pw3d import PW3D, acceleration_error


@pytest.fixture(scope="module")
def pw3d(tmp_path_factory, smpl):
    data_dir = tmp_path_factory.mktemp("data")
    return data_dir, write_pw3d(data_dir, smpl)


def _ds(pw3d, smpl, split="test", **kw):
    return PW3D(split, make_cfg(**kw), data_dir=pw3d[0], mesh_model=smpl)


@pytest.mark.parametrize("mode", ["pose2mesh_net", "posenet"])
@pytest.mark.parametrize("use_gt_input", [True, False])
def test_schema_both_modes(pw3d, smpl, mode, use_gt_input):
    ds = _ds(pw3d, smpl, mode=mode, use_gt_input=use_gt_input)
    assert len(ds) == pw3d[1]["count"]
    for sample in ds.__getitems__(list(range(len(ds)))):
        check_sample(sample, mode, 19, 17, smpl.vertex_num)


def test_order_and_videos(pw3d, smpl):
    ds = _ds(pw3d, smpl)
    keys = list(zip(ds.db["person_id"], ds.db["img_path"]))
    assert keys == sorted(keys)
    names, counts = np.unique(ds.db["vid_name"], return_counts=True)
    assert dict(zip(names, counts)) == pw3d[1]["videos"]
    assert set(ds.db["gender"]) == {"male", "female"}


def test_gt_input_is_projection_of_target(pw3d, smpl):
    ds = _ds(pw3d, smpl, use_gt_input=True)
    verts, _ = ds.meshes.get(np.arange(len(ds)))
    for i in range(len(ds)):
        inputs, targets, _ = ds[i]
        coco = ds.reg_coco @ verts[i].astype(np.float64)
        np.testing.assert_allclose(targets["lift_pose3d"], coco - coco[17], atol=1e-2)
        proj = cam2pixel(targets["lift_pose3d"] + coco[17], ds.db["focal"][i], ds.db["princpt"][i])
        np.testing.assert_allclose(inputs["pose2d"], normalize_cropped_pose2d(proj, ds.input_shape), atol=1e-4)
        h36m = ds.reg_h36m @ verts[i].astype(np.float64)
        np.testing.assert_allclose(targets["mesh"] * 1000, verts[i] - h36m[0], atol=1e-2)


def test_camera_frame_smpl_matches_annotation(pw3d, smpl):
    """SMPL with the stored (camera-frame) parameters reproduces the annotation's joints."""
    ds = _ds(pw3d, smpl)
    data = json.loads((pw3d[0] / "PW3D" / "data" / "3DPW_latest_test.json").read_text())
    joints = {a["id"]: np.asarray(a["joint_cam"]) for a in data["annotations"]}
    _, model_joints = ds.meshes.get(np.arange(len(ds)))
    for i, aid in enumerate(ds.db["annot_id"]):
        np.testing.assert_allclose(model_joints[i], joints[int(aid)], atol=1e-2)


def test_detections_by_annotation_id(pw3d, smpl):
    ds = _ds(pw3d, smpl, use_gt_input=False)
    dets = json.loads((pw3d[0] / "PW3D" / "data" / "darkpose_3dpw_testset_output.json").read_text())
    by_id = {d["annotation_id"]: np.asarray(d["keypoints"])[:, :2] for d in dets}
    for i in (0, len(ds) - 1):
        det = add_pelvis_and_neck(by_id[int(ds.db["annot_id"][i])])
        np.testing.assert_allclose(ds[i][0]["pose2d"], normalize_cropped_pose2d(det, ds.input_shape), atol=1e-4)


def test_evaluate_perfect_predictions(pw3d, smpl, tmp_path, capsys):
    ds = _ds(pw3d, smpl)
    metrics = ds.evaluate(perfect_results(ds), str(tmp_path))
    assert set(metrics) == {"H36M MPJPE", "H36M PA-MPJPE", "SMPL MPJPE", "MPVPE", "PA-MPVPE", "H36M accel error"}
    assert max(metrics.values()) < 1e-2
    out = capsys.readouterr().out
    for line in ("H36M MPJPE (mm)    >> tot: 0.00", "PA-MPVPE (mm)      >> tot: 0.00",
                 "H36M accel error (mm/frame^2) >> tot: 0.00 (3 videos)"):
        assert line in out
    saved = json.loads((tmp_path / "PW3D_test.json").read_text())
    assert "acceleration" in saved["protocol"] and saved["videos"] == 3
    assert saved["accel_error_mm_per_frame2"] < 1e-2


def test_evaluate_pa_mpvpe_and_acceleration_error(pw3d, smpl):
    ds = _ds(pw3d, smpl)
    res = perfect_results(ds)
    scaled = dict(res, mesh_coord=res["mesh_coord"] * 1.2)
    m = ds.evaluate(scaled)
    assert m["MPVPE"] > 1.0 and m["PA-MPVPE"] < 1e-2 and m["H36M PA-MPJPE"] < 1e-2
    jitter = res["mesh_coord"].copy()
    jitter[1] += np.linspace(0, 30, jitter.shape[1])[:, None]  # one frame of one video deformed
    assert ds.evaluate(dict(res, mesh_coord=jitter))["H36M accel error"] > 0.1


def test_acceleration_error_formula():
    gt = np.zeros((4, 1, 3))
    pred = gt.copy()
    pred[1, 0, 0] = 1.0
    np.testing.assert_allclose(acceleration_error(gt, pred), [2.0, 1.0])


def test_evaluate_joint_perfect(pw3d, smpl, capsys):
    ds = _ds(pw3d, smpl, mode="posenet")
    assert max(ds.evaluate_joint(perfect_results(ds)).values()) < 1e-2
    assert "COCO MPJPE (mm)    >> tot: 0.00" in capsys.readouterr().out


def test_errors(pw3d, smpl, tmp_path):
    with pytest.raises(ValueError, match="coco"):
        _ds(pw3d, smpl, input_set="human36", use_gt_input=False)
    with pytest.raises(DatasetError, match=r"3DPW_latest_validation\.json"):
        PW3D("test", make_cfg(), data_dir=pw3d[0], mesh_model=smpl, subset="validation")
    root = tmp_path / "PW3D" / "data"
    root.mkdir(parents=True)
    data = json.loads((pw3d[0] / "PW3D" / "data" / "3DPW_latest_test.json").read_text())
    del data["annotations"][2]["smpl_param"]["trans"]
    (root / "3DPW_latest_test.json").write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=r"3DPW_latest_test\.json: missing field 'trans' in annotation 2"):
        PW3D("test", make_cfg(), data_dir=tmp_path, mesh_model=smpl)
    (root / "3DPW_latest_test.json").write_text((pw3d[0] / "PW3D" / "data" / "3DPW_latest_test.json").read_text())
    with pytest.raises(DatasetError, match=r"not found: .*darkpose_3dpw_testset_output\.json"):
        PW3D("test", make_cfg(use_gt_input=False), data_dir=tmp_path, mesh_model=smpl)
    dets = json.loads((pw3d[0] / "PW3D" / "data" / "darkpose_3dpw_testset_output.json").read_text())
    (root / "darkpose_3dpw_testset_output.json").write_text(json.dumps(dets[1:]))
    with pytest.raises(DatasetError, match=r"darkpose_3dpw_testset_output\.json: no detection for annotation_id"):
        PW3D("test", make_cfg(use_gt_input=False), data_dir=tmp_path, mesh_model=smpl)


def test_train_split_reads_its_file_without_detections(pw3d, smpl, tmp_path):
    root = tmp_path / "PW3D" / "data"
    root.mkdir(parents=True)
    src = (pw3d[0] / "PW3D" / "data" / "3DPW_latest_test.json").read_text()
    (root / "3DPW_latest_train.json").write_text(src)
    ds = PW3D("train", make_cfg(input_set="human36", use_gt_input=False), data_dir=tmp_path, mesh_model=smpl)
    assert len(ds) == pw3d[1]["count"] and ds.detections is None
    check_sample(ds[0], "pose2mesh_net", 17, 17, smpl.vertex_num)
