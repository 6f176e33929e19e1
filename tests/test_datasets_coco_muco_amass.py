"""COCO, MuCo-3DHP and AMASS loaders (training sets) on tiny fixtures in the real file formats."""
import json

import numpy as np
import pytest

from fixtures import check_sample, make_cfg, write_amass, write_coco, write_muco
from pose2mesh.coord_utils import cam2pixel
from pose2mesh.datasets.amass import AMASS, FOCAL, PRINCPT
from pose2mesh.datasets.coco import COCO
from pose2mesh.datasets.common import normalize_cropped_pose2d
from pose2mesh.datasets.errors import DatasetError
from pose2mesh.datasets.muco import MuCo


@pytest.fixture(scope="module")
def data(tmp_path_factory, smpl):
    data_dir = tmp_path_factory.mktemp("data")
    info = {"COCO": write_coco(data_dir, smpl), "MuCo": write_muco(data_dir, smpl), "AMASS": write_amass(data_dir, smpl)}
    return data_dir, info


CLASSES = {"COCO": COCO, "MuCo": MuCo, "AMASS": AMASS}


@pytest.mark.parametrize("name", list(CLASSES))
@pytest.mark.parametrize("mode", ["pose2mesh_net", "posenet"])
@pytest.mark.parametrize("input_set", ["coco", "human36"])
@pytest.mark.parametrize("use_gt_input", [True, False])
def test_schema_both_modes(data, smpl, name, mode, input_set, use_gt_input):
    ds = CLASSES[name]("train", make_cfg(mode, input_set, use_gt_input=use_gt_input), data_dir=data[0],
                       mesh_model=smpl)
    count = data[1][name].get("posenet_count" if mode == "posenet" else "count", data[1][name]["count"])
    assert len(ds) == count
    joints = 19 if input_set == "coco" else 17
    for sample in ds.__getitems__(list(range(len(ds)))):
        check_sample(sample, mode, joints, 17, smpl.vertex_num)


@pytest.mark.parametrize("name", list(CLASSES))
def test_train_only(data, smpl, name):
    with pytest.raises(ValueError, match="no 'test' split"):
        CLASSES[name]("test", make_cfg(), data_dir=data[0], mesh_model=smpl)


@pytest.mark.parametrize("mode", ["pose2mesh_net", "posenet"])
def test_coco_fitting_check_and_skips(data, smpl, mode):
    ds = COCO("train", make_cfg(mode), data_dir=data[0], mesh_model=smpl)
    assert list(ds.db["annot_id"]) == [100, 101, 102]  # crowd, no keypoints, no fit: skipped
    bad = data[1]["COCO"]["bad_fit_index"]
    for i in range(len(ds)):
        _, _, meta = ds[i]
        for flag in meta.values():
            assert flag.min() == (0.0 if i == bad else 1.0)


def test_coco_weak_perspective_projection(data, smpl):
    ds = COCO("train", make_cfg(input_set="coco"), data_dir=data[0], mesh_model=smpl)
    verts, _ = ds.meshes.get([0])
    coco = ds.reg_coco @ verts[0].astype(np.float64)
    inputs, targets, _ = ds[0]
    np.testing.assert_allclose(targets["lift_pose3d"], coco - coco[17], atol=1e-2)
    proj = coco[:, :2] / 1000 * ds.db["cam_s"][0] + ds.db["cam_t"][0]
    np.testing.assert_allclose(inputs["pose2d"], normalize_cropped_pose2d(proj, ds.input_shape), atol=1e-4)
    # the annotated keypoints of the good fit are that projection
    np.testing.assert_allclose(ds.db["keypoints"][0], proj[:17], atol=1e-2)


def test_muco_closest_person_nan_and_fitting_check(data, smpl):
    cfg = make_cfg()
    cfg.DATASET.muco_check_fit_against_annotation = True
    ds = MuCo("train", cfg, data_dir=data[0], mesh_model=smpl)
    assert list(ds.db["annot_id"]) == [0, 2]  # images 3 (NaN fit) and 4 (no fit) skipped; person 0 is closest
    bad = data[1]["MuCo"]["bad_fit_index"]
    errors = ds.fitting_error(ds.meshes.get([0, 1])[0], ds.db["joint_cam"])
    assert errors[1 - bad] < 1.0 and errors[bad] > 45.0
    for i in range(len(ds)):
        assert ds[i][2]["mesh_valid"].min() == (0.0 if i == bad else 1.0)
    cfg = make_cfg("posenet")
    cfg.DATASET.muco_check_fit_against_annotation = True
    posenet = MuCo("train", cfg, data_dir=data[0], mesh_model=smpl)
    assert posenet[bad][2]["lift_pose3d_valid"].min() == 1.0
    # the original's check (the default) rejects every sample in Pose2Mesh mode, none in PoseNet mode
    default = MuCo("train", make_cfg(), data_dir=data[0], mesh_model=smpl)
    assert all(default[i][2]["mesh_valid"].max() == 0.0 for i in range(len(default)))
    default_posenet = MuCo("train", make_cfg("posenet"), data_dir=data[0], mesh_model=smpl)
    assert all(default_posenet[i][2]["lift_pose3d_valid"].min() == 1.0 for i in range(len(default_posenet)))


def test_muco_input_is_projection(data, smpl):
    ds = MuCo("train", make_cfg(input_set="human36"), data_dir=data[0], mesh_model=smpl)
    verts, _ = ds.meshes.get([0])
    h36m = ds.reg_h36m @ verts[0].astype(np.float64)
    inputs, targets, _ = ds[0]
    proj = cam2pixel(targets["lift_pose3d"] + h36m[0], ds.db["focal"][0], ds.db["princpt"][0])
    np.testing.assert_allclose(inputs["pose2d"], normalize_cropped_pose2d(proj, ds.input_shape), atol=1e-4)


def test_amass_sub_datasets_by_mode():
    """The original's last loader: CMU for Pose2Mesh, CMU and BML for PoseNet; its frame rates."""
    from pose2mesh.datasets.amass import sampling_ratio, sub_datasets

    assert sub_datasets("pose2mesh_net") == ("cmu",) and sub_datasets("posenet") == ("cmu", "bml")
    assert [sampling_ratio(n) for n in ("CMU", "BMLrub", "BMLmovi", "MPI_mosh", "KIT")] == [60, 10, 10, 10, 5]


def test_amass_posenet_reads_bml(data, smpl):
    ds = AMASS("train", make_cfg("posenet", input_set="human36"), data_dir=data[0], mesh_model=smpl)
    sources = set(ds.db["source"])
    assert any("BMLrub" in s for s in sources) and any("/cmu/" in s for s in sources)
    assert not any("KIT" in s for s in sources)
    bml = np.array(["BMLrub" in s for s in ds.db["source"]])
    assert list(ds.db["frame"][bml]) == list(range(0, 121, 10))


def test_amass_cmu_only_sampling_and_cameras(data, smpl):
    ds = AMASS("train", make_cfg(input_set="human36"), data_dir=data[0], mesh_model=smpl)
    assert all("cmu" in s for s in ds.db["source"]) and list(ds.db["frame"]) == [0, 60, 120]
    # the original's last virtual camera: 10 m away, focal length 1500, principal point (500, 500)
    np.testing.assert_array_equal(FOCAL, [1500, 1500])
    np.testing.assert_array_equal(PRINCPT, [500, 500])
    verts, _ = ds.meshes.get(np.arange(4))
    # one body seen by four cameras: the same shape up to a rotation (float32 vertices 10 m away)
    d0 = np.linalg.norm(verts[0] - verts[0].mean(0), axis=1)
    for k in range(1, 4):
        np.testing.assert_allclose(np.linalg.norm(verts[k] - verts[k].mean(0), axis=1), d0, atol=0.05)
    for i in range(4):
        inputs, targets, _ = ds[i]
        h36m = ds.reg_h36m @ verts[i].astype(np.float64)
        proj = cam2pixel(targets["lift_pose3d"] + h36m[0], FOCAL, PRINCPT)
        np.testing.assert_allclose(inputs["pose2d"], normalize_cropped_pose2d(proj, ds.input_shape), atol=1e-4)


def test_amass_rotation_equals_root_pose_rotation(data, smpl):
    """Rotating the mesh about the pelvis equals rotating the SMPL root orientation (the original's way)."""
    from pose2mesh.datasets.amass import CAMERA_T, H36M_CAMERA_ROTATIONS
    from pose2mesh.datasets.mesh_batch import rotate_root, run_smpl

    ds = AMASS("train", make_cfg(), data_dir=data[0], mesh_model=smpl)
    verts, _ = ds.meshes.get([5])
    body, cam = ds.db["body_idx"][5], ds.db["cam_idx"][5]
    pose = rotate_root(ds.db["pose"][[body]], H36M_CAMERA_ROTATIONS[cam])
    ref, _ = run_smpl(smpl, pose, ds.db["shape"][[body]])
    np.testing.assert_allclose(verts[0], ref[0] + CAMERA_T * 1000, atol=0.05)


def test_errors(data, smpl, tmp_path):
    with pytest.raises(DatasetError, match=r"not found: .*person_keypoints_train2017\.json"):
        COCO("train", make_cfg(), data_dir=tmp_path, mesh_model=smpl)
    root = tmp_path / "COCO" / "annotations"
    root.mkdir(parents=True)
    kp = json.loads((data[0] / "COCO" / "annotations" / "person_keypoints_train2017.json").read_text())
    del kp["annotations"][0]["keypoints"]
    (root / "person_keypoints_train2017.json").write_text(json.dumps(kp))
    (root / "coco_smplify_train.json").write_text((data[0] / "COCO" / "annotations" / "coco_smplify_train.json").read_text())
    with pytest.raises(DatasetError, match=r"person_keypoints_train2017\.json: missing field 'keypoints' in annotation 100"):
        COCO("train", make_cfg(), data_dir=tmp_path, mesh_model=smpl)
    muco = tmp_path / "MuCo" / "data"
    muco.mkdir(parents=True)
    (muco / "MuCo-3DHP.json").write_text("[1, 2")
    with pytest.raises(DatasetError, match=r"MuCo-3DHP\.json is not valid JSON"):
        MuCo("train", make_cfg(), data_dir=tmp_path, mesh_model=smpl)
    amass = tmp_path / "AMASS" / "data" / "CMU" / "01"
    amass.mkdir(parents=True)
    with pytest.raises(DatasetError, match="no AMASS CMU sequences"):
        AMASS("train", make_cfg(), data_dir=tmp_path, mesh_model=smpl)
    np.savez(amass / "01_01_poses.npz", poses=np.zeros((3, 156)))
    with pytest.raises(DatasetError, match=r"01_01_poses\.npz: missing field 'betas'"):
        AMASS("train", make_cfg(), data_dir=tmp_path, mesh_model=smpl)
