"""pose2mesh.inference.Predictor: built from a run folder, batched prediction equal to one at a
time, cameras that put each mesh's joints on its 2D pose, left hands through the right-hand model."""
import numpy as np
import pytest

from pose2mesh.camera import fit_weak_perspective
from pose2mesh.inference import InferenceError, Predictor

from test_demo import _tiny_run


@pytest.fixture(scope="module")
def coco_run(tmp_path_factory):
    return _tiny_run(tmp_path_factory.mktemp("exp_coco_inf"), "coco").parent.parent


@pytest.fixture(scope="module")
def predictor(coco_run):
    return Predictor.from_checkpoint(coco_run)


@pytest.fixture(scope="module")
def hand_predictor(tmp_path_factory):
    return Predictor.from_checkpoint(_tiny_run(tmp_path_factory.mktemp("exp_mano_inf"), "mano"))


def _people(n, joints=17, seed=0):
    rng = np.random.default_rng(seed)
    base = np.array([[0, -80], [-8, -88], [8, -88], [-16, -84], [16, -84], [-30, -60], [30, -60], [-40, -30],
                     [40, -30], [-45, 0], [45, 0], [-18, 0], [18, 0], [-20, 45], [20, 45], [-20, 90], [20, 90]],
                    dtype=np.float64)[:joints]
    out = []
    for i in range(n):
        xy = base * rng.uniform(1.0, 2.0) + [100 + 150 * i, 200] + rng.normal(0, 3, base.shape)
        out.append(np.concatenate([xy, rng.uniform(0.5, 1.0, (joints, 1))], 1))
    return np.stack(out)


def test_from_run_folder_reads_its_config(predictor, coco_run):
    assert predictor.joint_set.name == "coco" and predictor.epoch == 3
    assert predictor.weights == coco_run / "checkpoint" / "final.pth.tar"
    assert predictor.config_path == coco_run / "config.yaml"
    assert predictor.body_model.source == "synthetic" and not predictor.model.training
    with pytest.raises(InferenceError, match="trained on the coco joint set"):
        Predictor.from_checkpoint(coco_run, joint_set="human36")


def test_batched_prediction_equals_one_at_a_time(predictor):
    poses = _people(4)
    res = predictor.predict(poses, image_size=(640, 480))
    assert res.vertices.shape == (4, 6890, 3) and res.joints3d.shape == (4, 17, 3)
    assert res.lifted_mm.shape == (4, 19, 3) and res.poses_2d.shape == (4, 19, 3)
    assert res.faces.shape == (13776, 3) and len(res.cameras) == 4 and res.translations.shape == (4, 3)
    for i in range(4):
        one = predictor.predict(poses[i:i + 1], image_size=(640, 480))
        np.testing.assert_allclose(one.vertices[0], res.vertices[i], atol=1e-5)
        assert one.cameras[0].scale == pytest.approx(res.cameras[i].scale, rel=1e-5)


def test_cameras_are_the_least_squares_fits(predictor):
    poses = _people(2)
    res = predictor.predict(poses, image_size=(640, 480))
    for i in range(2):
        cam = fit_weak_perspective(res.joints3d[i], poses[i, :, :2], (poses[i, :, 2] > 0.1).astype(float))
        assert cam.scale == pytest.approx(res.cameras[i].scale, rel=1e-9)
        # the placed mesh projects (perspective, far away) about where the camera puts it
        placed = res.placed_vertices(i)
        assert placed[:, 2].min() > 0
        uv = res.focal * placed[:, :2] / placed[:, 2:] + res.principal
        np.testing.assert_allclose(uv.mean(0), res.cameras[i].project(res.vertices[i]).mean(0), atol=3.0)


def test_partly_outside_is_measured(predictor):
    poses = _people(1)
    poses[0, 15:17, 1] = 900  # ankles below a 480-pixel image
    res = predictor.predict(poses, image_size=(640, 480))
    assert res.outside[0] == pytest.approx(2 / 19)


def test_left_hand_is_the_mirrored_right_hand(hand_predictor):
    rng = np.random.default_rng(1)
    pose = np.concatenate([rng.uniform(200, 400, (21, 2)), np.ones((21, 1))], 1)
    left = hand_predictor.predict(pose[None], image_size=(640, 480), mirrored=[True])
    mirrored_pose = pose.copy()
    mirrored_pose[:, 0] *= -1
    right = hand_predictor.predict(mirrored_pose[None], image_size=(640, 480))
    np.testing.assert_allclose(left.vertices[0], right.vertices[0] * [-1, 1, 1], atol=1e-6)
    np.testing.assert_array_equal(left.faces_of(0), right.faces[:, ::-1])
    assert left.cameras[0].scale > 0


def test_bad_poses_are_refused(predictor):
    with pytest.raises(InferenceError, match="has 15 joints"):
        predictor.predict(np.ones((1, 15, 2)))
    bad = _people(1)
    bad[0, 3, 0] = np.nan
    with pytest.raises(InferenceError, match="joint 3 has a non-finite x"):
        predictor.predict(bad)
    with pytest.raises(InferenceError, match="degenerate"):
        predictor.predict(np.tile([[5.0, 5.0]], (17, 1))[None])


def test_the_python_example_of_demo_readme_runs(tmp_path, monkeypatch, capsys):
    """demo/README.md's Python example runs as written, in a folder holding a training run."""
    import re
    import shutil

    from test_demo import REPO, SINGLE_POSE

    text = (REPO / "demo" / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    assert len(code.strip().splitlines()) <= 10
    _tiny_run(tmp_path / "experiment" / "exp_01-01_00:00", "human36")
    (tmp_path / "demo").mkdir()
    shutil.copy(SINGLE_POSE, tmp_path / "demo" / SINGLE_POSE.name)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "demo/README.md", "exec"), {})
    assert "(1, 6890, 3)" in capsys.readouterr().out
    from pose2mesh.vis import load_obj_vertices

    assert load_obj_vertices(tmp_path / "person.obj")[0].shape == (6890, 3)
