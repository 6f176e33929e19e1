"""The package as a library: train and evaluate from Python, KEY VALUE overrides on the command
line, one error root and one guarded main, run records, per-epoch errors over the protocol's
evaluation joints, curves drawn at the epochs they were measured."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pose2mesh.cli import build_train_parser, run_guarded, split_overrides, train_main
from pose2mesh.config import ConfigError, load_config
from pose2mesh.engine import Trainer, evaluate, train
from pose2mesh.errors import OutputError, Pose2MeshError
from test_engine import only_run, write_cfg  # noqa: E402  (tests/ is on sys.path under pytest)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    cfg = load_config(str(write_cfg(tmp)), ["TRAIN.end_epoch", "2", "TRAIN.test_every_epoch", "false",
                                             "TEST.vis", "true"])
    result = train(cfg, device="cpu", seed=7, output_dir=tmp / "exp")
    return tmp, cfg, result


def test_train_from_python_returns_the_run(trained):
    tmp, cfg, result = trained
    assert result.run_dir == only_run(tmp / "exp")
    assert result.checkpoint == result.run_dir / "checkpoint" / "final.pth.tar" and result.checkpoint.is_file()
    assert len(result.train_log) == 2
    # test_every_epoch false: one test, after the last epoch, recorded at that epoch
    assert result.test_log["epoch"] == [2.0] and len(result.test_log["joint"]) == 1
    assert {"MPJPE", "PA-MPJPE", "MPVPE"} <= set(result.metrics)
    # TEST.vis writes meshes after training too
    assert sorted(p.name for p in (result.run_dir / "vis").glob("*.obj"))[:2] == ["0_gt.obj", "0_pred.obj"]
    # the resolved config keeps the overrides; command.txt says how the run was started
    saved = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert saved["TRAIN"]["end_epoch"] == 2 and saved["TEST"]["vis"] is True
    assert "called from Python" in (result.run_dir / "command.txt").read_text()


def test_per_epoch_error_uses_the_protocols_evaluation_joints(trained):
    """The per-epoch MPJPE is the final report's (14 Human3.6M evaluation joints, per-sample mean)."""
    _, cfg, result = trained
    final = json.loads(next((result.run_dir / "result").glob("*.json")).read_text())
    mpjpe = final["metrics_mm"]["MPJPE"]
    assert result.test_log["joint"][-1] == pytest.approx(mpjpe, rel=1e-6)


def test_evaluate_from_python_matches_the_training_runs_final_figures(trained):
    tmp, cfg, result = trained
    out = evaluate(cfg, result.run_dir, device="cpu", output_dir=tmp / "eval")
    assert out.weights == result.checkpoint
    for key in ("MPJPE", "PA-MPJPE", "MPVPE"):
        assert out.metrics[key] == pytest.approx(result.metrics[key], rel=1e-6)


def test_trainer_steps_can_be_called_one_by_one(tmp_path):
    cfg = load_config(str(write_cfg(tmp_path)), ["TRAIN.end_epoch", "1"])
    trainer = Trainer(cfg, device="cpu", output_dir=tmp_path / "exp")
    trainer.build()
    trainer.resume()  # nothing to resume: no change
    assert trainer.begin_epoch == 1 and trainer.global_step == 0
    trainer.model = trainer.ctx.wrap_model()
    means = trainer.train_epoch(1)
    assert set(means) >= {"vertex", "normal", "joint", "lift", "total"}
    assert trainer.global_step == cfg.TRAIN.max_iters_per_epoch
    # the partial last batch is kept (the original's drop_last=False): 33 samples at batch 4 -> 9 batches
    trainer.train_set = torch.utils.data.Subset(trainer.train_set, list(range(33)))
    assert len(trainer.train_loader(1)) == 9


def test_command_line_overrides(tmp_path, capsys):
    cfg = write_cfg(tmp_path)
    argv = ["--cfg", str(cfg), "--gpu", "cpu", "--output_dir", str(tmp_path / "exp"),
            "TRAIN.end_epoch", "1", "MODEL.posenet_hid_dim", "32"]
    assert train_main(argv) == 0
    run = only_run(tmp_path / "exp")
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["TRAIN"]["end_epoch"] == 1 and saved["MODEL"]["posenet_hid_dim"] == 32
    assert (run / "command.txt").read_text().strip().endswith("main/train.py " + " ".join(argv))
    capsys.readouterr()
    # an unknown key is refused like in the YAML, in one line
    assert train_main(["--cfg", str(cfg), "--gpu", "cpu", "TRAIN.epochs", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "command line: TRAIN.epochs = 3" in err[0] and "not a known key" in err[0]
    assert train_main(["--cfg", str(cfg), "--gpu", "cpu", "TRAIN.end_epoch"]) == 2
    assert "KEY VALUE pairs" in capsys.readouterr().err


def test_overrides_after_a_bare_resume_flag_are_not_taken_for_its_path():
    args = build_train_parser().parse_args(["--cfg", "x.yml", "--resume_training", "TRAIN.end_epoch", "5"])
    assert split_overrides(args) == ["TRAIN.end_epoch", "5"] and args.resume_training == ""
    args = build_train_parser().parse_args(["--resume_training", "runs/exp_1", "TRAIN.lr", "0.1"])
    assert split_overrides(args) == ["TRAIN.lr", "0.1"] and args.resume_training == "runs/exp_1"


def test_override_values_are_checked_like_yaml():
    cfg = load_config(None, ["DATASET.train_list", "[Human36M, COCO]", "TRAIN.lr", "1e-3"])
    assert cfg.DATASET.train_list == ["Human36M", "COCO"] and cfg.TRAIN.lr == 1e-3
    with pytest.raises(ConfigError, match="TRAIN.batch_size = 'many'"):
        load_config(None, ["TRAIN.batch_size", "many"])
    with pytest.raises(ConfigError, match="expected SECTION.key"):
        load_config(None, ["batch_size", "3"])


def test_every_user_facing_error_shares_one_root():
    from pose2mesh.body_models import BodyModelError
    from pose2mesh.checkpoint import CheckpointError
    from pose2mesh.datasets.errors import DatasetError
    from pose2mesh.device import DeviceError
    from pose2mesh.engine import TrainingError
    from pose2mesh.engine.loop import NonFiniteLossError
    from pose2mesh.render import RenderError
    from pose2mesh.vis import ImageError

    for cls in (ConfigError, BodyModelError, CheckpointError, DatasetError, DeviceError, TrainingError,
                NonFiniteLossError, RenderError, ImageError, OutputError):
        assert issubclass(cls, Pose2MeshError), cls
    assert NonFiniteLossError("x").exit_code == 3 and ConfigError("x").exit_code == 2


def test_guarded_main_prints_user_errors_in_one_line_and_bugs_in_full(capsys):
    def user_error():
        raise ConfigError("TRAIN.lr: expected a number")

    assert run_guarded(user_error) == 2
    assert capsys.readouterr().err == "error: TRAIN.lr: expected a number\n"
    with pytest.raises(ConfigError):
        run_guarded(user_error, debug=True)

    def bug():
        raise ValueError("shapes (3,) and (4,) not aligned")  # an internal error, not the user's

    with pytest.raises(ValueError, match="not aligned"):
        run_guarded(bug)

    def interrupted():
        raise KeyboardInterrupt

    assert run_guarded(interrupted, interrupted="stopped: nothing lost") == 130
    assert "stopped: nothing lost" in capsys.readouterr().err


def test_an_internal_bug_in_training_shows_its_traceback(tmp_path):
    cfg = write_cfg(tmp_path)
    out = subprocess.run([sys.executable, "-c",
                          "import sys; from pose2mesh.engine import trainer as t\n"
                          "def broken(*a, **k):\n    raise ValueError('operands could not be broadcast together')\n"
                          "t.train_one_epoch = broken\n"
                          "from pose2mesh.cli import train_main\n"
                          f"sys.exit(train_main(['--cfg', {str(cfg)!r}, '--gpu', 'cpu', '--output_dir', "
                          f"{str(tmp_path / 'exp')!r}]))"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1
    assert "Traceback (most recent call last)" in out.stderr and "could not be broadcast" in out.stderr


def test_torchrun_command_is_recorded(monkeypatch):
    from pose2mesh.engine.experiment import command_line, set_entry_command

    set_entry_command(["main/train.py", "--cfg", "a.yml"])
    monkeypatch.setattr("pose2mesh.engine.experiment._ENTRY_COMMAND", ["main/train.py", "--cfg", "a.yml"])
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert command_line() == "torchrun --nproc_per_node=2 --nnodes=2 main/train.py --cfg a.yml"
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert command_line().endswith("main/train.py --cfg a.yml") and "torchrun" not in command_line()
    set_entry_command(None)
    assert "called from Python" in command_line()


def test_no_gpu_flag_under_torchrun_takes_the_process_device_without_a_warning(monkeypatch, caplog):
    from pose2mesh.cli import _default_gpu

    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert _default_gpu(None, (0, 1)) is None
    monkeypatch.setenv("WORLD_SIZE", "1")
    if not torch.cuda.is_available():
        assert _default_gpu(None, (0, 1)) == "cpu"
    assert "asked for" not in caplog.text


def test_posenet_run_writes_no_surface_curve(tmp_path):
    cfg = load_config(str(write_cfg(tmp_path)), ["MODEL.name", "posenet", "TRAIN.end_epoch", "2"])
    result = train(cfg, device="cpu", output_dir=tmp_path / "exp")
    graph = result.run_dir / "graph"
    assert (graph / "joint_error.png").is_file() and (graph / "train_loss.png").is_file()
    assert not (graph / "surface_error.png").exists()
    assert result.test_log["epoch"] == [1.0, 2.0] and np.isfinite(result.test_log["joint"]).all()


def test_evaluate_with_fit_reports_raw_and_fitted_meshes_on_the_same_samples(trained, caplog):
    tmp, cfg, result = trained
    out = evaluate(cfg, result.run_dir, device="cpu", output_dir=tmp / "fit", fit=True)
    rows = out.fitted["rows"]
    assert set(rows) == {"raw prediction", "fitted body model"}
    assert rows["raw prediction"]["MPVPE"] == pytest.approx(out.metrics["MPVPE"])
    fitted = rows["fitted body model"]
    assert {"MPJPE", "PA-MPJPE", "MPVPE"} <= set(fitted) and all(np.isfinite(v) for v in fitted.values())
    assert fitted["MPVPE"] != rows["raw prediction"]["MPVPE"]  # a different mesh was evaluated
    assert out.fitted["mean_fit_residual_mm"] >= 0
    saved = json.loads((out.result_dir / "fitted.json").read_text())
    assert saved["rows"]["fitted body model"]["MPVPE"] == pytest.approx(fitted["MPVPE"])
    assert "fitted body model" in caplog.text
