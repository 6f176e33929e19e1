"""The device of the tests that exercise a device path (marked ``cuda``).

Plain ``pytest`` runs every test on CPU. ``pytest -m cuda --device cuda`` (or the environment
variable ``POSE2MESH_TEST_DEVICE=cuda``) runs the marked tests on the GPU: they take their device
from the ``device`` fixture below, the one place that decides it. ``bench/gpu_check.py`` runs them
that way.
"""
from __future__ import annotations

import os

import pytest
import torch

DEVICE_ENV = "POSE2MESH_TEST_DEVICE"


def pytest_addoption(parser):
    parser.addoption("--device", default=None,
                     help=f"device of the tests that take the `device` fixture: cpu (default), cuda, cuda:1; "
                          f"or set {DEVICE_ENV}")


def _device_name(config) -> str:
    return config.getoption("--device") or os.environ.get(DEVICE_ENV) or "cpu"


def pytest_configure(config):
    name = _device_name(config)
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise pytest.UsageError(f"--device {name!r}: expected cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise pytest.UsageError(f"--device {name}: CUDA is not available to this torch ({torch.__version__})")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise pytest.UsageError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        raise pytest.UsageError(f"--device {name!r}: expected cpu, cuda or cuda:N")


@pytest.fixture(scope="session")
def device(pytestconfig) -> torch.device:
    """The device of ``cuda``-marked tests: CPU unless ``--device`` / ``POSE2MESH_TEST_DEVICE`` says otherwise."""
    return torch.device(_device_name(pytestconfig))


@pytest.fixture(scope="session")
def smpl():
    """The synthetic SMPL-format body (generated once, cached), shared by the tests."""
    from pose2mesh.body_models import SMPL

    return SMPL(synthetic=True)


@pytest.fixture(scope="session")
def mano():
    """The synthetic MANO-format hand (generated once, cached), shared by the tests."""
    from pose2mesh.body_models import MANO

    return MANO(synthetic=True)
