"""Test PoseNet or Pose2Mesh: python main/test.py --gpu 0 --cfg asset/yaml/<config>.yml"""
import sys

from pose2mesh.engine.runner import test_main

if __name__ == "__main__":
    sys.exit(test_main())
