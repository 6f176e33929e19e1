"""Train PoseNet or Pose2Mesh: python main/train.py --gpu 0,1 --cfg asset/yaml/<config>.yml"""
import sys

from pose2mesh.engine.runner import train_main

if __name__ == "__main__":
    sys.exit(train_main())
