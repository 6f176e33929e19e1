"""Offscreen mesh rendering over an image, headless: pyrender (OSMesa or EGL) or numpy.

Every mesh is given in one camera frame, OpenCV convention (x right, y down, z forward, metres),
and seen by one pinhole camera (focal lengths and principal point in pixels, pixel centres at
integer coordinates as in OpenCV). All meshes of a call are drawn into one depth buffer, so
people occlude each other correctly.

Backends, chosen once per renderer (:func:`select_backend`):

- ``osmesa``: pyrender with ``PYOPENGL_PLATFORM=osmesa`` (Debian ``libosmesa6``), CPU only;
- ``egl``: pyrender with ``PYOPENGL_PLATFORM=egl`` (a GPU's EGL, or Mesa's llvmpipe through
  ``libegl1`` + ``libgl1-mesa-dri``);
- ``software``: a vectorised numpy rasterizer with a z-buffer and flat Lambert shading, always
  available.

``auto`` (the default) takes the first that works in that order (EGL first when the user set
``PYOPENGL_PLATFORM=egl``), with one log line saying which; ``POSE2MESH_RENDERER`` overrides the
choice. PyOpenGL binds its platform when it is first
imported, so one process uses one OpenGL platform; an explicitly requested backend that cannot
work raises :class:`RenderError`.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .errors import Pose2MeshError

__all__ = ["RenderError", "RenderMesh", "Intrinsics", "RenderResult", "MeshRenderer",
           "select_backend", "available_backends", "rasterize", "BACKENDS"]

log = logging.getLogger(__name__)

BACKENDS = ("osmesa", "egl", "software")
_GL_LIBRARY = {"osmesa": "OSMesa", "egl": "EGL"}

# lighting shared by both backends (camera frame, OpenCV axes): an ambient term, a head light
# and a light from the upper left, so that the flat-shaded faces read as a surface. Shading
# happens in linear colour and is gamma-encoded for display (pyrender's shader does so; the
# numpy rasterizer does the same, so the backends look alike).
_AMBIENT = 0.15
_LIGHTS = (  # (direction the light travels, intensity)
    ((0.0, 0.0, 1.0), 0.55),
    ((0.5, 0.7, 0.6), 0.45),
)
_GAMMA = 2.2


class RenderError(Pose2MeshError, RuntimeError):
    """A requested rendering backend that cannot work here."""


@dataclass
class RenderMesh:
    """One mesh to draw.

    Attributes:
        vertices: ``(V, 3)`` camera-frame coordinates (OpenCV axes), metres.
        faces: ``(F, 3)`` vertex indices.
        color: RGB in [0, 1].
    """

    vertices: np.ndarray
    faces: np.ndarray
    color: Tuple[float, float, float] = (0.8, 0.8, 0.75)


@dataclass(frozen=True)
class Intrinsics:
    """A pinhole camera: ``u = fx * x / z + cx``, ``v = fy * y / z + cy`` (pixels)."""

    fx: float
    fy: float
    cx: float
    cy: float

    def project(self, points: np.ndarray) -> np.ndarray:
        """``(..., 3)`` camera-frame points -> ``(..., 2)`` pixels."""
        p = np.asarray(points, dtype=np.float64)
        return np.stack([self.fx * p[..., 0] / p[..., 2] + self.cx,
                         self.fy * p[..., 1] / p[..., 2] + self.cy], axis=-1)


@dataclass
class RenderResult:
    """``image``: ``(H, W, 3)`` uint8 RGB, the meshes over the background; ``depth``: ``(H, W)``
    float32 metres along z, 0 where no mesh is; ``mask``: ``(H, W)`` bool, where a mesh is."""

    image: np.ndarray
    depth: np.ndarray
    mask: np.ndarray


# ----------------------------------------------------------------------------------------------
# backend choice

def _gl_library_loadable(backend: str) -> bool:
    path = ctypes.util.find_library(_GL_LIBRARY[backend])
    if path is None:
        return False
    try:
        ctypes.CDLL(path)
    except OSError:
        return False
    return True


def _bound_gl_platform() -> Optional[str]:
    """The platform PyOpenGL is already bound to in this process, if it has been imported."""
    if "OpenGL.platform" not in sys.modules:
        return None
    return os.environ.get("PYOPENGL_PLATFORM", "").lower() or "default"


def available_backends() -> List[str]:
    """Backends whose libraries load here (a GL one may still fail to create a context)."""
    names = []
    try:
        import importlib.util
        has_pyrender = importlib.util.find_spec("pyrender") is not None
    except (ImportError, ValueError):
        has_pyrender = False
    bound = _bound_gl_platform()
    order = ("osmesa", "egl")
    if os.environ.get("PYOPENGL_PLATFORM", "").lower() == "egl":  # the user's own choice goes first
        order = ("egl", "osmesa")
    for backend in order:
        if has_pyrender and _gl_library_loadable(backend) and bound in (None, backend):
            names.append(backend)
    names.append("software")
    return names


def select_backend(requested: Optional[str] = None) -> List[str]:
    """The backends to try, in order, for ``requested`` (``auto``/None, or one of BACKENDS).

    ``POSE2MESH_RENDERER`` replaces ``auto``. An explicit request that cannot load raises.
    """
    requested = (requested or os.environ.get("POSE2MESH_RENDERER") or "auto").lower()
    if requested == "auto":
        return available_backends()
    if requested not in BACKENDS:
        raise RenderError(f"unknown renderer {requested!r} (expected auto, {', '.join(BACKENDS)})")
    if requested != "software" and requested not in available_backends():
        bound = _bound_gl_platform()
        why = (f"PyOpenGL is already bound to the {bound} platform in this process" if bound not in (None, requested)
               else f"pyrender or lib{_GL_LIBRARY[requested]} cannot be loaded "
                    f"(Debian: apt-get install {'libosmesa6' if requested == 'osmesa' else 'libegl1 libgl1-mesa-dri'})")
        raise RenderError(f"renderer {requested!r} is not available: {why}")
    return [requested]


# ----------------------------------------------------------------------------------------------
# the numpy rasterizer

def rasterize(vertices: np.ndarray, faces: np.ndarray, intrinsics: Intrinsics, width: int, height: int,
              znear: float = 1e-3, chunk: int = 1 << 21) -> Tuple[np.ndarray, np.ndarray]:
    """Z-buffered triangle coverage at pixel centres.

    A pixel is covered by a triangle when its centre lies inside or on the projected triangle;
    the nearest covering triangle wins (depth interpolated perspective-correctly as ``1/z``).
    Triangles with a vertex at ``z <= znear`` are skipped.

    Args:
        vertices: ``(V, 3)`` camera-frame points (OpenCV axes).
        faces: ``(F, 3)`` vertex indices.
        chunk: the most candidate pixels evaluated at once (memory bound).

    Returns:
        ``face_index`` ``(H, W)`` int64 (-1 where empty) and ``depth`` ``(H, W)`` float64 (0 where
        empty).
    """
    verts = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    face_index = np.full(height * width, -1, dtype=np.int64)
    depth = np.zeros(height * width, dtype=np.float64)
    if len(faces) == 0:
        return face_index.reshape(height, width), depth.reshape(height, width)

    tri_z = verts[faces, 2]  # F x 3
    keep = (tri_z > znear).all(1)
    safe_z = np.where(tri_z > znear, tri_z, 1.0)
    tri = verts[faces]  # F x 3 x 3
    u = intrinsics.fx * tri[..., 0] / safe_z + intrinsics.cx  # F x 3
    v = intrinsics.fy * tri[..., 1] / safe_z + intrinsics.cy
    x_lo = np.clip(np.ceil(u.min(1)), 0, width).astype(np.int64)
    x_hi = np.clip(np.floor(u.max(1)), -1, width - 1).astype(np.int64)
    y_lo = np.clip(np.ceil(v.min(1)), 0, height).astype(np.int64)
    y_hi = np.clip(np.floor(v.max(1)), -1, height - 1).astype(np.int64)
    area = (u[:, 1] - u[:, 0]) * (v[:, 2] - v[:, 0]) - (u[:, 2] - u[:, 0]) * (v[:, 1] - v[:, 0])
    keep &= (x_hi >= x_lo) & (y_hi >= y_lo) & (np.abs(area) > 1e-12)
    idx = np.flatnonzero(keep)
    if len(idx) == 0:
        return face_index.reshape(height, width), depth.reshape(height, width)

    u, v, area, inv_z = u[idx], v[idx], area[idx], 1.0 / tri_z[idx]
    x_lo, x_hi, y_lo, y_hi = x_lo[idx], x_hi[idx], y_lo[idx], y_hi[idx]
    # barycentrics l1, l2 and 1/z as affine functions A x + B y + C of the pixel position
    du1, dv1 = u[:, 1] - u[:, 0], v[:, 1] - v[:, 0]
    du2, dv2 = u[:, 2] - u[:, 0], v[:, 2] - v[:, 0]
    A1, B1 = dv2 / area, -du2 / area
    A2, B2 = -dv1 / area, du1 / area
    C1 = -(A1 * u[:, 0] + B1 * v[:, 0])
    C2 = -(A2 * u[:, 0] + B2 * v[:, 0])
    dz1, dz2 = inv_z[:, 1] - inv_z[:, 0], inv_z[:, 2] - inv_z[:, 0]

    # bucket triangles by the power-of-two size of their pixel box: one dense grid per bucket
    bw = np.maximum(x_hi - x_lo + 1, 1)
    bh = np.maximum(y_hi - y_lo + 1, 1)
    kx = np.ceil(np.log2(bw)).astype(np.int64)
    ky = np.ceil(np.log2(bh)).astype(np.int64)
    key = kx * 64 + ky
    cand_pix, cand_invz, cand_face = [], [], []
    for k in np.unique(key):
        members = np.flatnonzero(key == k)
        sx, sy = 1 << int(k // 64), 1 << int(k % 64)
        ox = np.arange(sx)[None, None, :]
        oy = np.arange(sy)[None, :, None]
        step = max(1, chunk // (sx * sy))
        for start in range(0, len(members), step):
            m = members[start:start + step]
            px = x_lo[m][:, None, None] + ox  # n x 1 x sx
            py = y_lo[m][:, None, None] + oy  # n x sy x 1
            l1 = A1[m][:, None, None] * px + B1[m][:, None, None] * py + C1[m][:, None, None]
            l2 = A2[m][:, None, None] * px + B2[m][:, None, None] * py + C2[m][:, None, None]
            eps = -1e-9
            inside = (l1 >= eps) & (l2 >= eps) & (1.0 - l1 - l2 >= eps)
            inside &= (px <= x_hi[m][:, None, None]) & (py <= y_hi[m][:, None, None])
            n_i, y_i, x_i = np.nonzero(inside)
            if len(n_i) == 0:
                continue
            l1v, l2v = l1[n_i, y_i, x_i], l2[n_i, y_i, x_i]
            f = m[n_i]
            cand_invz.append(inv_z[f, 0] + dz1[f] * l1v + dz2[f] * l2v)
            cand_pix.append((y_lo[f] + y_i) * width + (x_lo[f] + x_i))
            cand_face.append(idx[f])
    if not cand_pix:
        return face_index.reshape(height, width), depth.reshape(height, width)
    pix = np.concatenate(cand_pix)
    invz = np.concatenate(cand_invz)
    faces = np.concatenate(cand_face)
    # per pixel, the candidate with the largest 1/z (the nearest) wins
    order = np.lexsort((-invz, pix))
    pix_sorted = pix[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = pix_sorted[1:] != pix_sorted[:-1]
    win = order[first]
    face_index[pix[win]] = faces[win]
    depth[pix[win]] = 1.0 / invz[win]
    return face_index.reshape(height, width), depth.reshape(height, width)


def _face_shading(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """``(F,)`` Lambert irradiance of each face (flat, two-sided; linear units, camera lights)."""
    tri = vertices[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    # two-sided: the normal that faces the camera (at the origin)
    n *= np.where((n * tri.mean(1)).sum(1, keepdims=True) > 0, -1.0, 1.0)
    shade = np.full(len(faces), _AMBIENT)
    for direction, intensity in _LIGHTS:
        d = np.asarray(direction, dtype=np.float64)
        d /= np.linalg.norm(d)
        shade += intensity * np.clip(-(n @ d), 0.0, None)
    return shade


def _render_software(meshes: Sequence[RenderMesh], intr: Intrinsics, width: int, height: int,
                     ) -> Tuple[np.ndarray, np.ndarray]:
    verts = np.concatenate([np.asarray(m.vertices, dtype=np.float64) for m in meshes])
    offsets = np.cumsum([0] + [len(m.vertices) for m in meshes])[:-1]
    faces = np.concatenate([np.asarray(m.faces, dtype=np.int64) + o for m, o in zip(meshes, offsets)])
    face_color = np.concatenate([np.tile(np.asarray(m.color, dtype=np.float64)[:3], (len(m.faces), 1))
                                 for m in meshes])
    face_rgb = (face_color ** _GAMMA * _face_shading(verts, faces)[:, None]) ** (1.0 / _GAMMA)
    face_index, depth = rasterize(verts, faces, intr, width, height)
    color = np.zeros((height, width, 3), dtype=np.float64)
    hit = face_index >= 0
    color[hit] = face_rgb[face_index[hit]]
    return (np.clip(color, 0, 1) * 255 + 0.5).astype(np.uint8), depth.astype(np.float32)


# ----------------------------------------------------------------------------------------------
# pyrender

class _PyrenderBackend:
    """pyrender's offscreen renderer; the OpenGL platform is set before pyrender is imported."""

    def __init__(self, platform: str, width: int, height: int):
        bound = _bound_gl_platform()
        if bound is None:
            os.environ["PYOPENGL_PLATFORM"] = platform
        elif bound != platform:
            raise RenderError(f"PyOpenGL is already bound to the {bound} platform in this process")
        logging.getLogger("OpenGL").setLevel(logging.WARNING)  # PyOpenGL's own notices are noise here
        import pyrender  # imported here, after the platform is chosen

        self._pyrender = pyrender
        self._renderer = pyrender.OffscreenRenderer(viewport_width=width, viewport_height=height)

    def render(self, meshes: Sequence[RenderMesh], intr: Intrinsics, width: int, height: int,
               ) -> Tuple[np.ndarray, np.ndarray]:
        pyrender = self._pyrender
        import trimesh

        scene = pyrender.Scene(bg_color=[0.0, 0.0, 0.0, 0.0], ambient_light=[_AMBIENT] * 3)
        gl_axes = np.array([1.0, -1.0, -1.0])  # OpenCV camera axes -> OpenGL camera axes
        z_all = []
        for m in meshes:
            verts = np.asarray(m.vertices, dtype=np.float64)
            z_all.append(verts[:, 2])
            tm = trimesh.Trimesh(vertices=verts * gl_axes, faces=np.asarray(m.faces), process=False)
            material = pyrender.MetallicRoughnessMaterial(
                metallicFactor=0.0, roughnessFactor=1.0, alphaMode="OPAQUE", doubleSided=True,
                baseColorFactor=(*[float(c) ** _GAMMA for c in m.color[:3]], 1.0))
            scene.add(pyrender.Mesh.from_trimesh(tm, material=material, smooth=False))
        z = np.concatenate(z_all)
        z_front = z[z > 0]
        znear = max(float(z_front.min()) * 0.5, 1e-3) if len(z_front) else 1e-3
        zfar = max(float(z.max()) * 2.0, znear * 10.0)
        # pixel centres: OpenCV puts them at integers, OpenGL at half-integers
        camera = pyrender.IntrinsicsCamera(fx=intr.fx, fy=intr.fy, cx=intr.cx + 0.5, cy=intr.cy + 0.5,
                                           znear=znear, zfar=zfar)
        scene.add(camera, pose=np.eye(4))
        for direction, intensity in _LIGHTS:
            d = np.asarray(direction, dtype=np.float64) * gl_axes
            d /= np.linalg.norm(d)
            scene.add(pyrender.DirectionalLight(color=np.ones(3), intensity=intensity * np.pi),
                      pose=_look_along(d))
        self._renderer.viewport_width = width
        self._renderer.viewport_height = height
        color, depth = self._renderer.render(scene)
        return np.ascontiguousarray(color[..., :3]), depth.astype(np.float32)

    def close(self) -> None:
        self._renderer.delete()


def _look_along(direction: np.ndarray) -> np.ndarray:
    """A pose whose -z axis points along ``direction`` (pyrender's lights shine along -z)."""
    z = -direction / np.linalg.norm(direction)
    helper = np.array([0.0, 1.0, 0.0]) if abs(z[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2] = x, y, z
    return pose


# ----------------------------------------------------------------------------------------------

class MeshRenderer:
    """Draw meshes over an image with one pinhole camera and one z-buffer.

    Args:
        width, height: the first image size (each call may use another).
        backend: ``auto`` (default; ``POSE2MESH_RENDERER`` when set), ``osmesa``, ``egl`` or
            ``software``.

    Attributes:
        backend: the backend in use.
    """

    def __init__(self, width: int = 640, height: int = 480, backend: Optional[str] = None):
        self._gl = None
        errors = []
        for name in select_backend(backend):
            if name == "software":
                self.backend = "software"
                break
            try:
                self._gl = _PyrenderBackend(name, width, height)
                self.backend = name
                break
            except Exception as err:  # an OpenGL context that cannot be created: try the next
                errors.append(f"{name}: {type(err).__name__}: {err}")
                if backend not in (None, "auto") or os.environ.get("POSE2MESH_RENDERER", "auto") != "auto":
                    raise RenderError(f"renderer {name!r} failed to start: {err}") from err
        if errors:
            log.info("OpenGL rendering unavailable (%s)", "; ".join(errors))
        log.info("renderer: %s", self.describe())

    def describe(self) -> str:
        if self.backend == "software":
            return "numpy software rasterizer (z-buffer, flat shading)"
        return f"pyrender offscreen, PYOPENGL_PLATFORM={self.backend}"

    def render(self, meshes: Sequence[RenderMesh], intrinsics: Intrinsics,
               background: Optional[np.ndarray] = None, size: Optional[Tuple[int, int]] = None,
               ) -> RenderResult:
        """Render ``meshes`` (one z-buffer) over ``background``.

        Args:
            meshes: the meshes, in the camera frame.
            intrinsics: the camera.
            background: ``(H, W, 3)`` uint8 RGB image; black when None (then ``size`` is needed).
            size: ``(width, height)`` when there is no background.
        """
        if background is None:
            if size is None:
                raise ValueError("MeshRenderer.render needs a background image or a size")
            width, height = int(size[0]), int(size[1])
            background = np.zeros((height, width, 3), dtype=np.uint8)
        else:
            background = np.asarray(background)
            height, width = background.shape[:2]
        meshes = [m for m in meshes if len(m.faces)]
        if not meshes:
            return RenderResult(background.copy(), np.zeros((height, width), np.float32),
                                np.zeros((height, width), bool))
        if self._gl is not None:
            color, depth = self._gl.render(meshes, intrinsics, width, height)
        else:
            color, depth = _render_software(meshes, intrinsics, width, height)
        mask = depth > 0
        image = np.where(mask[..., None], color, background[..., :3]).astype(np.uint8)
        return RenderResult(image, depth, mask)

    def close(self) -> None:
        if self._gl is not None:
            self._gl.close()
            self._gl = None

    def __enter__(self) -> "MeshRenderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def render_mesh_pair(pred: np.ndarray, target: np.ndarray, faces: np.ndarray, size: int = 256,
                     backend: Optional[str] = None) -> np.ndarray:
    """A preview for TensorBoard: the predicted mesh (left) beside its target (right).

    Args:
        pred, target: ``(V, 3)`` root-relative meshes in metres, camera frame (y down, z forward).
        faces: ``(F, 3)`` vertex indices.
    Returns:
        ``(size, 2 * size, 3)`` uint8 RGB image.
    """
    extent = float(max(np.ptp(target[:, 0]), np.ptp(target[:, 1]), 1e-3))
    depth = 2.5 * extent + 0.5
    focal = 0.8 * size * depth / extent
    intr = Intrinsics(focal, focal, size / 2, size / 2)
    centre = target.mean(axis=0)
    shift = np.array([-centre[0], -centre[1], depth - centre[2]])
    with MeshRenderer(size, size, backend=backend) as renderer:
        tiles = [renderer.render([RenderMesh(m + shift, faces, color)], intr,
                                 background=np.full((size, size, 3), 255, np.uint8)).image
                 for m, color in ((pred, (0.55, 0.7, 0.95)), (target, (0.7, 0.85, 0.6)))]
    return np.concatenate(tiles, axis=1)
