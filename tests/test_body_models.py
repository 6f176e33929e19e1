"""Body models: the chumpy-free model-file reader, the SMPL / MANO layers and wrappers.

Model files here are the synthetic ones (generated into a temporary cache) and pickles this
file writes in the official files' format, chumpy objects included, without chumpy.
"""
from __future__ import annotations

import copyreg
import os
import pickle
import pickletools
import shutil
import sys
import types

import numpy as np
import pytest
import scipy.sparse
import torch

from pose2mesh.body_models import MANO, SMPL, BodyModelError, ensure_synthetic_models, load_model_file
from pose2mesh.joints import JOINT_SETS

SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
MANO_PARENTS = [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    return root, ensure_synthetic_models(root)


@pytest.fixture(scope="module")
def smpl(cache):
    return SMPL(synthetic=True, model_dir=cache[0])


@pytest.fixture(scope="module")
def mano(cache):
    return MANO(synthetic=True, model_dir=cache[0])


# ------------------------------------------------------------------------------ file reader
class _FakeChumpy:
    """Stands for chumpy classes while *writing* a test pickle: chumpy pickles a ``Ch`` as
    ``GLOBAL chumpy.ch Ch``, ``NEWOBJ``, then ``BUILD`` with its ``__dict__`` (``'x'`` holds the
    values). The fake modules exist only during ``pickle.dumps``."""

    def __init__(self, state):
        self.__dict__.update(state)

    def __reduce_ex__(self, protocol):
        return copyreg.__newobj__, (type(self),), dict(self.__dict__)


def _chumpy_pickle(payload: dict) -> bytes:
    ch_mod, re_mod, root = types.ModuleType("chumpy.ch"), types.ModuleType("chumpy.reordering"), types.ModuleType("chumpy")
    Ch = type("Ch", (_FakeChumpy,), {"__module__": "chumpy.ch"})
    Select = type("Select", (_FakeChumpy,), {"__module__": "chumpy.reordering"})
    ch_mod.Ch, re_mod.Select = Ch, Select

    def convert(value):
        if isinstance(value, tuple) and value and value[0] == "Ch":
            return Ch({"x": value[1], "_dirty_vars": set(), "_itr": None})
        if isinstance(value, tuple) and value and value[0] == "Select":
            return Select({"a": convert(value[1]), "idxs": value[2], "preferred_shape": value[3]})
        return value

    saved = {k: sys.modules.get(k) for k in ("chumpy", "chumpy.ch", "chumpy.reordering")}
    sys.modules.update({"chumpy": root, "chumpy.ch": ch_mod, "chumpy.reordering": re_mod})
    try:
        data = pickle.dumps({k: convert(v) for k, v in payload.items()}, protocol=2)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    # the module names old files carry (NumPy 1.x, SciPy < 1.8)
    return data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray").replace(b"scipy.sparse._csc", b"scipy.sparse.csc")


def _globals(stream: bytes):
    return {arg for op, arg, _ in pickletools.genops(stream) if op.name == "GLOBAL"}


def test_reads_chumpy_pickle_without_chumpy(tmp_path):
    assert "chumpy" not in sys.modules
    rng = np.random.default_rng(0)
    shapedirs = rng.normal(size=(5, 3, 10))
    comps = rng.normal(size=(4, 6))
    jreg = scipy.sparse.csc_matrix(rng.random((2, 5)) * (rng.random((2, 5)) > 0.5))
    stream = _chumpy_pickle({
        "shapedirs": ("Ch", shapedirs), "v_template": rng.normal(size=(5, 3)), "J_regressor": jreg,
        "hands_components": ("Select", ("Ch", comps), np.array([5, 4, 3, 2, 1, 0]), (2, 3)),
        "kintree_table": np.array([[4294967295, 0], [0, 1]], dtype=np.int64), "f": np.array([[0, 1, 2]], dtype=np.uint32),
        "bs_style": "lbs",
    })
    assert {"chumpy.ch Ch", "chumpy.reordering Select", "numpy.core.multiarray _reconstruct", "numpy ndarray",
            "numpy dtype", "_codecs encode", "__builtin__ set", "scipy.sparse.csc csc_matrix"} <= _globals(stream)
    path = tmp_path / "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl"
    path.write_bytes(stream)
    data = load_model_file(path)
    assert "chumpy" not in sys.modules
    assert isinstance(data["shapedirs"], np.ndarray) and np.array_equal(data["shapedirs"], shapedirs)
    assert np.array_equal(data["hands_components"], comps.ravel()[[5, 4, 3, 2, 1, 0]].reshape(2, 3))
    assert scipy.sparse.issparse(data["J_regressor"]) and np.array_equal(data["J_regressor"].toarray(), jreg.toarray())
    assert data["bs_style"] == "lbs" and data["f"].dtype == np.uint32


def test_reads_python2_latin1_array_strings(tmp_path):
    """Python 2 writes array bytes as a ``str`` (BINSTRING); it must decode with latin1."""
    arr = np.arange(6, dtype="<f8").reshape(2, 3)
    raw = arr.tobytes()
    op = b"T" + len(raw).to_bytes(4, "little") + raw
    stream = (b"\x80\x02}q\x00U\x01aq\x01cnumpy.core.multiarray\n_reconstruct\nq\x02cnumpy\nndarray\nq\x03K\x00\x85"
              b"U\x01b\x87Rq\x04(K\x01K\x02K\x03\x86cnumpy\ndtype\nq\x05U\x02f8K\x00K\x01\x87Rq\x06(K\x03U\x01<NNNJ"
              b"\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89" + op + b"tbs.")
    path = tmp_path / "py2.pkl"
    path.write_bytes(stream)
    assert np.array_equal(load_model_file(path)["a"], arr)


def test_malicious_pickle_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps({"v_template": Evil()}, protocol=2))
    with pytest.raises(BodyModelError, match=r"(posix|os|nt)\.system"):
        load_model_file(path)
    assert not marker.exists()
    path.write_bytes(b"\x80\x02cbuiltins\neval\nq\x00X\x06\x00\x00\x00print(1)\x85R.")
    with pytest.raises(BodyModelError, match="builtins.eval"):
        load_model_file(path)


def test_truncated_and_missing_files(tmp_path, cache):
    good = cache[1]["smpl"].read_bytes()
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(BodyModelError, match="truncated"):
        load_model_file(path)
    with pytest.raises(BodyModelError, match="not found"):
        load_model_file(tmp_path / "nothing.pkl")


def test_npz_with_the_same_keys(tmp_path, cache):
    data = load_model_file(cache[1]["smpl"])
    arrays = {k: (v.toarray() if scipy.sparse.issparse(v) else np.asarray(v)) for k, v in data.items()}
    np.savez(tmp_path / "SMPL_NEUTRAL.npz", **arrays)
    layer_npz = SMPL(model_dir=tmp_path, data_dir=tmp_path).layer["neutral"]
    assert layer_npz.model_path.endswith("SMPL_NEUTRAL.npz")
    assert torch.equal(layer_npz.th_v_template, SMPL(synthetic=True, model_dir=cache[0]).layer["neutral"].th_v_template)


def test_missing_official_files_message(tmp_path):
    with pytest.raises(BodyModelError) as info:
        SMPL(synthetic=False, model_dir=tmp_path / "models")
    msg = str(info.value)
    assert str(tmp_path / "models" / "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl") in msg
    assert "SMPL_NEUTRAL.pkl" in msg and "smpl.is.tue.mpg.de" in msg
    with pytest.raises(BodyModelError) as info:
        MANO(synthetic=False, model_dir=tmp_path / "mano")
    assert str(tmp_path / "mano" / "MANO_RIGHT.pkl") in str(info.value) and "mano.is.tue.mpg.de" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_official_layout_works_with_files_in_place(tmp_path, cache):
    """Files under the official names and places are used as the official model."""
    models, data = tmp_path / "models", tmp_path / "data"
    models.mkdir()
    shutil.copy(cache[1]["smpl"], models / "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl")
    shutil.copy(cache[1]["smpl"], models / "SMPL_MALE.pkl")
    official = SMPL(model_dir=models, data_dir=data)
    assert official.source == "official" and "basicModel_neutral" in official.description
    assert official.layer["male"].model_path.endswith("SMPL_MALE.pkl")
    with pytest.raises(BodyModelError, match="SMPL female model not found"):
        official.layer["female"]
    with pytest.raises(BodyModelError) as info:
        official.joint_regressor("human36")
    assert str(data / "Human36M" / "J_regressor_h36m_correct.npy") in str(info.value)
    assert "README" in str(info.value)
    (data / "Human36M").mkdir(parents=True)
    (data / "COCO").mkdir()
    shutil.copy(cache[1]["J_regressor_h36m"], data / "Human36M" / "J_regressor_h36m_correct.npy")
    shutil.copy(cache[1]["J_regressor_coco"], data / "COCO" / "J_regressor_coco.npy")
    assert official.joint_regressor("human36").shape == (17, 6890)
    assert official.joint_regressor("coco").shape == (19, 6890)


# -------------------------------------------------------------------------------- SMPL layer
def _reference_lbs(data, pose, betas, num_joints):
    """The original layers' maths written out plainly (float64 numpy, one sample)."""
    from scipy.spatial.transform import Rotation

    dense = lambda a: a.toarray() if scipy.sparse.issparse(a) else np.asarray(a)  # noqa: E731
    v_shaped = data["v_template"] + dense(data["shapedirs"])[..., : len(betas)] @ betas
    joints = dense(data["J_regressor"]) @ v_shaped
    rots = Rotation.from_rotvec(pose.reshape(-1, 3)).as_matrix()
    pose_map = (rots[1:] - np.eye(3)).ravel()
    v_posed = v_shaped + dense(data["posedirs"]) @ pose_map
    parents = [int(p) for p in data["kintree_table"][0]]
    world = []
    for j in range(num_joints):
        local = np.eye(4)
        local[:3, :3] = rots[j]
        local[:3, 3] = joints[j] - (joints[parents[j]] if j else 0)
        world.append(local if j == 0 else world[parents[j]] @ local)
    world = np.stack(world)
    skinning = world.copy()
    skinning[:, :3, 3] -= np.einsum("jab,jb->ja", world[:, :3, :3], joints)
    per_vertex = np.einsum("vj,jab->vab", dense(data["weights"]), skinning)
    verts = np.einsum("vab,vb->va", per_vertex[:, :3, :3], v_posed) + per_vertex[:, :3, 3]
    return verts, world[:, :3, 3], v_shaped, joints


def test_smpl_layer_matches_smplx_and_reference(cache):
    import smplx
    from smplpytorch.pytorch.smpl_layer import SMPL_Layer

    path = cache[1]["smpl"]
    ours = SMPL_Layer(model_path=path).double()
    ref = smplx.SMPL(model_path=str(path), dtype=torch.float64, batch_size=5)
    g = torch.Generator().manual_seed(0)
    pose = torch.randn(5, 72, generator=g, dtype=torch.float64) * 0.5
    betas = torch.randn(5, 10, generator=g, dtype=torch.float64)
    verts, joints = ours(pose, betas)
    out = ref(global_orient=pose[:, :3], body_pose=pose[:, 3:], betas=betas)
    assert verts.shape == (5, 6890, 3) and joints.shape == (5, 24, 3)
    assert (verts - out.vertices).abs().max() < 1e-6
    assert (joints - out.joints[:, :24]).abs().max() < 1e-6
    data = load_model_file(path)
    for b in range(2):
        v_ref, j_ref, _, _ = _reference_lbs(data, pose[b].numpy(), betas[b].numpy(), 24)
        assert np.abs(verts[b].numpy() - v_ref).max() < 1e-6
        assert np.abs(joints[b].numpy() - j_ref).max() < 1e-6


def test_smpl_layer_original_semantics(cache):
    from smplpytorch.pytorch.smpl_layer import SMPL_Layer

    layer = SMPL_Layer(model_path=cache[1]["smpl"], center_idx=0).double()
    data = load_model_file(cache[1]["smpl"])
    betas = torch.randn(3, 10, dtype=torch.float64)
    verts, joints = layer(torch.zeros(3, 72, dtype=torch.float64), betas, None)
    shaped = data["v_template"][None] + np.einsum("vck,bk->bvc", data["shapedirs"], betas.numpy())
    j_rest = np.einsum("jv,bvc->bjc", data["J_regressor"].toarray(), shaped)
    # T-pose: the shaped template, centred on joint 0 because no translation was given
    assert np.abs(verts.numpy() - (shaped - j_rest[:, :1])).max() < 1e-6
    assert np.abs(joints.numpy() - (j_rest - j_rest[:, :1])).max() < 1e-6
    trans = torch.tensor([[0.1, 0.2, 0.3]] * 3, dtype=torch.float64)
    verts_t, _ = layer(torch.zeros(3, 72, dtype=torch.float64), betas, trans)
    assert np.abs(verts_t.numpy() - (shaped + trans.numpy()[:, None])).max() < 1e-6
    # zero betas mean the default betas; a single betas row is shared by the batch
    v0, _ = layer(torch.zeros(2, 72, dtype=torch.float64), torch.zeros(2, 10, dtype=torch.float64))
    assert torch.allclose(v0[0], v0[1])
    assert layer.kintree_parents == SMPL_PARENTS and layer.th_faces.dtype == torch.long


@pytest.mark.cuda
def test_smpl_layer_batched_differentiable_dtype(cache, device):
    from smplpytorch.pytorch.smpl_layer import SMPL_Layer

    layer = SMPL_Layer(model_path=cache[1]["smpl"]).to(device)
    pose = (torch.randn(4, 72) * 0.3).to(device).requires_grad_()
    verts, joints = layer(pose, torch.randn(4, 10).to(device))
    assert verts.dtype == torch.float32 and verts.device == pose.device
    joints.sum().backward()
    assert pose.grad is not None and torch.isfinite(pose.grad).all()
    one, _ = layer(pose[2:3].detach(), torch.zeros(1, 10, device=device))
    many, _ = layer(pose.detach(), torch.zeros(4, 10, device=device))
    assert torch.allclose(one[0], many[2], atol=1e-6)
    v64, _ = layer(pose.detach().double(), torch.zeros(4, 10, dtype=torch.float64, device=device))
    assert v64.dtype == torch.float64


# ------------------------------------------------------------------------------- MANO layer
def test_mano_layer_matches_smplx(cache):
    import smplx
    from manopth.manolayer import ManoLayer

    path = cache[1]["mano"]
    ours = ManoLayer(model_path=path, use_pca=False, flat_hand_mean=False).double()
    ref = smplx.MANO(model_path=str(path), is_rhand=True, use_pca=False, flat_hand_mean=False,
                     dtype=torch.float64, batch_size=4)
    g = torch.Generator().manual_seed(1)
    pose = torch.randn(4, 48, generator=g, dtype=torch.float64) * 0.4
    betas = torch.randn(4, 10, generator=g, dtype=torch.float64)
    verts, joints = ours(pose, betas)
    out = ref(global_orient=pose[:, :3], hand_pose=pose[:, 3:], betas=betas)
    assert verts.shape == (4, 778, 3) and joints.shape == (4, 21, 3)
    assert (verts / 1000 - out.vertices).abs().max() < 1e-6  # manopth outputs millimetres
    order = [0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20]
    ours_16 = torch.empty(4, 21, 3, dtype=torch.float64)
    ours_16[:, order] = joints / 1000
    assert (ours_16[:, :16] - out.joints[:, :16]).abs().max() < 1e-6
    assert torch.allclose(ours_16[:, 16:], verts[:, [745, 317, 444, 556, 673]] / 1000)
    data = load_model_file(path)
    full = pose[0].numpy().copy()
    full[3:] += data["hands_mean"]
    v_ref, j_ref, _, _ = _reference_lbs(data, full, betas[0].numpy(), 16)
    assert np.abs(verts[0].numpy() / 1000 - v_ref).max() < 1e-6
    assert ours.kintree_parents == MANO_PARENTS


@pytest.mark.cuda
def test_mano_layer_modes(cache, device):
    from manopth.manolayer import ManoLayer

    path = cache[1]["mano"]
    pca = ManoLayer(model_path=path, use_pca=True, ncomps=6, flat_hand_mean=True).double().to(device)
    full = ManoLayer(model_path=path, use_pca=False, flat_hand_mean=True).double().to(device)
    coeffs = torch.randn(3, 9, dtype=torch.float64).to(device)
    expanded = torch.cat([coeffs[:, :3], coeffs[:, 3:] @ pca.th_selected_comps], 1)
    assert torch.allclose(pca(coeffs)[0], full(expanded)[0], atol=1e-9)
    six = ManoLayer(model_path=path, use_pca=False, flat_hand_mean=True, root_rot_mode="rot6d").double()
    eye6 = torch.tensor([[1.0, 0, 0, 0, 1, 0]], dtype=torch.float64)
    flat = torch.zeros(1, 45, dtype=torch.float64)
    assert torch.allclose(six(torch.cat([eye6, flat], 1))[0], full(torch.zeros(1, 48, dtype=torch.float64))[0])
    rotmat = ManoLayer(model_path=path, use_pca=False, joint_rot_mode="rotmat").double()
    identity = torch.eye(3, dtype=torch.float64).expand(2, 16, 3, 3)
    v_rm, _ = rotmat(identity)
    assert torch.allclose(v_rm, full(torch.zeros(2, 48, dtype=torch.float64))[0], atol=1e-9)
    centred = ManoLayer(model_path=path, use_pca=False, center_idx=9)
    _, j = centred(torch.zeros(1, 48), torch.zeros(1, 10))
    assert j[0, 9].abs().max() < 1e-4
    with pytest.raises(ValueError):
        ManoLayer(model_path=path, side="middle")


# ---------------------------------------------------------------------------------- wrappers
def test_smpl_wrapper(smpl):
    assert smpl.name == "smpl" and smpl.source == "synthetic" and "synthetic" in smpl.description
    assert smpl.vertex_num == 6890 and smpl.face.shape == (13776, 3) and smpl.face.dtype == np.int64
    assert set(smpl.layer) == {"neutral", "male", "female"}
    shapes = {"smpl": 24, "smpl29": 29, "human36": 17, "coco": 19}
    for name, rows in shapes.items():
        reg = smpl.joint_regressor(name)
        assert reg.shape == (rows, 6890) and reg.dtype == np.float32
        assert rows == JOINT_SETS[name].num_joints
    reg29 = smpl.joint_regressor("smpl29")
    for row, vertex in zip(reg29[24:], (331, 2802, 6262, 3489, 3990)):
        assert row[vertex] == 1.0 and row.sum() == 1.0
    coco = smpl.joint_regressor("coco")
    assert np.allclose(coco[17], (coco[11] + coco[12]) / 2) and np.allclose(coco[18], (coco[5] + coco[6]) / 2)
    with pytest.raises(ValueError, match="mano"):
        smpl.joint_regressor("mano")
    verts, joints = smpl(torch.zeros(2, 72), torch.zeros(2, 10))
    assert verts.shape == (2, 6890, 3) and joints.shape == (2, 24, 3)
    assert torch.allclose(joints, torch.einsum("jv,bvc->bjc", torch.from_numpy(smpl.joint_regressor("smpl")), verts),
                          atol=1e-5)


def test_mano_wrapper(mano):
    assert mano.name == "mano" and mano.source == "synthetic" and "synthetic" in mano.description
    assert mano.vertex_num == 778 and mano.face.shape == (1538, 3)
    assert not mano.layer.use_pca and not mano.layer.flat_hand_mean and mano.layer.side == "right"
    reg = mano.joint_regressor("mano")
    assert reg.shape == (21, 778)
    raw = np.concatenate([mano.layer.th_J_regressor.numpy(), np.eye(778, dtype=np.float32)[[745, 317, 445, 556, 673]]])
    assert np.array_equal(reg, raw[[0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20]])
    verts, joints = mano(torch.zeros(2, 48), torch.zeros(2, 10))
    assert verts.shape == (2, 778, 3) and joints.shape == (2, 21, 3)
    assert 0.1 < float(verts[0, :, 0].max() - verts[0, :, 0].min()) < 0.3  # metres: a hand is ~0.18 m long
