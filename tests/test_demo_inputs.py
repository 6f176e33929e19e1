"""The demo's inputs: detector formats (OpenPose, MMPose) mapped to the COCO keypoints, a COCO
file refused for human36, the shipped inputs (reproduced exactly by demo/make_demo_inputs.py,
the hand pose among them), and the message when the default weights are missing."""
import json
import subprocess
import sys

import numpy as np
import pytest

from pose2mesh import demo
from pose2mesh.demo.inputs import OPENPOSE_BODY25_TO_COCO, OPENPOSE_COCO18_TO_COCO

from test_demo import REPO, SINGLE_POSE, _tiny_run

COCO_NAMES = ("nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow",
              "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle")
BODY25_NAMES = ("nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist", "mid_hip",
                "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear",
                "l_big_toe", "l_small_toe", "l_heel", "r_big_toe", "r_small_toe", "r_heel")
COCO18_NAMES = BODY25_NAMES[:8] + BODY25_NAMES[9:19]


@pytest.fixture(autouse=True)
def _software_renderer(monkeypatch):
    monkeypatch.setenv("POSE2MESH_RENDERER", "software")


def test_openpose_orders_map_by_name():
    for names, order in ((BODY25_NAMES, OPENPOSE_BODY25_TO_COCO), (COCO18_NAMES, OPENPOSE_COCO18_TO_COCO)):
        assert tuple(names[i] for i in order) == COCO_NAMES


def _kp(names):
    # x encodes the COCO index of the joint (-1 for joints COCO does not have)
    return [[float(COCO_NAMES.index(n)) * 10 + 5 if n in COCO_NAMES else -1.0, 3.0, 0.9] for n in names]


def test_openpose_and_mmpose_files(tmp_path):
    expected = np.arange(17) * 10 + 5.0
    for names in (BODY25_NAMES, COCO18_NAMES):
        doc = {"version": 1.3, "people": [{"pose_keypoints_2d": sum(_kp(names), []),
                                           "hand_left_keypoints_2d": [], "hand_right_keypoints_2d": []}] * 2}
        (tmp_path / "op.json").write_text(json.dumps(doc))
        got = demo.read_poses(tmp_path / "op.json")
        assert got.layout == "coco" and len(got.people) == 2 and got.people[0].shape == (17, 3)
        np.testing.assert_array_equal(got.people[0][:, 0], expected)
    hand = np.concatenate([np.arange(42).reshape(21, 2), np.full((21, 1), 0.8)], 1)
    doc = {"people": [{"pose_keypoints_2d": [0.0] * 75, "hand_left_keypoints_2d": hand.reshape(-1).tolist(),
                       "hand_right_keypoints_2d": (hand + [100, 0, 0]).reshape(-1).tolist()}]}
    (tmp_path / "hands.json").write_text(json.dumps(doc))
    got = demo.read_poses(tmp_path / "hands.json", joint_set="mano")
    assert got.layout == "hand" and got.mirrored == [False, True]
    np.testing.assert_array_equal(got.people[1], hand)

    inst = {"keypoints": [[float(i), 2.0 * i] for i in range(17)], "keypoint_scores": [0.5] * 17,
            "bbox": [[0, 0, 10, 10]], "bbox_score": 0.9}
    for doc in ([inst, inst], {"meta_info": {}, "instance_info": [inst, inst]},
                {"predictions": [[inst, inst]]}, {"instance_info": [{"frame_id": 1, "instances": [inst, inst]}]}):
        (tmp_path / "mm.json").write_text(json.dumps(doc))
        got = demo.read_poses(tmp_path / "mm.json")
        assert got.layout == "coco" and len(got.people) == 2 and got.people[1].shape == (17, 3)
        assert got.people[0][4, 1] == 8.0 and got.people[0][4, 2] == 0.5


@pytest.fixture(scope="module")
def h36_ckpt(tmp_path_factory):
    return _tiny_run(tmp_path_factory.mktemp("exp_h36_inputs"), "human36")


def _error(capsys, *argv):
    code = demo.main(["--gpu", "cpu", *map(str, argv)])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err
    return err


def test_coco_file_with_human36_is_refused(h36_ckpt, capsys):
    err = _error(capsys, "--input_pose", REPO / "demo" / "synthetic_people_coco.json", "--joint_set", "human36",
                 "--checkpoint", h36_ckpt)
    assert "COCO keypoints" in err and "--joint_set coco" in err


def test_missing_default_weights_name_the_newest_local_checkpoint(tmp_path, capsys, monkeypatch, h36_ckpt):
    monkeypatch.setenv("POSE2MESH_ROOT", str(tmp_path))
    err = _error(capsys, "--input_pose", SINGLE_POSE, "--joint_set", "human36")
    assert "pose2mesh_human36J_train_human36/final.pth.tar does not exist" in err and "main/train.py" in err
    run = tmp_path / "experiment" / "exp_12-01_10:00" / "checkpoint"
    run.mkdir(parents=True)
    (run / "final.pth.tar").write_bytes(b"x")
    err = _error(capsys, "--input_pose", SINGLE_POSE, "--joint_set", "human36")
    shown = "experiment/exp_12-01_10:00/checkpoint/final.pth.tar"
    assert f"the newest local checkpoint is {shown}" in err and f"python demo/run.py --checkpoint {shown}" in err


def test_make_demo_inputs_reproduces_the_shipped_files(tmp_path):
    res = subprocess.run([sys.executable, str(REPO / "demo" / "make_demo_inputs.py"), "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    for name in ("synthetic_pose_human36.npy", "synthetic_pose_mano.npy"):
        shipped, made = np.load(REPO / "demo" / name), np.load(tmp_path / name)
        assert shipped.dtype == made.dtype and shipped.shape == made.shape
        # equal up to the last rounded digit (0.01 px): the same maths, whatever the CPU
        assert np.abs(shipped - made).max() <= 0.0100001, name
    shipped = json.loads((REPO / "demo" / "synthetic_people_coco.json").read_text())
    made = json.loads((tmp_path / "synthetic_people_coco.json").read_text())
    assert len(shipped) == len(made) == 5
    for a, b in zip(shipped, made):
        assert np.abs(np.subtract(a["keypoints"], b["keypoints"])).max() <= 0.0100001


def test_shipped_hand_pose_runs(tmp_path_factory, tmp_path, capsys):
    from pose2mesh.vis import load_obj_vertices

    ckpt = _tiny_run(tmp_path_factory.mktemp("exp_mano_inputs"), "mano")
    pose = REPO / "demo" / "synthetic_pose_mano.npy"
    assert np.load(pose).shape == (21, 2)
    assert demo.main(["--gpu", "cpu", "--input_pose", str(pose), "--checkpoint", str(ckpt), "--output_dir",
                      str(tmp_path)]) == 0, capsys.readouterr().err
    verts, _ = load_obj_vertices(tmp_path / "demo_mesh.obj")
    assert verts.shape == (778, 3)
    recs = json.loads((tmp_path / "demo_keypoints.json").read_text())
    assert len(recs[0]["keypoints"]) == 63 and recs[0]["handedness"] == "right"
    # the same hand given as a left hand comes back mirrored
    flipped = np.load(pose).astype(np.float64)
    flipped[:, 0] = 640 - 1 - flipped[:, 0]
    rec = {"image_id": 0, "category_id": 1, "handedness": "left",
           "keypoints": np.concatenate([flipped, np.ones((21, 1))], 1).reshape(-1).tolist(), "score": 1.0}
    (tmp_path / "left.json").write_text(json.dumps([rec]))
    assert demo.main(["--gpu", "cpu", "--input_pose", str(tmp_path / "left.json"), "--checkpoint", str(ckpt),
                      "--output_dir", str(tmp_path / "left")]) == 0, capsys.readouterr().err
    left, _ = load_obj_vertices(tmp_path / "left" / "demo_mesh.obj")
    np.testing.assert_allclose(left, verts * [-1, 1, 1], atol=2e-5)


def test_usage_names_shipped_files():
    text = (REPO / "demo" / "run.py").read_text()
    for token in text.split():
        if token.startswith("demo/") and token.endswith((".npy", ".json")):
            assert (REPO / token).is_file(), token


def test_fitted_parameters_and_meshes(h36_ckpt, tmp_path, capsys):
    """Fitting is on by default: SMPL parameters with smplx's names and the fitted mesh beside the
    raw one; --show both draws both; --no_fit writes neither."""
    from pose2mesh.body_models import SMPL
    import torch

    out = tmp_path / "fit"
    assert demo.main(["--gpu", "cpu", "--input_pose", str(SINGLE_POSE), "--checkpoint", str(h36_ckpt),
                      "--output_dir", str(out), "--show", "both"]) == 0, capsys.readouterr().err
    params = np.load(out / "demo_smpl.npz")
    assert params["pose"].shape == (1, 72) and params["global_orient"].shape == (1, 3)
    assert params["body_pose"].shape == (1, 69) and params["betas"].shape == (1, 10)
    from pose2mesh.vis import load_obj_vertices

    fitted, _ = load_obj_vertices(out / "demo_mesh_fit.obj")
    verts, _ = SMPL(synthetic=True)(torch.tensor(params["pose"]), torch.tensor(params["betas"]),
                                     torch.tensor(params["transl"]))
    np.testing.assert_allclose(fitted, verts[0].numpy(), atol=1e-4)  # the npz gives back the fitted mesh
    assert (out / "demo_mesh_fit.png").is_file() and (out / "demo_mesh.obj").is_file()
    summary = json.loads((out / "demo_result.json").read_text())
    assert summary["fit"]["shown"] == "both" and summary["people"][0]["fit_mean_vertex_distance_mm"] >= 0
    raw = tmp_path / "raw"
    assert demo.main(["--gpu", "cpu", "--input_pose", str(SINGLE_POSE), "--checkpoint", str(h36_ckpt),
                      "--output_dir", str(raw), "--no_fit"]) == 0
    assert not (raw / "demo_smpl.npz").exists() and not (raw / "demo_mesh_fit.obj").exists()
    assert json.loads((raw / "demo_result.json").read_text())["fit"] is None


def test_errors_share_the_root_and_bugs_propagate(h36_ckpt, monkeypatch, tmp_path):
    from pose2mesh.detection import DetectionError, DetectorUnavailable
    from pose2mesh.errors import Pose2MeshError
    from pose2mesh.inference import InferenceError, Predictor

    for cls in (demo.DemoError, InferenceError, DetectionError, DetectorUnavailable):
        assert issubclass(cls, Pose2MeshError), cls

    def broken(self, poses):
        raise RuntimeError("a bug")

    monkeypatch.setattr(Predictor, "forward", broken)
    with pytest.raises(RuntimeError, match="a bug"):  # a bug is not a one-line user error
        demo.main(["--gpu", "cpu", "--input_pose", str(SINGLE_POSE), "--checkpoint", str(h36_ckpt),
                   "--output_dir", str(tmp_path)])
