"""Training and testing end to end on the synthetic dataset: run folders, checkpoints, exact
resume after a kill, non-finite losses, determinism, and DDP on 2 CPU processes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from pose2mesh.config import load_config
from pose2mesh.cli import test_main as run_test_cli
from pose2mesh.cli import train_main

REPO = Path(__file__).resolve().parents[1]

TINY = {
    "DATASET": {"train_list": ["Synthetic"], "test_list": ["Synthetic"], "input_joint_set": "human36",
                "target_joint_set": "human36", "workers": 0, "use_gt_input": True,
                "synthetic_train_size": 32, "synthetic_test_size": 8, "body_model": "synthetic"},
    "MODEL": {"name": "pose2mesh_net", "posenet_hid_dim": 64, "meshnet_channel_divisor": 16,
              "posenet_dropout": 0.0},
    "TRAIN": {"batch_size": 4, "end_epoch": 3, "edge_loss_start": 1, "max_iters_per_epoch": 2,
              "lr": 0.001, "lr_step": [2], "print_freq": 1, "optimizer": "rmsprop"},
    "TEST": {"batch_size": 4},
}


def write_cfg(folder: Path, **overrides) -> Path:
    data = yaml.safe_load(yaml.safe_dump(TINY))
    for key, value in overrides.items():
        section, name = key.split("__")
        data[section][name] = value
    path = folder / "tiny.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def only_run(root: Path) -> Path:
    runs = sorted(root.glob("exp_*"))
    assert len(runs) == 1, runs
    return runs[0]


def weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)["model_state_dict"]


def assert_same_weights(a: dict, b: dict, atol: float = 0.0) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if a[k].is_floating_point():
            torch.testing.assert_close(a[k], b[k], atol=atol, rtol=0 if atol == 0 else 1e-5, msg=k)
        else:
            assert torch.equal(a[k], b[k]), k


def run_train(tmp: Path, cfg: Path, *extra: str) -> int:
    return train_main(["--cfg", str(cfg), "--gpu", "cpu", "--output_dir", str(tmp), *extra])


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("uninterrupted")
    cfg = write_cfg(tmp)
    assert run_train(tmp / "exp", cfg) == 0
    return only_run(tmp / "exp")


def test_help_of_each_script():
    for script in ("main/train.py", "main/test.py", "demo/run.py"):
        out = subprocess.run([sys.executable, script, "--help"], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert "--gpu" in out.stdout
        assert ("--input_pose" if script == "demo/run.py" else "--cfg") in out.stdout
    assert "--resume_training" in subprocess.run([sys.executable, "main/train.py", "--help"], cwd=REPO,
                                                 capture_output=True, text=True, timeout=120).stdout


def test_training_writes_the_run_folder(uninterrupted: Path):
    ckpt = uninterrupted / "checkpoint"
    names = {p.name for p in ckpt.iterdir()}
    assert {"checkpoint1.pth.tar", "checkpoint2.pth.tar", "final.pth.tar", "best.pth.tar"} <= names
    assert not [n for n in names if ".tmp" in n], names
    state = torch.load(ckpt / "final.pth.tar", map_location="cpu", weights_only=False)
    assert {"epoch", "model_state_dict", "optim_state_dict", "scheduler_state_dict", "train_log",
            "test_log"} <= state.keys()
    assert state["epoch"] == 3 and len(state["train_log"]) == 3 and len(state["test_log"]["joint"]) == 3
    assert all(k.startswith(("pose_lifter.", "pose2mesh.")) for k in state["model_state_dict"])
    for png in ("train_loss.png", "surface_error.png", "joint_error.png"):
        assert (uninterrupted / "graph" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list((uninterrupted / "tensorboard").glob("events.out.tfevents.*"))
    cfg = load_config(str(uninterrupted / "config.yaml"))
    assert cfg.MODEL.meshnet_channel_divisor == 16 and cfg.DATASET.body_model == "synthetic"
    assert (uninterrupted / "command.txt").read_text().strip()
    assert list((uninterrupted / "result").glob("*.json")), "the final evaluation writes a result json"


def test_same_seed_gives_identical_checkpoints(uninterrupted: Path, tmp_path: Path):
    cfg = write_cfg(tmp_path)
    assert run_train(tmp_path / "exp", cfg) == 0
    assert_same_weights(weights(only_run(tmp_path / "exp") / "checkpoint" / "final.pth.tar"),
                        weights(uninterrupted / "checkpoint" / "final.pth.tar"))


def test_kill_then_resume_matches_an_uninterrupted_run(uninterrupted: Path, tmp_path: Path):
    cfg = write_cfg(tmp_path)
    out_root = tmp_path / "exp"
    proc = subprocess.Popen([sys.executable, "main/train.py", "--cfg", str(cfg), "--gpu", "cpu", "--output_dir",
                             str(out_root)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not list(out_root.glob("exp_*/checkpoint/checkpoint1.pth.tar")):
        assert proc.poll() is None or list(out_root.glob("exp_*/checkpoint/*.pth.tar")), "training died early"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # kill -9, mid-run
    proc.wait()
    run = only_run(out_root)
    assert (run / "checkpoint" / "checkpoint1.pth.tar").is_file()
    # as if it had also died while writing the next checkpoint: a truncated newest file
    partial = run / "checkpoint" / "checkpoint2.pth.tar"
    if not partial.exists():
        partial.write_bytes((run / "checkpoint" / "checkpoint1.pth.tar").read_bytes()[:1000])
    assert run_train(out_root, cfg, "--resume_training", str(run)) == 0
    assert_same_weights(weights(run / "checkpoint" / "final.pth.tar"),
                        weights(uninterrupted / "checkpoint" / "final.pth.tar"))


def test_non_finite_loss_stops_with_the_step_and_term(tmp_path: Path, monkeypatch, capsys):
    from pose2mesh.engine import loop

    original = loop.MeshCriterion.forward
    calls = {"n": 0}

    def poisoned(self, out, targets, meta, epoch):
        losses = original(self, out, targets, meta, epoch)
        calls["n"] += 1
        if epoch == 2:
            losses["normal"] = losses["normal"] * float("nan")
        return losses

    monkeypatch.setattr(loop.MeshCriterion, "forward", poisoned)
    cfg = write_cfg(tmp_path)
    assert run_train(tmp_path / "exp", cfg) == 3
    err = capsys.readouterr().err
    assert "normal loss is nan at epoch 2, iteration 0" in err
    run = only_run(tmp_path / "exp")
    names = {p.name for p in (run / "checkpoint").iterdir()}
    assert names == {"checkpoint1.pth.tar", "best.pth.tar"}
    torch.load(run / "checkpoint" / "checkpoint1.pth.tar", map_location="cpu", weights_only=False)


def test_test_script_prints_metrics_and_baselines(uninterrupted: Path, tmp_path: Path, capsys):
    cfg = write_cfg(tmp_path)
    code = run_test_cli(["--cfg", str(cfg), "--gpu", "cpu", "--weights", str(uninterrupted / "checkpoint"),
                      "--output_dir", str(tmp_path / "exp"), "--baselines"])
    assert code == 0
    out = capsys.readouterr().out
    assert "MPJPE" in out and "MPVPE" in out and "nearest neighbours" in out
    assert (only_run(tmp_path / "exp") / "result" / "baselines.json").is_file()


def test_missing_weights_is_one_clear_line(tmp_path: Path, capsys):
    cfg = write_cfg(tmp_path)
    code = run_test_cli(["--cfg", str(cfg), "--gpu", "cpu", "--weights", str(tmp_path / "nope.pth.tar")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.pth.tar" in err[0] and "does not exist" in err[0]


def test_ddp_two_cpu_processes_match_a_single_process(tmp_path: Path):
    # SGD: adaptive optimizers (RMSprop, Adam) turn float-noise gradients (e.g. of a bias that a batch
    # norm cancels) into full-size steps, so runs agreeing to 1e-6 in gradients would diverge
    cfg = write_cfg(tmp_path, TRAIN__shuffle=False, TRAIN__optimizer="sgd", TRAIN__lr=0.001)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "main/train.py", "--cfg", str(cfg), "--gpu", "cpu", "--output_dir", str(tmp_path / "ddp")],
                         cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "all 2 processes end with identical parameters" in out.stdout
    assert run_train(tmp_path / "single", cfg) == 0
    assert_same_weights(weights(only_run(tmp_path / "ddp") / "checkpoint" / "final.pth.tar"),
                        weights(only_run(tmp_path / "single") / "checkpoint" / "final.pth.tar"), atol=1e-4)
