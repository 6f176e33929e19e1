"""The video demo (pose2mesh.demo.video): frames in, tracked meshes out.

Most cases use a clip of the synthetic body walking across a small frame, rendered here, and a
detector stand-in that returns its projected COCO keypoints (so they run without the detector
extra); one case pans over real photos with the built-in detector."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from pose2mesh import demo
from pose2mesh.demo.video import FrameSource, run_video
from pose2mesh.detection import Detection

from test_demo import _tiny_run

W, H, FOCAL, FRAMES = 192, 144, 300.0, 10


@pytest.fixture(autouse=True)
def _software_renderer(monkeypatch):
    monkeypatch.setenv("POSE2MESH_RENDERER", "software")


@pytest.fixture(scope="module")
def coco_ckpt(tmp_path_factory):
    return _tiny_run(tmp_path_factory.mktemp("exp_coco_video"), "coco")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """Two synthetic bodies moving in opposite directions: an mp4, a frame folder, keypoints per frame."""
    import torch

    from pose2mesh.body_models import SMPL
    from pose2mesh.render import Intrinsics, MeshRenderer, RenderMesh

    smpl = SMPL(synthetic=True)
    rest, _ = smpl(torch.zeros(1, 72), torch.zeros(1, 10))
    body = rest[0].double().numpy() * [1, -1, -1]
    reg = smpl.joint_regressor("coco")[:17].astype(np.float64)
    intr = Intrinsics(FOCAL, FOCAL, (W - 1) / 2, (H - 1) / 2)
    renderer = MeshRenderer(W, H, backend="software")
    root = Path(tmp_path_factory.mktemp("clip"))
    (root / "frames").mkdir()
    writer = cv2.VideoWriter(str(root / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 12.0, (W, H))
    keypoints = []
    for t in range(FRAMES):
        people, kps = [], []
        for x0, vx in ((-0.9, 0.05), (0.9, -0.05)):
            world = body + [x0 + vx * t, 0.0, 6.0]
            people.append(RenderMesh(world, smpl.face, (0.7, 0.7, 0.7)))
            kp = intr.project(reg @ world)
            kps.append(np.concatenate([kp, np.full((17, 1), 0.9)], 1))
        img = renderer.render(people, intr, background=np.full((H, W, 3), 40, np.uint8)).image
        cv2.imwrite(str(root / "frames" / f"{t:04d}.png"), img[:, :, ::-1])
        writer.write(img[:, :, ::-1].copy())
        keypoints.append(kps)
    writer.release()
    return root, keypoints


class FakeDetector:
    """Returns the clip's keypoints frame by frame (with a little noise); can stop with Ctrl-C."""

    name = "stand-in"

    def __init__(self, keypoints, interrupt_at=None, seed=0, ghost_at=None):
        self.keypoints, self.interrupt_at, self.calls, self.ghost_at = keypoints, interrupt_at, 0, ghost_at
        self.rng = np.random.default_rng(seed)

    def detect(self, image, multi=False):
        if self.interrupt_at is not None and self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        kps = list(self.keypoints[self.calls])
        if self.calls == self.ghost_at:  # a one-frame false detection, away from both people
            ghost = kps[0].copy()
            ghost[:, 0] = ghost[:, 0] * 0.3 + W / 2
            ghost[:, 1] = ghost[:, 1] * 0.3 + 5
            kps.append(ghost)
        self.calls += 1
        out = []
        for kp in (kps if multi else kps[:1]):
            noisy = kp.copy()
            noisy[:, :2] += self.rng.normal(0, 1.0, (17, 2))
            lo, hi = noisy[:, :2].min(0), noisy[:, :2].max(0)
            out.append(Detection(noisy, 0.9, np.r_[lo, hi - lo]))
        return out

    def close(self):
        pass


def _args(*argv):
    return demo.parse_args(["--gpu", "cpu", *map(str, argv)])


def test_video_tracks_smooths_and_writes_everything(clip, coco_ckpt, tmp_path):
    root, keypoints = clip
    out = tmp_path / "out"
    summary = run_video(_args("--input_video", root / "clip.mp4", "--checkpoint", coco_ckpt, "--multi",
                              "--output_dir", out, "--save_obj", "--no_fit"), detector=FakeDetector(keypoints))
    assert summary["frames"] == FRAMES and summary["frames_written"] == FRAMES and summary["fps"] == 12.0
    # the video: every frame, at the input's rate and size, meshes drawn over it
    cap = cv2.VideoCapture(str(out / "demo_video.mp4"))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(12.0)
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    assert len(frames) == FRAMES and frames[0].shape == (H, W, 3)
    first_input = cv2.imread(str(root / "frames" / "0000.png"))
    assert np.abs(frames[0].astype(int) - first_input).mean() > 1.0  # something was rendered
    # keypoints: COCO results, image_id = frame index, a stable track_id per person
    recs = json.loads((out / "demo_keypoints.json").read_text())
    assert len(recs) == 2 * FRAMES and {r["image_id"] for r in recs} == set(range(FRAMES))
    assert all(r["category_id"] == 1 and len(r["keypoints"]) == 51 and "track_id" in r for r in recs)
    by_track = {}
    for r in recs:
        by_track.setdefault(r["track_id"], []).append(r)
    assert len(by_track) == 2
    for members in by_track.values():
        xs = [np.mean(r["keypoints"][0::3]) for r in members]
        assert len(members) == FRAMES and (np.all(np.diff(xs) > 0) or np.all(np.diff(xs) < 0))
    # smoothing moved the keypoints (the detected ones are kept beside them)
    r = recs[FRAMES // 2]
    assert not np.allclose(r["keypoints"], r["keypoints_detected"])
    # one npz per track with its vertices per frame; per-frame OBJ behind --save_obj
    for tid in by_track:
        npz = np.load(out / f"demo_track_{tid}.npz")
        assert npz["vertices"].shape == (FRAMES, 6890, 3) and list(npz["frames"]) == list(range(FRAMES))
        assert len(list((out / "tracks" / f"track_{tid}").glob("frame_*.obj"))) == FRAMES
    fps = summary["frames_per_second"]
    assert set(fps) >= {"decode", "detect", "model", "camera", "render", "encode", "end_to_end"}
    assert all(v is None or v > 0 for v in fps.values())
    assert json.loads((out / "demo_result.json").read_text())["frames_per_second"] == fps


def test_no_smooth_keeps_detections_and_folders_read(clip, coco_ckpt, tmp_path):
    root, keypoints = clip
    summary = run_video(_args("--input_video", root / "frames", "--checkpoint", coco_ckpt, "--no_smooth",
                              "--fps", 8, "--output_dir", tmp_path, "--no_fit"), detector=FakeDetector(keypoints))
    assert summary["fps"] == 8.0 and summary["frames_written"] == FRAMES
    recs = json.loads((tmp_path / "demo_keypoints.json").read_text())
    assert len(recs) == FRAMES  # without --multi: one person per frame
    assert all(np.allclose(r["keypoints"], r["keypoints_detected"]) for r in recs)


def test_ctrl_c_leaves_a_playable_video_and_valid_keypoints(clip, coco_ckpt, tmp_path):
    root, keypoints = clip
    with pytest.raises(KeyboardInterrupt):
        run_video(_args("--input_video", root / "clip.mp4", "--checkpoint", coco_ckpt, "--output_dir", tmp_path,
                        "--no_fit"), detector=FakeDetector(keypoints, interrupt_at=4))
    recs = json.loads((tmp_path / "demo_keypoints.json").read_text())
    assert sorted(r["image_id"] for r in recs) == [0, 1, 2, 3]
    cap = cv2.VideoCapture(str(tmp_path / "demo_video.mp4"))
    count = 0
    while cap.read()[0]:
        count += 1
    assert count == 4
    assert json.loads((tmp_path / "demo_result.json").read_text())["interrupted"] == "detection"


def _error(capsys, *argv):
    code = demo.main(["--gpu", "cpu", *map(str, argv)])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err
    return err


def test_bad_videos_are_one_line(tmp_path, capsys, coco_ckpt):
    assert "does not exist" in _error(capsys, "--input_video", tmp_path / "none.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"\x00not a video" * 100)
    err = _error(capsys, "--input_video", tmp_path / "junk.mp4")
    assert "cannot be read" in err or "has no frames" in err
    (tmp_path / "empty").mkdir()
    assert "has no frames" in _error(capsys, "--input_video", tmp_path / "empty")
    writer = cv2.VideoWriter(str(tmp_path / "zero.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 48))
    writer.release()
    err = _error(capsys, "--input_video", tmp_path / "zero.mp4")
    assert "cannot be read" in err or "has no frames" in err
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "0001.png").write_text("not a png")
    assert "cannot be read" in _error(capsys, "--input_video", frames)
    ok = tmp_path / "ok"
    ok.mkdir()
    cv2.imwrite(str(ok / "0.png"), np.zeros((48, 64, 3), np.uint8))
    assert "detector gives --joint_set coco" in _error(capsys, "--input_video", ok, "--joint_set", "human36")


def test_frame_source_counts_and_limits(clip):
    root, _ = clip
    src = FrameSource(str(root / "clip.mp4"), max_frames=3)
    assert (src.width, src.height, src.count) == (W, H, 3)
    assert [i for i, _ in src] == [0, 1, 2]
    assert [i for i, _ in src] == [0, 1, 2]  # iterating again reopens the file


def test_pan_over_real_photos_keeps_ids(coco_ckpt, tmp_path):
    """A pan over two real people side by side (photos shipped with scikit-image): the built-in
    detector finds them in every frame, and each keeps one track id."""
    pytest.importorskip("mediapipe")
    skdata = pytest.importorskip("skimage.data")
    wide = np.concatenate([skdata.astronaut(), np.repeat(skdata.camera()[..., None], 3, 2)], 1)  # 512 x 1024
    wide = cv2.resize(wide, (768, 384), interpolation=cv2.INTER_AREA)
    folder = tmp_path / "pan"
    folder.mkdir()
    n = 8
    for t in range(n):
        x = int(round(t * (768 - 640) / (n - 1)))
        cv2.imwrite(str(folder / f"{t:03d}.png"), wide[:, x:x + 640][:, :, ::-1])
    summary = run_video(_args("--input_video", folder, "--checkpoint", coco_ckpt, "--multi", "--output_dir",
                              tmp_path / "out", "--no_fit"))
    recs = json.loads((tmp_path / "out" / "demo_keypoints.json").read_text())
    by_track = {}
    for r in recs:
        by_track.setdefault(r["track_id"], set()).add(r["image_id"])
    long_tracks = [t for t, frames in by_track.items() if len(frames) >= n - 1]
    assert len(long_tracks) == 2, by_track
    assert summary["frames_written"] == n


def test_fitted_parameter_sequence_per_track(clip, coco_ckpt, tmp_path):
    """Fitting on (the default): per track an SMPL parameter sequence, a BVH and a glTF, and the
    fitted meshes drawn; each frame's fit starts from the previous frame's."""
    from pose2mesh.export import read_bvh

    root, keypoints = clip
    summary = run_video(_args("--input_video", root / "clip.mp4", "--checkpoint", coco_ckpt, "--max_frames", 3,
                              "--output_dir", tmp_path), detector=FakeDetector(keypoints))
    assert summary["frames_written"] == 3 and summary["fit"]["model"] == "smpl"
    (tid, track), = summary["tracks"].items()
    params = np.load(track["fit"]["params"])
    assert params["pose"].shape == (3, 72) and params["betas"].shape == (3, 10) and params["transl"].shape == (3, 3)
    names, parents, offsets, positions, frame_time = read_bvh(track["fit"]["bvh"])
    assert len(names) == 24 and positions.shape[:2] == (3, 24) and frame_time == pytest.approx(1 / 12.0)
    assert Path(track["fit"]["glb"]).read_bytes()[:4] == b"glTF"
    assert summary["frames_per_second"]["fit"] > 0


def test_one_frame_tracks_are_dropped(clip, coco_ckpt, tmp_path):
    root, keypoints = clip
    argv = ["--input_video", root / "clip.mp4", "--checkpoint", coco_ckpt, "--multi", "--no_fit"]
    summary = run_video(_args(*argv, "--output_dir", tmp_path / "a"), detector=FakeDetector(keypoints, ghost_at=5))
    assert len(summary["tracks"]) == 2
    assert len(json.loads((tmp_path / "a" / "demo_keypoints.json").read_text())) == 2 * FRAMES
    summary = run_video(_args(*argv, "--output_dir", tmp_path / "b", "--min_track_frames", 1),
                        detector=FakeDetector(keypoints, ghost_at=5))
    assert len(summary["tracks"]) == 3


def test_ctrl_c_while_rendering_ends_the_video_cleanly(clip, coco_ckpt, tmp_path, monkeypatch):
    from pose2mesh.render import MeshRenderer

    root, keypoints = clip
    original, calls = MeshRenderer.render, []

    def render(self, *a, **k):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return original(self, *a, **k)

    monkeypatch.setattr(MeshRenderer, "render", render)
    with pytest.raises(KeyboardInterrupt):
        run_video(_args("--input_video", root / "clip.mp4", "--checkpoint", coco_ckpt, "--output_dir", tmp_path,
                        "--no_fit"), detector=FakeDetector(keypoints))
    cap = cv2.VideoCapture(str(tmp_path / "demo_video.mp4"))
    count = 0
    while cap.read()[0]:
        count += 1
    assert count == 3  # the frames written before the interrupt
    assert len(json.loads((tmp_path / "demo_keypoints.json").read_text())) == FRAMES  # complete
    summary = json.loads((tmp_path / "demo_result.json").read_text())
    assert summary["interrupted"] == "rendering" and summary["frames_written"] == 3
