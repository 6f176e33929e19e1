#!/usr/bin/env bash
# Set up a virtual environment in .venv with everything the project needs.
#
# torch: an already importable torch is kept (e.g. a CUDA build on a GPU machine). Otherwise,
# on a machine without an NVIDIA GPU, a CPU-only build is installed (no multi-GB CUDA wheels);
# with an NVIDIA GPU, PyPI's default (CUDA) build.
# Rendering: pyrender offscreen needs OSMesa or EGL; as root, Debian's libosmesa6 is installed
# when missing (otherwise the demo falls back to the built-in software rasterizer).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  if "$PY" -c "import torch" 2>/dev/null; then
    # the user's torch (often a CUDA build) stays visible inside the venv
    "$PY" -m venv --system-site-packages .venv
  else
    "$PY" -m venv .venv
  fi
fi
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1

if python -c "import torch" 2>/dev/null; then
  echo "[setup] keeping the installed torch $(python -c 'import torch; print(torch.__version__)')"
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "[setup] NVIDIA GPU found: installing torch with CUDA"
  pip install -q "torch>=2.1"
else
  echo "[setup] no GPU: installing a CPU-only torch"
  pip install -q "torch==2.13.0+cpu" 2>/dev/null \
    || pip install -q torch --index-url https://download.pytorch.org/whl/cpu \
    || pip install -q "torch>=2.1"
fi

pip install -q -e ".[render,test]" 2>&1 | grep -v "^WARNING: Location" || true
python -c "import pose2mesh, smplpytorch, manopth" || { echo "[setup] the package did not install" >&2; exit 1; }
# the optional offline detector (MediaPipe; Python 3.10-3.12). Its opencv-contrib-python and our
# opencv-python-headless both install a cv2/ folder: the contrib copy is made whole again so that
# cv2 is one consistent build (tests/test_requirements.py checks it)
pip install -q -e ".[detector]" 2>&1 | grep -v "^WARNING: Location" || true
if python -c "import importlib.metadata as m, cv2, sys; sys.exit(cv2.__version__ != m.version('opencv-contrib-python').rsplit('.', 1)[0] or not hasattr(cv2, 'ximgproc'))" 2>/dev/null; then :;
elif python -c "import importlib.metadata as m; m.version('opencv-contrib-python')" 2>/dev/null; then
  pip install -q --no-deps --force-reinstall "opencv-contrib-python==$(python -c "import importlib.metadata as m; print(m.version('opencv-contrib-python'))")" 2>&1 | grep -v "^WARNING: Location" || true
fi

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1 && ! ldconfig -p | grep -q libOSMesa; then
  echo "[setup] installing Debian's libosmesa6 for headless rendering"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libosmesa6 >/dev/null) \
    || echo "[setup] could not install libosmesa6: the demo will use the software rasterizer"
fi
echo "[setup] done: activate with '. .venv/bin/activate'"
