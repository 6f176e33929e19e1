"""Training from Python: ``pose2mesh.engine.train(cfg, ...)``.

:class:`Trainer` is the epoch loop split into named steps, each a method a subclass may
replace: :meth:`~Trainer.build` (datasets, run folder, optimizer, scheduler),
:meth:`~Trainer.resume` (model, optimizer, scheduler, logs and step from a checkpoint),
:meth:`~Trainer.train_epoch`, :meth:`~Trainer.test_epoch`, :meth:`~Trainer.save` and
:meth:`~Trainer.finish` (the final evaluation). :meth:`~Trainer.run` calls them in order.

Semantics are the original release's (lib/core/base.py): test after every epoch, ``best`` by
the test joint error, checkpoints in its format. What differs on purpose is listed in
docs/FAITHFULNESS.md.
"""
from __future__ import annotations

import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union, cast

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from ..checkpoint import (
    CheckpointError,
    check_resumable,
    checkpoint_candidates,
    load_checkpoint,
    load_model_weights,
    resolve_weights,
    save_checkpoint,
    strip_module_prefix,
)
from ..config import Config
from ..device import DeviceSpec
from ..errors import Pose2MeshError
from ..paths import experiment_dir
from . import builders
from . import distributed as dist_utils
from .context import RunContext, build_context, write_vis
from .experiment import RunDir, attach_run_log, check_writable, create_run_dir, open_run_dir, record_run
from .loop import run_inference, running_errors, train_one_epoch

__all__ = ["TrainingError", "TrainResult", "Trainer", "train", "find_resume_checkpoint", "checkpoint_state"]

log = logging.getLogger("pose2mesh")

ResumeSpec = Union[None, bool, str, Path]


class TrainingError(Pose2MeshError, ValueError):
    """A training run that cannot start or go on as asked (batch size, resume, optimizer)."""


@dataclass
class TrainResult:
    """What a finished run leaves.

    Attributes:
        run_dir: the run folder (``exp_<date>``; checkpoint/, graph/, result/, ...).
        checkpoint: the last checkpoint written (``final.pth.tar``).
        metrics: the final evaluation's figures (empty when nothing was trained).
        train_log: mean training loss per epoch; ``test_log`` the per-epoch test errors
            (``epoch``, ``joint``, ``surface``: per-sample means over the evaluation joints, mm).
    """

    run_dir: Path
    checkpoint: Optional[Path]
    metrics: Dict[str, Any] = field(default_factory=dict)
    train_log: List[float] = field(default_factory=list)
    test_log: Dict[str, List[float]] = field(default_factory=dict)


# ----------------------------------------------------------------------------- checkpoints
def find_resume_checkpoint(path: Optional[Union[str, Path]], experiment_root: Path
                           ) -> Tuple[Dict[str, Any], Path, Optional[RunDir]]:
    """The newest checkpoint that loads completely, its path, and the run folder to write on into.

    ``path`` may be a .pth.tar file, a run folder, or its checkpoint/ folder; empty means the
    newest run folder under ``experiment_root`` that has a checkpoint.

    Raises:
        TrainingError: nothing to resume from.
    """
    if path:
        p = Path(path)
        if p.is_file():
            candidates, ckpt_dir = [p], p.parent
        elif p.is_dir():
            ckpt_dir = p / "checkpoint" if (p / "checkpoint").is_dir() else p
            candidates = checkpoint_candidates(ckpt_dir)
        else:
            raise TrainingError(f"--resume_training: {path} does not exist (expected a run folder or a .pth.tar)")
    else:
        runs = sorted((d for d in experiment_root.glob("exp_*")
                       if (d / "checkpoint").is_dir() and checkpoint_candidates(d / "checkpoint")),
                      key=lambda d: d.stat().st_mtime, reverse=True)
        if not runs:
            raise TrainingError(f"--resume_training: no run folder with a checkpoint under {experiment_root}")
        ckpt_dir = runs[0] / "checkpoint"
        candidates = checkpoint_candidates(ckpt_dir)
    if not candidates:
        raise TrainingError(f"--resume_training: no checkpoint*.pth.tar in {ckpt_dir}")
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
    raise TrainingError("--resume_training: no complete checkpoint: " + "; ".join(problems))


def _rng_state() -> Dict[str, Any]:
    np_state: Tuple[Any, ...] = tuple(np.random.get_state())
    return {"torch": torch.get_rng_state(),
            "numpy": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "numpy_pos": int(np_state[2]),
            "python": [int(v) for v in random.getstate()[1]]}


def checkpoint_state(epoch: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                     train_log: List[float], test_log: Dict[str, List[float]], seed: int,
                     global_step: int) -> Dict[str, Any]:
    """The original release's checkpoint dict, plus what exact resumption needs."""
    return {"epoch": epoch,
            "model_state_dict": strip_module_prefix(model.state_dict()),
            "optim_state_dict": optimizer.state_dict(),
            "scheduler_state_dict": scheduler.state_dict(),
            "train_log": [float(v) for v in train_log],
            "test_log": {k: [float(v) for v in vals] for k, vals in test_log.items()},
            "rng_state": _rng_state(),
            "seed": int(seed),
            "global_step": int(global_step)}


# ----------------------------------------------------------------------------- the trainer
class Trainer:
    """One training run of ``cfg`` (PoseNet or Pose2Mesh, ``MODEL.name``).

    Args:
        cfg: a validated config (:func:`pose2mesh.config.load_config`).
        device: see :func:`pose2mesh.device.select_device` (None: a GPU when there is one).
        seed: seeds every RNG; each epoch re-seeds from (seed, epoch), so a resumed run replays.
        output_dir: the folder under which ``exp_*`` run folders are made (default experiment/).
        resume: None starts afresh; True or ``""`` resumes the newest run (``TRAIN.resume_path``
            first); a path resumes that run folder, checkpoint folder or file.
    """

    def __init__(self, cfg: Config, *, device: DeviceSpec = None, seed: int = 123,
                 output_dir: Optional[Union[str, Path]] = None, resume: ResumeSpec = None):
        self.cfg = cfg
        self.seed = int(seed)
        self.output_root = Path(output_dir) if output_dir is not None else experiment_dir()
        self.resume_spec = resume
        builders.seed_everything(self.seed)
        self.ctx: RunContext = build_context(cfg, device)
        self.run_dir: Optional[RunDir] = None
        self.train_log: List[float] = []
        self.test_log: Dict[str, List[float]] = {"epoch": [], "surface": [], "joint": []}
        self.global_step = 0
        self.begin_epoch = cfg.TRAIN.begin_epoch
        self.last_checkpoint: Optional[Path] = None
        self.metrics: Dict[str, Any] = {}
        self._resume_state: Optional[Dict[str, Any]] = None
        self._resume_file: Optional[Path] = None
        self._writer: Any = None

    # ------------------------------------------------------------------ build
    def build(self) -> None:
        """Find the checkpoint to resume (if any), read the datasets, make the run folder, then
        build the optimizer and scheduler. Datasets come before the run folder: a missing
        annotation file leaves no empty ``exp_*`` behind."""
        cfg, ctx = self.cfg, self.ctx
        if self.resume_spec is not None and self.resume_spec is not False:
            path = self.resume_spec if isinstance(self.resume_spec, (str, Path)) and str(self.resume_spec) else ""
            self._resume_state, self._resume_file, self.run_dir = find_resume_checkpoint(
                path or cfg.TRAIN.resume_path, self.output_root)
            log.info("resuming from %s (epoch %d)", self._resume_file, self._resume_state["epoch"])
        if self.run_dir is None and ctx.is_main:
            check_writable(self.output_root)  # fail before the (long) dataset loading
        train_sets = builders.build_datasets(cfg, cfg.DATASET.train_list, "train", ctx.mesh_model)
        self.test_set = builders.build_datasets(cfg, cfg.DATASET.test_list[:1], "test", ctx.mesh_model)[0]
        if self.run_dir is None:
            run = create_run_dir(self.output_root) if ctx.is_main else None
            self.run_dir = dist_utils.all_gather_objects(run)[0]
        assert self.run_dir is not None
        check_writable(self.run_dir.checkpoint)
        if ctx.is_main:
            record_run(self.run_dir, cfg)
            attach_run_log(self.run_dir)
            log.info("run folder: %s", self.run_dir.root)
        log.info("device: %s%s", ctx.device,
                 f" (DDP, {ctx.dist.world_size} processes)" if ctx.dist.enabled else "")

        per_dataset = max(1, cfg.TRAIN.batch_size // len(train_sets))
        if len(train_sets) > 1:
            from ..datasets.multiple import MultipleDatasets

            self.train_set: Any = MultipleDatasets(train_sets, make_same_len=True)
        else:
            self.train_set = train_sets[0]
        global_batch = per_dataset * len(train_sets)
        if global_batch % ctx.dist.world_size:
            raise TrainingError(f"TRAIN.batch_size {global_batch} is not divisible by the "
                                f"{ctx.dist.world_size} processes")
        self.local_batch = global_batch // ctx.dist.world_size

        if cfg.MODEL.posenet_pretrained and ctx.is_mesh and self._resume_state is None:
            file = resolve_weights(cfg.MODEL.posenet_path, prefer="best")
            lifter = cast(torch.nn.Module, ctx.model.pose_lifter)
            load_model_weights(lifter, load_checkpoint(file), strict=True)
            log.info("PoseNet weights loaded from %s", file)
        self.optimizer = builders.build_optimizer(cfg, ctx.model.parameters())
        self.scheduler = builders.build_scheduler(cfg, self.optimizer)

    # ------------------------------------------------------------------ resume
    def resume(self) -> None:
        """Model, optimizer, scheduler, logs and step of the checkpoint found by :meth:`build`."""
        state, cfg = self._resume_state, self.cfg
        if state is None:
            return
        load_model_weights(self.ctx.model, state, strict=True)
        try:
            builders.load_optimizer_state(cfg, self.optimizer, state["optim_state_dict"], self._resume_file)
        except ValueError as err:
            raise TrainingError(str(err)) from None
        sched_state = dict(state["scheduler_state_dict"])
        if cfg.TRAIN.scheduler == "step":  # as the original: the config's milestones and factor win
            sched_state["milestones"], sched_state["gamma"] = Counter(cfg.TRAIN.lr_step), cfg.TRAIN.lr_factor
        self.scheduler.load_state_dict(sched_state)
        self.train_log = list(state.get("train_log", []))
        saved = {k: list(v) for k, v in dict(state.get("test_log", {})).items()}
        self.test_log = {"epoch": [], "surface": [], "joint": []}
        self.test_log.update(saved)
        if not saved.get("epoch") and self.test_log["joint"]:  # written before epochs were logged
            self.test_log["epoch"] = [float(e) for e in range(cfg.TRAIN.begin_epoch,
                                                              cfg.TRAIN.begin_epoch + len(self.test_log["joint"]))]
        self.global_step = int(state.get("global_step", 0))
        self.begin_epoch = int(state["epoch"]) + 1

    # ------------------------------------------------------------------ one epoch
    def train_loader(self, epoch: int) -> DataLoader:
        """This epoch's training batches (shuffled from (seed, epoch); the last partial batch
        kept as the original, except under DDP, where every rank needs equal batches)."""
        cfg, ctx = self.cfg, self.ctx
        generator = torch.Generator().manual_seed(builders.epoch_seed(self.seed, epoch))
        pin = ctx.device.type == "cuda"
        if ctx.dist.enabled:
            sampler: DistributedSampler = DistributedSampler(
                self.train_set, num_replicas=ctx.dist.world_size, rank=ctx.dist.rank,
                shuffle=cfg.TRAIN.shuffle, seed=self.seed, drop_last=True)
            sampler.set_epoch(epoch)
            return DataLoader(self.train_set, batch_size=self.local_batch, sampler=sampler,
                              num_workers=ctx.workers, generator=generator, drop_last=True, pin_memory=pin)
        return DataLoader(self.train_set, batch_size=self.local_batch, shuffle=cfg.TRAIN.shuffle,
                          num_workers=ctx.workers, generator=generator, drop_last=False, pin_memory=pin)

    def train_epoch(self, epoch: int) -> Dict[str, float]:
        """One pass over the training data; returns the mean of each loss term and 'total'."""
        builders.seed_everything(builders.epoch_seed(self.seed, epoch, self.ctx.dist.rank))
        set_epoch = getattr(self.train_set, "set_epoch", None)
        if set_epoch is not None:  # synthesized errors and augmentation differ per epoch
            set_epoch(epoch)
        loader = self.train_loader(epoch)
        if len(loader) == 0:
            raise TrainingError(f"the training set ({len(self.train_set)} samples) is smaller than one batch "
                                f"of {self.local_batch}")
        means, self.global_step = train_one_epoch(
            self.model, self.ctx.criterion, self.optimizer, loader, self.ctx.device, epoch, self.global_step,
            self.cfg.TRAIN.print_freq, self.cfg.TRAIN.max_iters_per_epoch, self._writer,
            show_progress=self.ctx.is_main)
        self.train_log.append(means.get("total", float("nan")))
        log.info("Epoch%d Loss: %.4f (%s)", epoch, self.train_log[-1],
                 ", ".join(f"{k} {v:.4f}" for k, v in means.items() if k != "total"))
        return means

    def test_epoch(self, epoch: int) -> Tuple[Dict[str, np.ndarray], Dict[str, float]]:
        """Predict the test split; the per-epoch errors are per-sample means (mm) over the
        protocol's evaluation joints, as the final evaluation's."""
        ctx = self.ctx
        results = run_inference(self.model, ctx.criterion, ctx.test_loader(self.test_set, self.cfg.TEST.batch_size),
                                ctx.device, keep_mesh=ctx.is_mesh, max_samples=self.cfg.TEST.max_samples,
                                show_progress=ctx.is_main, desc=f"Epoch{epoch} test")
        errors = running_errors(results, ctx.joint_regressor, ctx.error_root, ctx.eval_joints)
        log.info("Epoch%d test (per-sample means, MPJPE over %s): %s", epoch, ctx.error_joints,
                 ", ".join(f"{k} {v:.2f} mm" for k, v in errors.items()))
        return results, errors

    def save(self, epoch: int, errors: Dict[str, float], results: Dict[str, np.ndarray], final: bool) -> None:
        """Checkpoint (atomic; ``best`` by the test joint error), curves and TensorBoard."""
        joint_error = errors.get("MPJPE", float("nan"))
        is_best = bool(errors) and (not self.test_log["joint"] or joint_error < min(self.test_log["joint"]))
        if errors:
            self.test_log["epoch"].append(float(epoch))
            self.test_log["surface"].append(errors.get("MPVPE", float("nan")))
            self.test_log["joint"].append(joint_error)
        if not self.ctx.is_main:
            return
        assert self.run_dir is not None
        state = checkpoint_state(epoch, self.model, self.optimizer, self.scheduler, self.train_log, self.test_log,
                                 self.seed, self.global_step)
        path = self.run_dir.checkpoint / ("final.pth.tar" if final else f"checkpoint{epoch}.pth.tar")
        save_checkpoint(path, state)
        self.last_checkpoint = path
        if is_best:
            save_checkpoint(self.run_dir.checkpoint / "best.pth.tar", state)
        self._save_plots()
        if self._writer is not None:
            w = self._writer
            w.add_scalar("train/lr", self.optimizer.param_groups[0]["lr"], epoch)
            w.add_scalar("train/loss_epoch", self.train_log[-1], epoch)
            for k, v in errors.items():
                w.add_scalar(f"test/{k}_eval_joints_per_sample" if k == "MPJPE" else f"test/{k}_per_sample", v, epoch)
            preview = self._mesh_preview(results) if errors else None
            if preview is not None:
                w.add_image("test/mesh_pred_vs_target", preview, epoch, dataformats="HWC")
            w.flush()

    def finish(self, results: Dict[str, np.ndarray]) -> Dict[str, Any]:
        """The final evaluation (the dataset's own, as test.py prints it) and ``TEST.vis`` meshes."""
        if not self.ctx.is_main or not results:
            return {}
        assert self.run_dir is not None
        log.info("==> final evaluation on %s (%d samples)", self.cfg.DATASET.test_list[0], len(results["index"]))
        metrics = self.ctx.evaluate(self.test_set, results, self.run_dir.result)
        if self.cfg.TEST.vis and self.ctx.is_mesh:
            written = write_vis(results, self.ctx.mesh_model.face, self.run_dir.vis)
            log.info("TEST.vis: %d OBJ files in %s", len(written), self.run_dir.vis)
        return metrics

    # ------------------------------------------------------------------ the loop
    def run(self) -> TrainResult:
        """build, resume, then per epoch: train, test (every epoch or the last), schedule, save."""
        self.build()
        self.resume()
        self.model = self.ctx.wrap_model()
        if self.ctx.is_main:
            from tensorboardX import SummaryWriter

            assert self.run_dir is not None
            self._writer = SummaryWriter(str(self.run_dir.tensorboard))
        end_epoch = self.cfg.TRAIN.end_epoch
        if self.begin_epoch > end_epoch:
            log.info("nothing to do: the checkpoint is at epoch %d and TRAIN.end_epoch is %d",
                     self.begin_epoch - 1, end_epoch)
        try:
            for epoch in range(self.begin_epoch, end_epoch + 1):
                log.info("Epoch %d / %d, lr %.2e", epoch, end_epoch, self.optimizer.param_groups[0]["lr"])
                self.train_epoch(epoch)
                final = epoch == end_epoch
                results: Dict[str, np.ndarray] = {}
                errors: Dict[str, float] = {}
                if self.cfg.TRAIN.test_every_epoch or final:
                    results, errors = self.test_epoch(epoch)
                if self.cfg.TRAIN.scheduler == "step":
                    self.scheduler.step()
                elif errors:
                    self.scheduler.step(errors.get("MPJPE", float("nan")))
                self.save(epoch, errors, results, final)
                dist_utils.barrier()
                if final:
                    self.metrics = self.finish(results)
        finally:
            if self._writer is not None:
                self._writer.close()
        if self.ctx.dist.enabled:
            _check_ranks_agree(self.model)
        assert self.run_dir is not None
        if self.ctx.is_main:
            log.info("done: %s", self.run_dir.root)
        return TrainResult(self.run_dir.root, self.last_checkpoint, self.metrics, list(self.train_log),
                           {k: list(v) for k, v in self.test_log.items()})

    # ------------------------------------------------------------------ helpers
    def _save_plots(self) -> None:
        from .plots import save_curve

        assert self.run_dir is not None
        save_curve(self.train_log, self.run_dir.graph / "train_loss.png", "Train Loss",
                   epochs=range(self.cfg.TRAIN.begin_epoch, self.cfg.TRAIN.begin_epoch + len(self.train_log)))
        epochs = self.test_log["epoch"]
        if self.ctx.is_mesh and any(np.isfinite(self.test_log["surface"])):
            save_curve(self.test_log["surface"], self.run_dir.graph / "surface_error.png",
                       "Surface Error (MPVPE, mm, per-sample mean)", epochs=epochs)
        if self.test_log["joint"]:
            save_curve(self.test_log["joint"], self.run_dir.graph / "joint_error.png",
                       f"Joint Error (MPJPE, mm, over {self.ctx.error_joints}, per-sample mean)", epochs=epochs)

    def _mesh_preview(self, results: Dict[str, np.ndarray]) -> Optional[np.ndarray]:
        """An H x W x 3 uint8 image of the first test prediction beside its target, or None."""
        if "mesh_coord" not in results:
            return None
        try:
            from ..render import render_mesh_pair
        except ImportError:
            return None
        try:
            return render_mesh_pair(results["mesh_coord"][0] / 1000, results["mesh_coord_target"][0] / 1000,
                                    self.ctx.mesh_model.face)
        except Exception as err:  # a preview must never stop training
            log.debug("mesh preview skipped: %s", err)
            return None


def _check_ranks_agree(model: torch.nn.Module) -> None:
    """Under DDP every process must end with the same weights: compare checksums."""
    with torch.no_grad():
        checksum = [float(p.double().sum()) for p in model.parameters()]
    all_sums = dist_utils.all_gather_objects(checksum)
    if any(s != all_sums[0] for s in all_sums[1:]):
        raise RuntimeError("DDP processes ended with different parameters")
    log.info("all %d processes end with identical parameters", len(all_sums))


def train(cfg: Config, *, device: DeviceSpec = None, seed: int = 123, output_dir: Optional[Union[str, Path]] = None,
          resume: ResumeSpec = None) -> TrainResult:
    """Train ``cfg`` and return the run folder, the last checkpoint and the final metrics.

    Example::

        from pose2mesh.config import load_config
        from pose2mesh.engine import train
        cfg = load_config("asset/yaml/pose2mesh_human36J_quick_synthetic.yml", ["TRAIN.end_epoch", "1"])
        result = train(cfg, device="cpu", output_dir="experiment/mine")
        print(result.checkpoint, result.metrics["MPVPE"])

    See :class:`Trainer` for the arguments; errors a user can fix raise
    :class:`pose2mesh.errors.Pose2MeshError`.
    """
    return Trainer(cfg, device=device, seed=seed, output_dir=output_dir, resume=resume).run()
