"""Test PoseNet or Pose2Mesh: python main/test.py --gpu 0 --cfg asset/yaml/<config>.yml"""
import os
import sys

# On shared CPU cores, OpenMP threads that spin while waiting slow small operations down by an
# order of magnitude; let them sleep instead (set before torch is imported; a user's value wins).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pose2mesh.cli import test_main

if __name__ == "__main__":
    sys.exit(test_main())
