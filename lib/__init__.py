"""Pose2Mesh: 3D human pose and mesh recovery from a 2D pose with a graph CNN (ECCV 2020).

Importing the package creates no files and no folders.
"""
__version__ = "1.0.0"
