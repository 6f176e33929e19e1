"""The networks: PoseNet (2D -> 3D joints), MeshNet (joints -> mesh), Pose2Mesh (both)."""
from . import cheb_conv, meshnet, pose2mesh_net, posenet

__all__ = ["cheb_conv", "meshnet", "pose2mesh_net", "posenet"]
