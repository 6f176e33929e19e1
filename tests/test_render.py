"""Headless mesh rendering (pose2mesh.render): coverage, depth and occlusion on every backend.

The numpy rasterizer runs in this process. Each OpenGL backend runs in a subprocess, because
PyOpenGL binds one platform per process (and the test process should not be bound at all).
"""
import json
import logging
import subprocess
import sys

import numpy as np
import pytest

from pose2mesh import render
from pose2mesh.render import Intrinsics, MeshRenderer, RenderError, RenderMesh, rasterize

W, H = 96, 72
INTR = Intrinsics(fx=120.0, fy=120.0, cx=47.5, cy=35.5)


def _unproject(uv, z):
    uv = np.asarray(uv, dtype=np.float64)
    return np.stack([(uv[:, 0] - INTR.cx) * z / INTR.fx, (uv[:, 1] - INTR.cy) * z / INTR.fy, np.full(len(uv), z)], 1)


def _triangle_mask(uv):
    """Pixels whose centre lies inside the 2D triangle ``uv`` (3 x 2), and the distance to its edges."""
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    inside = np.ones((H, W), bool)
    dist = np.full((H, W), np.inf)
    for k in range(3):
        a, b, c = uv[k], uv[(k + 1) % 3], uv[(k + 2) % 3]
        n = np.array([a[1] - b[1], b[0] - a[0]])
        n /= np.linalg.norm(n)
        if n @ (c - a) < 0:
            n = -n
        d = (xs - a[0]) * n[0] + (ys - a[1]) * n[1]
        inside &= d >= 0
        dist = np.minimum(dist, np.abs(d))
    return inside, dist


TRIANGLE_UV = np.array([[10.0, 8.0], [80.0, 20.0], [30.0, 64.0]])


def _scenes():
    """Scenes and what each must show: name -> (meshes, checks in plain data)."""
    tri = RenderMesh(_unproject(TRIANGLE_UV, 2.0), np.array([[0, 1, 2]]), (1.0, 0.2, 0.2))
    # a cube centred on the optical axis: its silhouette is the front face
    cube_v = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (3.0, 4.0)])
    cube_f = np.array([[0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3], [0, 1, 3], [0, 3, 2],
                       [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1], [2, 3, 7], [2, 7, 6]])
    cube = RenderMesh(cube_v - [0.0, 0.0, 0.0], cube_f, (0.3, 0.6, 1.0))
    # two squares overlapping in the image, the blue one nearer
    def square(center_uv, half, z, color):
        uv = np.array(center_uv) + np.array([[-half, -half], [half, -half], [half, half], [-half, half]])
        return RenderMesh(_unproject(uv, z), np.array([[0, 1, 2], [0, 2, 3]]), color)
    far = square((40, 36), 20, 5.0, (1.0, 0.0, 0.0))
    near = square((56, 36), 20, 2.0, (0.0, 0.0, 1.0))
    return {"triangle": [tri], "cube": [cube], "near_last": [far, near], "near_first": [near, far]}


def _render_all(backend):
    r = MeshRenderer(W, H, backend=backend)
    out = {name: r.render(meshes, INTR, size=(W, H)) for name, meshes in _scenes().items()}
    r.close()
    return r.backend, out


def _check(out):
    # the triangle covers the pixels whose centres are inside it (edges may go either way)
    inside, dist = _triangle_mask(TRIANGLE_UV)
    mask = out["triangle"].mask
    away = dist > 0.75
    assert np.array_equal(mask[away], inside[away])
    assert abs(int(mask.sum()) - int(inside.sum())) <= 0.05 * inside.sum()
    np.testing.assert_allclose(out["triangle"].depth[mask], 2.0, rtol=2e-3)
    assert (out["triangle"].image[~mask] == 0).all()

    # the cube's silhouette is its front face: 1 m at 3 m -> 40 px square around the centre
    half = 0.5 * INTR.fx / 3.0
    ys, xs = np.mgrid[0:H, 0:W]
    dx, dy = np.abs(xs - INTR.cx), np.abs(ys - INTR.cy)
    square = (dx < half) & (dy < half)
    away = (np.abs(dx - half) > 0.75) | (np.abs(dy - half) > 0.75)
    assert np.array_equal(out["cube"].mask[away], square[away])
    np.testing.assert_allclose(out["cube"].depth[square & away], 3.0, rtol=2e-3)

    # occlusion: the nearer (blue) square wins where both cover, whatever the order
    for name in ("near_last", "near_first"):
        img, depth = out[name].image, out[name].depth
        overlap = (slice(26, 46), slice(42, 56))
        assert (img[overlap][..., 2] > 100).all() and (img[overlap][..., 0] < 30).all(), name
        np.testing.assert_allclose(depth[overlap], 2.0, rtol=2e-3)
        far_only = (slice(26, 46), slice(24, 32))
        assert (img[far_only][..., 0] > 100).all() and (img[far_only][..., 2] < 30).all(), name
        np.testing.assert_allclose(depth[far_only], 5.0, rtol=2e-3)


def test_software_rasterizer_coverage_depth_occlusion():
    backend, out = _render_all("software")
    assert backend == "software"
    _check(out)


_GL_SCRIPT = r"""
import json, sys, numpy as np
sys.path.insert(0, sys.argv[2])
import test_render as t
backend, out = t._render_all(sys.argv[1])
t._check(out)
print(json.dumps({"backend": backend, "pixels": int(out["triangle"].mask.sum())}))
"""


@pytest.mark.parametrize("backend", ["osmesa", "egl"])
def test_opengl_backend_coverage_depth_occlusion(backend, tmp_path):
    if not render._gl_library_loadable(backend):
        pytest.skip(f"lib{render._GL_LIBRARY[backend]} is not installed here")
    pytest.importorskip("pyrender")
    import os
    test_dir = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, POSE2MESH_RENDERER="auto")
    env.pop("PYOPENGL_PLATFORM", None)
    res = subprocess.run([sys.executable, "-c", _GL_SCRIPT, backend, test_dir], capture_output=True, text=True,
                         env=env, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    info = json.loads(res.stdout.strip().splitlines()[-1])
    assert info["backend"] == backend


def _ray_cast(verts, faces, width, height):
    """Exact nearest hit depth along each pixel-centre ray (Moller-Trumbore, brute force); 0 = miss."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    d = np.stack([(xs - INTR.cx) / INTR.fx, (ys - INTR.cy) / INTR.fy, np.ones_like(xs)], -1).reshape(-1, 1, 3)
    v0, v1, v2 = (verts[faces[:, k]][None] for k in range(3))
    e1, e2 = v1 - v0, v2 - v0
    p = np.cross(d, e2)
    det = (e1 * p).sum(-1)
    ok = np.abs(det) > 1e-12
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    s = -v0
    u = (s * p).sum(-1) * inv
    q = np.cross(s, e1)
    v = (d * q).sum(-1) * inv
    t = (e2 * q).sum(-1) * inv  # the ray is t * d with d_z = 1, so t is the depth
    hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0)
    t = np.where(hit, t, np.inf).min(1)
    return np.where(np.isfinite(t), t, 0.0).reshape(height, width)


def test_software_rasterizer_matches_exact_ray_casting():
    """On a closed, body-sized mesh the fallback's coverage and depth equal exact ray casting."""
    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.4)
    verts = np.asarray(sphere.vertices) + [0.1, -0.05, 3.0]
    faces = np.asarray(sphere.faces)
    face_index, depth = rasterize(verts, faces, INTR, W, H)
    exact = _ray_cast(verts, faces, W, H)
    hit, ref = face_index >= 0, exact > 0
    assert (hit != ref).sum() <= 0.01 * ref.sum()
    both = hit & ref
    np.testing.assert_allclose(depth[both], exact[both], rtol=1e-9)


def test_auto_falls_back_to_software_with_one_log_line(monkeypatch, caplog):
    monkeypatch.delenv("POSE2MESH_RENDERER", raising=False)
    monkeypatch.setattr(render, "_gl_library_loadable", lambda backend: False)
    with caplog.at_level(logging.INFO, logger="pose2mesh.render"):
        r = MeshRenderer(W, H)
    assert r.backend == "software"
    assert [rec.message for rec in caplog.records if rec.message.startswith("renderer:")] == [
        "renderer: numpy software rasterizer (z-buffer, flat shading)"]


def test_auto_falls_back_when_an_opengl_context_fails(monkeypatch, caplog):
    monkeypatch.delenv("POSE2MESH_RENDERER", raising=False)
    monkeypatch.setattr(render, "available_backends", lambda: ["osmesa", "software"])

    class Broken:
        def __init__(self, *a, **k):
            raise RuntimeError("no context")

    monkeypatch.setattr(render, "_PyrenderBackend", Broken)
    with caplog.at_level(logging.INFO, logger="pose2mesh.render"):
        r = MeshRenderer(W, H)
    assert r.backend == "software"
    assert any("no context" in rec.message for rec in caplog.records)


def test_explicit_backend_errors(monkeypatch):
    monkeypatch.setattr(render, "_gl_library_loadable", lambda backend: False)
    with pytest.raises(RenderError, match="not available"):
        MeshRenderer(W, H, backend="osmesa")
    with pytest.raises(RenderError, match="unknown renderer"):
        MeshRenderer(W, H, backend="vulkan")
    monkeypatch.setenv("POSE2MESH_RENDERER", "software")
    assert MeshRenderer(W, H).backend == "software"


def test_background_kept_and_empty_scene():
    bg = np.random.default_rng(0).integers(0, 255, size=(H, W, 3), dtype=np.uint8)
    r = MeshRenderer(backend="software")
    res = r.render([], INTR, background=bg)
    assert np.array_equal(res.image, bg) and not res.mask.any()
    res = r.render(_scenes()["triangle"], INTR, background=bg)
    assert np.array_equal(res.image[~res.mask], bg[~res.mask])
    assert res.mask.any()
    # a mesh behind the camera is not drawn
    behind = RenderMesh(_unproject(TRIANGLE_UV, 2.0) * [1, 1, -1], np.array([[0, 1, 2]]))
    assert not r.render([behind], INTR, size=(W, H)).mask.any()
