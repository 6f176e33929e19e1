"""Pose2Mesh demo: 3D meshes from a photo, a video or 2D poses, rendered over the image.

    python demo/run.py --gpu 0 --input_pose demo/synthetic_pose_human36.npy --joint_set human36 [--input_img IMG]
    python demo/run.py --gpu 0 --input_img PHOTO [--multi]          # 2D keypoints found by the built-in detector
    python demo/run.py --gpu 0 --input_video VIDEO [--multi]        # tracked, smoothed meshes over every frame

Run ``python demo/run.py --help`` for every option; the logic lives in :mod:`pose2mesh.demo`.
"""
import os
import sys

# as main/train.py: OpenMP threads sleep instead of spinning while they wait (on shared CPU cores
# spinning slows the forward pass by an order of magnitude); set before torch is imported
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pose2mesh.demo import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
