"""Installed, not editable: the package behaves as in the checkout.

The wheel is built from this checkout and installed into a fresh virtual environment (its
dependencies are borrowed from the test environment's site-packages through a ``.pth`` file,
so nothing is downloaded); then, from a folder outside the repository, the quick synthetic
config trains its first iterations, test.py evaluates, and the demo renders. The cache must
land in the user's cache folder, never in site-packages, and the project folders (data/,
experiment/) under the working directory.
"""
from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(cmd, cwd, env, timeout=900):
    out = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{cmd}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("install")
    # build from a clean copy of the source: setuptools' build/ folder in the checkout may hold
    # files of an older layout, which would end up in the wheel
    source = tmp / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "experiment", "wheels", "*.egg-info", "__pycache__", ".cache"))
    wheels = tmp / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", wheels, source],
         cwd=tmp, env=dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1"))
    wheel = next(wheels.glob("pose2mesh-*.whl"))
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp, env=dict(os.environ))
    python = venv / "bin" / "python"
    purelib = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    # the dependencies (torch, numpy, ...) of the test environment, as a plain path entry: its
    # .pth files (among them the editable install's finder) are not processed
    deps = [p for p in site.getsitepackages() + [sysconfig.get_paths()["purelib"]] if Path(p).is_dir()]
    (purelib / "test_dependencies.pth").write_text("\n".join(dict.fromkeys(deps)) + "\n")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", wheel], cwd=tmp,
         env=dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1"))
    work = tmp / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSE2MESH_") and k != "PYTHONPATH"}
    env.update(XDG_CACHE_HOME=str(tmp / "usercache"), OMP_NUM_THREADS="2")
    return python, purelib, work, env, tmp


def test_the_installed_package_is_imported_from_site_packages(installed):
    python, purelib, work, env, tmp = installed
    out = _run([python, "-c", "import pose2mesh, pose2mesh.paths as p, smplpytorch, manopth; "
                "print(pose2mesh.__file__); print(p.repo_root()); print(p.cache_dir()); print(p.is_checkout())"],
               cwd=work, env=env)
    file, root, cache, checkout = out.stdout.split()
    assert Path(file).is_relative_to(purelib)
    assert Path(root) == work and checkout == "False"
    assert Path(cache) == tmp / "usercache" / "pose2mesh"


def test_train_test_and_demo_from_outside_the_repository(installed):
    python, purelib, work, env, tmp = installed
    cfg = REPO / "asset" / "yaml" / "pose2mesh_human36J_quick_synthetic.yml"
    small = ["DATASET.synthetic_train_size", "64", "DATASET.synthetic_test_size", "8", "DATASET.workers", "0",
             "TRAIN.end_epoch", "1", "TRAIN.max_iters_per_epoch", "2", "TRAIN.batch_size", "8", "TEST.batch_size", "8"]
    _run([python, REPO / "main" / "train.py", "--gpu", "cpu", "--cfg", cfg, *small], cwd=work, env=env)
    runs = list((work / "experiment").glob("exp_*"))
    assert len(runs) == 1 and (runs[0] / "checkpoint" / "final.pth.tar").is_file()
    out = _run([python, REPO / "main" / "test.py", "--gpu", "cpu", "--cfg", cfg, "--weights", runs[0], *small],
               cwd=work, env=env)
    assert "MPVPE" in out.stdout
    out = _run([python, REPO / "demo" / "run.py", "--gpu", "cpu", "--checkpoint", runs[0], "--body_model", "synthetic",
                "--input_pose", REPO / "demo" / "synthetic_pose_human36.npy", "--joint_set", "human36"],
               cwd=work, env=env)
    rendered = list((work / "demo" / "result").glob("*.png"))
    assert rendered, out.stdout
    # generated files went to the user's cache, nothing into site-packages
    assert (tmp / "usercache" / "pose2mesh" / "synthetic").is_dir()
    assert not list(purelib.glob("**/.cache")) and not (purelib / "experiment").exists()
