#!/usr/bin/env bash
# The one preparation step of bench/gpu_check.py for a GPU machine that reaches no package index.
#
# Such a machine brings Python 3.12 with torch (CUDA), numpy, scipy, opencv-python-headless, pyyaml,
# tqdm, matplotlib, pytest and hypothesis. This script, run on a machine WITH an index, downloads
# the wheels of everything else the project uses (smplx, tensorboardX, pycocotools, trimesh, the
# renderer, and setuptools for the editable install) for CPython 3.12 on manylinux x86_64 into
# wheels/ (gitignored; a few MiB). Copy the repository with wheels/ to the GPU machine, then there:
#
#   python3 -m pip install --no-index --find-links wheels/ --no-deps wheels/*.whl -e .
#
# (--no-deps: the machine's own torch, numpy and scipy are used as they are.)
#
#   usage: bash scripts/gpu_wheels.sh [DEST]        (DEST defaults to wheels/; PYTHON_VERSION=3.12)
set -euo pipefail
cd "$(dirname "$0")/.."
dest="${1:-wheels}"
py="${PYTHON_VERSION:-3.12}"
pip="${PIP:-python3 -m pip}"

# the project's requirements the GPU machine lacks, and theirs (none of these pulls in torch)
packages=(
  smplx                          # needs torch, numpy: present
  tensorboardX protobuf          # tensorboardX also needs numpy, packaging: present
  pycocotools                    # numpy
  trimesh                        # numpy
  pyrender-maintained PyOpenGL   # the renderer (setup.py extra "render")
  freetype-py imageio networkx pyglet six   # pyrender-maintained's (Pillow, scipy: present)
  setuptools wheel packaging     # the isolated build of the editable install, without an index
)

mkdir -p "$dest"
$pip download --only-binary=:all: --no-deps \
  --python-version "$py" --implementation cp --abi "cp${py/./}" \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
  --platform linux_x86_64 \
  -d "$dest" "${packages[@]}"
echo "wheels for CPython $py in $dest/:"
ls -1 "$dest"
echo
echo "on the GPU machine, from the repository root:"
echo "  python3 -m pip install --no-index --find-links $dest/ --no-deps $dest/*.whl -e ."
