"""Exporters: parameter npz (ours and smplx's names), BVH and skinned glTF round trips."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from pose2mesh.errors import Pose2MeshError
from pose2mesh.export import (
    ExportError,
    joint_names,
    pose_glb,
    read_bvh,
    save_params_npz,
    skeleton,
    write_bvh,
    write_glb,
)
from pose2mesh.fitting import fit_mano, fit_smpl


def motion(model, joints, frames=4, seed=0):
    """A short motion of one person: poses interpolated between two random ones, one shape."""
    gen = torch.Generator().manual_seed(seed)
    a, b = (torch.randn(1, joints * 3, generator=gen) * 0.5 for _ in range(2))
    t = torch.linspace(0, 1, frames)[:, None]
    pose = (1 - t) * a + t * b
    shape = (torch.rand(1, 10, generator=gen) * 2 - 1).expand(frames, -1)
    trans = torch.stack([t[:, 0] * 0.3, torch.zeros(frames), torch.full((frames,), 2.0)], 1)
    with torch.no_grad():
        verts, _ = model(pose, shape, trans)
    return verts


@pytest.fixture(scope="module")
def smpl_fit(smpl):
    return fit_smpl(motion(smpl, 24), smpl)


@pytest.fixture(scope="module")
def mano_fit(mano):
    return fit_mano(motion(mano, 16, seed=1), mano)


def test_npz_has_our_and_smplx_names(tmp_path, smpl_fit, mano_fit):
    path = save_params_npz(tmp_path / "body.npz", smpl_fit, "smpl")
    data = np.load(path)
    assert np.array_equal(data["pose"], smpl_fit.pose.numpy()) and data["pose"].shape == (4, 72)
    assert np.array_equal(data["global_orient"], data["pose"][:, :3])
    assert np.array_equal(data["body_pose"], data["pose"][:, 3:]) and data["body_pose"].shape == (4, 69)
    assert np.array_equal(data["betas"], data["shape"]) and np.array_equal(data["transl"], data["trans"])
    assert str(data["kind"]) == "smpl"
    hand = np.load(save_params_npz(tmp_path / "hand", mano_fit, "mano"))
    assert hand["hand_pose"].shape == (4, 45) and "body_pose" not in hand
    with pytest.raises(ExportError, match="not SMPL"):
        save_params_npz(tmp_path / "x.npz", mano_fit, "smpl")


def test_npz_loads_into_smplx(tmp_path, smpl, mano, smpl_fit, mano_fit):
    """smplx's own SMPL and MANO, reading the same model files, reproduce the fitted meshes from
    the npz under smplx's argument names."""
    import smplx

    data = np.load(save_params_npz(tmp_path / "body.npz", smpl_fit, "smpl"))
    body = smplx.SMPL(model_path=smpl.layer["neutral"].model_path)
    out = body(**{k: torch.from_numpy(data[k]) for k in ("global_orient", "body_pose", "betas", "transl")})
    assert torch.allclose(out.vertices, smpl_fit.vertices, atol=1e-5)
    data = np.load(save_params_npz(tmp_path / "hand.npz", mano_fit, "mano"))
    hand = smplx.MANO(model_path=mano.layer.mano_path, use_pca=False, flat_hand_mean=False, is_rhand=True)
    out = hand(**{k: torch.from_numpy(data[k]) for k in ("global_orient", "hand_pose", "betas", "transl")})
    assert torch.allclose(out.vertices, mano_fit.vertices, atol=1e-5)


def test_bvh_round_trip_with_an_independent_reader(tmp_path, smpl, smpl_fit):
    import bvh

    path = write_bvh(tmp_path / "motion.bvh", smpl_fit, smpl, fps=25)
    with open(path) as fh:
        parsed = bvh.Bvh(fh.read())
    assert parsed.nframes == 4 and abs(parsed.frame_time - 0.04) < 1e-6
    names = parsed.get_joints_names()
    assert sorted(names) == sorted(joint_names(smpl))
    # forward kinematics from the parsed file (ZYX intrinsic Euler: R = Rz Ry Rx)
    index = {n: i for i, n in enumerate(names)}
    fitted = smpl_fit.joints.numpy()
    order = list(joint_names(smpl))
    for frame in range(parsed.nframes):
        glob, pos = {}, {}
        for name in names:
            if name == names[0]:
                position = np.array(parsed.frame_joint_channels(frame, name, ["Xposition", "Yposition", "Zposition"]))
            angles = parsed.frame_joint_channels(frame, name, ["Zrotation", "Yrotation", "Xrotation"])
            rot = Rotation.from_euler("ZYX", angles, degrees=True).as_matrix()
            offset = np.array(parsed.joint_offset(name))
            parent = parsed.joint_parent(name)
            if parent is None:
                glob[name], pos[name] = rot, position + offset
            else:
                glob[name] = glob[parent.name] @ rot
                pos[name] = pos[parent.name] + glob[parent.name] @ offset
        got = np.stack([pos[n] for n in order])
        assert np.abs(got - fitted[frame]).max() < 1e-3, frame  # within 1 mm of the fitted joints
    assert len(index) == 24
    # our own reader agrees
    names2, parents, _, positions, frame_time = read_bvh(path)
    assert names2 == names and frame_time == pytest.approx(0.04)
    assert np.abs(positions - fitted[:, [order.index(n) for n in names2]]).max() < 1e-3


def test_bvh_hand_and_centimetres(tmp_path, mano, mano_fit):
    path = write_bvh(tmp_path / "hand.bvh", mano_fit, mano, fps=30, scale=100)
    names, parents, offsets, positions, _ = read_bvh(path)
    assert len(names) == 16 and parents[0] == -1
    order = list(joint_names(mano))
    assert np.abs(positions / 100 - mano_fit.joints.numpy()[:, [order.index(n) for n in names]]).max() < 1e-3
    _, rest, _ = skeleton(mano_fit, mano)
    assert np.allclose(np.linalg.norm(offsets[1:], axis=1),
                       np.linalg.norm(rest[[order.index(n) for n in names[1:]]]
                                      - rest[[order.index(names[p]) for p in parents[1:]]], axis=1) * 100, atol=1e-4)


@pytest.mark.parametrize("kind", ["smpl", "mano"])
def test_glb_posed_by_its_own_skin_matches_the_fit(tmp_path, kind, smpl, mano, smpl_fit, mano_fit):
    import pygltflib
    import trimesh

    model, fit = (smpl, smpl_fit) if kind == "smpl" else (mano, mano_fit)
    path = write_glb(tmp_path / "motion.glb", fit, model, fps=30)
    gltf = pygltflib.GLTF2().load(str(path))
    assert len(gltf.skins[0].joints) == (24 if kind == "smpl" else 16)
    assert gltf.accessors[gltf.animations[0].samplers[0].input].count == len(fit)
    assert gltf.accessors[gltf.animations[0].samplers[0].input].max[0] == pytest.approx(3 / 30)
    # an independent reader takes the file and sees the rest mesh
    scene = trimesh.load(path, force="scene")
    assert sum(len(g.vertices) for g in scene.geometry.values()) == model.vertex_num
    # top-4 weights: the LBS with those weights is what the file must give, exactly
    layer = model.layer["neutral"] if kind == "smpl" else model.layer
    weights = layer.th_weights.numpy().astype(np.float64)
    top = np.argsort(-weights, axis=1, kind="stable")[:, :4]
    keep = np.zeros_like(weights)
    np.put_along_axis(keep, top, np.take_along_axis(weights, top, 1), 1)
    keep /= keep.sum(1, keepdims=True)
    rest_verts, rest_joints, parents = skeleton(fit, model)
    for frame in (0, len(fit) - 1):
        posed, faces = pose_glb(path, frame)
        assert faces.shape == model.face.shape
        # glTF has no pose blendshapes and keeps 4 weights per vertex: a few mm on average
        err = np.linalg.norm(posed - fit.vertices[frame].numpy(), axis=1)
        assert err.mean() < 3e-3, err.mean()
        # ... and exactly our LBS at those weights
        pose = fit.pose[frame:frame + 1].double()
        if kind == "mano":
            pose = pose + torch.cat([torch.zeros(1, 3, dtype=torch.float64), layer.th_hands_mean.double()], 1)
        local = Rotation.from_rotvec(pose.reshape(-1, 3).numpy()).as_matrix()
        glob = [None] * len(parents)
        jpos = np.zeros((len(parents), 3))
        for k, p in enumerate(parents):
            if p < 0:
                glob[k], jpos[k] = local[k], fit.joints[frame, 0].numpy()
            else:
                glob[k] = glob[p] @ local[k]
                jpos[k] = jpos[p] + glob[p] @ (rest_joints[k] - rest_joints[p])
        moved = np.stack([(rest_verts - rest_joints[k]) @ glob[k].T + jpos[k] for k in range(len(parents))], 1)
        expected = np.einsum("vk,vkc->vc", keep, moved)
        assert np.abs(posed - expected).max() < 1e-4


def test_export_errors_are_one_line(tmp_path, smpl, mano, smpl_fit):
    cases = [
        (lambda: write_bvh(tmp_path / "a.bvh", smpl_fit, mano), "cannot be written with a mano"),
        (lambda: write_glb(tmp_path / "a.glb", smpl_fit, smpl, fps=0), "frame rate"),
        (lambda: write_glb(tmp_path / "a.glb", smpl_fit.select(slice(0, 0)), smpl), "no frames"),
        (lambda: write_bvh(tmp_path / "a.bvh", "not a fit", smpl), "FitResult"),
    ]
    for call, text in cases:
        with pytest.raises(ExportError) as info:
            call()
        assert text in str(info.value) and "\n" not in str(info.value)
        assert isinstance(info.value, Pose2MeshError)
