"""The README's Python API examples run as written (from the repository root)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def python_api_blocks() -> list:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Python API"):]
    section = section[:section.index("\n## ", 5)]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    # the last block lists the stable import names with placeholders, not a runnable example
    return [b for b in blocks if "num_joint, graph_L)" not in b]


def test_the_python_api_examples_run_as_written(tmp_path):
    blocks = python_api_blocks()
    assert len(blocks) == 2, "the README's Python API section should show train/evaluate and predict/fit"
    assert "train(cfg" in blocks[0] and "evaluate(cfg" in blocks[0] and "fit_body(" in blocks[1]
    # run in one process, in order (predict uses the run that train made); outputs go to tmp
    code = "\n".join(b.replace('"experiment/python_api', f'"{tmp_path}/python_api')
                     .replace('newest_run_checkpoint("experiment")', f'newest_run_checkpoint("{tmp_path}")')
                     for b in blocks)
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert "(1, 6890, 3) torch.Size([1, 72])" in lines[-1] or "(1, 6890, 3) (1, 72)" in lines[-1], lines[-1]
    assert (tmp_path / "python_api" / "person.npz").is_file()


def test_the_photo_example_runs_as_written(tmp_path):
    """The "From a photo" Python example, with a tiny COCO-input run in place of `<coco run>`."""
    import pytest

    pytest.importorskip("mediapipe")
    from pose2mesh.config import load_config
    from pose2mesh.engine import train
    from test_engine import write_cfg

    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## From a photo"):text.index("## From a video")]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1 and '"experiment/<coco run>"' in blocks[0]
    cfg = load_config(str(write_cfg(tmp_path)), ["DATASET.input_joint_set", "coco", "TRAIN.end_epoch", "1"])
    run = train(cfg, device="cpu", output_dir=tmp_path / "exp")
    code = blocks[0].replace('"experiment/<coco run>"', repr(str(run.run_dir)))
    code += "\nprint(len(people), result.vertices.shape, tuple(fits.pose.shape))\n"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    found = int(out.stdout.strip().splitlines()[-1].split(" ", 1)[0])
    assert found == 3, out.stdout  # the docs photo shows three people
    assert "6890, 3)" in out.stdout and "(3, 72)" in out.stdout
