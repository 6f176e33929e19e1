"""The demo: a photo, a video or 2D poses in; 3D meshes rendered over the image out.

A thin command line (``demo/run.py``) over the package, one module per stage:

- :mod:`.inputs`: 2D poses from files (npy, COCO results, OpenPose, MMPose);
- detection: :mod:`pose2mesh.detection` (optional extra, offline weights);
- :mod:`.tracking`: video only, stable ids and smoothed keypoints (:mod:`pose2mesh.tracking`);
- :mod:`.prediction`: a :class:`pose2mesh.inference.Predictor` from the flags;
- :mod:`.fitting`: SMPL / MANO parameters of the meshes (:mod:`pose2mesh.fitting`, :mod:`pose2mesh.export`);
- :mod:`.rendering`: poses and meshes over the image;
- :mod:`.outputs`: keypoints JSON (COCO results format), OBJ, summaries;
- :mod:`.video`: frames in, tracked meshes out (MP4, per-track npz);
- :mod:`.cli`: the flags, the photo run and the guarded ``main``.
"""
from ..inference import DEFAULT_CHECKPOINTS, MeshPrediction, Predictor
from .cli import main, parse_args, run, run_photo
from .common import DemoError
from .inputs import PoseInput, check_layout, load_poses, read_poses, select_people

__all__ = ["DemoError", "DEFAULT_CHECKPOINTS", "Predictor", "MeshPrediction", "PoseInput", "parse_args",
           "load_poses", "read_poses", "check_layout", "select_people", "run", "run_photo", "main"]
