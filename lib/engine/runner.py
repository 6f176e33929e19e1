"""train.py and test.py: argument parsing, run folders, the epoch loop, checkpoints, resume.

Entry points stay thin (``main/train.py`` calls :func:`train_main`). The device is chosen here,
once; everything below receives it.
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler, Subset

from ..config import Config, ConfigError, load_config
from ..device import select_device
from ..joints import get_joint_set
from . import builders
from . import distributed as dist_utils
from .experiment import RunDir, check_writable, create_run_dir, open_run_dir, record_run
from .loop import (IndexedDataset, LiftCriterion, MeshCriterion, NonFiniteLossError, run_inference,
                   running_errors, train_one_epoch)

__all__ = ["train_main", "test_main", "find_resume_checkpoint", "checkpoint_state"]

log = logging.getLogger("pose2mesh")


# ----------------------------------------------------------------------------- command lines
def _common_args(parser: argparse.ArgumentParser, default_gpu: str) -> None:
    parser.add_argument("--cfg", type=str, help="experiment config file (asset/yaml/*.yml)")
    parser.add_argument("--gpu", type=str, default=default_gpu,
                        help="CUDA devices by index, comma separated (e.g. 0,1), or 'cpu'. "
                             "Without CUDA the run falls back to CPU and says so.")
    parser.add_argument("--seed", type=int, default=123, help="random seed (default 123)")
    parser.add_argument("--debug", action="store_true",
                        help="show full tracebacks on errors, and log more")


def build_train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="main/train.py", description="Train PoseNet or Pose2Mesh (MODEL.name in the config).")
    _common_args(p, "0,1")
    p.add_argument("--resume_training", nargs="?", const="", default=None, metavar="PATH",
                   help="continue from the newest complete checkpoint of a run: PATH (a run folder, its "
                        "checkpoint/ folder or a .pth.tar), else TRAIN.resume_path, else the newest run in experiment/")
    p.add_argument("--output_dir", type=str, default=None,
                   help="the folder under which exp_* run folders are created (default experiment/)")
    return p


def build_test_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="main/test.py", description="Test PoseNet or Pose2Mesh and print the dataset's metrics.")
    _common_args(p, "0")
    p.add_argument("--weights", type=str, default=None,
                   help="checkpoint file or folder (default TEST.weight_path of the config)")
    p.add_argument("--baselines", action="store_true",
                   help="also evaluate the mean training mesh and the 2D nearest-neighbour baseline (k=20)")
    p.add_argument("--output_dir", type=str, default=None,
                   help="the folder under which the exp_* result folder is created (default experiment/)")
    return p


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is now (so in-process callers can capture it)."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):
        pass


def _setup_logging(debug: bool, run: Optional[RunDir]) -> None:
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    if not any(isinstance(h, _StdoutHandler) for h in root.handlers):
        h = _StdoutHandler()
        h.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(h)
    for h in [h for h in root.handlers if getattr(h, "_pose2mesh_run_log", False)]:
        root.removeHandler(h)
        h.close()
    if run is not None and dist_utils.is_main():
        fh = logging.FileHandler(run.root / "log.txt")
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        fh._pose2mesh_run_log = True  # type: ignore[attr-defined]
        root.addHandler(fh)


def _user_errors():
    """The exceptions that mean bad input rather than a bug: one line without --debug."""
    errors: List[type] = [ConfigError, FileNotFoundError, NotADirectoryError, PermissionError, ValueError,
                          NonFiniteLossError, OSError]
    return tuple(errors)


def _guarded(fn, args) -> int:
    try:
        return fn(args)
    except KeyboardInterrupt:
        print("interrupted: the last complete checkpoint is kept; continue with --resume_training",
              file=sys.stderr)
        return 130
    except _user_errors() as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 3 if isinstance(err, NonFiniteLossError) else 2
    finally:
        dist_utils.cleanup()


def train_main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_train_parser().parse_args(argv)
    return _guarded(_train, args)


def test_main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_test_parser().parse_args(argv)
    return _guarded(_test, args)


# ----------------------------------------------------------------------------- checkpoints
def find_resume_checkpoint(path: Optional[str], experiment_root: Path) -> tuple[dict, Path, RunDir]:
    """The newest checkpoint that loads completely, its path, and the run folder to write on into.

    ``path`` may be a .pth.tar file, a run folder, or its checkpoint/ folder; empty means the
    newest run folder under ``experiment_root`` that has a checkpoint.
    """
    from ..checkpoint import CheckpointError, check_resumable, checkpoint_candidates, load_checkpoint

    if path:
        p = Path(path)
        if p.is_file():
            candidates = [p]
            ckpt_dir = p.parent
        elif p.is_dir():
            ckpt_dir = p / "checkpoint" if (p / "checkpoint").is_dir() else p
            candidates = checkpoint_candidates(ckpt_dir)
        else:
            raise FileNotFoundError(f"--resume_training: {path} does not exist (expected a run folder or a .pth.tar)")
    else:
        runs = sorted((d for d in experiment_root.glob("exp_*") if (d / "checkpoint").is_dir()
                       and checkpoint_candidates(d / "checkpoint")), key=lambda d: d.stat().st_mtime, reverse=True)
        if not runs:
            raise FileNotFoundError(f"--resume_training: no run folder with a checkpoint under {experiment_root}")
        ckpt_dir = runs[0] / "checkpoint"
        candidates = checkpoint_candidates(ckpt_dir)
    if not candidates:
        raise FileNotFoundError(f"--resume_training: no checkpoint*.pth.tar in {ckpt_dir}")
    problems = []
    for cand in candidates:
        try:
            state = load_checkpoint(cand)
            check_resumable(state, cand)
        except CheckpointError as err:
            problems.append(str(err))
            log.warning("skipping %s: %s", cand, err)
            continue
        run = open_run_dir(ckpt_dir.parent) if ckpt_dir.name == "checkpoint" else None
        return state, cand, run
    raise FileNotFoundError("--resume_training: no complete checkpoint: " + "; ".join(problems))


def _rng_state() -> dict:
    import random

    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "numpy": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "numpy_pos": int(np_state[2]),
            "python": [int(v) for v in random.getstate()[1]]}


def checkpoint_state(epoch: int, model, optimizer, scheduler, train_log, test_log, seed: int, global_step: int) -> dict:
    """The original release's checkpoint dict, plus what exact resumption needs."""
    from ..checkpoint import strip_module_prefix

    return {"epoch": epoch,
            "model_state_dict": strip_module_prefix(model.state_dict()),
            "optim_state_dict": optimizer.state_dict(),
            "scheduler_state_dict": scheduler.state_dict(),
            "train_log": [float(v) for v in train_log],
            "test_log": {k: [float(v) for v in vals] for k, vals in test_log.items()},
            "rng_state": _rng_state(),
            "seed": int(seed),
            "global_step": int(global_step)}


# ----------------------------------------------------------------------------- shared set-up
class _Stage:
    """What train and test share: device, mesh model, graphs, model, criterion."""

    def __init__(self, cfg: Config, args, for_training: bool):
        self.cfg = cfg
        self.device, self.gpu_ids = select_device(args.gpu)
        self.dist = dist_utils.init_distributed(self.device.type == "cuda")
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        self.joint_set = get_joint_set(cfg.DATASET.input_joint_set)
        self.mesh_model = builders.build_mesh_model(cfg)
        log.info("body model: %s", getattr(self.mesh_model, "description", self.mesh_model.source))
        self.is_mesh = cfg.MODEL.name == "pose2mesh_net"
        self.graphs = builders.build_graphs(self.mesh_model, self.joint_set) if self.is_mesh else None
        target_set = get_joint_set(cfg.DATASET.target_joint_set)
        self.target_root = target_set.root
        self.joint_regressor = self.mesh_model.joint_regressor(target_set.name) if self.is_mesh else None
        self.model = builders.build_model(cfg, self.joint_set, self.graphs).to(self.device)
        if self.is_mesh:
            self.criterion = MeshCriterion(cfg, self.mesh_model.face, self.joint_regressor).to(self.device)
        else:
            self.criterion = LiftCriterion().to(self.device)
        self.workers = max(0, min(cfg.DATASET.workers, os.cpu_count() or 1))

    def wrap_model(self):
        if self.dist.enabled:
            from .sync_bn import convert_batchnorm

            model = convert_batchnorm(self.model, use_cuda=self.device.type == "cuda")
            ids = [self.device.index] if self.device.type == "cuda" else None
            return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        if len(self.gpu_ids) > 1:
            return torch.nn.DataParallel(self.model, device_ids=self.gpu_ids)
        return self.model

    def test_loader(self, dataset, batch_size: int) -> DataLoader:
        indexed = IndexedDataset(dataset)
        if self.dist.enabled:  # shard without padding: rank r takes r, r+W, ...
            shard = list(range(self.dist.rank, len(indexed), self.dist.world_size))
            indexed = Subset(indexed, shard)
        return DataLoader(indexed, batch_size=batch_size, shuffle=False, num_workers=self.workers)

    def evaluate_final(self, dataset, results: Dict[str, np.ndarray], result_dir: Path) -> dict:
        if self.is_mesh:
            return dataset.evaluate(results, result_dir=result_dir)
        return dataset.evaluate_joint(results, result_dir=result_dir)


def _load_posenet_into(stage: _Stage, path: str) -> None:
    from ..checkpoint import load_checkpoint, load_model_weights, resolve_weights

    file = resolve_weights(path, prefer="best")
    state = load_checkpoint(file)
    load_model_weights(stage.model.pose_lifter, state, strict=True)
    log.info("PoseNet weights loaded from %s", file)


def _save_plots(run: RunDir, train_log: List[float], test_log: Dict[str, List[float]]) -> None:
    from .plots import save_curve

    save_curve(train_log, run.graph / "train_loss.png", "Train Loss")
    if test_log.get("surface"):
        save_curve(test_log["surface"], run.graph / "surface_error.png", "Surface Error (MPVPE, mm)")
    if test_log.get("joint"):
        save_curve(test_log["joint"], run.graph / "joint_error.png", "Joint Error (MPJPE, mm)")


def _mesh_preview(results: Dict[str, np.ndarray], face: np.ndarray) -> Optional[np.ndarray]:
    """An H x W x 3 uint8 image of the first test prediction beside its target, or None."""
    if "mesh_coord" not in results:
        return None
    try:
        from ..render import render_mesh_pair
    except ImportError:
        return None
    try:
        return render_mesh_pair(results["mesh_coord"][0] / 1000, results["mesh_coord_target"][0] / 1000, face)
    except Exception as err:  # a preview must never stop training
        log.debug("mesh preview skipped: %s", err)
        return None


def _check_ranks_agree(model) -> None:
    """Under DDP every process must end with the same weights: compare checksums."""
    with torch.no_grad():
        checksum = [float(p.double().sum()) for p in model.parameters()]
    all_sums = dist_utils.all_gather_objects(checksum)
    if any(s != all_sums[0] for s in all_sums[1:]):
        raise RuntimeError("DDP processes ended with different parameters")
    log.info("all %d processes end with identical parameters", len(all_sums))


# ----------------------------------------------------------------------------- train
def _train(args) -> int:
    cfg = load_config(args.cfg) if args.cfg else load_config()
    _setup_logging(args.debug, None)
    builders.seed_everything(args.seed)
    stage = _Stage(cfg, args, for_training=True)
    main_rank = stage.dist.is_main
    exp_root = Path(args.output_dir) if args.output_dir else None

    # run folder: a resumed run writes on into its own folder
    resume_state, run = None, None
    if args.resume_training is not None:
        from ..paths import experiment_dir

        path = args.resume_training or cfg.TRAIN.resume_path
        resume_state, resume_file, run = find_resume_checkpoint(path, exp_root or experiment_dir())
        log.info("resuming from %s (epoch %d)", resume_file, resume_state["epoch"])
    if run is None and main_rank:
        from ..paths import experiment_dir

        check_writable(exp_root or experiment_dir())  # fail before the (long) dataset loading
    # datasets before the run folder: a missing annotation file leaves no empty exp_* behind
    train_sets = builders.build_datasets(cfg, cfg.DATASET.train_list, "train", stage.mesh_model)
    test_sets = builders.build_datasets(cfg, cfg.DATASET.test_list[:1], "test", stage.mesh_model)
    if run is None:
        run = create_run_dir(exp_root) if main_rank else None
        run = dist_utils.all_gather_objects(run)[0]
    check_writable(run.checkpoint)
    if main_rank:
        record_run(run, cfg)
        _setup_logging(args.debug, run)
        log.info("run folder: %s", run.root)
    log.info("device: %s%s", stage.device, f" (DDP, {stage.dist.world_size} processes)" if stage.dist.enabled else "")
    test_set = test_sets[0]
    per_dataset = max(1, cfg.TRAIN.batch_size // len(train_sets))
    if len(train_sets) > 1:
        from ..datasets.multiple import MultipleDatasets

        train_set = MultipleDatasets(train_sets, make_same_len=True)
    else:
        train_set = train_sets[0]
    global_batch = per_dataset * len(train_sets)
    if global_batch % stage.dist.world_size:
        raise ValueError(f"TRAIN.batch_size {global_batch} is not divisible by the {stage.dist.world_size} processes")
    local_batch = global_batch // stage.dist.world_size

    if cfg.MODEL.posenet_pretrained and stage.is_mesh and resume_state is None:
        _load_posenet_into(stage, cfg.MODEL.posenet_path)

    from ..checkpoint import load_model_weights, save_checkpoint

    optimizer = builders.build_optimizer(cfg, stage.model.parameters())
    scheduler = builders.build_scheduler(cfg, optimizer)
    begin_epoch, train_log, test_log, global_step = cfg.TRAIN.begin_epoch, [], {"surface": [], "joint": []}, 0
    if resume_state is not None:
        load_model_weights(stage.model, resume_state, strict=True)
        builders.load_optimizer_state(cfg, optimizer, resume_state["optim_state_dict"], resume_file)
        sched_state = dict(resume_state["scheduler_state_dict"])
        if cfg.TRAIN.scheduler == "step":  # as the original: the config's milestones and factor win
            from collections import Counter

            sched_state["milestones"], sched_state["gamma"] = Counter(cfg.TRAIN.lr_step), cfg.TRAIN.lr_factor
        scheduler.load_state_dict(sched_state)
        train_log = list(resume_state.get("train_log", []))
        test_log = {"surface": [], "joint": []}
        test_log.update({k: list(v) for k, v in dict(resume_state.get("test_log", {})).items()})
        global_step = int(resume_state.get("global_step", 0))
        begin_epoch = int(resume_state["epoch"]) + 1
    model = stage.wrap_model()

    writer = None
    if main_rank:
        from tensorboardX import SummaryWriter

        writer = SummaryWriter(str(run.tensorboard))

    end_epoch = cfg.TRAIN.end_epoch
    if begin_epoch > end_epoch:
        log.info("nothing to do: the checkpoint is at epoch %d and TRAIN.end_epoch is %d", begin_epoch - 1, end_epoch)
    results: Dict[str, np.ndarray] = {}
    for epoch in range(begin_epoch, end_epoch + 1):
        lr = optimizer.param_groups[0]["lr"]
        log.info("Epoch %d / %d, lr %.2e", epoch, end_epoch, lr)
        builders.seed_everything(builders.epoch_seed(args.seed, epoch, stage.dist.rank))
        if hasattr(train_set, "set_epoch"):  # synthesized errors and augmentation differ per epoch
            train_set.set_epoch(epoch)
        generator = torch.Generator().manual_seed(builders.epoch_seed(args.seed, epoch))
        if stage.dist.enabled:
            sampler = DistributedSampler(train_set, num_replicas=stage.dist.world_size, rank=stage.dist.rank,
                                         shuffle=cfg.TRAIN.shuffle, seed=args.seed, drop_last=True)
            sampler.set_epoch(epoch)
            loader = DataLoader(train_set, batch_size=local_batch, sampler=sampler, num_workers=stage.workers,
                                generator=generator, drop_last=True)
        else:
            loader = DataLoader(train_set, batch_size=local_batch, shuffle=cfg.TRAIN.shuffle,
                                num_workers=stage.workers, generator=generator, drop_last=True)
        if len(loader) == 0:
            raise ValueError(f"the training set ({len(train_set)} samples) is smaller than one batch of {local_batch}")
        means, global_step = train_one_epoch(model, stage.criterion, optimizer, loader, stage.device, epoch,
                                             global_step, cfg.TRAIN.print_freq, cfg.TRAIN.max_iters_per_epoch,
                                             writer, show_progress=main_rank)
        train_log.append(means.get("total", float("nan")))
        log.info("Epoch%d Loss: %.4f (%s)", epoch, train_log[-1],
                 ", ".join(f"{k} {v:.4f}" for k, v in means.items() if k != "total"))

        final = epoch == end_epoch
        errors = {}
        if cfg.TRAIN.test_every_epoch or final:
            results = run_inference(model, stage.criterion, stage.test_loader(test_set, cfg.TEST.batch_size),
                                    stage.device, keep_mesh=stage.is_mesh, max_samples=cfg.TEST.max_samples,
                                    show_progress=main_rank, desc=f"Epoch{epoch} test")
            errors = running_errors(results, stage.joint_regressor, stage.target_root if stage.is_mesh else stage.joint_set.root)
            log.info("Epoch%d test (per-sample means): %s", epoch, ", ".join(f"{k} {v:.2f} mm" for k, v in errors.items()))
        joint_error = errors.get("MPJPE", float("nan"))
        if cfg.TRAIN.scheduler == "step":
            scheduler.step()
        elif errors:
            scheduler.step(joint_error)
        is_best = bool(errors) and (not test_log["joint"] or joint_error < min(test_log["joint"]))
        if errors:
            test_log["surface"].append(errors.get("MPVPE", float("nan")))
            test_log["joint"].append(joint_error)

        if main_rank:
            state = checkpoint_state(epoch, model, optimizer, scheduler, train_log, test_log, args.seed, global_step)
            name = "final.pth.tar" if final else f"checkpoint{epoch}.pth.tar"
            save_checkpoint(run.checkpoint / name, state)
            if is_best:
                save_checkpoint(run.checkpoint / "best.pth.tar", state)
            _save_plots(run, train_log, test_log)
            writer.add_scalar("train/lr", lr, epoch)
            writer.add_scalar("train/loss_epoch", train_log[-1], epoch)
            for k, v in errors.items():
                writer.add_scalar(f"test/{k}", v, epoch)
            preview = _mesh_preview(results, stage.mesh_model.face) if errors else None
            if preview is not None:
                writer.add_image("test/mesh_pred_vs_target", preview, epoch, dataformats="HWC")
            writer.flush()
        dist_utils.barrier()

        if final and errors and main_rank:
            log.info("==> final evaluation on %s (%d samples)", cfg.DATASET.test_list[0], len(results["index"]))
            stage.evaluate_final(test_set, results, run.result)
    if writer is not None:
        writer.close()
    if stage.dist.enabled:
        _check_ranks_agree(model)
    if main_rank:
        log.info("done: %s", run.root)
    return 0


# ----------------------------------------------------------------------------- test
def _test(args) -> int:
    cfg = load_config(args.cfg) if args.cfg else load_config()
    _setup_logging(args.debug, None)
    builders.seed_everything(args.seed)
    stage = _Stage(cfg, args, for_training=False)
    from ..checkpoint import load_checkpoint, load_model_weights, resolve_weights

    weights = resolve_weights(args.weights or cfg.TEST.weight_path, prefer="final" if stage.is_mesh else "best")
    state = load_checkpoint(weights)
    load_model_weights(stage.model, state, strict=True)
    log.info("weights: %s (epoch %s)", weights, state.get("epoch", "?"))
    test_set = builders.build_datasets(cfg, cfg.DATASET.test_list[:1], "test", stage.mesh_model)[0]
    run = None
    if stage.dist.is_main:
        run = create_run_dir(Path(args.output_dir) if args.output_dir else None)
        record_run(run, cfg)
        _setup_logging(args.debug, run)
        log.info("results folder: %s", run.result)
    model = stage.wrap_model()
    results = run_inference(model, stage.criterion, stage.test_loader(test_set, cfg.TEST.batch_size), stage.device,
                            keep_mesh=stage.is_mesh, max_samples=cfg.TEST.max_samples,
                            show_progress=stage.dist.is_main)
    if not stage.dist.is_main:
        return 0
    metrics = stage.evaluate_final(test_set, results, run.result)
    if cfg.TEST.vis and stage.is_mesh:
        from ..vis import save_obj

        for n in range(0, len(results["index"]), max(1, len(results["index"]) // 10)):
            save_obj(results["mesh_coord"][n] / 1000, stage.mesh_model.face, run.vis / f"{n}_pred.obj")
            save_obj(results["mesh_coord_target"][n] / 1000, stage.mesh_model.face, run.vis / f"{n}_gt.obj")
    if args.baselines and stage.is_mesh:
        from .baselines import evaluate_baselines

        evaluate_baselines(cfg, stage.mesh_model, test_set, results, metrics, run.result)
    return 0
