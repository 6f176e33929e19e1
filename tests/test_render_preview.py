"""The TensorBoard preview: prediction and target side by side, each drawn where it belongs."""
import numpy as np

from pose2mesh.render import render_mesh_pair


def test_preview_draws_both_meshes_and_leaves_the_rest_white():
    # a tetrahedron-like blob: target on the right tile, a prediction shrunk to half on the left
    verts = np.array([[0, -0.5, 0], [0.3, 0.4, 0.1], [-0.3, 0.4, 0.1], [0, 0.2, -0.3]], np.float64)
    faces = np.array([[0, 1, 2], [0, 3, 1], [0, 2, 3], [1, 3, 2]])
    img = render_mesh_pair(verts * 0.5, verts, faces, size=64, backend="software")
    assert img.shape == (64, 128, 3) and img.dtype == np.uint8
    drawn = (img != 255).any(axis=2)
    left, right = drawn[:, :64].sum(), drawn[:, 64:].sum()
    assert 0 < left < right  # the half-size prediction covers fewer pixels than the target
    assert not drawn[:, :4].any() and not drawn[:, -4:].any()
