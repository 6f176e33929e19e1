"""The configuration: the original release's 18 YAML files load unchanged, bad input fails
loudly with a message naming the key, the value and the file, the defaults are the original's,
and neither loading a config nor importing the package creates files or folders."""
import dataclasses
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pose2mesh.config import Config, ConfigError, config_to_dict, load_config, save_config

REPO = Path(__file__).resolve().parents[1]
YAML_DIR = REPO / "asset" / "yaml"
EXPERIMENT_DIR = REPO / "experiment"

# The original's asset/yaml/ (hongsukchoi/Pose2Mesh_RELEASE, newest stored version of each),
# byte for byte: user config data that must be accepted unchanged.
ORIGINAL_YAMLS = {
    "pose2mesh_cocoJ_test_3dpw.yml": "ad901993779bbed2759bd6e241067bdc4d2104e90e95e9504e5b452b9d08515e",
    "pose2mesh_cocoJ_train_human36_coco_amass.yml": "2f26997d0aa192cdcf7a01287589efbf14425ea83b77f30e876e65252e7d157b",
    "pose2mesh_cocoJ_train_human36_coco_muco.yml": "58b15ac8d4b9f15d3f28839d4a93c7d6b0b92c1ddcd461b88b529b2809d27948",
    "pose2mesh_human36J_test_human36.yml": "e3fb67eeaaff8897cbac3ce8e57e817aa18dc60e7a00dd7e28720140cc1b9a1e",
    "pose2mesh_human36J_train_human36.yml": "9c2b5f7683a97e78f3b2315bdd08a209c0a5dc74dc3a6792d4f1f6a79ab072e5",
    "pose2mesh_manoJ_test_freihand.yml": "0d00117645e4786194ddcb52547a98ce8fb38a60a4ae369278ad75928e83df8c",
    "pose2mesh_manoJ_train_freihand.yml": "615ba089c4a0af91473a594937bf39b7c4c249d835a68047bd5cc9c422124bd6",
    "pose2mesh_smplJ_test_surreal.yml": "3eb6b9b72ed8fc4f9ef5b8db2a7dca828436cc86db93db42aecf2c0c672bc541",
    "pose2mesh_smplJ_train_surreal.yml": "e778bf13b3faa70790d5dda15f5531760d908174eccb4392c9c99673bf9d3947",
    "posenet_cocoJ_test_3dpw.yml": "a0115dfa1fc51d3ba91ee79267349f364432ad1b0368ebd6593f1a30cb17607e",
    "posenet_cocoJ_train_human36_coco_amass.yml": "8bcc33d5ddb93610025597c99828a8512b9f5e2fb6260bbcf7c9e52015362d01",
    "posenet_cocoJ_train_human36_coco_muco.yml": "5260673eeb7e194b3a9289976579eeaa94c3f8e66725d910002ed71da13e021e",
    "posenet_human36J_test_human36.yml": "289d299e5a09adbe630b70e1e1bd06cc653dbe6d714ac53c79ce2b30991506f9",
    "posenet_human36J_train_human36.yml": "f6af5394f702955a89f9e07e96bb97749f60d22e08647c6c8629805407c0b1e5",
    "posenet_manoJ_test_freihand.yml": "bec18f41eef5328af00d863502c3897cccf8eacf5164324a197fe51afabfcbbe",
    "posenet_manoJ_train_freihand.yml": "31028ebf890a60de31c191ace0d443049f8e7e01adf2f5799388283c06f572e6",
    "posenet_smplJ_test_surreal.yml": "84319aebf1bcf2ffe5f78d333f3a6423bfc3ec47dd4a916f21ad4efa8fa6e3d8",
    "posenet_smplJ_train_surreal.yml": "32b894f8843eb50e66d8899864808f0785672115643b543b8f2c19f7c497b60f",
}

# A few values per file, as written in the original YAML: ("SECTION.key", value).
SPOT_CHECKS = {
    "pose2mesh_cocoJ_test_3dpw.yml": [
        ("DATASET.train_list", ["Human36M", "COCO", "MuCo"]), ("DATASET.test_list", ["PW3D"]),
        ("DATASET.use_gt_input", False), ("TRAIN.batch_size", 128), ("TRAIN.lr_step", [12]),
        ("TEST.weight_path", "./experiment/pose2mesh_cocoJ_train_human36_coco_muco/final.pth.tar"),
        ("TEST.vis", False), ("MODEL.input_shape", (384, 288))],
    "pose2mesh_cocoJ_train_human36_coco_amass.yml": [
        ("DATASET.train_list", ["Human36M", "COCO", "AMASS"]), ("MODEL.posenet_pretrained", True),
        ("MODEL.posenet_path", "./experiment/exp_04-05_15:57/checkpoint/best.pth.tar"),
        ("TRAIN.resume_path", "./experiment/exp_04-13_20:19/checkpoint/checkpoint9.pth.tar"),
        ("TRAIN.lr_step", [10]), ("TRAIN.end_epoch", 15), ("TRAIN.edge_loss_start", 7)],
    "pose2mesh_cocoJ_train_human36_coco_muco.yml": [
        ("DATASET.train_list", ["Human36M", "COCO", "MuCo"]), ("DATASET.target_joint_set", "human36"),
        ("MODEL.posenet_path", "./experiment/posenet_cocoJ_train_human36_coco_muco/final.pth.tar"),
        ("MODEL.joint_loss_weight", 0.001), ("MODEL.normal_loss_weight", 0.1)],
    "pose2mesh_human36J_test_human36.yml": [
        ("DATASET.input_joint_set", "human36"), ("DATASET.test_list", ["Human36M"]), ("TEST.vis", True),
        ("TEST.weight_path", "./experiment/pose2mesh_human36J_train_human36/final.pth.tar")],
    "pose2mesh_human36J_train_human36.yml": [
        ("DATASET.train_list", ["Human36M"]), ("MODEL.posenet_pretrained", True),
        ("MODEL.posenet_path", "./experiment/posenet_human36J_train_human36/final.pth.tar"),
        ("MODEL.edge_loss_weight", 20.0)],
    "pose2mesh_manoJ_test_freihand.yml": [
        ("DATASET.input_joint_set", "mano"), ("DATASET.target_joint_set", "mano"),
        ("TRAIN.end_epoch", 40), ("TRAIN.edge_loss_start", 15), ("TEST.vis", True),
        ("TEST.weight_path", "./experiment/pose2mesh_manoJ_train_freihand/final.pth.tar")],
    "pose2mesh_manoJ_train_freihand.yml": [
        ("DATASET.train_list", ["FreiHAND"]), ("TRAIN.lr_step", [30]),
        ("MODEL.posenet_path", "./experiment/posenet_manoJ_train_freihand/final.pth.tar")],
    "pose2mesh_smplJ_test_surreal.yml": [
        ("DATASET.input_joint_set", "smpl"), ("DATASET.test_list", ["SURREAL"]),
        ("TEST.weight_path", "./experiment/pose2mesh_smplJ_train_surreal/final.pth.tar")],
    "pose2mesh_smplJ_train_surreal.yml": [
        ("DATASET.train_list", ["SURREAL"]), ("MODEL.posenet_pretrained", True),
        ("MODEL.posenet_path", "./experiment/posenet_smplJ_train_surreal/final.pth.tar")],
    "posenet_cocoJ_test_3dpw.yml": [
        ("MODEL.name", "posenet"), ("DATASET.target_joint_set", "coco"), ("AUG.flip", True),
        ("TRAIN.end_epoch", 30), ("TRAIN.lr_step", [20]),
        ("TEST.weight_path", "./experiment/posenet_cocoJ_train_human36_coco_muco/final.pth.tar")],
    "posenet_cocoJ_train_human36_coco_amass.yml": [
        ("DATASET.train_list", ["Human36M", "COCO", "AMASS"]), ("DATASET.workers", 6),
        ("MODEL.name", "posenet"), ("AUG.flip", True), ("TEST.shuffle", False)],
    "posenet_cocoJ_train_human36_coco_muco.yml": [
        ("DATASET.train_list", ["Human36M", "COCO", "MuCo"]), ("DATASET.workers", 16),
        ("MODEL.name", "posenet"), ("TRAIN.optimizer", "rmsprop")],
    "posenet_human36J_test_human36.yml": [
        ("TRAIN.end_epoch", 60), ("TRAIN.lr_factor", 0.5),
        ("TEST.weight_path", "./experiment/posenet_humanJ_train_human36")],
    "posenet_human36J_train_human36.yml": [
        ("DATASET.input_joint_set", "human36"), ("TRAIN.lr_step", [30]), ("TRAIN.lr_factor", 0.5)],
    "posenet_manoJ_test_freihand.yml": [
        ("TRAIN.end_epoch", 120), ("TRAIN.lr_step", [90]),
        ("TEST.weight_path", "./experiment/posenet_manoJ_train_freihand")],
    "posenet_manoJ_train_freihand.yml": [
        ("DATASET.train_list", ["FreiHAND"]), ("TRAIN.end_epoch", 120), ("AUG.rotate_factor", 0.0)],
    "posenet_smplJ_test_surreal.yml": [
        ("DATASET.input_joint_set", "smpl"), ("TRAIN.lr_factor", 0.5),
        ("TEST.weight_path", "./experiment/posenet_smplJ_train_surreal")],
    "posenet_smplJ_train_surreal.yml": [
        ("DATASET.train_list", ["SURREAL"]), ("TRAIN.end_epoch", 60), ("TRAIN.scheduler", "step")],
}

# The defaults of the original's lib/core/config.py, every key of its five sections.
ORIGINAL_DEFAULTS = {
    "DATASET": {"train_list": ["Human36M", "COCO", "MuCo"], "test_list": ["PW3D"],
                "input_joint_set": "coco", "target_joint_set": "human36", "workers": 16,
                "use_gt_input": True},
    "MODEL": {"name": "pose2mesh_net", "input_shape": (384, 288), "normal_loss_weight": 1e-1,
              "edge_loss_weight": 20, "joint_loss_weight": 1e-3, "posenet_pretrained": False,
              "posenet_path": "./experiment/exp_08-20_13:48/checkpoint"},
    "TRAIN": {"print_freq": 10, "batch_size": 64, "shuffle": True, "begin_epoch": 1, "end_epoch": 40,
              "edge_loss_start": 15, "scheduler": "step", "lr": 1e-3, "lr_step": [30],
              "lr_factor": 0.1, "optimizer": "rmsprop"},
    "AUG": {"flip": False, "rotate_factor": 0},
    "TEST": {"batch_size": 64, "shuffle": False,
             "weight_path": "./experiment/pose2mesh_cocoJ_gt_train_human36_coco", "vis": False},
}


def _get(cfg, dotted):
    section, key = dotted.split(".")
    return getattr(getattr(cfg, section), key)


def _write(tmp_path, text, name="cfg.yml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def _listing(root):
    """Every path under root (relative), or None when root does not exist."""
    root = Path(root)
    if not root.exists():
        return None
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# ---------------------------------------------------------------- the original YAML files

def test_all_original_yamls_are_present():
    assert len(ORIGINAL_YAMLS) == 18 and set(SPOT_CHECKS) == set(ORIGINAL_YAMLS)
    missing = [name for name in ORIGINAL_YAMLS if not (YAML_DIR / name).is_file()]
    assert not missing, f"missing from asset/yaml/: {missing}"


@pytest.mark.parametrize("name", sorted(ORIGINAL_YAMLS))
def test_original_yaml_is_unchanged(name):
    data = (YAML_DIR / name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == ORIGINAL_YAMLS[name], f"{name} differs from the original"


@pytest.mark.parametrize("name", sorted(ORIGINAL_YAMLS))
def test_original_yaml_loads_and_keeps_its_values(name):
    cfg = load_config(str(YAML_DIR / name))
    assert isinstance(cfg, Config)
    assert cfg.source == str(YAML_DIR / name)
    for dotted, expected in SPOT_CHECKS[name]:
        assert _get(cfg, dotted) == expected, f"{name}: {dotted}"
    # the model kind follows the file name
    assert cfg.MODEL.name == ("posenet" if name.startswith("posenet_") else "pose2mesh_net")


@pytest.mark.parametrize("name", sorted(ORIGINAL_YAMLS))
def test_original_yaml_values_all_match_the_file(name):
    """Every key written in the file is taken as written (not only the spot checks)."""
    import yaml
    raw = yaml.safe_load((YAML_DIR / name).read_text(encoding="utf-8"))
    cfg = load_config(str(YAML_DIR / name))
    for section, values in raw.items():
        for key, value in values.items():
            got = getattr(getattr(cfg, section), key)
            if isinstance(got, tuple):
                got = list(got)
            assert got == value, f"{name}: {section}.{key} = {got!r}, file has {value!r}"


# ---------------------------------------------------------------- errors

def test_unknown_section(tmp_path):
    path = _write(tmp_path, "DATASET:\n    workers: 2\nSOLVER:\n    lr: 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert "SOLVER" in msg and path in msg


def test_unknown_key(tmp_path):
    path = _write(tmp_path, "TRAIN:\n    batch_size: 8\n    warmup_steps: 777\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert "TRAIN.warmup_steps" in msg and "777" in msg and path in msg


@pytest.mark.parametrize("text, key, value", [
    ("TRAIN:\n    batch_size: 'abc'\n", "TRAIN.batch_size", "'abc'"),
    ("AUG:\n    flip: 3\n", "AUG.flip", "3"),
    ("TRAIN:\n    lr: 'fast'\n", "TRAIN.lr", "'fast'"),
    ("TRAIN:\n    lr_step: 30\n", "TRAIN.lr_step", "30"),
    ("DATASET:\n    train_list: 'Human36M'\n", "DATASET.train_list", "'Human36M'"),
    ("MODEL:\n    input_shape: [384]\n", "MODEL.input_shape", "[384]"),
    ("DATASET:\n    workers: 2.5\n", "DATASET.workers", "2.5"),
    ("TEST:\n    vis: 'yes'\n", "TEST.vis", "'yes'"),
])
def test_wrong_type(tmp_path, text, key, value):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert key in msg and value in msg and path in msg


def test_value_outside_its_choices(tmp_path):
    path = _write(tmp_path, "TRAIN:\n    optimizer: 'adagrad'\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert "TRAIN.optimizer" in msg and "adagrad" in msg and path in msg


def test_missing_file(tmp_path):
    path = str(tmp_path / "no_such_config.yml")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert path in str(err.value)
    assert not os.path.exists(path)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file(tmp_path, text):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert path in str(err.value) and "empty" in str(err.value)


def test_not_yaml(tmp_path):
    path = _write(tmp_path, "TRAIN: [unclosed\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert path in str(err.value)


def test_config_error_is_a_value_error():
    # the original raised ValueError; callers that caught it still do
    assert issubclass(ConfigError, ValueError)


# ---------------------------------------------------------------- defaults

def test_defaults_equal_the_original():
    cfg = load_config(None)
    assert cfg == Config()
    for section, values in ORIGINAL_DEFAULTS.items():
        for key, expected in values.items():
            assert getattr(getattr(cfg, section), key) == expected, f"{section}.{key}"


def test_defaults_have_every_original_key():
    cfg = Config()
    for section, values in ORIGINAL_DEFAULTS.items():
        fields = {f.name for f in dataclasses.fields(getattr(cfg, section))}
        assert set(values) <= fields, f"{section} lacks {set(values) - fields}"


def test_a_partial_file_keeps_the_other_defaults(tmp_path):
    cfg = load_config(_write(tmp_path, "TRAIN:\n    batch_size: 8\n"))
    assert cfg.TRAIN.batch_size == 8
    expected = Config()
    expected.TRAIN.batch_size = 8
    assert cfg == expected


def test_defaults_are_not_shared_between_configs(tmp_path):
    a = load_config(None)
    a.DATASET.train_list.append("PW3D")
    assert load_config(None).DATASET.train_list == ["Human36M", "COCO", "MuCo"]


# ---------------------------------------------------------------- save/load round trip

@pytest.mark.parametrize("name", sorted(ORIGINAL_YAMLS))
def test_save_load_round_trip(tmp_path, name):
    cfg = load_config(str(YAML_DIR / name))
    out = tmp_path / "saved.yml"
    save_config(cfg, str(out))
    again = load_config(str(out))
    assert again == cfg
    assert config_to_dict(again) == config_to_dict(cfg)


def test_save_load_round_trip_of_defaults_and_changed_values(tmp_path):
    cfg = Config()
    cfg.TRAIN.lr_step = [5, 9]
    cfg.TRAIN.scheduler = "platue"
    cfg.MODEL.input_shape = (256, 192)
    cfg.AUG.flip = True
    cfg.TRAIN.resume_path = "./experiment/x/checkpoint3.pth.tar"
    out = tmp_path / "saved.yml"
    save_config(cfg, str(out))
    assert load_config(str(out)) == cfg
    save_config(Config(), str(out))
    assert load_config(str(out)) == Config()


# ---------------------------------------------------------------- original quirks

def test_platue_scheduler_spelling_is_accepted(tmp_path):
    cfg = load_config(_write(tmp_path, "TRAIN:\n    scheduler: 'platue'\n"))
    assert cfg.TRAIN.scheduler == "platue"


# ---------------------------------------------------------------- no side effects

def test_loading_a_config_creates_no_files(tmp_path, monkeypatch):
    work = tmp_path / "cwd"
    work.mkdir()
    local = work / "local.yml"
    local.write_bytes((YAML_DIR / "pose2mesh_cocoJ_train_human36_coco_amass.yml").read_bytes())
    monkeypatch.chdir(work)
    before_cwd, before_exp, before_yaml = _listing(work), _listing(EXPERIMENT_DIR), _listing(YAML_DIR)
    for name in ORIGINAL_YAMLS:
        load_config(str(YAML_DIR / name))
    load_config("local.yml")
    load_config(None)
    with pytest.raises(ConfigError):
        load_config("missing.yml")
    assert _listing(work) == before_cwd
    assert _listing(EXPERIMENT_DIR) == before_exp
    assert _listing(YAML_DIR) == before_yaml


def test_importing_the_package_creates_no_files(tmp_path):
    work = tmp_path / "cwd"
    work.mkdir()
    before_exp = _listing(EXPERIMENT_DIR)
    code = "import pose2mesh, pose2mesh.config; print(pose2mesh.__version__)"
    result = subprocess.run([sys.executable, "-c", code], cwd=str(work), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert _listing(work) == []
    assert _listing(EXPERIMENT_DIR) == before_exp
