"""Bad input wherever a user touches the system: one clear line and exit status 2 from the
command lines, nothing executed from foreign pickles, nothing lost when a write fails, and the
same checkpoints from two runs with data-loader workers. docs/RELIABILITY.md lists every case
with the test that checks it (the loader-level cases live beside each module's own tests).

Runs are in-process (``train_main`` / ``test_main``) and use PoseNet on the synthetic dataset,
so that each costs a second or two; one subprocess checks what a user sees from the script.
"""
from __future__ import annotations

import errno
import json
import os
import pickle
import re
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pose2mesh import checkpoint as ckpt_mod
from pose2mesh.checkpoint import SAFE_GLOBALS, CheckpointError, load_checkpoint, save_checkpoint
from pose2mesh.cli import test_main as run_test_cli
from pose2mesh.cli import train_main

REPO = Path(__file__).resolve().parents[1]

POSENET_TINY = {
    "DATASET": {"train_list": ["Synthetic"], "test_list": ["Synthetic"], "input_joint_set": "human36",
                "target_joint_set": "human36", "workers": 0, "use_gt_input": True,
                "synthetic_train_size": 16, "synthetic_test_size": 4, "body_model": "synthetic"},
    "MODEL": {"name": "posenet", "posenet_hid_dim": 32, "posenet_dropout": 0.0},
    "TRAIN": {"batch_size": 4, "end_epoch": 2, "max_iters_per_epoch": 2, "lr": 0.001, "lr_step": [1],
              "print_freq": 1, "optimizer": "rmsprop"},
    "TEST": {"batch_size": 4},
}


def write_cfg(folder: Path, name: str = "tiny.yml", **overrides) -> Path:
    data = yaml.safe_load(yaml.safe_dump(POSENET_TINY))
    for key, value in overrides.items():
        section, field = key.split("__")
        data[section][field] = value
    path = folder / name
    path.write_text(yaml.safe_dump(data))
    return path


def error_lines(capsys) -> list:
    """stderr without tqdm's progress bars (a run that fails mid-training has shown some)."""
    lines = capsys.readouterr().err.strip().splitlines()
    return [line for line in lines if line.strip() and not re.search(r"\d+%\|", line)]


def assert_one_line(capsys, *needles: str) -> str:
    lines = error_lines(capsys)
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: "), lines
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def posenet_checkpoint(path: Path, hid_dim: int = 32) -> Path:
    """A PoseNet checkpoint as training writes it (random weights)."""
    from pose2mesh.config import Config
    from pose2mesh.engine.builders import build_model
    from pose2mesh.joints import get_joint_set

    cfg = Config()
    cfg.MODEL.name = "posenet"
    cfg.MODEL.posenet_hid_dim = hid_dim
    torch.manual_seed(0)
    model = build_model(cfg, get_joint_set("human36"), None)
    save_checkpoint(path, {"epoch": 1, "model_state_dict": model.state_dict(), "optim_state_dict": {},
                           "scheduler_state_dict": {}, "train_log": [], "test_log": {}})
    return path


class Evil:
    """Pickles as a call of os.system: loading it must neither run it nor succeed."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


# ---------------------------------------------------------------------------------- configs

def test_missing_config_from_the_script_one_line_and_traceback_with_debug(tmp_path):
    missing = tmp_path / "missing.yml"
    cmd = [sys.executable, "main/train.py", "--cfg", str(missing), "--gpu", "cpu"]
    procs = [subprocess.Popen(c, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c in (cmd, cmd + ["--debug"])]
    (_, err), (_, derr) = [p.communicate(timeout=120) for p in procs]
    assert procs[0].returncode == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(missing) in lines[0], err
    assert procs[1].returncode not in (0, 2)
    assert "Traceback (most recent call last)" in derr and "ConfigError" in derr and str(missing) in derr


@pytest.mark.parametrize("text, needle", [
    ("TRAIN:\n    warmup_steps: 777\n", "TRAIN.warmup_steps"),
    ("TRAIN:\n    batch_size: 'abc'\n", "TRAIN.batch_size"),
    ("", "empty"),
    ("TRAIN: [unclosed\n", "tiny.yml"),
])
def test_bad_config_is_one_line_from_both_commands(tmp_path, capsys, text, needle):
    cfg = tmp_path / "tiny.yml"
    cfg.write_text(text)
    assert train_main(["--cfg", str(cfg), "--gpu", "cpu", "--output_dir", str(tmp_path / "exp")]) == 2
    assert_one_line(capsys, str(cfg), needle)
    assert run_test_cli(["--cfg", str(cfg), "--gpu", "cpu", "--weights", str(tmp_path)]) == 2
    assert_one_line(capsys, str(cfg), needle)
    assert not (tmp_path / "exp").exists()


@pytest.mark.parametrize("gpu", ["abc", "0,x", "cuda"])
def test_bad_gpu_argument_is_one_line(tmp_path, capsys, gpu):
    cfg = write_cfg(tmp_path)
    assert train_main(["--cfg", str(cfg), "--gpu", gpu, "--output_dir", str(tmp_path / "exp")]) == 2
    assert_one_line(capsys, f"--gpu '{gpu}'", "'cpu'")
    assert not (tmp_path / "exp").exists()


# ---------------------------------------------------------------------------------- body models

def test_bad_body_model_files_from_the_command_line(tmp_path, capsys, monkeypatch):
    from pose2mesh.body_models import ensure_synthetic_models

    good = ensure_synthetic_models(which=("body",))["smpl"].read_bytes()
    smpl_dir = tmp_path / "smpl"
    smpl_dir.mkdir()
    monkeypatch.setenv("POSE2MESH_SMPL_DIR", str(smpl_dir))
    cfg = write_cfg(tmp_path, DATASET__body_model="official")
    argv = ["--cfg", str(cfg), "--gpu", "cpu", "--output_dir", str(tmp_path / "exp")]
    target = smpl_dir / "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl"

    assert train_main(argv) == 2  # missing: where it goes and where it comes from
    assert_one_line(capsys, str(target), "smpl.is.tue.mpg.de", "synthetic")
    target.write_bytes(good[: len(good) // 2])
    assert train_main(argv) == 2
    assert_one_line(capsys, str(target), "truncated")
    marker = tmp_path / "pwned"
    target.write_bytes(pickle.dumps({"v_template": Evil(marker)}, protocol=2))
    assert train_main(argv) == 2
    assert_one_line(capsys, str(target), "system")
    assert not marker.exists()
    assert not (tmp_path / "exp").exists()


@pytest.mark.parametrize("global_name", [b"os\nsystem", b"builtins\nexec", b"subprocess\nPopen",
                                         b"torch\nload", b"numpy\nload", b"scipy.sparse\ncoo_matrix"])
def test_body_model_reader_refuses_globals_outside_its_allow_list(tmp_path, global_name):
    from pose2mesh.body_models import BodyModelError, load_model_file

    path = tmp_path / "SMPL_NEUTRAL.pkl"
    # {'v_template': GLOBAL(...)('x')}: the reader must refuse at the GLOBAL, before any call
    path.write_bytes(b"\x80\x02}q\x00X\n\x00\x00\x00v_templateq\x01c" + global_name + b"\nX\x01\x00\x00\x00x\x85Rs.")
    module, name = global_name.decode().split("\n")
    with pytest.raises(BodyModelError, match=f"refusing.*'{module}.{name}'"):
        load_model_file(path)


# ---------------------------------------------------------------------------------- checkpoints

def _bad_checkpoints(folder: Path, marker: Path) -> dict:
    """name -> (file, what the message must say)."""
    good = posenet_checkpoint(folder / "good.pth.tar")
    data = good.read_bytes()
    files = {}

    def put(name, payload, needle):
        path = folder / name
        path.write_bytes(payload)
        files[name] = (path, needle)

    put("truncated.pth.tar", data[: len(data) // 3], "truncated")
    put("notes.txt", b"epoch 12: MPJPE 64.9\n" * 20, "not a PyTorch checkpoint")
    put("random.bin", np.random.default_rng(0).bytes(4096), "not a PyTorch checkpoint")
    with zipfile.ZipFile(folder / "archive.zip", "w") as z:
        z.writestr("weights/readme.txt", "not torch")
    files["archive.zip"] = (folder / "archive.zip", "not a PyTorch checkpoint")
    put("plain.pkl", pickle.dumps({"model_state_dict": {}, "x": Evil(marker)}, protocol=4),
        "not a PyTorch checkpoint")
    for legacy in (False, True):
        name = f"evil{'_legacy' if legacy else ''}.pth.tar"
        torch.save({"model_state_dict": {}, "x": Evil(marker)}, folder / name,
                   _use_new_zipfile_serialization=not legacy)
        files[name] = (folder / name, "other than tensors and plain data; refusing to unpickle it "
                                      f"(unsupported global {os.system.__module__}.system)")
    torch.save({"model_state_dict": {"w": torch.zeros(1)}, "mean": np.zeros(3)}, folder / "ndarray.pth.tar")
    files["ndarray.pth.tar"] = (folder / "ndarray.pth.tar", "multiarray._reconstruct")
    torch.save(torch.nn.Linear(2, 2), folder / "module.pth")
    files["module.pth"] = (folder / "module.pth", "torch.nn.modules.linear.Linear")
    np.save(folder / "pose.npy", np.zeros((17, 2)))
    files["pose.npy"] = (folder / "pose.npy", "not a PyTorch checkpoint")
    return files


def test_load_checkpoint_refuses_bad_files_without_running_them(tmp_path):
    marker = tmp_path / "pwned"
    for name, (path, needle) in _bad_checkpoints(tmp_path, marker).items():
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # nothing on stderr besides our message
            with pytest.raises(CheckpointError) as info:
                load_checkpoint(path)
        msg = str(info.value)
        assert str(path) in msg and needle in msg, (name, msg)
        assert "weights_only" not in msg and "\n" not in msg, (name, msg)
    assert not marker.exists()


def test_bad_weights_from_the_test_command_are_one_line(tmp_path, capsys):
    cfg = write_cfg(tmp_path)
    marker = tmp_path / "pwned"
    for name, (path, needle) in _bad_checkpoints(tmp_path, marker).items():
        assert run_test_cli(["--cfg", str(cfg), "--gpu", "cpu", "--weights", str(path),
                             "--output_dir", str(tmp_path / "exp")]) == 2, name
        assert_one_line(capsys, str(path), needle)
    assert not marker.exists()
    assert not (tmp_path / "exp").exists()  # nothing created for a run that cannot start


def test_weights_of_another_architecture_list_the_keys_and_shapes(tmp_path, capsys):
    other = posenet_checkpoint(tmp_path / "wide.pth.tar", hid_dim=48)
    cfg = write_cfg(tmp_path)
    assert run_test_cli(["--cfg", str(cfg), "--gpu", "cpu", "--weights", str(other)]) == 2
    lines = error_lines(capsys)
    assert lines[0] == "error: the weights do not fit PoseNet:"
    assert all(line.startswith("  ") for line in lines[1:]), lines
    text = "\n".join(lines)
    assert "different shapes" in text and "w1.weight checkpoint [48, 34] vs model [32, 34]" in text
    # a Pose2Mesh config given PoseNet weights: every key is missing or unexpected
    cfg_mesh = write_cfg(tmp_path, "mesh.yml", MODEL__name="pose2mesh_net", MODEL__meshnet_channel_divisor=16)
    assert run_test_cli(["--cfg", str(cfg_mesh), "--gpu", "cpu", "--weights", str(other)]) == 2
    text = "\n".join(error_lines(capsys))
    assert "missing from the checkpoint" in text and "pose_lifter.w1.weight" in text
    assert "not in the model" in text


def test_resume_from_a_damaged_or_weights_only_checkpoint_is_one_line(tmp_path, capsys):
    from pose2mesh.engine import trainer as runner

    def must_not_train(*args, **kwargs):
        raise AssertionError("training started")

    cfg = write_cfg(tmp_path)
    argv = ["--cfg", str(cfg), "--gpu", "cpu", "--output_dir", str(tmp_path / "exp"), "--resume_training"]
    notes = tmp_path / "notes.txt"
    notes.write_text("epoch 3\n")
    assert train_main(argv + [str(notes)]) == 2
    assert_one_line(capsys, "no complete checkpoint", str(notes))
    run = tmp_path / "run"
    weights_only = posenet_checkpoint(run / "checkpoint" / "checkpoint1.pth.tar")  # empty optimizer state
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner, "train_one_epoch", must_not_train)
        assert train_main(argv + [str(run)]) == 2
    assert_one_line(capsys, str(weights_only), "cannot resume training", "optim_state_dict")
    assert train_main(argv + [str(tmp_path / "nowhere")]) == 2
    assert_one_line(capsys, "--resume_training", "nowhere", "does not exist")


def test_resume_with_another_optimizer_is_one_line(tmp_path, capsys, monkeypatch):
    from pose2mesh.config import load_config
    from pose2mesh.engine import builders
    from pose2mesh.engine import trainer as runner
    from pose2mesh.joints import get_joint_set

    def must_not_train(*args, **kwargs):
        raise AssertionError("training started")

    cfg_path = write_cfg(tmp_path)  # rmsprop
    cfg = load_config(str(cfg_path))
    model = builders.build_model(cfg, get_joint_set("human36"), None)
    optimizer = builders.build_optimizer(cfg, model.parameters())
    model(torch.randn(4, 17, 2)).abs().mean().backward()
    optimizer.step()
    scheduler = builders.build_scheduler(cfg, optimizer)
    state = runner.checkpoint_state(1, model, optimizer, scheduler, [1.0], {"surface": [], "joint": []}, 123, 2)
    save_checkpoint(tmp_path / "run" / "checkpoint" / "checkpoint1.pth.tar", state)
    monkeypatch.setattr(runner, "train_one_epoch", must_not_train)
    adam = write_cfg(tmp_path, "adam.yml", TRAIN__optimizer="adam")
    assert train_main(["--cfg", str(adam), "--gpu", "cpu", "--resume_training", str(tmp_path / "run")]) == 2
    assert_one_line(capsys, "checkpoint1.pth.tar was trained with rmsprop, but TRAIN.optimizer is 'adam'")


def test_safe_globals_are_exactly_what_the_original_files_need():
    """NumPy scalars in the original's test_log: the scalar constructor under both NumPy names,
    and the dtype (built as a Float32DType / Float64DType class where NumPy has them)."""
    names = {name for _, name in SAFE_GLOBALS}
    expected = {"numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar", "numpy.dtype"}
    if hasattr(np, "dtypes"):
        expected |= {"numpy.dtypes.Float32DType", "numpy.dtypes.Float64DType"}
    assert names == expected


# ---------------------------------------------------------------------------------- datasets

def test_missing_malformed_and_incomplete_annotations_from_the_command_line(tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    monkeypatch.setenv("POSE2MESH_DATA", str(data))
    cfg = write_cfg(tmp_path, DATASET__test_list=["Human36M"], DATASET__train_list=["Human36M"])
    weights = posenet_checkpoint(tmp_path / "w.pth.tar")
    argv = ["--cfg", str(cfg), "--gpu", "cpu", "--weights", str(weights), "--output_dir", str(tmp_path / "exp")]
    annot = data / "Human36M" / "annotations" / "Human36M_subject9_data.json"

    assert run_test_cli(argv) == 2
    assert_one_line(capsys, f"not found: {annot}", "README")
    annot.parent.mkdir(parents=True)
    annot.write_text('{"images": [')
    assert run_test_cli(argv) == 2
    assert_one_line(capsys, str(annot), "not valid JSON")
    annot.write_text(json.dumps({"images": []}))
    assert run_test_cli(argv) == 2
    assert_one_line(capsys, str(annot), "missing field 'annotations'")
    # training reads its own split first
    assert train_main(["--cfg", str(cfg), "--gpu", "cpu", "--output_dir", str(tmp_path / "exp")]) == 2
    assert_one_line(capsys, str(data / "Human36M" / "annotations" / "Human36M_subject1_data.json"))


# ---------------------------------------------------------------------------------- demo inputs

@pytest.fixture(scope="module")
def demo_checkpoint(tmp_path_factory):
    """A run folder as training writes it (config.yaml + checkpoint/final.pth.tar), random weights."""
    from pose2mesh.config import Config, save_config
    from pose2mesh.engine.builders import build_graphs, build_mesh_model, build_model
    from pose2mesh.joints import get_joint_set

    root = tmp_path_factory.mktemp("demo_run")
    cfg = Config()
    cfg.DATASET.input_joint_set = "human36"
    cfg.DATASET.body_model = "synthetic"
    cfg.MODEL.posenet_hid_dim = 32
    cfg.MODEL.meshnet_channel_divisor = 16
    js = get_joint_set("human36")
    model = build_model(cfg, js, build_graphs(build_mesh_model(cfg), js))
    save_checkpoint(root / "checkpoint" / "final.pth.tar", {"epoch": 1, "model_state_dict": model.state_dict()})
    save_config(cfg, str(root / "config.yaml"))
    return root / "checkpoint" / "final.pth.tar"


@pytest.mark.parametrize("pose, needle", [
    (np.ones((17, 4)), "expected a J x 2 or J x 3"),
    (np.ones((1, 1, 17, 2)), "expected a J x 2 or J x 3"),
    (np.ones((17,)), "expected a J x 2 or J x 3"),
    (np.array([["a", "b"]] * 17), "not numbers"),
    (np.ones((16, 2)), "has 16 joints but --joint_set human36 expects 17"),
    (np.full((17, 2), -np.inf), "non-finite"),
    (np.full((17, 2), 1e9) + np.arange(34).reshape(17, 2), "too large for a canvas"),
])
def test_demo_refuses_bad_2d_poses_before_running_the_model(demo_checkpoint, tmp_path, capsys, pose, needle):
    from pose2mesh import demo

    path = tmp_path / "pose.npy"
    np.save(path, pose)
    code = demo.main(["--gpu", "cpu", "--input_pose", str(path), "--checkpoint", str(demo_checkpoint),
                      "--output_dir", str(tmp_path / "out")])
    assert code == 2
    assert_one_line(capsys, needle)
    assert not (tmp_path / "out").exists()


def test_demo_unwritable_output_folder_is_one_line(demo_checkpoint, tmp_path, capsys):
    from pose2mesh import demo

    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    pose = tmp_path / "pose.npy"
    np.save(pose, np.random.default_rng(0).uniform(100, 400, size=(17, 2)))
    assert demo.main(["--gpu", "cpu", "--input_pose", str(pose), "--checkpoint", str(demo_checkpoint),
                      "--output_dir", str(blocker / "out")]) == 2
    assert_one_line(capsys, "cannot create the output folder", str(blocker / "out"))


def test_demo_refuses_an_all_zero_pose_and_a_pickled_object_array(demo_checkpoint, tmp_path, capsys):
    from pose2mesh import demo

    argv = ["--gpu", "cpu", "--checkpoint", str(demo_checkpoint), "--output_dir", str(tmp_path / "out")]
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([{"x": 1}] * 17, dtype=object), allow_pickle=True)
    assert demo.main(["--input_pose", str(objects), *argv]) == 2
    assert_one_line(capsys, str(objects), "not a readable .npy")
    zeros = tmp_path / "zeros.npy"
    np.save(zeros, np.zeros((17, 2)))
    assert demo.main(["--input_pose", str(zeros), *argv]) == 2
    assert_one_line(capsys, "degenerate")


# ---------------------------------------------------------------------------------- disk

def test_unwritable_output_folder_fails_before_training(tmp_path, capsys):
    cfg = write_cfg(tmp_path)
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file where a folder should be")  # blocks writes even for root
    for out in (blocker / "sub", blocker):
        assert train_main(["--cfg", str(cfg), "--gpu", "cpu", "--output_dir", str(out)]) == 2
        assert_one_line(capsys, "cannot write to the experiment folder", str(out))
    assert blocker.read_text() == "a file where a folder should be"


def test_disk_full_at_start_fails_before_training(tmp_path, capsys, monkeypatch):
    from pose2mesh.engine import experiment
    from pose2mesh.engine import trainer as runner

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def must_not_train(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(experiment.os, "fsync", no_space)
    monkeypatch.setattr(runner, "train_one_epoch", must_not_train)
    cfg = write_cfg(tmp_path)
    assert train_main(["--cfg", str(cfg), "--gpu", "cpu", "--output_dir", str(tmp_path / "exp")]) == 2
    assert_one_line(capsys, "cannot write to the experiment folder", "No space left on device")


@pytest.mark.parametrize("fail", ["/dev/full", "torch.save", "os.replace"])
def test_failed_checkpoint_write_keeps_the_previous_file(tmp_path, monkeypatch, fail):
    path = tmp_path / "checkpoint" / "checkpoint1.pth.tar"
    save_checkpoint(path, {"epoch": 1, "model_state_dict": {"w": torch.ones(3)}})
    before = path.read_bytes()
    real_save = torch.save

    def save_then_disk_full(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.truncate(100)  # half written
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def replace_fails(src, dst):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    def full_disk(fd, mode):  # the temporary file is made, but every write hits a full device
        os.close(fd)
        return open("/dev/full", mode)

    if fail == "/dev/full":
        if not os.path.exists("/dev/full"):
            pytest.skip("no /dev/full")
        monkeypatch.setattr(ckpt_mod.os, "fdopen", full_disk)
    elif fail == "torch.save":
        monkeypatch.setattr(ckpt_mod.torch, "save", save_then_disk_full)
    else:
        monkeypatch.setattr(ckpt_mod.os, "replace", replace_fails)
    with pytest.raises(OSError) as info:
        save_checkpoint(path, {"epoch": 2, "model_state_dict": {"w": torch.zeros(3)}})
    assert str(path) in str(info.value) and "intact" in str(info.value)
    assert path.read_bytes() == before
    assert os.listdir(path.parent) == [path.name]  # no temporary file left
    assert torch.equal(load_checkpoint(path)["model_state_dict"]["w"], torch.ones(3))


def test_disk_full_mid_training_leaves_the_last_checkpoint_newest(tmp_path, capsys, monkeypatch):
    real_save = torch.save
    calls = {"n": 0}

    def fails_on_final(obj, f, *args, **kwargs):
        calls["n"] += 1
        if obj.get("epoch") == 2:
            f.write(b"PK\x03\x04 half a checkpoint")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(ckpt_mod.torch, "save", fails_on_final)
    cfg = write_cfg(tmp_path)
    assert train_main(["--cfg", str(cfg), "--gpu", "cpu", "--output_dir", str(tmp_path / "exp")]) == 2
    line = assert_one_line(capsys, "cannot write the checkpoint", "final.pth.tar", "No space left on device")
    run = next((tmp_path / "exp").glob("exp_*"))
    assert sorted(p.name for p in (run / "checkpoint").iterdir()) == ["best.pth.tar", "checkpoint1.pth.tar"], line
    assert load_checkpoint(run / "checkpoint" / "checkpoint1.pth.tar")["epoch"] == 1


def test_ctrl_c_keeps_the_last_checkpoint_and_says_how_to_resume(tmp_path, capsys, monkeypatch):
    from pose2mesh.engine import trainer as runner

    real = runner.train_one_epoch

    def interrupted(model, criterion, optimizer, loader, device, epoch, *args, **kwargs):
        if epoch == 2:
            raise KeyboardInterrupt
        return real(model, criterion, optimizer, loader, device, epoch, *args, **kwargs)

    monkeypatch.setattr(runner, "train_one_epoch", interrupted)
    cfg = write_cfg(tmp_path)
    assert train_main(["--cfg", str(cfg), "--gpu", "cpu", "--output_dir", str(tmp_path / "exp")]) == 130
    assert "--resume_training" in capsys.readouterr().err
    run = next((tmp_path / "exp").glob("exp_*"))
    assert load_checkpoint(run / "checkpoint" / "checkpoint1.pth.tar")["epoch"] == 1
    assert not [p for p in (run / "checkpoint").iterdir() if ".tmp" in p.name]
    monkeypatch.setattr(runner, "train_one_epoch", real)
    assert train_main(["--cfg", str(cfg), "--gpu", "cpu", "--resume_training", str(run)]) == 0
    assert load_checkpoint(run / "checkpoint" / "final.pth.tar")["epoch"] == 2


# ---------------------------------------------------------------------------------- determinism

def test_two_runs_with_a_data_loader_worker_give_identical_checkpoints(tmp_path):
    cfg = write_cfg(tmp_path, DATASET__workers=1)
    states = []
    for k in range(2):
        assert train_main(["--cfg", str(cfg), "--gpu", "cpu", "--output_dir", str(tmp_path / f"exp{k}")]) == 0
        run = next((tmp_path / f"exp{k}").glob("exp_*"))
        states.append(load_checkpoint(run / "checkpoint" / "final.pth.tar"))
    a, b = states
    assert a["model_state_dict"].keys() == b["model_state_dict"].keys()
    for key in a["model_state_dict"]:
        assert torch.equal(a["model_state_dict"][key], b["model_state_dict"][key]), key
    np.testing.assert_equal(a["train_log"], b["train_log"])
    np.testing.assert_equal(a["test_log"], b["test_log"])
