"""Experiment configuration: the original release's sections and keys, validated.

The original kept one mutable global ``cfg`` that 22 files imported, and created (and deleted)
an experiment folder on import. Here a config is a plain value: :func:`load_config` reads a
YAML file over the defaults once, in the entry point, and the result is passed down.

Every key of the original ``lib/core/config.py`` exists with the same default and meaning.
Keys marked *ours* are additions; each defaults to the original's behaviour.

An unknown section or key, or a value of the wrong type, raises :class:`ConfigError` naming
the key, the value and the file.
"""
from __future__ import annotations

import copy
import dataclasses
import os
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml

from .errors import Pose2MeshError

__all__ = ["ConfigError", "Config", "load_config", "apply_overrides", "config_to_dict", "save_config"]


class ConfigError(Pose2MeshError, ValueError):
    """A configuration file or value that cannot be used."""


@dataclass
class DatasetConfig:
    train_list: List[str] = field(default_factory=lambda: ["Human36M", "COCO", "MuCo"])
    test_list: List[str] = field(default_factory=lambda: ["PW3D"])
    input_joint_set: str = "coco"
    target_joint_set: str = "human36"
    workers: int = 16
    use_gt_input: bool = True
    # ours: size of the synthetic dataset's splits (samples are generated on the fly)
    synthetic_train_size: int = 20000
    synthetic_test_size: int = 1000
    # ours: the synthetic dataset's body ('smpl' for the body, 'mano' for the hand)
    synthetic_body: str = "smpl"
    # ours: 'official' reads the user's SMPL/MANO files and the original's regressors;
    # 'synthetic' uses the generated synthetic body and hand (numbers are not paper numbers)
    body_model: str = "official"
    # ours: MuCo's fitting check against the annotated MuCo joints. The original compared the
    # mesh-regressed Human3.6M joints with themselves re-indexed as MuCo joints, which in practice
    # marks every MuCo target invalid in Pose2Mesh mode (False: that check, as the released models)
    muco_check_fit_against_annotation: bool = False
    # ours: folders, empty = $POSE2MESH_DATA / _SMPL_DIR / _MANO_DIR / _CACHE, else the original's
    # layout under the project root (the checkout, or the working directory of an installed
    # package) and the user's cache folder (see pose2mesh.paths)
    data_dir: str = ""
    smpl_dir: str = ""
    mano_dir: str = ""
    cache_dir: str = ""


@dataclass
class ModelConfig:
    name: str = "pose2mesh_net"
    input_shape: Tuple[int, int] = (384, 288)
    normal_loss_weight: float = 1e-1
    edge_loss_weight: float = 20.0
    joint_loss_weight: float = 1e-3
    posenet_pretrained: bool = False
    posenet_path: str = "./experiment/exp_08-20_13:48/checkpoint"
    # ours: PoseNet width (the original's is 4096) and a divisor of every MeshNet channel
    # (1 = the original's channel plan). Only the quick synthetic configs change them.
    posenet_hid_dim: int = 4096
    meshnet_channel_divisor: int = 1
    # ours: PoseNet dropout (the original's 0.5); 0 makes a training step deterministic
    posenet_dropout: float = 0.5


@dataclass
class TrainConfig:
    print_freq: int = 10
    batch_size: int = 64
    shuffle: bool = True
    begin_epoch: int = 1
    end_epoch: int = 40
    edge_loss_start: int = 15
    scheduler: str = "step"
    lr: float = 1e-3
    lr_step: List[int] = field(default_factory=lambda: [30])
    lr_factor: float = 0.1
    optimizer: str = "rmsprop"
    # the original's shipped YAML used it and its own loader rejected it: a checkpoint to
    # continue from (used with --resume_training)
    resume_path: str = ""
    # ours: stop an epoch after this many iterations (0 = the whole epoch)
    max_iters_per_epoch: int = 0
    # ours: test after every epoch (the original did)
    test_every_epoch: bool = True


@dataclass
class AugConfig:
    flip: bool = False
    rotate_factor: float = 0.0
    # ours: rotate the mesh and mesh-joint targets with the input (False: the original, which
    # rotated only the lifted joints)
    rotate_mesh_targets: bool = False


@dataclass
class TestConfig:
    batch_size: int = 64
    shuffle: bool = False
    weight_path: str = "./experiment/pose2mesh_cocoJ_gt_train_human36_coco"
    vis: bool = False
    # ours: evaluate only the first N test samples (0 = all)
    max_samples: int = 0
    # ours: also fit the body model (SMPL/MANO parameters) to every predicted mesh and evaluate
    # the fitted meshes beside the raw predictions (test.py --fit)
    fit: bool = False


@dataclass
class Config:
    DATASET: DatasetConfig = field(default_factory=DatasetConfig)
    MODEL: ModelConfig = field(default_factory=ModelConfig)
    TRAIN: TrainConfig = field(default_factory=TrainConfig)
    AUG: AugConfig = field(default_factory=AugConfig)
    TEST: TestConfig = field(default_factory=TestConfig)
    # where the configuration came from (not a YAML key)
    source: str = field(default="<defaults>", compare=False)


_SECTIONS = ("DATASET", "MODEL", "TRAIN", "AUG", "TEST")
_CHOICES = {
    ("MODEL", "name"): ("pose2mesh_net", "posenet"),
    ("DATASET", "input_joint_set"): ("human36", "coco", "smpl", "mano"),
    ("DATASET", "target_joint_set"): ("human36", "coco", "smpl", "mano"),
    ("DATASET", "synthetic_body"): ("smpl", "mano"),
    ("DATASET", "body_model"): ("official", "synthetic"),
    ("TRAIN", "optimizer"): ("rmsprop", "adam", "sgd"),
    # 'platue' is the original's spelling of the plateau scheduler; both are accepted
    ("TRAIN", "scheduler"): ("step", "platue", "plateau"),
}


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check ``value`` against a dataclass field type; return it in that type."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads '1e-3' (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if origin in (list, List):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (tuple, Tuple):
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{where}: expected a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin is typing.Union and type(None) in args:
        if value is None:
            return None
        return _coerce(value, next(a for a in args if a is not type(None)), where)
    raise ConfigError(f"{where}: unsupported type {annotation!r}")  # pragma: no cover


def _merge(cfg: Config, data: Dict[str, Any], source: str) -> None:
    for section_name, section_values in data.items():
        if section_name not in _SECTIONS:
            raise ConfigError(
                f"{source}: unknown section {section_name!r} (expected one of {', '.join(_SECTIONS)})")
        if section_values is None:
            continue
        if not isinstance(section_values, dict):
            raise ConfigError(f"{source}: section {section_name} must be a mapping of keys, got {section_values!r}")
        section = getattr(cfg, section_name)
        hints = typing.get_type_hints(type(section))
        known = {f.name for f in dataclasses.fields(section)}
        for key, value in section_values.items():
            where = f"{source}: {section_name}.{key}"
            if key not in known:
                raise ConfigError(f"{where} = {value!r}: {section_name}.{key} is not a known key "
                                  f"(known: {', '.join(sorted(known))})")
            value = _coerce(value, hints[key], f"{where} = {value!r}")
            choices = _CHOICES.get((section_name, key))
            if choices is not None and value not in choices:
                raise ConfigError(f"{where} = {value!r} is not one of {', '.join(choices)}")
            setattr(section, key, value)


def _validate(cfg: Config) -> None:
    src = cfg.source
    if len(cfg.MODEL.input_shape) != 2 or min(cfg.MODEL.input_shape) <= 0:
        raise ConfigError(f"{src}: MODEL.input_shape must be two positive integers, got {cfg.MODEL.input_shape}")
    for key in ("batch_size",):
        for sec in ("TRAIN", "TEST"):
            if getattr(getattr(cfg, sec), key) <= 0:
                raise ConfigError(f"{src}: {sec}.{key} must be positive")
    if cfg.MODEL.meshnet_channel_divisor < 1 or cfg.MODEL.posenet_hid_dim < 1:
        raise ConfigError(f"{src}: MODEL.meshnet_channel_divisor and MODEL.posenet_hid_dim must be >= 1")
    if cfg.TRAIN.end_epoch < cfg.TRAIN.begin_epoch:
        raise ConfigError(f"{src}: TRAIN.end_epoch ({cfg.TRAIN.end_epoch}) is before "
                          f"TRAIN.begin_epoch ({cfg.TRAIN.begin_epoch})")


def _yaml_problem(err: "yaml.YAMLError") -> str:
    """The YAML error on one line: what is wrong and where (PyYAML's text spans several)."""
    problem = getattr(err, "problem", None) or getattr(err, "context", None)
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    if problem is None:
        return " ".join(str(err).split())
    return problem + (f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "")


def load_config(path: Optional[str] = None, overrides: Optional[Sequence[str]] = None) -> Config:
    """Read a YAML file over the defaults, apply command-line overrides, validate, and return
    the configuration.

    Args:
        path: a YAML file with any of the sections DATASET, MODEL, TRAIN, AUG, TEST; None for
            the defaults alone.
        overrides: ``KEY VALUE`` pairs as on the command line, e.g.
            ``["TRAIN.batch_size", "32", "DATASET.train_list", "[Human36M, COCO]"]``; each value
            is read as YAML and checked like the file's.

    Raises:
        ConfigError: the file is missing, empty, not YAML, or holds an unknown section or key,
            or a value of the wrong type; an override is malformed or invalid.
    """
    cfg = Config()
    if path is None:
        apply_overrides(cfg, overrides or ())
        _validate(cfg)
        return cfg
    cfg.source = str(path)
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path} does not exist")
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not a valid YAML file ({_yaml_problem(err)})") from None
    if data is None:
        raise ConfigError(f"{path}: the file is empty (expected sections such as DATASET, MODEL, TRAIN)")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level, got {type(data).__name__}")
    _merge(cfg, data, str(path))
    apply_overrides(cfg, overrides or ())
    _validate(cfg)
    return cfg


def apply_overrides(cfg: Config, overrides: Sequence[str]) -> None:
    """Set ``SECTION.key value`` pairs (command-line order) on ``cfg``, validated like YAML."""
    overrides = list(overrides)
    if len(overrides) % 2:
        raise ConfigError(f"config overrides come in KEY VALUE pairs; {overrides[-1]!r} has no value")
    for key, text in zip(overrides[0::2], overrides[1::2]):
        section, _, name = key.partition(".")
        if not name or "." in name:
            raise ConfigError(f"config override {key!r}: expected SECTION.key, e.g. TRAIN.batch_size")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as err:
            problem = _yaml_problem(err)
            raise ConfigError(f"config override {key} {text!r}: not a valid YAML value ({problem})") from None
        _merge(cfg, {section: {name: value}}, "command line")


def config_to_dict(cfg: Config) -> Dict[str, Dict[str, Any]]:
    """The configuration as plain YAML-ready data (tuples become lists)."""
    out = {}
    for name in _SECTIONS:
        section = dataclasses.asdict(getattr(cfg, name))
        out[name] = {k: list(v) if isinstance(v, tuple) else copy.deepcopy(v) for k, v in section.items()}
    return out


def save_config(cfg: Config, path: str) -> None:
    """Write the resolved configuration as YAML (loads back with :func:`load_config`)."""
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(config_to_dict(cfg), f, sort_keys=False)
