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
from typing import List, Optional, Sequence

from ..config import Config, save_config
from ..errors import OutputError
from ..paths import experiment_dir, repo_root

__all__ = ["RunDir", "create_run_dir", "open_run_dir", "check_writable", "record_run", "attach_run_log",
           "command_line", "set_entry_command"]


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
        raise OutputError(f"cannot write to the experiment folder {folder}: {err.strerror or err}") from None
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


_ENTRY_COMMAND: Optional[List[str]] = None


def set_entry_command(argv: Optional[Sequence[str]]) -> None:
    """Called by the command-line entry points with their script and arguments; None for a
    Python caller."""
    global _ENTRY_COMMAND
    _ENTRY_COMMAND = list(argv) if argv is not None else None


def command_line() -> str:
    """This run's command line as a user would retype it: the ``torchrun`` line under torchrun
    (process counts from its environment), else ``python <script> <args>``; a Python caller of
    :mod:`pose2mesh.engine` is recorded as such."""
    if _ENTRY_COMMAND is None:
        return f"{shlex.quote(sys.executable)} (called from Python: pose2mesh.engine)"
    words = [shlex.quote(a) for a in _ENTRY_COMMAND]
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and "LOCAL_RANK" in os.environ:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        nodes = max(1, world // max(local, 1))
        head = ["torchrun", f"--nproc_per_node={local}"] + ([f"--nnodes={nodes}"] if nodes > 1 else [])
        return " ".join(head + words)
    return " ".join([shlex.quote(sys.executable)] + words)


def attach_run_log(run: RunDir) -> None:
    """Copy the ``pose2mesh`` log into ``<run>/log.txt`` (replacing a previous run's handler)."""
    import logging

    logger = logging.getLogger("pose2mesh")
    for h in [h for h in logger.handlers if getattr(h, "_pose2mesh_run_log", False)]:
        logger.removeHandler(h)
        h.close()
    handler = logging.FileHandler(run.root / "log.txt")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler._pose2mesh_run_log = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)


def record_run(run: RunDir, cfg: Config) -> None:
    """Keep the resolved config, the command line and the git commit beside the checkpoints."""
    save_config(cfg, str(run.root / "config.yaml"))
    with open(run.root / "command.txt", "a", encoding="utf-8") as f:
        f.write(command_line() + "\n")
    with open(run.root / "git_commit.txt", "w", encoding="utf-8") as f:
        f.write(_git_commit() + "\n")
