"""Checkpoints: the original's .pth.tar format both ways, atomic writes, clear errors."""
from __future__ import annotations

import collections
import os
import pickle
import types

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch import nn

from pose2mesh.checkpoint import (CHECKPOINT_KEYS, CheckpointError, load_checkpoint, load_model_weights,
                                  save_checkpoint)
from pose2mesh.models import pose2mesh_net, posenet


def small_graphs(J=17):
    sizes = [512, 256, 128, 64, 32, 16, 8, 4, 2, J]
    return [sp.identity(V, format="csr") * 0.1 for V in sizes]


def small_model(J=17):
    return pose2mesh_net.get_model(J, small_graphs(J), hid_dim=16, channel_divisor=16)


def trained_state(model, epoch=3):
    """A checkpoint dict as the original's main/train.py writes it (numpy errors in test_log)."""
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[30], gamma=0.1)
    mesh, pose3d = model.train()(torch.randn(4, model.num_joints, 2))
    (mesh.abs().mean() + pose3d.abs().mean()).backward()
    opt.step()
    sched.step()
    return {
        "epoch": epoch,
        "model_state_dict": collections.OrderedDict(model.state_dict()),
        "optim_state_dict": opt.state_dict(),
        "scheduler_state_dict": sched.state_dict(),
        "train_log": [0.75, 0.5, 0.25],
        "test_log": {"surface": [np.float64(90.5), np.float32(80.25)], "joint": [np.float32(70.0), np.float64(60.0)]},
    }


class NumPy1Pickler(pickle._Pickler):
    """Writes NumPy scalars under NumPy 1.x's global name, as the original's files have them."""

    def save_global(self, obj, name=None):
        core = getattr(np, "_core", None) or np.core
        if obj is core.multiarray.scalar:
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\nscalar\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def _numpy1_dump(obj, f, protocol=2):
    NumPy1Pickler(f, protocol).dump(obj)


NUMPY1_PICKLE = types.SimpleNamespace(Pickler=NumPy1Pickler, dump=_numpy1_dump, __name__="numpy1_pickle")


def assert_same_state(a, b):
    assert list(a) == list(b)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


# ---------------------------------------------------------------- round trips

def test_round_trip_in_original_format(tmp_path):
    model = small_model()
    state = trained_state(model)
    path = tmp_path / "checkpoint" / "checkpoint3.pth.tar"
    save_checkpoint(path, state)
    assert sorted(os.listdir(path.parent)) == ["checkpoint3.pth.tar"]  # no temporary file left

    # what the original reads: a plain torch.load gives the six keys
    plain = torch.load(path, map_location="cpu", weights_only=False)
    assert set(CHECKPOINT_KEYS) <= set(plain)

    ckpt = load_checkpoint(path)
    assert ckpt["epoch"] == 3 and ckpt["train_log"] == [0.75, 0.5, 0.25]
    assert isinstance(ckpt["scheduler_state_dict"]["milestones"], collections.Counter)
    assert [float(v) for v in ckpt["test_log"]["surface"]] == [90.5, 80.25]
    fresh = small_model()
    load_model_weights(fresh, ckpt, strict=True)
    assert_same_state(fresh.state_dict(), model.state_dict())
    # the optimizer state and scheduler state load back too
    opt = torch.optim.RMSprop(fresh.parameters(), lr=1e-3)
    opt.load_state_dict(ckpt["optim_state_dict"])
    torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[30]).load_state_dict(ckpt["scheduler_state_dict"])


@pytest.mark.parametrize("zip_format", [True, False])
def test_original_release_file_loads(tmp_path, zip_format):
    """A file as the original wrote it: NumPy 1.x scalar globals, DataParallel-free keys,
    zip (torch >= 1.6) or legacy serialization."""
    model = small_model()
    state = trained_state(model)
    path = tmp_path / "final.pth.tar"
    torch.save(state, path, pickle_module=NUMPY1_PICKLE, pickle_protocol=2,
               _use_new_zipfile_serialization=zip_format)
    raw = path.read_bytes()
    assert b"numpy.core.multiarray" in raw and b"numpy._core" not in raw
    ckpt = load_checkpoint(path)
    assert [float(v) for v in ckpt["test_log"]["joint"]] == [70.0, 60.0]
    fresh = small_model()
    load_model_weights(fresh, ckpt["model_state_dict"], strict=True)
    assert_same_state(fresh.state_dict(), model.state_dict())


def test_posenet_checkpoint_has_no_prefix_and_loads_into_pose_lifter(tmp_path):
    lifter = posenet.get_model(17, hid_dim=16)
    assert not any(k.startswith(("pose_lifter.", "module.")) for k in lifter.state_dict())
    save_checkpoint(tmp_path / "best.pth.tar", {"epoch": 1, "model_state_dict": lifter.state_dict()})
    model = small_model()
    load_model_weights(model.pose_lifter, load_checkpoint(tmp_path / "best.pth.tar"))
    assert_same_state(model.pose_lifter.state_dict(), lifter.state_dict())


def test_module_prefix_is_stripped_and_wrappers_unwrapped():
    src = small_model()
    wrapped_keys = {"module." + k: v for k, v in src.state_dict().items()}
    dst = small_model()
    load_model_weights(dst, {"model_state_dict": wrapped_keys})
    assert_same_state(dst.state_dict(), src.state_dict())
    dst2 = nn.DataParallel(small_model())
    load_model_weights(dst2, src.state_dict())
    assert_same_state(dst2.module.state_dict(), src.state_dict())


def test_mismatch_lists_missing_unexpected_and_shapes():
    model = small_model()
    sd = dict(model.state_dict())
    del sd["pose2mesh.fc.bias"]
    sd["pose2mesh.extra.weight"] = torch.zeros(2)
    sd["pose_lifter.w2.weight"] = torch.zeros(5, 7)
    with pytest.raises(CheckpointError) as info:
        load_model_weights(model, sd)
    msg = str(info.value)
    assert "pose2mesh.fc.bias" in msg and "missing" in msg
    assert "pose2mesh.extra.weight" in msg and "not in the model" in msg
    assert "pose_lifter.w2.weight checkpoint [5, 7] vs model [51, 16]" in msg
    # non-strict: loads what fits and reports the rest
    result = load_model_weights(model, sd, strict=False)
    assert result.missing_keys == ["pose2mesh.fc.bias"]
    assert result.unexpected_keys == ["pose2mesh.extra.weight"]
    assert [k for k, _, _ in result.mismatched_keys] == ["pose_lifter.w2.weight"]


# ---------------------------------------------------------------- bad files

def test_missing_empty_truncated_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pth.tar")
    empty = tmp_path / "empty.pth.tar"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_checkpoint(empty)

    good = tmp_path / "good.pth.tar"
    save_checkpoint(good, trained_state(small_model()))
    data = good.read_bytes()
    for frac in (0.5, 0.9):
        cut = tmp_path / f"cut{frac}.pth.tar"
        cut.write_bytes(data[: int(len(data) * frac)])
        with pytest.raises(CheckpointError, match="truncated|damaged"):
            load_checkpoint(cut)
    legacy = tmp_path / "legacy.pth.tar"
    torch.save(trained_state(small_model()), legacy, _use_new_zipfile_serialization=False)
    legacy_cut = tmp_path / "legacy_cut.pth.tar"
    legacy_cut.write_bytes(legacy.read_bytes()[:-100])
    with pytest.raises(CheckpointError):
        load_checkpoint(legacy_cut)

    text = tmp_path / "config.yml"
    text.write_text("MODEL:\n  name: pose2mesh_net\n")
    with pytest.raises(CheckpointError, match="not a PyTorch"):
        load_checkpoint(text)

    evil = tmp_path / "evil.pth.tar"
    torch.save({"model_state_dict": {}, "args": types.SimpleNamespace(lr=1e-3)}, evil)
    with pytest.raises(CheckpointError, match="other than tensors"):
        load_checkpoint(evil)

    tensor_file = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor_file)
    with pytest.raises(CheckpointError, match="not a Pose2Mesh checkpoint"):
        load_checkpoint(tensor_file)
    other_dict = tmp_path / "other.pth"
    torch.save({"state_dict": {}}, other_dict)
    with pytest.raises(CheckpointError, match="no 'model_state_dict'.*state_dict"):
        load_checkpoint(other_dict)
    assert issubclass(CheckpointError, ValueError)


def test_failed_write_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "checkpoint5.pth.tar"
    save_checkpoint(path, {"epoch": 5, "model_state_dict": {"w": torch.ones(2)}})
    before = path.read_bytes()
    with pytest.raises(Exception):
        save_checkpoint(path, {"epoch": 6, "model_state_dict": {"w": torch.ones(2)}, "bad": lambda: None})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == [path.name]
    with pytest.raises(CheckpointError, match="model_state_dict"):
        save_checkpoint(path, {"epoch": 6})
