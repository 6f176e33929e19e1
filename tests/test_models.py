"""PoseNet, MeshNet, Pose2Mesh and the Chebyshev layer: original keys, shapes and outputs."""
from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch import nn

import pose2mesh.paths
from pose2mesh.joints import get_joint_set
from pose2mesh.models import meshnet, pose2mesh_net, posenet
from pose2mesh.models.cheb_conv import cheb_conv, chebyshev_basis, is_symmetric, to_torch_sparse

REFERENCE = Path(pose2mesh.paths.repo_root()).parent / "shared" / "reference"
needs_reference = pytest.mark.skipif(not REFERENCE.is_dir(), reason=f"no reference folder {REFERENCE}")

# The original release's MeshNet channel plans (models/meshnet.py, CL_F), written out here
# independently of the package. None = input / output channels.
ORIGINAL_BODY_CL_F = [(None, 32, 64, 64), (64, 128, 256), (256, 256, 256), (256, 256, 256),
                      (256, 256, 256), (256, 256, 256), (256, 128, 128),
                      (128, 128, 128), (128, 128, 128), (128, 64, None)]
ORIGINAL_HAND_CL_F = [(None, 32, 64, 64), (64, 128, 256), (256, 256, 256), (256, 256, 256),
                      (256, 256, 256), (256, 128, 128), (128, 64, None)]


# ---------------------------------------------------------------- helpers

def load_reference_laplacians():
    g = np.load(REFERENCE / "icosphere_graphs_human36.npz")
    laps = [sp.csr_matrix((g[f"L_{i}_data"], g[f"L_{i}_indices"], g[f"L_{i}_indptr"]),
                          shape=tuple(g[f"L_{i}_shape"])) for i in range(int(g["num_levels"]))]
    return laps, g["graph_perm_reverse"], g["faces"]


def reference_weights(state_dict):
    """The weight rule of shared/reference/README.md."""
    out = {}
    for name, value in state_dict.items():
        shape = tuple(value.shape)
        n = np.random.RandomState(zlib.crc32(b"shared/" + name.encode()) & 0x7FFFFFFF).standard_normal(shape)
        if name.endswith("num_batches_tracked"):
            out[name] = torch.zeros(shape, dtype=torch.int64)
            continue
        if name.endswith("running_var"):
            a = 1 + 0.25 * np.abs(n)
        elif name.endswith("running_mean"):
            a = 0.05 * n
        elif "bn" in name or "batch_norm" in name:
            a = 1 + 0.05 * n if name.endswith("weight") else 0.05 * n
        elif name.endswith("bias"):
            a = 0.02 * n
        else:
            a = n / np.sqrt(shape[1] if len(shape) > 1 else shape[0])
        out[name] = torch.from_numpy(np.asarray(a, dtype=np.float32))
    return out


def random_laplacian(V, seed=0, density=4):
    """A symmetric sparse matrix with a few entries per row, scaled like a rescaled Laplacian."""
    rng = np.random.RandomState(seed)
    rows = np.repeat(np.arange(V), density)
    cols = rng.randint(0, V, size=V * density)
    A = sp.coo_matrix((rng.uniform(0.1, 1.0, size=V * density), (rows, cols)), shape=(V, V)).tocsr()
    A = A + A.T
    deg = np.asarray(A.sum(1)).ravel() + 1e-3
    Dm = sp.diags(1 / np.sqrt(deg))
    return (sp.eye(V) - Dm @ A @ Dm) / 2.0 - sp.eye(V) * 0.5  # within [-1, 1]


def synthetic_graphs(num_joint, num_graphs, coarsest_used=4):
    """``build_coarse_graphs``-shaped Laplacian list: mesh levels finest first (each twice the
    next), a dropped coarsest mesh level, then the joint graph."""
    mesh_levels = num_graphs - 1  # incl. the dropped one
    used = mesh_levels - 1
    sizes = [coarsest_used * 2 ** (used - 1 - k) for k in range(used)] + [coarsest_used // 2 or 1, num_joint]
    return [random_laplacian(V, seed=i) for i, V in enumerate(sizes)], sizes


def expected_posenet_keys(J, hid=4096, stages=2, prefix=""):
    """The original LinearModel's state_dict, written out by hand."""
    def bn(name, n):
        return [(f"{name}.weight", [n]), (f"{name}.bias", [n]), (f"{name}.running_mean", [n]),
                (f"{name}.running_var", [n]), (f"{name}.num_batches_tracked", [])]
    keys = [("w1.weight", [hid, 2 * J]), ("w1.bias", [hid])] + bn("batch_norm1", hid)
    for s in range(stages):
        p = f"linear_stages.{s}"
        keys += [(f"{p}.w1.weight", [hid, hid]), (f"{p}.w1.bias", [hid])] + bn(f"{p}.batch_norm1", hid)
        keys += [(f"{p}.w2.weight", [hid, hid]), (f"{p}.w2.bias", [hid])] + bn(f"{p}.batch_norm2", hid)
    keys += [("w2.weight", [3 * J, hid]), ("w2.bias", [3 * J])]
    return [[prefix + k, s] for k, s in keys]


def expected_meshnet_keys(J, first_level_size, cl_f, K=3, cin=5, cout=3, prefix="pose2mesh."):
    """The original MeshNet's state_dict: fc, then every cl.N, then every bn.N (the last bn is None)."""
    plan = [[cin if c is None and (bi, ci) == (0, 0) else cout if c is None else c for ci, c in enumerate(b)]
            for bi, b in enumerate(cl_f)]
    keys = [("fc.weight", [first_level_size * plan[1][0], J * plan[0][-1]]),
            ("fc.bias", [first_level_size * plan[1][0]])]
    layers = [(K * b[j], b[j + 1]) for b in plan for j in range(len(b) - 1)]
    for n, (fin, fout) in enumerate(layers):
        keys += [(f"cl.{n}.weight", [fout, fin]), (f"cl.{n}.bias", [fout])]
    for n, (_, fout) in enumerate(layers[:-1]):
        keys += [(f"bn.{n}.weight", [fout]), (f"bn.{n}.bias", [fout]), (f"bn.{n}.running_mean", [fout]),
                 (f"bn.{n}.running_var", [fout]), (f"bn.{n}.num_batches_tracked", [])]
    return [[prefix + k, s] for k, s in keys]


def key_list(module):
    return [[k, list(v.shape)] for k, v in module.state_dict().items()]


# ---------------------------------------------------------------- reference forward

@needs_reference
def test_reference_forward_icosphere():
    laps, perm_reverse, faces = load_reference_laplacians()
    laps_before = [L.copy() for L in laps]
    model = pose2mesh_net.get_model(17, laps)
    assert len(laps) == 10 and all((a != b).nnz == 0 for a, b in zip(laps, laps_before)), "graph_L was modified"
    expected = json.loads((REFERENCE / "icosphere_state_dict_keys_human36.json").read_text())
    assert key_list(model) == expected
    assert all(model.pose2mesh.symmetric_levels)  # the faster backward applies

    model.load_state_dict(reference_weights(model.state_dict()), strict=True)
    model.eval()
    ref = np.load(REFERENCE / "icosphere_forward_human36.npz")
    with torch.no_grad():
        mesh, pose3d = model(torch.from_numpy(ref["pose2d"]))
    assert mesh.shape == ref["mesh_padded"].shape and pose3d.shape == ref["pose3d"].shape
    for ours, theirs in ((pose3d.numpy(), ref["pose3d"]), (mesh.numpy(), ref["mesh_padded"])):
        assert np.linalg.norm(ours - theirs) / np.linalg.norm(theirs) < 1e-4
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * np.abs(theirs).max())
    num_vertices = int(faces.max()) + 1
    unpermuted = mesh.numpy()[:, perm_reverse[:num_vertices]]
    np.testing.assert_allclose(unpermuted, ref["mesh"], rtol=1e-4, atol=1e-4 * np.abs(ref["mesh"]).max())

    # the evaluation fast path that skips padding vertices gives the same real vertices
    real = perm_reverse[:num_vertices]
    model.pose2mesh.set_padding_skip(real)
    assert model.pose2mesh.live_0.numel() == num_vertices
    assert not any("live" in k for k in model.state_dict())
    with torch.no_grad():
        fast, fast_pose3d = model(torch.from_numpy(ref["pose2d"]))
    torch.testing.assert_close(fast[:, real], mesh[:, real], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast_pose3d, pose3d)
    fake = np.setdiff1d(np.arange(mesh.shape[1]), real)
    assert fake.size > 0 and fast[:, fake].abs().max() == 0
    with pytest.raises(ValueError, match="skipped neighbour"):
        model.pose2mesh.set_padding_skip(real[: num_vertices // 2])
    assert not model.pose2mesh.skips_padding  # a refused call leaves the full forward
    model.pose2mesh.set_padding_skip(real)
    model.pose2mesh.set_padding_skip(None)
    assert not model.pose2mesh.skips_padding


# ---------------------------------------------------------------- state_dict keys

@pytest.mark.parametrize("joint_set", ["human36", "coco", "smpl", "mano"])
def test_posenet_state_dict_keys(joint_set):
    J = get_joint_set(joint_set).num_joints
    model = posenet.get_model(J, hid_dim=4096, num_layer=2, p_dropout=0.5)
    assert key_list(model) == expected_posenet_keys(J)
    out = model.eval()(torch.zeros(2, J, 2))
    assert out.shape == (2, J, 3)
    assert model.eval()(torch.zeros(2, 2 * J)).shape == (2, J, 3)


@pytest.mark.parametrize("joint_set,num_graphs", [("human36", 10), ("coco", 10), ("smpl", 10), ("mano", 7)])
def test_pose2mesh_state_dict_keys(joint_set, num_graphs):
    J = get_joint_set(joint_set).num_joints
    laps, sizes = synthetic_graphs(J, num_graphs)
    model = pose2mesh_net.get_model(J, laps, hid_dim=4096)
    cl_f = ORIGINAL_BODY_CL_F if num_graphs == 10 else ORIGINAL_HAND_CL_F
    first_level = sizes[-3]  # the coarsest *used* mesh level (the second-to-last is dropped)
    expected = expected_posenet_keys(J, prefix="pose_lifter.") + expected_meshnet_keys(J, first_level, cl_f)
    assert key_list(model) == expected
    # the last bn slot exists and is None, as the original's ModuleList
    assert len(model.pose2mesh.bn) == len(model.pose2mesh.cl) and model.pose2mesh.bn[-1] is None
    assert not any("laplacian" in k for k in model.state_dict())
    assert all(model.pose2mesh.symmetric_levels)
    model.eval()
    mesh, pose3d = model(torch.randn(2, J, 2))
    assert mesh.shape == (2, sizes[0], 3) and pose3d.shape == (2, J, 3)


def test_channel_divisor_and_small_width():
    laps, sizes = synthetic_graphs(17, 10)
    model = pose2mesh_net.get_model(17, laps, hid_dim=64, channel_divisor=4).eval()
    plan = model.pose2mesh.channels
    assert plan[0] == (5, 8, 16, 16) and plan[-1] == (32, 16, 3) and plan[1] == (16, 32, 64)
    assert model.pose_lifter.w1.weight.shape == (64, 34)
    mesh, _ = model(torch.randn(3, 17, 2))
    assert mesh.shape == (3, sizes[0], 3) and torch.isfinite(mesh).all()


def test_wrong_graph_count_and_input_shape():
    laps, _ = synthetic_graphs(17, 10)
    with pytest.raises(ValueError, match="10 for the body"):
        pose2mesh_net.get_model(17, laps[:8], hid_dim=16)
    model = pose2mesh_net.get_model(17, laps, hid_dim=16, channel_divisor=8)
    with pytest.raises(ValueError, match="B x 17 x 2"):
        model(torch.zeros(2, 19, 2))
    with pytest.raises(ValueError, match="Laplacians out of order"):
        meshnet.MeshNet(laps[:-2][::-1] + [laps[-1]], meshnet.body_channel_plan())


@pytest.mark.cuda
def test_mesh_losses_do_not_reach_posenet(device):
    laps, _ = synthetic_graphs(17, 10)
    model = pose2mesh_net.get_model(17, laps, hid_dim=32, channel_divisor=8).to(device).train()
    mesh, pose3d = model(torch.randn(4, 17, 2, device=device))
    mesh.sum().backward()
    assert all(p.grad is None for p in model.pose_lifter.parameters())
    assert model.pose2mesh.fc.weight.grad is not None
    # and MeshNet sees pose3d / 1000 next to pose2d
    model.zero_grad()
    captured = {}
    model.pose2mesh.register_forward_pre_hook(lambda m, args: captured.setdefault("x", args[0]))
    pose2d = torch.randn(2, 17, 2, device=device)
    _, pose3d = model.eval()(pose2d)
    torch.testing.assert_close(captured["x"], torch.cat((pose2d, pose3d / 1000), dim=2))


def test_posenet_unused_batch_norm_is_frozen_and_model_trains_all_else():
    model = posenet.get_model(17, hid_dim=32)
    model(torch.randn(4, 17, 2)).sum().backward()
    for name, p in model.named_parameters():
        if name.startswith("batch_norm1."):
            assert not p.requires_grad and p.grad is None
        else:
            assert p.grad is not None, name


@pytest.mark.cuda
def test_dtype_and_device_moves_carry_the_laplacians(device):
    laps, sizes = synthetic_graphs(17, 10)
    model = pose2mesh_net.get_model(17, laps, hid_dim=32, channel_divisor=8).to(device).eval()
    assert model.pose2mesh.laplacian(0).device.type == device.type
    x = torch.randn(2, 17, 2, device=device)
    with torch.no_grad():
        ref, _ = model(x)
        model.double()
        assert model.pose2mesh.laplacian(0).dtype == torch.float64
        out, _ = model(x.double())
    torch.testing.assert_close(out.float(), ref, rtol=1e-4, atol=1e-5)
    model.float().pose2mesh.set_sparse_layout("csr")
    assert model.pose2mesh.laplacian(0).layout == torch.sparse_csr
    with torch.no_grad():
        out_csr, _ = model(x)
    torch.testing.assert_close(out_csr, ref, rtol=1e-4, atol=1e-5)


def test_distributed_data_parallel_accepts_the_model(tmp_path):
    """DDP broadcasts every buffer at construction and refuses sparse ones: the Laplacians are
    kept as dense parts."""
    import torch.distributed as dist

    laps, _ = synthetic_graphs(17, 10)
    model = pose2mesh_net.get_model(17, laps, hid_dim=32, channel_divisor=8)
    assert all(not b.is_sparse and b.layout == torch.strided for b in model.buffers())
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        ddp = nn.parallel.DistributedDataParallel(model)
        for _ in range(2):  # the second step would fail if a trainable parameter went unused
            mesh, pose3d = ddp(torch.randn(4, 17, 2))
            (mesh.abs().mean() + pose3d.abs().mean()).backward()
    finally:
        dist.destroy_process_group()
    assert model.pose2mesh.fc.weight.grad is not None


def test_cpu_bf16_autocast_runs():
    laps, _ = synthetic_graphs(17, 10)
    model = pose2mesh_net.get_model(17, laps, hid_dim=32, channel_divisor=8).eval()
    x = torch.randn(2, 17, 2)
    with torch.no_grad():
        ref, _ = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, _ = model(x)
    assert out.shape == ref.shape and torch.isfinite(out).all()
    assert (out.float() - ref).abs().max() < 0.1 * ref.abs().max() + 1e-3


# ---------------------------------------------------------------- the Chebyshev layer

def dense_cheb_reference(x, L_dense, linear, bn, K):
    """The original's layer, written from its description with a dense Laplacian:
    stack K terms (B x V x Fin x K, Fin-major K-minor), one Linear, BatchNorm over B*V rows."""
    B, V, Fin = x.shape
    terms = [x]
    if K > 1:
        terms.append(torch.einsum("uv,bvf->buf", L_dense, x))
    for _ in range(2, K):
        terms.append(2 * torch.einsum("uv,bvf->buf", L_dense, terms[-1]) - terms[-2])
    stacked = torch.stack(terms, dim=3).reshape(B * V, Fin * K)
    out = linear(stacked)
    if bn is not None:
        out = bn(out)
    return out.view(B, V, -1)


@pytest.mark.parametrize("K,with_bn,layout,symmetric", [
    (3, True, "coo", True), (3, True, "coo", False), (3, False, "csr", True), (1, True, "coo", True),
    (2, False, "coo", True), (4, True, "csr", True), (3, True, "csr", False)])
@pytest.mark.cuda
def test_cheb_conv_matches_dense_reference(K, with_bn, layout, symmetric, device):
    torch.manual_seed(0)
    V, B, Fin, Fout = 37, 3, 5, 7
    L_sp = random_laplacian(V, seed=3)
    if not symmetric:  # a non-symmetric operator takes the generic backward
        L_sp = L_sp + sp.triu(L_sp, k=1) * 0.5
    assert is_symmetric(to_torch_sparse(L_sp)) == symmetric
    L_dense = torch.from_numpy(L_sp.toarray()).float().to(device)
    L = to_torch_sparse(L_sp, layout).to(device)
    linear = nn.Linear(Fin * K, Fout).to(device)
    bn = nn.BatchNorm1d(Fout).to(device) if with_bn else None
    x = torch.randn(B, V, Fin).to(device).requires_grad_()

    ref = dense_cheb_reference(x, L_dense, linear, bn, K)
    # a random linear probe: sum(bn(.) ** 2) is constant under train-mode BatchNorm, so its true
    # gradient is 0 and float32 results would compare rounding noise
    probe = torch.randn(ref.shape).to(device)
    grads_ref = torch.autograd.grad((ref * probe).sum(), [x, linear.weight])
    ours = cheb_conv(x.transpose(0, 1), L, linear, bn, K, symmetric).transpose(0, 1)  # ours is vertex-major
    grads = torch.autograd.grad((ours * probe).sum(), [x, linear.weight])
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    for g, gr in zip(grads, grads_ref):
        torch.testing.assert_close(g, gr, rtol=1e-4, atol=1e-4)


def test_chebyshev_basis_recursion():
    V = 11
    L_sp = random_laplacian(V, seed=5)
    L = to_torch_sparse(L_sp)
    x = torch.randn(V, 4, dtype=torch.float64)
    terms = chebyshev_basis(to_torch_sparse(L_sp, dtype=torch.float64), x, 4, symmetric=True)
    Ld = torch.from_numpy(L_sp.toarray())
    expected = [x, Ld @ x, 2 * Ld @ Ld @ x - x, 4 * Ld @ Ld @ Ld @ x - 3 * Ld @ x]  # T_k(L) x
    for t, e in zip(terms, expected):
        torch.testing.assert_close(t, e)
    assert L.dtype == torch.float32 and L.is_coalesced()


def test_to_torch_sparse_rejects_non_square():
    with pytest.raises(ValueError, match="square"):
        to_torch_sparse(sp.csr_matrix(np.ones((3, 4))))
