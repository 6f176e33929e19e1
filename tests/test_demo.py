"""The demo (pose2mesh.demo, demo/run.py): end to end on CPU with tiny random weights on the
synthetic body, the geometry of camera fit + rendering, input formats and error messages."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import pose2mesh.paths
from pose2mesh import demo
from pose2mesh.checkpoint import CheckpointError, find_run_config, resolve_weights
from pose2mesh.joints import add_pelvis_and_neck
from pose2mesh.vis import load_obj_vertices, read_image, write_image

REPO = Path(pose2mesh.paths.repo_root())
SHARED_POSE = REPO.parent / "shared" / "data" / "h36m_joint_input.npy"
SINGLE_POSE = REPO / "demo" / "synthetic_pose_human36.npy"
MULTI_POSE = REPO / "demo" / "synthetic_people_coco.json"


def _tiny_run(root: Path, joint_set: str) -> Path:
    """A run folder as training writes it (config.yaml + checkpoint/final.pth.tar), random weights."""
    import torch

    from pose2mesh.checkpoint import save_checkpoint
    from pose2mesh.config import Config, save_config
    from pose2mesh.engine.builders import build_graphs, build_mesh_model, build_model
    from pose2mesh.joints import get_joint_set

    cfg = Config()
    cfg.DATASET.input_joint_set = joint_set
    cfg.DATASET.body_model = "synthetic"
    cfg.MODEL.posenet_hid_dim = 32
    cfg.MODEL.meshnet_channel_divisor = 16
    js = get_joint_set(joint_set)
    torch.manual_seed(0)
    model = build_model(cfg, js, build_graphs(build_mesh_model(cfg), js))
    save_checkpoint(root / "checkpoint" / "final.pth.tar",
                    {"epoch": 3, "model_state_dict": model.state_dict(), "optim_state_dict": {},
                     "scheduler_state_dict": {}, "train_log": [], "test_log": []})
    save_config(cfg, str(root / "config.yaml"))
    return root / "checkpoint" / "final.pth.tar"


@pytest.fixture(scope="module")
def h36_ckpt(tmp_path_factory):
    return _tiny_run(tmp_path_factory.mktemp("exp_h36"), "human36")


@pytest.fixture(scope="module")
def coco_ckpt(tmp_path_factory):
    return _tiny_run(tmp_path_factory.mktemp("exp_coco"), "coco")


@pytest.fixture(autouse=True)
def _software_renderer_in_process(monkeypatch):
    """In this process, render with numpy: OpenGL would bind the test process to one platform.
    The command-line runs below choose their renderer as a user's would."""
    monkeypatch.setenv("POSE2MESH_RENDERER", "software")


def _run_cli(*args):
    env = {k: v for k, v in os.environ.items() if k not in ("POSE2MESH_RENDERER", "PYOPENGL_PLATFORM")}
    return subprocess.run([sys.executable, str(REPO / "demo" / "run.py"), "--gpu", "cpu", *map(str, args)],
                          capture_output=True, text=True, cwd=REPO, timeout=300, env=env)


# ----------------------------------------------------------------------------------------------
# end to end (subprocess, as a user runs it)

def test_single_person_end_to_end(h36_ckpt, tmp_path):
    img = np.full((480, 640, 3), 90, np.uint8)
    img[:, :320] = (40, 120, 60)
    write_image(tmp_path / "scene.jpg", img)
    out = tmp_path / "nested" / "result"  # created when missing
    res = _run_cli("--input_pose", SINGLE_POSE, "--input_img", tmp_path / "scene.jpg", "--joint_set", "human36",
                   "--checkpoint", h36_ckpt, "--output_dir", out)
    assert res.returncode == 0, res.stderr
    assert "body model: synthetic" in res.stdout and "NOT SMPL" in res.stdout
    assert f"weights: {h36_ckpt} (epoch 3)" in res.stdout
    assert "renderer: " in res.stdout
    for name in ("demo_pose2d.png", "demo_mesh.png", "demo_mesh.obj", "demo_result.json"):
        assert (out / name).is_file(), name
    # the pictures have the image's size (the original swapped width and height)
    assert read_image(out / "demo_mesh.png").shape == (480, 640, 3)
    pose_img = read_image(out / "demo_pose2d.png")
    assert pose_img.shape == (480, 640, 3) and (pose_img != read_image(tmp_path / "scene.jpg")).any()
    verts, faces = load_obj_vertices(out / "demo_mesh.obj")
    assert verts.shape == (6890, 3) and faces.shape == (13776, 3)
    summary = json.loads((out / "demo_result.json").read_text())
    assert summary["image_size"] == [640, 480] and summary["joint_set"] == "human36"
    # the camera in the summary is the least-squares fit of the obj's regressed joints to the input
    from pose2mesh.body_models import SMPL
    from pose2mesh.camera import fit_weak_perspective

    joints = SMPL(synthetic=True).joint_regressor("human36") @ verts
    cam = fit_weak_perspective(joints, np.load(SINGLE_POSE))
    person = summary["people"][0]
    assert cam.scale == pytest.approx(person["scale_px_per_m"], rel=1e-3, abs=1e-4)
    assert cam.rms == pytest.approx(person["fit_rms_px"], rel=1e-3)


def test_multi_person_coco_json(coco_ckpt, tmp_path):
    res = _run_cli("--input_pose", MULTI_POSE, "--checkpoint", coco_ckpt, "--output_dir", tmp_path)
    assert res.returncode == 0, res.stderr
    assert "person 3: skipped, duplicate of person 1" in res.stdout
    assert "person 4: skipped, confidence sum" in res.stdout
    summary = json.loads((tmp_path / "demo_result.json").read_text())
    assert summary["joint_set"] == "coco"  # from the checkpoint's config.yaml
    assert [p["index"] for p in summary["people"]] == [0, 1, 2]
    for i in range(3):
        assert (tmp_path / f"demo_mesh_{i}.obj").is_file() and (tmp_path / f"demo_mesh_{i}.png").is_file()
    assert (tmp_path / "demo_mesh.png").is_file() and (tmp_path / "demo_pose2d.png").is_file()
    assert not (tmp_path / "demo_mesh_3.obj").exists()


@pytest.mark.skipif(not SHARED_POSE.is_file(), reason="the shared reference data is not here")
def test_accepts_the_original_demo_input(h36_ckpt, tmp_path, capsys):
    """The original release's int64 Human3.6M pose, without an image: a canvas of 1.5 x its extent."""
    code = demo.main(["--gpu", "cpu", "--input_pose", str(SHARED_POSE), "--joint_set", "human36",
                      "--checkpoint", str(h36_ckpt), "--output_dir", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    pose = np.load(SHARED_POSE)
    w, h = int(np.ceil(1.5 * pose[:, 0].max())), int(np.ceil(1.5 * pose[:, 1].max()))
    assert read_image(tmp_path / "demo_mesh.png").shape == (h, w, 3)
    assert json.loads((tmp_path / "demo_result.json").read_text())["image"] is None


# ----------------------------------------------------------------------------------------------
# geometry: a known mesh through camera fit and rendering lands on its own 2D pose

def test_fitted_render_covers_the_pose(h36_ckpt, tmp_path, monkeypatch):
    import torch

    from pose2mesh.body_models import SMPL
    from pose2mesh.render import Intrinsics, MeshRenderer, RenderMesh

    smpl = SMPL(synthetic=True)
    rest, _ = smpl(torch.zeros(1, 72), torch.zeros(1, 10))
    body = rest[0].double().numpy() * [1, -1, -1]  # face the camera, y down
    reg = smpl.joint_regressor("human36").astype(np.float64)
    root = reg[0] @ body
    f, c, T = 1200.0, np.array([319.5, 239.5]), np.array([0.3, 0.1, 8.0])
    world = body - root + T
    pose2d = f * (reg @ world)[:, :2] / (reg @ world)[:, 2:] + c
    np.save(tmp_path / "pose.npy", pose2d)
    truth = MeshRenderer(640, 480, backend="software").render(
        [RenderMesh(world, smpl.face)], Intrinsics(f, f, *c), size=(640, 480)).mask

    def fake_forward(self, poses):
        mesh = (body - root)[None]
        return mesh, np.einsum("jv,nvc->njc", reg, mesh), np.zeros((1, 17, 3))

    monkeypatch.setattr(demo.Predictor, "forward", fake_forward)
    bg = np.zeros((480, 640, 3), np.uint8)
    write_image(tmp_path / "black.png", bg)
    assert demo.main(["--gpu", "cpu", "--input_pose", str(tmp_path / "pose.npy"), "--input_img",
                      str(tmp_path / "black.png"), "--checkpoint", str(h36_ckpt),
                      "--output_dir", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "demo_result.json").read_text())
    person = summary["people"][0]
    assert person["fit_rms_px"] < 1.0  # weak perspective vs the true perspective, far away
    assert person["scale_px_per_m"] == pytest.approx(f / T[2], rel=0.02)
    mask = read_image(tmp_path / "out" / "demo_mesh.png").sum(2) > 0
    iou = (mask & truth).sum() / (mask | truth).sum()
    assert iou > 0.9
    ij = np.round(pose2d).astype(int)
    assert mask[ij[:, 1], ij[:, 0]].mean() > 0.9


# ----------------------------------------------------------------------------------------------
# input formats

def test_load_poses_formats(tmp_path):
    p = np.arange(34, dtype=np.int64).reshape(17, 2)
    np.save(tmp_path / "a.npy", p)
    people, multi = demo.load_poses(tmp_path / "a.npy")
    assert not multi and people[0].dtype == np.float64 and np.array_equal(people[0], p)

    np.save(tmp_path / "b.npy", np.ones((2, 17, 3)))
    people, multi = demo.load_poses(tmp_path / "b.npy")
    assert multi and len(people) == 2

    (tmp_path / "c.json").write_text(json.dumps(np.full((17, 3), 0.5).tolist()))
    people, multi = demo.load_poses(tmp_path / "c.json")
    assert not multi and people[0].shape == (17, 3)

    coco = [{"image_id": i, "category_id": 1, "keypoints": list(range(51))} for i in (5, 5, 7)]
    (tmp_path / "d.json").write_text(json.dumps(coco))
    with pytest.raises(demo.DemoError, match="2 images"):
        demo.load_poses(tmp_path / "d.json")
    people, multi = demo.load_poses(tmp_path / "d.json", image_path="000000000005.jpg")
    assert multi and len(people) == 2 and people[0].shape == (17, 3) and people[0][1, 0] == 3

    original = {"106542.jpg": [np.ones((17, 3)).tolist()] * 2, "101570.jpg": [np.ones((17, 3)).tolist()]}
    (tmp_path / "e.json").write_text(json.dumps(original))
    people, multi = demo.load_poses(tmp_path / "e.json", image_path="imgs/101570.jpg")
    assert len(people) == 1


def test_pelvis_neck_and_multi_person_filters():
    from pose2mesh.joints import get_joint_set

    rng = np.random.default_rng(0)
    coco17 = np.concatenate([rng.uniform(0, 200, (17, 2)), rng.uniform(0.5, 1, (17, 1))], 1)
    full = add_pelvis_and_neck(coco17, score="product")
    names = get_joint_set("coco").names
    lh, rh = coco17[names.index("L_Hip")], coco17[names.index("R_Hip")]
    np.testing.assert_allclose(full[names.index("Pelvis")], [(lh[0] + rh[0]) / 2, (lh[1] + rh[1]) / 2, lh[2] * rh[2]])
    assert full.shape == (19, 3)

    far = full.copy()
    far[:, :2] += 300
    dup = full.copy()
    dup[:, :2] += 5
    weak = full.copy()
    weak[:, 2] = 0.05
    assert demo.select_people([full, dup, weak, far]) == [0, 3]


def test_float_input_is_not_truncated(h36_ckpt):
    """Sub-pixel input changes the network input (the original truncated to integers)."""
    import torch

    from pose2mesh.config import load_config

    cfg = load_config(str(h36_ckpt.parent.parent / "config.yaml"))
    model = demo.Predictor(cfg, h36_ckpt, torch.device("cpu"))
    pose = np.load(SINGLE_POSE).astype(np.float64)
    a, b = model.normalize(pose), model.normalize(pose + np.array([0.3, 0.0]) * (np.arange(17) % 2)[:, None])
    assert not np.allclose(a, b)


# ----------------------------------------------------------------------------------------------
# errors: one line on stderr, exit status 2, no traceback

def _error(capsys, *argv):
    code = demo.main(["--gpu", "cpu", *map(str, argv)])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err
    return err


def test_error_messages(h36_ckpt, tmp_path, capsys, monkeypatch):
    ck = ["--checkpoint", h36_ckpt]
    np.save(tmp_path / "j15.npy", np.ones((15, 2)))
    assert "has 15 joints but --joint_set human36 expects 17" in _error(
        capsys, "--input_pose", tmp_path / "j15.npy", "--joint_set", "human36", *ck)
    np.save(tmp_path / "j24.npy", np.ones((24, 2)))
    assert "fits --joint_set smpl" in _error(capsys, "--input_pose", tmp_path / "j24.npy", *ck)
    bad = np.ones((17, 2))
    bad[4, 1] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    assert "joint 4 has a non-finite y value" in _error(capsys, "--input_pose", tmp_path / "nan.npy", *ck)
    bad[4, 1] = np.inf
    (tmp_path / "inf.json").write_text(json.dumps(bad.tolist()).replace("Infinity", "1e999"))
    assert "non-finite" in _error(capsys, "--input_pose", tmp_path / "inf.json", *ck)
    np.save(tmp_path / "empty.npy", np.zeros((0, 2)))
    assert "empty" in _error(capsys, "--input_pose", tmp_path / "empty.npy", *ck)
    np.save(tmp_path / "flat.npy", np.tile([[100.0, 200.0]], (17, 1)))
    assert "degenerate" in _error(capsys, "--input_pose", tmp_path / "flat.npy", *ck)
    (tmp_path / "broken.json").write_text("[[1, 2], [3")
    assert "not valid JSON" in _error(capsys, "--input_pose", tmp_path / "broken.json", *ck)
    (tmp_path / "text.json").write_text('[["a", "b"]]')
    assert "not a numeric" in _error(capsys, "--input_pose", tmp_path / "text.json", *ck)
    assert "does not exist" in _error(capsys, "--input_pose", tmp_path / "nope.npy", *ck)
    assert "expected a .npy or .json" in _error(capsys, "--input_pose", tmp_path / "broken.json", "--input_pose",
                                                 REPO / "demo" / "run.py", *ck)

    assert f"image {tmp_path / 'missing.png'} does not exist" in _error(
        capsys, "--input_pose", SINGLE_POSE, "--input_img", tmp_path / "missing.png", *ck)
    (tmp_path / "fake.png").write_text("not an image")
    assert "cannot be read" in _error(capsys, "--input_pose", SINGLE_POSE, "--input_img", tmp_path / "fake.png", *ck)

    assert "checkpoint" in _error(capsys, "--input_pose", SINGLE_POSE, "--checkpoint", tmp_path / "none.pth.tar")
    assert "was trained on the human36 joint set" in _error(
        capsys, "--input_pose", SINGLE_POSE, "--joint_set", "coco", *ck)
    (tmp_path / "junk.pth.tar").write_bytes(b"\x00garbage")
    assert "junk.pth.tar" in _error(capsys, "--input_pose", SINGLE_POSE, "--checkpoint", tmp_path / "junk.pth.tar",
                                    "--cfg", h36_ckpt.parent.parent / "config.yaml")

    # the default weights path of the original release, missing on a fresh machine
    monkeypatch.setenv("POSE2MESH_ROOT", str(tmp_path))
    err = _error(capsys, "--input_pose", SINGLE_POSE, "--joint_set", "human36")
    assert "pose2mesh_human36J_train_human36/final.pth.tar does not exist" in err
    monkeypatch.delenv("POSE2MESH_ROOT")

    # official body files missing: a clear error pointing at the synthetic body
    monkeypatch.setenv("POSE2MESH_SMPL_DIR", str(tmp_path / "no_smpl"))
    err = _error(capsys, "--input_pose", SINGLE_POSE, "--body_model", "official", *ck)
    assert "--body_model synthetic" in err


def test_debug_raises_with_traceback(tmp_path):
    with pytest.raises(demo.DemoError):
        demo.main(["--gpu", "cpu", "--input_pose", str(tmp_path / "nope.npy"), "--debug"])


def test_checkpoint_folders(tmp_path):
    ck = tmp_path / "exp_1" / "checkpoint"
    ck.mkdir(parents=True)
    for n in (2, 10, 9):
        (ck / f"checkpoint{n}.pth.tar").write_bytes(b"x")
    assert resolve_weights(str(tmp_path / "exp_1")) == ck / "checkpoint10.pth.tar"
    (ck / "best.pth.tar").write_bytes(b"x")
    assert resolve_weights(str(ck)) == ck / "best.pth.tar"
    (ck / "final.pth.tar").write_bytes(b"x")
    assert resolve_weights(str(tmp_path / "exp_1")) == ck / "final.pth.tar"
    assert find_run_config(ck / "final.pth.tar") is None
    (tmp_path / "exp_1" / "config.yaml").write_text("MODEL: {}\n")
    assert find_run_config(ck / "final.pth.tar") == tmp_path / "exp_1" / "config.yaml"
    with pytest.raises(CheckpointError, match="no final.pth.tar, best.pth.tar or checkpoint<N>.pth.tar in"):
        resolve_weights(str(tmp_path))


def test_obj_round_trip_and_subpixel_drawing(tmp_path):
    from pose2mesh.vis import draw_pose2d, save_obj

    rng = np.random.default_rng(0)
    v, f = rng.normal(size=(50, 3)), rng.integers(0, 50, size=(80, 3))
    save_obj(v, f, tmp_path / "m.obj")
    v2, f2 = load_obj_vertices(tmp_path / "m.obj")
    np.testing.assert_allclose(v2, v, atol=5e-7)
    assert np.array_equal(f2, f)
    import trimesh

    assert len(trimesh.load(tmp_path / "m.obj", process=False).vertices) == 50
    # a quarter-pixel shift moves the drawing (coordinates are not truncated)
    img = np.zeros((40, 40, 3), np.uint8)
    a = draw_pose2d(img, np.array([[10.0, 10.0], [30.0, 20.0]]), [(0, 1)])
    b = draw_pose2d(img, np.array([[10.25, 10.0], [30.25, 20.0]]), [(0, 1)])
    assert not np.array_equal(a, b) and a.any()
    # joints at or below the confidence threshold are not drawn
    c = draw_pose2d(img, np.array([[10.0, 10.0], [30.0, 20.0]]), [(0, 1)], confidence=np.array([0.05, 0.05]),
                    threshold=0.1)
    assert not c.any()
