"""Run folders: ``experiment/exp_<MM-DD_HH:MM>/{checkpoint,graph,vis,result}``.

The original named the folder after the minute and deleted an existing folder of the same
name (so two runs started in one minute destroyed each other). Here an existing folder is
never touched: a clashing name gets a ``_2``, ``_3``... suffix. The run folder keeps the
resolved config, the command line and the git commit.
"""
from __future__ import annotations

import datetime
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..config import Config, save_config
from ..paths import experiment_dir, repo_root

__all__ = ["RunDir", "create_run_dir", "open_run_dir", "check_writable"]


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoint"

    @property
    def graph(self) -> Path:  # the original's name for the plots folder
        return self.root / "graph"

    @property
    def vis(self) -> Path:
        return self.root / "vis"

    @property
    def result(self) -> Path:
        return self.root / "result"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    def make(self) -> "RunDir":
        for d in (self.checkpoint, self.graph, self.vis, self.result):
            d.mkdir(parents=True, exist_ok=True)
        return self


def check_writable(folder: Path) -> None:
    """Fail early, with the folder's name, when nothing can be written there."""
    probe = folder / ".write_test"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"x" * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        raise OSError(f"cannot write to the experiment folder {folder}: {err.strerror or err}") from None
    finally:
        try:
            probe.unlink()
        except OSError:
            pass


def create_run_dir(root: Optional[Path] = None, now: Optional[datetime.datetime] = None) -> RunDir:
    """Create a fresh ``exp_<MM-DD_HH:MM>`` folder (suffixed on a clash); never deletes."""
    root = Path(root) if root is not None else experiment_dir()
    now = now or datetime.datetime.now()
    base = "exp_" + now.strftime("%m-%d_%H:%M")
    root.mkdir(parents=True, exist_ok=True)
    for k in range(1, 10000):
        name = base if k == 1 else f"{base}_{k}"
        path = root / name
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return RunDir(path).make()
    raise RuntimeError(f"could not create a new run folder in {root}")


def open_run_dir(path: Path) -> RunDir:
    """An existing run folder (resumed training writes on into it)."""
    return RunDir(Path(path)).make()


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_root(), capture_output=True,
                             text=True, timeout=10)
        commit = out.stdout.strip() or "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo_root(),
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return commit + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def record_run(run: RunDir, cfg: Config) -> None:
    """Keep the resolved config, the command line and the git commit beside the checkpoints."""
    save_config(cfg, str(run.root / "config.yaml"))
    with open(run.root / "command.txt", "a", encoding="utf-8") as f:
        f.write(" ".join(shlex.quote(a) for a in [sys.executable] + sys.argv) + "\n")
    with open(run.root / "git_commit.txt", "w", encoding="utf-8") as f:
        f.write(_git_commit() + "\n")
