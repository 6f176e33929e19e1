"""Write fitted SMPL / MANO parameters for other tools: parameter ``.npz``, BVH motion, skinned glTF.

All three take a :class:`pose2mesh.fitting.FitResult`; for BVH and glTF its batch is a sequence
of frames (B = T). Meshes as OBJ: :func:`pose2mesh.vis.save_obj`.

- :func:`save_params_npz`: ``pose``, ``shape``, ``trans`` plus the same values under smplx's
  names (``global_orient``, ``body_pose`` / ``hand_pose``, ``betas``, ``transl``), so
  ``smplx.SMPL(...)(**{k: torch.tensor(v) for k, v in npz.items() if k in names})`` works
  (MANO: ``smplx.MANO(..., flat_hand_mean=False, use_pca=False)``, whose hand pose is relative
  to the mean pose, as ours).
- :func:`write_bvh`: one skeleton (the rest joints at the sequence's mean fitted shape, in metres
  times ``scale``) and per frame the root position and every joint's local rotation (Euler ZYX
  channels, degrees). Y is up, as in SMPL and as Blender's BVH importer expects.
- :func:`write_glb`: a skinned, animated glTF 2.0 binary: the rest mesh at the mean shape, one
  node per joint, top-4 skinning weights per vertex (renormalized), inverse bind matrices, and
  one keyframe per frame (a rotation per joint, the root's translation). glTF skinning is plain
  linear blend skinning: SMPL's pose blendshapes are not in the file, so a posed glTF differs
  from the fitted mesh by them (a few mm for the official SMPL at large joint angles; nothing for
  the synthetic body, whose pose blendshapes are zero) and by the dropped small weights.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from .errors import Pose2MeshError
from .fitting import FitResult
from .joints import JOINT_SETS, MANO_ORIGINAL_JOINT_NAMES

__all__ = ["ExportError", "save_params_npz", "write_bvh", "read_bvh", "write_glb", "pose_glb", "skeleton",
           "local_rotations", "joint_names"]


class ExportError(Pose2MeshError, ValueError):
    """The fit cannot be written as asked (wrong kind, empty sequence, bad frame rate)."""


def _np(t) -> np.ndarray:
    return t.detach().cpu().double().numpy() if isinstance(t, torch.Tensor) else np.asarray(t, dtype=np.float64)


def _check(fits: FitResult, body_model=None, fps: Optional[float] = None) -> str:
    if not isinstance(fits, FitResult):
        raise ExportError(f"expected a pose2mesh.fitting.FitResult, got {type(fits).__name__}")
    if len(fits) == 0:
        raise ExportError("nothing to write: the fit holds no frames")
    if body_model is not None and getattr(body_model, "name", None) != fits.kind:
        raise ExportError(f"a {fits.kind.upper()} fit cannot be written with a "
                          f"{getattr(body_model, 'name', type(body_model).__name__)!s} body model")
    if fps is not None and not (np.isfinite(fps) and fps > 0):
        raise ExportError(f"frame rate must be a positive number, got {fps}")
    return fits.kind


def _layer(body_model, gender: str):
    return body_model.layer[gender] if body_model.name == "smpl" else body_model.layer


def _pose_offset(body_model, num_joints: int) -> np.ndarray:
    """(J, 3) what the wrapper adds to the axis-angle pose: MANO's hand mean, else zeros."""
    offset = np.zeros((num_joints, 3))
    if body_model.name == "mano":
        offset[1:] = _np(body_model.layer.th_hands_mean).reshape(-1, 3)
    return offset


def joint_names(body_model) -> Tuple[str, ...]:
    """The kinematic joints' names in the model's order (SMPL 24, MANO 16)."""
    return JOINT_SETS["smpl"].names if body_model.name == "smpl" else MANO_ORIGINAL_JOINT_NAMES


def skeleton(fits: FitResult, body_model) -> Tuple[np.ndarray, np.ndarray, List[int]]:
    """The rest mesh and joints at the mean fitted shape, without pose (MANO: the flat hand).

    Returns:
        rest vertices (V, 3), rest joints (J, 3) in metres, parents (J,) with -1 for the root.
    """
    layer = _layer(body_model, fits.gender)
    betas = _np(fits.shape).mean(axis=0)
    shapedirs = _np(layer.th_shapedirs)[..., :betas.shape[0]]
    verts = _np(layer.th_v_template)[0] + shapedirs @ betas
    joints = _np(layer.th_J_regressor) @ verts
    return verts, joints, list(layer.kintree_parents)


def local_rotations(fits: FitResult, body_model) -> np.ndarray:
    """(T, J, 3, 3) each joint's rotation relative to its parent (the root's: global)."""
    pose = _np(fits.pose).reshape(len(fits), -1, 3)
    aa = pose + _pose_offset(body_model, pose.shape[1])
    return Rotation.from_rotvec(aa.reshape(-1, 3)).as_matrix().reshape(*aa.shape[:2], 3, 3)


# --------------------------------------------------------------------------------------------
# parameters
# --------------------------------------------------------------------------------------------

def save_params_npz(path: os.PathLike, fit: FitResult, kind: Optional[str] = None) -> Path:
    """Write the fitted parameters as ``.npz`` (float32 arrays, first axis = batch / frame).

    Keys: ``pose`` (B, 72 | 48), ``shape`` (B, 10), ``trans`` (B, 3), ``vertices``, ``joints``,
    ``kind``, ``gender``, and smplx's ``global_orient`` (B, 3), ``body_pose`` (B, 69) for SMPL
    or ``hand_pose`` (B, 45) for MANO, ``betas`` (B, 10), ``transl`` (B, 3).
    """
    kind = kind or _check(fit)
    _check(fit)
    if kind != fit.kind:
        raise ExportError(f"the fit is {fit.kind.upper()}, not {kind.upper()}")
    pose, shape, trans = (_np(t).astype(np.float32) for t in (fit.pose, fit.shape, fit.trans))
    arrays = dict(pose=pose, shape=shape, trans=trans, vertices=_np(fit.vertices).astype(np.float32),
                  joints=_np(fit.joints).astype(np.float32), kind=np.array(kind), gender=np.array(fit.gender),
                  global_orient=pose[:, :3], betas=shape, transl=trans)
    arrays["body_pose" if kind == "smpl" else "hand_pose"] = pose[:, 3:]
    path = Path(path)
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


# --------------------------------------------------------------------------------------------
# BVH
# --------------------------------------------------------------------------------------------

_EULER = "ZYX"  # intrinsic: R = Rz @ Ry @ Rx, written as "Zrotation Yrotation Xrotation"


def write_bvh(path: os.PathLike, fits: FitResult, body_model, fps: float = 30.0, scale: float = 1.0) -> Path:
    """Write a fitted sequence (B = T frames) as BVH motion.

    The skeleton is the rest pose at the mean fitted shape (offsets in metres times ``scale``;
    100 gives centimetres). The root has 6 channels (its posed position, then rotation), every
    other joint 3 (rotation relative to its parent), Euler ZYX in degrees. Leaf joints end in an
    ``End Site`` half their bone long.
    """
    _check(fits, body_model, fps)
    _, rest, parents = skeleton(fits, body_model)
    names = joint_names(body_model)
    children = {k: [c for c in range(len(parents)) if parents[c] == k] for k in range(len(parents))}
    lines = ["HIERARCHY"]
    order: List[int] = []

    def emit(k: int, depth: int) -> None:
        pad = "  " * depth
        order.append(k)
        offset = np.zeros(3) if parents[k] < 0 else (rest[k] - rest[parents[k]]) * scale
        lines.append(f"{pad}{'ROOT' if parents[k] < 0 else 'JOINT'} {names[k]}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}  OFFSET {offset[0]:.6f} {offset[1]:.6f} {offset[2]:.6f}")
        if parents[k] < 0:
            lines.append(f"{pad}  CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation")
        else:
            lines.append(f"{pad}  CHANNELS 3 Zrotation Yrotation Xrotation")
        for c in children[k]:
            emit(c, depth + 1)
        if not children[k]:
            tip = offset * 0.5 if parents[k] >= 0 else np.array([0.0, 0.1 * scale, 0.0])
            lines.append(f"{pad}  End Site")
            lines.append(f"{pad}  {{")
            lines.append(f"{pad}    OFFSET {tip[0]:.6f} {tip[1]:.6f} {tip[2]:.6f}")
            lines.append(f"{pad}  }}")
        lines.append(f"{pad}}}")

    emit(parents.index(-1), 0)
    local = local_rotations(fits, body_model)                                  # T x J x 3 x 3
    euler = Rotation.from_matrix(local[:, order].reshape(-1, 3, 3)).as_euler(_EULER, degrees=True)
    euler = euler.reshape(len(fits), -1)
    root_pos = _np(fits.joints)[:, parents.index(-1)] * scale
    motion = np.concatenate([root_pos, euler], axis=1)
    lines += ["MOTION", f"Frames: {len(fits)}", f"Frame Time: {1.0 / fps:.8f}"]
    lines += [" ".join(f"{x:.6f}" for x in row) for row in motion]
    path = Path(path)
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    return path


def read_bvh(path: os.PathLike) -> Tuple[List[str], List[int], np.ndarray, np.ndarray, float]:
    """Read back a BVH written by :func:`write_bvh` (or any BVH with these channel layouts:
    root 6 channels X/Y/Z position then Z/Y/X rotation, joints 3 Z/Y/X rotation).

    Returns:
        names, parents (-1 for the root), offsets (J, 3), joint positions by forward kinematics
        (T, J, 3), frame time.
    """
    tokens = Path(path).read_text(encoding="ascii").split()
    names: List[str] = []
    parents: List[int] = []
    offsets: List[List[float]] = []
    stack: List[int] = []
    i = 0
    in_end = False
    while tokens[i] != "MOTION":
        tok = tokens[i]
        if tok in ("ROOT", "JOINT"):
            names.append(tokens[i + 1])
            parents.append(stack[-1] if stack else -1)
            i += 2
        elif tok == "End":
            in_end = True
            i += 2
        elif tok == "{":
            stack.append(-2 if in_end else len(names) - 1)
            i += 1
        elif tok == "}":
            if stack.pop() == -2:
                in_end = False
            i += 1
        elif tok == "OFFSET":
            if not in_end:
                offsets.append([float(x) for x in tokens[i + 1:i + 4]])
            i += 4
        elif tok == "CHANNELS":
            i += 2 + int(tokens[i + 1])
        else:
            i += 1
    frames = int(tokens[i + 2])
    frame_time = float(tokens[i + 5])
    values = np.array([float(x) for x in tokens[i + 6:]], dtype=np.float64).reshape(frames, -1)
    num = len(names)
    off = np.array(offsets)
    rot = Rotation.from_euler(_EULER, values[:, 3:].reshape(-1, 3), degrees=True).as_matrix()
    rot = rot.reshape(frames, num, 3, 3)
    glob = np.zeros((frames, num, 3, 3))
    pos = np.zeros((frames, num, 3))
    for k in range(num):  # file order: parents precede children
        if parents[k] < 0:
            glob[:, k], pos[:, k] = rot[:, k], values[:, :3] + off[k]
        else:
            p = parents[k]
            glob[:, k] = glob[:, p] @ rot[:, k]
            pos[:, k] = pos[:, p] + glob[:, p] @ off[k]
    return names, parents, off, pos, frame_time


# --------------------------------------------------------------------------------------------
# glTF
# --------------------------------------------------------------------------------------------

def _top_weights(weights: np.ndarray, count: int = 4) -> Tuple[np.ndarray, np.ndarray]:
    """The ``count`` largest skinning weights per vertex, renormalized, and their joint ids."""
    ids = np.argsort(-weights, axis=1, kind="stable")[:, :count]
    w = np.take_along_axis(weights, ids, axis=1)
    w = w / w.sum(axis=1, keepdims=True)
    return ids.astype(np.uint16), w.astype(np.float32)


def _vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = verts[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    out = np.zeros_like(verts)
    for c in range(3):
        np.add.at(out, faces[:, c], n)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def write_glb(path: os.PathLike, fits: FitResult, body_model, fps: float = 30.0) -> Path:
    """Write a fitted sequence (B = T frames) as a skinned, animated glTF binary (.glb).

    The mesh is the rest pose at the mean fitted shape; joint nodes carry the rest offsets;
    the animation has one keyframe per frame (linear interpolation): each joint's local rotation
    and the root joint's position (the fitted root joint, translation included).
    """
    import pygltflib as gl

    _check(fits, body_model, fps)
    rest_verts, rest, parents = skeleton(fits, body_model)
    layer = _layer(body_model, fits.gender)
    faces = np.asarray(body_model.face, dtype=np.uint32)
    joint_ids, weights = _top_weights(_np(layer.th_weights))
    num_joints, frames = len(parents), len(fits)
    root = parents.index(-1)
    quats = Rotation.from_matrix(local_rotations(fits, body_model).reshape(-1, 3, 3)).as_quat()
    quats = quats.reshape(frames, num_joints, 4).astype(np.float32)           # x, y, z, w (glTF order)
    root_pos = _np(fits.joints)[:, root].astype(np.float32)
    times = (np.arange(frames) / fps).astype(np.float32)
    inverse_bind = np.tile(np.eye(4, dtype=np.float32), (num_joints, 1, 1))
    inverse_bind[:, :3, 3] = -rest
    inverse_bind = np.ascontiguousarray(inverse_bind.transpose(0, 2, 1))       # column-major

    blob = bytearray()
    views, accessors = [], []

    def add(array: np.ndarray, component: int, kind: str, target: Optional[int] = None, bounds: bool = False) -> int:
        data = np.ascontiguousarray(array).tobytes()
        while len(blob) % 4:
            blob.append(0)
        views.append(gl.BufferView(buffer=0, byteOffset=len(blob), byteLength=len(data), target=target))
        blob.extend(data)
        flat = np.asarray(array).reshape(len(array), -1)
        acc = gl.Accessor(bufferView=len(views) - 1, componentType=component, count=len(array), type=kind)
        if bounds:
            acc.min = flat.min(axis=0).astype(float).tolist()
            acc.max = flat.max(axis=0).astype(float).tolist()
        accessors.append(acc)
        return len(accessors) - 1

    position = add(rest_verts.astype(np.float32), gl.FLOAT, gl.VEC3, gl.ARRAY_BUFFER, bounds=True)
    normal = add(_vertex_normals(rest_verts, faces.astype(np.int64)).astype(np.float32), gl.FLOAT, gl.VEC3,
                 gl.ARRAY_BUFFER)
    joints_acc = add(joint_ids, gl.UNSIGNED_SHORT, gl.VEC4, gl.ARRAY_BUFFER)
    weights_acc = add(weights, gl.FLOAT, gl.VEC4, gl.ARRAY_BUFFER)
    indices = add(faces.reshape(-1), gl.UNSIGNED_INT, gl.SCALAR, gl.ELEMENT_ARRAY_BUFFER, bounds=True)
    ibm = add(inverse_bind.reshape(num_joints, 16), gl.FLOAT, gl.MAT4)
    time_acc = add(times, gl.FLOAT, gl.SCALAR, bounds=True)
    channels, samplers = [], []
    for k in range(num_joints):
        samplers.append(gl.AnimationSampler(input=time_acc, output=add(quats[:, k], gl.FLOAT, gl.VEC4),
                                            interpolation="LINEAR"))
        channels.append(gl.AnimationChannel(sampler=len(samplers) - 1,
                                            target=gl.AnimationChannelTarget(node=k, path="rotation")))
    samplers.append(gl.AnimationSampler(input=time_acc, output=add(root_pos, gl.FLOAT, gl.VEC3),
                                        interpolation="LINEAR"))
    channels.append(gl.AnimationChannel(sampler=len(samplers) - 1,
                                        target=gl.AnimationChannelTarget(node=root, path="translation")))

    names = joint_names(body_model)
    nodes = []
    for k in range(num_joints):
        offset = rest[k] if parents[k] < 0 else rest[k] - rest[parents[k]]
        nodes.append(gl.Node(name=names[k], translation=offset.astype(float).tolist(),
                             rotation=quats[0, k].astype(float).tolist(),
                             children=[c for c in range(num_joints) if parents[c] == k]))
    mesh_node = len(nodes)
    nodes.append(gl.Node(name=f"{body_model.name}_mesh", mesh=0, skin=0))
    primitive = gl.Primitive(attributes=gl.Attributes(POSITION=position, NORMAL=normal, JOINTS_0=joints_acc,
                                                      WEIGHTS_0=weights_acc), indices=indices)
    gltf = gl.GLTF2(
        asset=gl.Asset(generator="pose2mesh.export", version="2.0"),
        scene=0,
        scenes=[gl.Scene(nodes=[root, mesh_node])],
        nodes=nodes,
        meshes=[gl.Mesh(name=body_model.name, primitives=[primitive])],
        skins=[gl.Skin(name="skeleton", joints=list(range(num_joints)), skeleton=root, inverseBindMatrices=ibm)],
        animations=[gl.Animation(name="fit", samplers=samplers, channels=channels)],
        accessors=accessors,
        bufferViews=views,
        buffers=[gl.Buffer(byteLength=len(blob))],
    )
    gltf.set_binary_blob(bytes(blob))
    path = Path(path)
    gltf.save_binary(str(path))
    return path


def pose_glb(path: os.PathLike, frame: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Pose a skinned glTF binary at keyframe ``frame`` with plain linear blend skinning, from the
    file's own data only (node tree, rest offsets, animation, weights, inverse bind matrices).

    A reader's-eye check of :func:`write_glb` and a preview helper. Returns vertices (V, 3) and
    faces (F, 3) of the first skinned mesh.
    """
    import pygltflib as gl

    gltf = gl.GLTF2().load(str(path))
    blob = gltf.binary_blob()
    dtypes = {gl.FLOAT: np.float32, gl.UNSIGNED_SHORT: np.uint16, gl.UNSIGNED_INT: np.uint32,
              gl.UNSIGNED_BYTE: np.uint8}
    widths = {gl.SCALAR: 1, gl.VEC3: 3, gl.VEC4: 4, gl.MAT4: 16}

    def read(index: int) -> np.ndarray:
        acc = gltf.accessors[index]
        view = gltf.bufferViews[acc.bufferView]
        start = (view.byteOffset or 0) + (acc.byteOffset or 0)
        count = acc.count * widths[acc.type]
        return np.frombuffer(blob, dtype=dtypes[acc.componentType], count=count, offset=start).reshape(acc.count, -1)

    mesh_node = next(n for n in gltf.nodes if n.skin is not None)
    skin = gltf.skins[mesh_node.skin]
    prim = gltf.meshes[mesh_node.mesh].primitives[0]
    verts = read(prim.attributes.POSITION).astype(np.float64)
    faces = read(prim.indices).reshape(-1, 3).astype(np.int64)
    joint_ids = read(prim.attributes.JOINTS_0).astype(np.int64)
    weights = read(prim.attributes.WEIGHTS_0).astype(np.float64)
    inverse_bind = read(skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1).astype(np.float64)

    translation = {i: np.array(n.translation or [0, 0, 0], dtype=np.float64) for i, n in enumerate(gltf.nodes)}
    rotation = {i: np.array(n.rotation or [0, 0, 0, 1], dtype=np.float64) for i, n in enumerate(gltf.nodes)}
    for anim in gltf.animations:
        for channel in anim.channels:
            value = read(anim.samplers[channel.sampler].output)[frame].astype(np.float64)
            (rotation if channel.target.path == "rotation" else translation)[channel.target.node] = value
    parent = {c: i for i, n in enumerate(gltf.nodes) for c in (n.children or [])}
    world = {}

    def world_of(i: int) -> np.ndarray:
        if i not in world:
            local = np.eye(4)
            local[:3, :3] = Rotation.from_quat(rotation[i]).as_matrix()
            local[:3, 3] = translation[i]
            world[i] = world_of(parent[i]) @ local if i in parent else local
        return world[i]

    skinning = np.stack([world_of(j) @ inverse_bind[k] for k, j in enumerate(skin.joints)])  # J x 4 x 4
    blended = np.einsum("vk,vkab->vab", weights, skinning[joint_ids])
    posed = np.einsum("vab,vb->va", blended[:, :3, :3], verts) + blended[:, :3, 3]
    return posed, faces
