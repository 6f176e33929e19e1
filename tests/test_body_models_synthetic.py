"""The synthetic body and hand: topology, sizes, skeleton, skinning, shape space, caching."""
from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pytest
import torch

from pose2mesh.body_models import MANO, SMPL, ensure_synthetic_models, load_model_file
from pose2mesh.body_models import synthetic
from pose2mesh.body_models.mesh_build import boundary_vertices, check_closed_manifold
from pose2mesh.joints import MANO_FINGERTIP_VERTICES, SMPL_FACE_KEYPOINT_VERTICES

# The synthetic topologies are frozen: the coarse graphs (and any weights trained on them)
# depend on the face list. Change these only together with GENERATOR_VERSION.
BODY_FACES_SHA256 = "bc60357ac4918a8048f28cb16eeb063f7eb05561d30230a04dc3c4d0298494f6"
HAND_FACES_SHA256 = "756a1e82eb3df5db630abc3f99a606863759ddb9e9c6051bfd865e3bfd10c271"
SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    return root, ensure_synthetic_models(root)


@pytest.fixture(scope="module")
def body(files):
    return load_model_file(files[1]["smpl"])


@pytest.fixture(scope="module")
def hand(files):
    return load_model_file(files[1]["mano"])


def _sha(faces):
    return hashlib.sha256(np.asarray(faces, dtype=np.int64).tobytes()).hexdigest()


def test_files_are_named_synthetic(files):
    for key, path in files[1].items():
        assert "SYNTHETIC" in path.name.upper(), path
        assert path.parent.name == "synthetic"
    assert "not SMPL" in load_model_file(files[1]["smpl"])["synthetic"]


def test_body_topology(body):
    faces = np.asarray(body["f"], dtype=np.int64)
    assert body["v_template"].shape == (6890, 3) and faces.shape == (13776, 3)
    check_closed_manifold(faces, 6890)  # closed, oriented, vertex-manifold, connected, sphere
    v = body["v_template"]
    tri = v[faces]
    volume = np.sum(tri[:, 0] * np.cross(tri[:, 1], tri[:, 2])) / 6
    assert 0.04 < volume < 0.1  # m^3: about 60 litres, outward normals
    edges = np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2)
    assert edges.min() > 1e-3 and edges.max() < 0.06


def test_body_faces_frozen(body):
    from pathlib import Path

    assert _sha(body["f"]) == BODY_FACES_SHA256
    ref = Path(__file__).parent / "data" / "graphs_synthetic_smpl.npz"
    if ref.is_file():  # the coarsening reference was computed on this very mesh
        assert np.array_equal(np.load(ref)["faces"], np.asarray(body["f"], dtype=np.int64))


def test_body_shape_and_skeleton(body):
    v = body["v_template"]
    height = v[:, 1].max() - v[:, 1].min()
    assert 1.65 < height < 1.75
    assert 1.6 < v[:, 0].max() - v[:, 0].min() < 1.85  # T-pose arm span
    parents = [int(p) for p in body["kintree_table"][0]]
    assert parents[0] == 4294967295 and parents[1:] == SMPL_PARENTS[1:]
    joints = body["J_regressor"].toarray() @ v
    assert np.allclose(joints, body["J"])
    # left joints (odd SMPL indices 1, 4, ...) have positive x, as in SMPL
    for left, right in ((1, 2), (4, 5), (7, 8), (16, 17), (18, 19), (20, 21)):
        assert joints[left, 0] > 0.05 and np.allclose(joints[left] * [-1, 1, 1], joints[right], atol=2e-3)
    assert joints[15, 1] > joints[12, 1] > joints[9, 1] > joints[0, 1] > joints[4, 1] > joints[7, 1]
    reg = body["J_regressor"].toarray()
    assert (reg >= 0).all() and np.allclose(reg.sum(1), 1)
    w = body["weights"]
    assert w.shape == (6890, 24) and (w >= 0).all() and np.allclose(w.sum(1), 1)
    assert body["shapedirs"].shape == (6890, 3, 10) and body["posedirs"].shape == (6890, 3, 207)


def test_body_face_keypoints_on_the_head(body):
    v = body["v_template"]
    nose, leye, reye, lear, rear = (v[i] for i in SMPL_FACE_KEYPOINT_VERTICES)
    head_top = v[:, 1].max()
    for p in (nose, leye, reye, lear, rear):
        assert head_top - 0.25 < p[1] < head_top
    assert nose[2] > max(leye[2], reye[2]) > max(lear[2], rear[2])  # the body faces +z
    assert leye[0] > 0 > reye[0] and lear[0] > 0 > rear[0]  # its left is +x


def test_body_shape_space_is_plausible(files):
    smpl = SMPL(synthetic=True, model_dir=files[0])
    zero = torch.zeros(1, 72)

    def extent(betas, axis):
        v, _ = smpl(zero, torch.tensor([betas], dtype=torch.float32))
        return float(v[0, :, axis].max() - v[0, :, axis].min())

    base = [0.0] * 10
    tall = list(base)
    tall[0] = 2.0
    assert extent(tall, 1) > extent(base, 1) + 0.08
    heavy = list(base)
    heavy[1] = 2.0
    assert extent(heavy, 2) > extent(base, 2) + 0.02
    long_legs = list(base)
    long_legs[2] = 2.0
    assert extent(long_legs, 1) > extent(base, 1) + 0.05
    for k in range(10):  # every direction changes the body, none tears it apart
        betas = list(base)
        betas[k] = 3.0
        v, _ = smpl(zero, torch.tensor([betas]))
        v0, _ = smpl(zero, torch.zeros(1, 10))
        shift = (v - v0).norm(dim=-1)
        assert 0.005 < float(shift.max()) < 0.3


def test_body_posing_moves_the_limbs_smoothly(files):
    smpl = SMPL(synthetic=True, model_dir=files[0])
    pose = torch.zeros(1, 72)
    pose[0, 3 * 18 + 1] = -1.5  # bend the left elbow
    v, _ = smpl(pose, torch.zeros(1, 10))
    v0, _ = smpl(torch.zeros(1, 72), torch.zeros(1, 10))
    moved = (v - v0).norm(dim=-1)[0]
    assert float(moved.max()) > 0.2  # the forearm swings
    left_leg = v0[0, :, 1] < v0[0, :, 1].min() + 0.5
    assert float(moved[left_leg].max()) < 1e-6  # the legs do not
    faces = torch.from_numpy(smpl.face)
    e_before = (v0[0, faces] - v0[0, faces.roll(1, 1)]).norm(dim=-1)
    e_after = (v[0, faces] - v[0, faces.roll(1, 1)]).norm(dim=-1)
    assert float((e_after / e_before).max()) < 3.0  # smooth weights: no torn triangles


def test_hand_topology_and_skeleton(hand):
    faces = np.asarray(hand["f"], dtype=np.int64)
    v = hand["v_template"]
    assert v.shape == (778, 3) and faces.shape == (1538, 3)
    rim = np.where(boundary_vertices(faces, 778))[0]
    assert len(rim) == 16  # open at the wrist like MANO
    # closing the rim with a fan gives a closed sphere-like surface
    centre = 778
    rim_edges = [(int(a), int(b)) for tri in faces for a, b in zip(tri, np.roll(tri, -1)) if a in rim and b in rim]
    directed = set(rim_edges)
    fan = [(b, a, centre) for a, b in rim_edges if (b, a) not in directed]
    check_closed_manifold(np.concatenate([faces, np.array(fan)]), 779)
    assert _sha(faces) == HAND_FACES_SHA256
    length = v[:, 0].max() - v[:, 0].min()
    assert 0.15 < length < 0.22
    parents = [int(p) for p in hand["kintree_table"][0]]
    assert parents[1:] == [0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14]
    comps = hand["hands_components"]
    assert comps.shape == (45, 45) and np.allclose(comps @ comps.T, np.eye(45), atol=1e-8)
    assert hand["hands_mean"].shape == (45,) and hand["posedirs"].shape == (778, 3, 135)
    assert hand["shapedirs"].shape == (778, 3, 10) and hand["weights"].shape == (778, 16)
    # fingertip vertices are the farthest points of their fingers
    joints = hand["J_regressor"].toarray() @ v
    for tip, dip in zip(MANO_FINGERTIP_VERTICES, (15, 3, 6, 12, 9)):
        parent = [int(p) for p in hand["kintree_table"][0]][dip]
        bone = joints[dip] - joints[parent]
        assert np.dot(v[tip] - joints[dip], bone) > 0
    assert np.linalg.norm(v[444] - v[445]) < 0.01


def test_generation_is_deterministic_and_cached(tmp_path, files, monkeypatch):
    paths = ensure_synthetic_models(tmp_path)
    assert paths["smpl"].read_bytes() == files[1]["smpl"].read_bytes()
    assert paths["mano"].read_bytes() == files[1]["mano"].read_bytes()
    stamp = paths["smpl"].stat().st_mtime_ns
    assert ensure_synthetic_models(tmp_path)["smpl"].stat().st_mtime_ns == stamp  # cached
    monkeypatch.setattr(synthetic, "GENERATOR_VERSION", "test-other-version")
    calls = []
    monkeypatch.setattr(synthetic, "_GROUPS", {"body": (synthetic._GROUPS["body"][0], lambda d: calls.append(d)),
                                               "hand": synthetic._GROUPS["hand"]})
    ensure_synthetic_models(tmp_path, which=("body",))
    assert calls == [tmp_path / "synthetic"]  # another generator version regenerates


def test_synthetic_pickle_is_official_format(files):
    with open(files[1]["smpl"], "rb") as f:
        raw = pickle.load(f, encoding="latin1")  # what smplx / the original do with a model file
    for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f"):
        assert key in raw
    hand = MANO(synthetic=True, model_dir=files[0])
    assert hand.layer.th_comps.shape == (45, 45)
