"""bench/gpu_check.py: its CPU smoke run passes every row (so the GPU run cannot rot), a failing
check becomes a FAIL row with a non-zero exit code, and the loader path it times (pinned memory
on CUDA) delivers whole batches to the device."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import gpu_check  # noqa: E402


def test_cpu_smoke_runs_every_section_without_a_failure(tmp_path):
    out = tmp_path / "gpu_check"
    proc = subprocess.run([sys.executable, "bench/gpu_check.py", "--device", "cpu", "--smoke", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, PYTHONWARNINGS="ignore"))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "|---" in proc.stdout
    report = json.loads((out / "gpu_check.json").read_text())
    rows = report["rows"]
    assert {r["section"] for r in rows} == set(gpu_check.SECTIONS)
    assert not [r for r in rows if r["status"] == "FAIL"]
    by_check = {r["check"]: r for r in rows}
    # the figures behind the table's words
    train = next(r for r in rows if r["check"].startswith("train step batch") and "samples_per_s" in r["figures"])
    assert train["figures"]["samples_per_s"] > 0
    assert any(r["section"] == "bf16" and r["figures"]["grad_cosine"] >= gpu_check.BF16_GRAD_COSINE for r in rows)
    ddp = next(r for r in rows if r["section"] == "torchrun")
    assert ddp["figures"]["tolerance_used"] <= 1.0 and "0 deprecation warnings" in ddp["result"]
    mpvpe = next(r for c, r in by_check.items() if c.startswith("MPVPE after"))
    assert mpvpe["figures"]["mpvpe"] > 0 and "baseline_0_mpvpe" in mpvpe["figures"]


def test_a_failing_check_is_a_row_the_run_goes_on_and_the_exit_code_says_so(tmp_path, monkeypatch, capsys):
    def broken(ctx, rep):
        rep.add("env", "first", "measured before the failure", value=1.5)
        raise RuntimeError("the card fell off\nsecond line")

    ran = []
    monkeypatch.setitem(gpu_check.SECTION_FUNCS, "env", broken)
    monkeypatch.setitem(gpu_check.SECTION_FUNCS, "bf16", lambda ctx, rep: ran.append("bf16"))
    code = gpu_check.main(["--device", "cpu", "--smoke", "--only", "env,bf16", "--out", str(tmp_path)])
    assert code == 1 and ran == ["bf16"]
    rows = json.loads((tmp_path / "gpu_check.json").read_text())["rows"]
    assert [r["status"] for r in rows] == ["ok", "FAIL"]
    assert rows[0]["figures"] == {"value": 1.5}
    assert rows[1]["result"].startswith("FAIL: RuntimeError: the card fell off second line")
    assert "\n" not in rows[1]["result"]
    assert "| env" in capsys.readouterr().out


def test_sections_are_chosen_by_name(tmp_path, monkeypatch):
    ran = []
    for name in gpu_check.SECTIONS:
        monkeypatch.setitem(gpu_check.SECTION_FUNCS, name, lambda ctx, rep, name=name: ran.append(name))
    assert gpu_check.main(["--device", "cpu", "--smoke", "--skip", "tests,synthetic", "--out", str(tmp_path)]) == 0
    assert ran == [s for s in gpu_check.SECTIONS if s not in ("tests", "synthetic")]
    ran.clear()
    assert gpu_check.main(["--device", "cpu", "--only", "torchrun,env", "--out", str(tmp_path)]) == 0
    assert ran == ["env", "torchrun"]  # in the script's order
    with pytest.raises(SystemExit, match="unknown section 'gpus'"):
        gpu_check.main(["--device", "cpu", "--only", "gpus", "--out", str(tmp_path)])


@pytest.mark.cuda
def test_loader_with_pinned_memory_delivers_batches_to_the_device(tmp_path, device):
    from torch.utils.data import DataLoader

    from pose2mesh.body_models import SMPL
    from pose2mesh.config import load_config
    from pose2mesh.datasets import build_dataset
    from pose2mesh.device import move_to

    cfg_path = gpu_check.synthetic_config(tmp_path / "cfg.yml", hid=32, div=16, batch=4, epochs=1, iters=1,
                                          train_size=8, test_size=4, workers=0)
    smpl = SMPL(synthetic=True)
    dataset = build_dataset("Synthetic", "train", load_config(str(cfg_path)), mesh_model=smpl)
    pinned = device.type == "cuda"
    loader = DataLoader(dataset, batch_size=4, num_workers=0, pin_memory=pinned)
    inputs, targets, meta = next(iter(loader))
    assert inputs["pose2d"].is_pinned() == pinned and targets["mesh"].is_pinned() == pinned
    inputs, targets, meta = move_to((inputs, targets, meta), device)
    assert targets["mesh"].device.type == device.type and meta["mesh_valid"].device.type == device.type
    pose2d = inputs["pose2d"].float()
    assert pose2d.shape == (4, 17, 2) and torch.isfinite(pose2d).all()
    assert targets["mesh"].shape == (4, smpl.vertex_num, 3)


def test_ddp_in_one_process_matches_the_plain_model(tmp_path):
    """The one-GPU replacement of the torchrun row (nccl there), here with gloo."""
    args = gpu_check.argparse.Namespace(device="cpu", smoke=True, train_seconds=None, out=str(tmp_path), repeat=1)
    ctx = gpu_check.Context(args)
    rep = gpu_check.Report(tmp_path / "gpu_check.json", {})
    gpu_check._ddp_in_process(ctx, rep, "torchrun")
    (row,) = rep.rows
    assert row["status"] == "ok", row["result"]
    assert row["figures"]["max_abs_diff"] <= 1e-5 and "gloo" in row["check"]


def test_cuda_asked_without_cuda_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="CUDA is not available"):
        gpu_check.main(["--device", "cuda", "--out", str(tmp_path)])
