"""The configs for the synthetic default load, and name the synthetic body explicitly."""
from pathlib import Path

import pytest

from pose2mesh.config import load_config

YAML = Path(__file__).resolve().parents[1] / "asset" / "yaml"
SYNTHETIC = ["pose2mesh_human36J_quick_synthetic.yml", "pose2mesh_human36J_long_synthetic.yml",
             "pose2mesh_cocoJ_long_synthetic.yml",
             "posenet_human36J_train_synthetic.yml", "pose2mesh_human36J_train_synthetic.yml",
             "posenet_cocoJ_train_synthetic.yml", "pose2mesh_cocoJ_train_synthetic.yml",
             "posenet_manoJ_train_synthetic_hand.yml", "pose2mesh_manoJ_train_synthetic_hand.yml"]


@pytest.mark.parametrize("name", SYNTHETIC)
def test_synthetic_config_loads(name):
    cfg = load_config(str(YAML / name))
    assert cfg.DATASET.body_model == "synthetic"
    assert cfg.DATASET.train_list == ["Synthetic"] and cfg.DATASET.test_list == ["Synthetic"]
    hand = cfg.DATASET.input_joint_set == "mano"
    assert hand == (cfg.DATASET.synthetic_body == "mano") == ("hand" in name)


def test_full_size_synthetic_configs_keep_the_original_model():
    for name in SYNTHETIC:
        cfg = load_config(str(YAML / name))
        if "quick" in name or "long" in name:
            assert (cfg.MODEL.posenet_hid_dim, cfg.MODEL.meshnet_channel_divisor) == (1024, 4)
        else:
            assert (cfg.MODEL.posenet_hid_dim, cfg.MODEL.meshnet_channel_divisor) == (4096, 1)
