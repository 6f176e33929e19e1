"""The command lines: argument parsing, ``KEY VALUE`` config overrides, and one guarded main.

``main/train.py`` and ``main/test.py`` call :func:`train_main` / :func:`test_main`, which parse
their arguments and call :func:`pose2mesh.engine.train` / :func:`pose2mesh.engine.evaluate`.
Every entry point (the demo's too) runs through :func:`run_guarded`: an error the user can fix
(:class:`pose2mesh.errors.Pose2MeshError`) prints one line and exits with its code (2, or 3
for a non-finite loss), with the traceback under ``--debug``; anything else is a bug and
prints its full traceback.
"""
from __future__ import annotations

import argparse
import logging
import re
import sys
from typing import Any, Callable, List, Optional, Sequence

from .errors import Pose2MeshError

__all__ = ["build_train_parser", "build_test_parser", "run_guarded", "setup_console_logging", "train_main",
           "test_main", "split_overrides"]

log = logging.getLogger("pose2mesh")

_OVERRIDE_KEY = re.compile(r"^(DATASET|MODEL|TRAIN|AUG|TEST)\.\w+$")


# ----------------------------------------------------------------------------- parsers
def _common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cfg", type=str, help="experiment config file (asset/yaml/*.yml)")
    parser.add_argument("--gpu", type=str, default=None,
                        help="CUDA devices by index, comma separated (e.g. 0,1; several use DataParallel), or "
                             "'cpu'. Default: under torchrun this process's GPU, else GPUs 0 and 1 where present "
                             "(test.py: GPU 0), else the CPU.")
    parser.add_argument("--seed", type=int, default=123, help="random seed (default 123)")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors, and log more")
    parser.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE",
                        help="config overrides after the flags, e.g. TRAIN.batch_size 32 TRAIN.end_epoch 2 "
                             "(validated like the YAML file)")


def build_train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="main/train.py",
                                description="Train PoseNet or Pose2Mesh (MODEL.name in the config).")
    _common_args(p)
    p.add_argument("--resume_training", nargs="?", const="", default=None, metavar="PATH",
                   help="continue from the newest complete checkpoint of a run: PATH (a run folder, its "
                        "checkpoint/ folder or a .pth.tar), else TRAIN.resume_path, else the newest run under "
                        "--output_dir")
    p.add_argument("--output_dir", type=str, default=None,
                   help="the folder under which exp_* run folders are created (default experiment/)")
    return p


def build_test_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="main/test.py",
                                description="Test PoseNet or Pose2Mesh and print the dataset's metrics.")
    _common_args(p)
    p.add_argument("--weights", type=str, default=None,
                   help="checkpoint file, its folder or a run folder (default TEST.weight_path of the config)")
    p.add_argument("--baselines", action="store_true",
                   help="also evaluate the mean training mesh and the 2D nearest-neighbour baseline (k=20)")
    p.add_argument("--fit", action="store_true",
                   help="also fit SMPL/MANO to every predicted mesh and evaluate the fitted meshes (TEST.fit)")
    p.add_argument("--output_dir", type=str, default=None,
                   help="the folder under which the exp_* result folder is created (default experiment/)")
    return p


def split_overrides(args: argparse.Namespace) -> List[str]:
    """The ``KEY VALUE`` overrides; a ``--resume_training`` given without a path right before
    them would have taken the first key as its path: give it back."""
    opts = list(args.opts or [])
    if opts and opts[0] == "--":
        opts = opts[1:]
    resume = getattr(args, "resume_training", None)
    if resume and _OVERRIDE_KEY.match(resume):
        opts.insert(0, resume)
        args.resume_training = ""
    return opts


def _default_gpu(gpu: Optional[str], default_ids: Sequence[int]) -> Optional[str]:
    """``--gpu`` when given; otherwise None under torchrun (one GPU per process), else the
    original's default indices that exist, else 'cpu' (without CUDA, no warning)."""
    if gpu is not None:
        from .device import parse_gpu_arg

        parse_gpu_arg(gpu)  # the command line takes indices or 'cpu' only, as the original's
        return gpu
    from .engine.distributed import launched_by_torchrun

    if launched_by_torchrun():
        return None
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    ids = [i for i in default_ids if i < torch.cuda.device_count()]
    return ",".join(str(i) for i in ids) or "cpu"


# ----------------------------------------------------------------------------- guarded main
class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is now (so in-process callers can capture it)."""

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def setup_console_logging(debug: bool = False) -> None:
    """The ``pose2mesh`` log on stdout, message only (once per process)."""
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    if not any(isinstance(h, _StdoutHandler) for h in root.handlers):
        handler = _StdoutHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)


def run_guarded(fn: Callable[[], Optional[int]], debug: bool = False,
                interrupted: str = "interrupted", cleanup: Optional[Callable[[], None]] = None) -> int:
    """Run ``fn`` and turn the outcome into an exit code.

    - a :class:`Pose2MeshError`: ``error: <message>`` on stderr, its ``exit_code`` (re-raised
      with ``debug``);
    - Ctrl-C: ``interrupted`` on stderr, 130;
    - any other exception is a bug: it propagates with its full traceback.
    """
    try:
        return int(fn() or 0)
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130
    except Pose2MeshError as err:
        if debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return int(getattr(err, "exit_code", 2))
    finally:
        if cleanup is not None:
            cleanup()


# ----------------------------------------------------------------------------- entry points
def _run_entry(script: str, argv: Optional[Sequence[str]], parser: argparse.ArgumentParser,
               default_gpus: Sequence[int], call: Callable[[Any, argparse.Namespace, Optional[str]], Any],
               interrupted: str = "interrupted") -> int:
    """Parse, load the config with its overrides, and ``call(cfg, args, gpu)`` under the guard."""
    args = parser.parse_args(argv)
    overrides = split_overrides(args)
    setup_console_logging(args.debug)

    def go() -> int:
        from .config import load_config
        from .engine import distributed as dist_utils
        from .engine.experiment import set_entry_command

        set_entry_command([script] + list(sys.argv[1:] if argv is None else argv))
        try:
            call(load_config(args.cfg, overrides), args, _default_gpu(args.gpu, default_gpus))
        finally:
            dist_utils.cleanup()
            set_entry_command(None)
        return 0

    return run_guarded(go, args.debug, interrupted=interrupted)


def train_main(argv: Optional[Sequence[str]] = None) -> int:
    """``main/train.py``: parse, load the config with its overrides, :func:`pose2mesh.engine.train`."""
    from .engine.trainer import train

    return _run_entry("main/train.py", argv, build_train_parser(), (0, 1),
                      lambda cfg, args, gpu: train(cfg, device=gpu, seed=args.seed, output_dir=args.output_dir,
                                                   resume=args.resume_training),
                      interrupted="interrupted: the last complete checkpoint is kept; continue with --resume_training")


def test_main(argv: Optional[Sequence[str]] = None) -> int:
    """``main/test.py``: parse, load the config with its overrides, :func:`pose2mesh.engine.evaluate`."""
    from .engine.evaluator import evaluate

    return _run_entry("main/test.py", argv, build_test_parser(), (0,),
                      lambda cfg, args, gpu: evaluate(cfg, args.weights, device=gpu, seed=args.seed,
                                                      output_dir=args.output_dir, baselines=args.baselines,
                                                      fit=True if args.fit else None))
