"""The built-in detector (pose2mesh.detection, the optional `detector` extra) on real photos shipped
with scikit-image and on renders of the synthetic hand; the demo's photo path from a photo alone;
the one-line errors (extra missing, nobody found, a joint set the detector does not give)."""
import json
import sys

import numpy as np
import pytest

from pose2mesh import demo
from pose2mesh.vis import write_image

from test_demo import _tiny_run

mp = pytest.importorskip("mediapipe")
skdata = pytest.importorskip("skimage.data")


@pytest.fixture(autouse=True)
def _software_renderer(monkeypatch):
    monkeypatch.setenv("POSE2MESH_RENDERER", "software")


@pytest.fixture(scope="module")
def coco_ckpt(tmp_path_factory):
    return _tiny_run(tmp_path_factory.mktemp("exp_coco_det"), "coco")


@pytest.fixture(scope="module")
def mano_ckpt(tmp_path_factory):
    return _tiny_run(tmp_path_factory.mktemp("exp_mano_det"), "mano")


@pytest.fixture(scope="module")
def body_detector():
    from pose2mesh.detection import BodyDetector

    with BodyDetector() as det:
        yield det


def _two_people():
    """The astronaut (Eileen Collins) and the cameraman side by side: 512 x 1024."""
    return np.concatenate([skdata.astronaut(), np.repeat(skdata.camera()[..., None], 3, 2)], 1)


def _rendered_hand():
    """The synthetic right hand of demo/make_demo_inputs.py rendered skin-coloured on a light
    background, and its 21 joints projected (the ``mano`` order)."""
    import importlib.util

    import pose2mesh.paths
    from pose2mesh.body_models import MANO
    from pose2mesh.render import Intrinsics, MeshRenderer, RenderMesh

    path = pose2mesh.paths.repo_root() / "demo" / "make_demo_inputs.py"
    spec = importlib.util.spec_from_file_location("make_demo_inputs", path)
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    mano = MANO(synthetic=True)
    hand = make.posed_hand(mano, (-0.04, 0.07, 0.45))
    intr = Intrinsics(make.FOCAL, make.FOCAL, (make.WIDTH - 1) / 2, (make.HEIGHT - 1) / 2)
    img = MeshRenderer(make.WIDTH, make.HEIGHT, backend="software").render(
        [RenderMesh(hand, mano.face, (0.87, 0.68, 0.55))], intr,
        background=np.full((make.HEIGHT, make.WIDTH, 3), 200, np.uint8)).image
    return img, make.project(mano.joint_regressor("mano") @ hand)


def test_astronaut_keypoints_and_partly_outside(body_detector):
    img = skdata.astronaut()
    found = body_detector.detect(img)
    assert len(found) == 1
    kp = found[0].keypoints
    assert kp.shape == (17, 3) and np.all((kp[:, 2] >= 0) & (kp[:, 2] <= 1))
    nose, l_sh, r_sh, l_hip, l_ankle = kp[0], kp[5], kp[6], kp[11], kp[15]
    # her face is in the upper middle, her left shoulder (image right) right of her right one
    assert 150 < nose[0] < 300 and 60 < nose[1] < 200 and nose[2] > 0.9
    assert l_sh[0] > r_sh[0] and l_sh[1] > nose[1]
    # the photo ends at her waist: hips and ankles are guessed below the frame, with low confidence
    assert l_ankle[1] > 512 and l_ankle[2] < 0.5 and l_hip[1] > l_sh[1]
    assert 0 < found[0].outside < 0.5


def test_several_people_side_by_side(body_detector):
    img = _two_people()
    everyone = body_detector.detect(img, multi=True)
    assert len(everyone) == 2
    centres = sorted(d.keypoints[:5, 0].mean() for d in everyone)  # head centres
    assert centres[0] < 512 < centres[1]
    assert len(body_detector.detect(img, multi=False)) == 1


def test_nobody_in_a_plain_image(body_detector):
    assert body_detector.detect(np.full((240, 320, 3), 127, np.uint8), multi=True) == []


def test_hand_landmarks_are_in_the_mano_order():
    """MediaPipe Hands' 21 landmarks land on the synthetic hand's own joints, joint by joint."""
    from pose2mesh.detection import HandDetector

    img, truth = _rendered_hand()
    with HandDetector() as det:
        found = det.detect(img)
    assert len(found) == 1 and found[0].keypoints.shape == (21, 3)
    dist = np.linalg.norm(found[0].keypoints[:, :2] - truth[:, :2], axis=1)
    assert dist.mean() < 30, dist.round(1)
    # each fingertip is nearest to its own tip (a swapped order would not be)
    tips = [4, 8, 12, 16, 20]
    for t in tips:
        d = np.linalg.norm(truth[tips, :2] - found[0].keypoints[t, :2], axis=1)
        assert tips[int(np.argmin(d))] == t


# ----------------------------------------------------------------------------------------------
# the demo from a photo alone

def test_demo_from_a_photo_with_two_people_and_the_keypoints_round_trip(coco_ckpt, tmp_path, capsys):
    write_image(tmp_path / "two.png", _two_people())
    out = tmp_path / "out"
    assert demo.main(["--gpu", "cpu", "--input_img", str(tmp_path / "two.png"), "--multi", "--checkpoint",
                      str(coco_ckpt), "--output_dir", str(out)]) == 0, capsys.readouterr().err
    recs = json.loads((out / "demo_keypoints.json").read_text())
    assert len(recs) == 2
    for r in recs:
        assert r["category_id"] == 1 and r["image_id"] == 0 and len(r["keypoints"]) == 51 and 0 < r["score"] <= 1
    summary = json.loads((out / "demo_result.json").read_text())
    assert summary["detector"].startswith("BlazePose") and len(summary["people"]) == 2
    assert any(p["partly_outside"] for p in summary["people"])  # the astronaut's legs
    for i in range(2):
        assert (out / f"demo_mesh_{i}.obj").is_file()
    # the keypoints file goes back in unchanged and gives the same people
    again = tmp_path / "again"
    assert demo.main(["--gpu", "cpu", "--input_pose", str(out / "demo_keypoints.json"), "--input_img",
                      str(tmp_path / "two.png"), "--checkpoint", str(coco_ckpt), "--output_dir", str(again)]) == 0
    summary2 = json.loads((again / "demo_result.json").read_text())
    assert len(summary2["people"]) == 2
    for a, b in zip(summary["people"], summary2["people"]):
        assert a["scale_px_per_m"] == pytest.approx(b["scale_px_per_m"], rel=1e-4)
    # without --multi: the most prominent person only
    single = tmp_path / "single"
    assert demo.main(["--gpu", "cpu", "--input_img", str(tmp_path / "two.png"), "--checkpoint", str(coco_ckpt),
                      "--output_dir", str(single)]) == 0
    assert len(json.loads((single / "demo_keypoints.json").read_text())) == 1
    assert (single / "demo_mesh.obj").is_file()


def test_demo_from_a_hand_photo(mano_ckpt, tmp_path, capsys):
    from pose2mesh.vis import load_obj_vertices

    img, _ = _rendered_hand()
    write_image(tmp_path / "hand.png", img)
    assert demo.main(["--gpu", "cpu", "--input_img", str(tmp_path / "hand.png"), "--checkpoint", str(mano_ckpt),
                      "--output_dir", str(tmp_path / "out")]) == 0, capsys.readouterr().err
    recs = json.loads((tmp_path / "out" / "demo_keypoints.json").read_text())
    assert len(recs) == 1 and len(recs[0]["keypoints"]) == 63 and recs[0]["handedness"] in ("left", "right")
    verts, faces = load_obj_vertices(tmp_path / "out" / "demo_mesh.obj")
    assert verts.shape == (778, 3)


def _error(capsys, *argv):
    code = demo.main(["--gpu", "cpu", *map(str, argv)])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err
    return err


def test_detection_errors(coco_ckpt, tmp_path, capsys):
    write_image(tmp_path / "plain.png", np.full((240, 320, 3), 127, np.uint8))
    out = tmp_path / "out"
    err = _error(capsys, "--input_img", tmp_path / "plain.png", "--checkpoint", coco_ckpt, "--output_dir", out)
    assert "no person found" in err and "--input_pose" in err
    assert not out.exists() or not any(out.iterdir())  # nothing half-written
    err = _error(capsys, "--input_img", tmp_path / "plain.png", "--joint_set", "human36")
    assert "detector gives --joint_set coco" in err and "mano" in err
    assert "does not exist" in _error(capsys, "--input_img", tmp_path / "none.jpg", "--checkpoint", coco_ckpt)
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff garbage")
    assert "cannot be read" in _error(capsys, "--input_img", tmp_path / "bad.jpg", "--checkpoint", coco_ckpt)


def test_detector_extra_missing_is_one_line(coco_ckpt, tmp_path, capsys, monkeypatch):
    for name in list(sys.modules):
        if name == "mediapipe" or name.startswith("mediapipe."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # import mediapipe raises ImportError
    write_image(tmp_path / "img.png", np.zeros((64, 64, 3), np.uint8))
    err = _error(capsys, "--input_img", tmp_path / "img.png", "--checkpoint", coco_ckpt)
    assert 'pip install -e ".[detector]"' in err and "--input_pose" in err
