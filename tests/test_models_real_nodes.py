"""MeshNet's padding-skip evaluation path on the real coarsened graphs (synthetic body and hand).

The coarsening pads every level with isolated "fake" vertices; at evaluation time
``MeshNet.set_padding_skip(graph_perm_reverse[:num_vertices])`` computes only the vertices that
lead to a real output vertex. These tests check, on the graphs the model really runs on, that
the vertices kept per level are exactly the ones the output needs (computed here independently,
backwards from the real vertices through each block's Chebyshev supports and the x2 upsampling),
and that the real vertices' outputs equal the full forward's.
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from pose2mesh.graph_utils import build_coarse_graphs
from pose2mesh.joints import get_joint_set
from pose2mesh.models import pose2mesh_net


def _graphs(body: str, tmp_path_factory):
    from pose2mesh.body_models import MANO, SMPL

    model = MANO(synthetic=True) if body == "hand" else SMPL(synthetic=True)
    js = get_joint_set("mano" if body == "hand" else "human36")
    levels = 6 if body == "hand" else 9
    cache = tmp_path_factory.mktemp(f"graphs_{body}")
    _, laps, perms, perm_reverse = build_coarse_graphs(model.face, js.num_joints, js.skeleton, js.graph_pairs,
                                                       levels=levels, cache_dir=cache)
    num_vertices = int(np.asarray(model.face).max()) + 1
    return js, laps, perms, np.asarray(perm_reverse), num_vertices


@pytest.fixture(scope="module", params=["body", "hand"])
def setup(request, tmp_path_factory):
    js, laps, perms, perm_reverse, num_vertices = _graphs(request.param, tmp_path_factory)
    torch.manual_seed(0)
    model = pose2mesh_net.get_model(js.num_joints, laps, hid_dim=32, channel_divisor=16)
    # BatchNorm running statistics away from (0, 1), so that they matter
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=gen))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=gen))
    return js, laps, perms, perm_reverse, num_vertices, model.eval()


def needed_vertices(mesh, laps_used, real):
    """Per level (finest first), the vertices a real output vertex depends on, walked backwards:
    within a block, ``(K - 1)`` hops per layer along the Laplacian's nonzeros; across an x2
    upsampling, vertex ``i`` reads its parent ``i // 2`` of the next coarser level."""
    need = {}
    cur = np.unique(real)
    num_blocks = len(mesh.channels)
    for i in range(num_blocks - 1, 0, -1):  # the joint block (0) and fc run in full
        level = mesh.level_of_block[i]
        reach = (sp.csr_matrix(laps_used[level]) != 0).astype(np.int8)
        for _ in range((mesh.cheb_order[i] - 1) * (len(mesh.channels[i]) - 1)):
            mask = np.zeros(reach.shape[0], bool)
            mask[cur] = True
            cur = np.flatnonzero(mask | (reach @ mask.astype(np.int8) > 0))
        need[level] = np.union1d(need.get(level, []), cur).astype(np.int64)
        if i > 1 and mesh.level_of_block[i - 1] != level:  # crossing the upsampling
            cur = np.unique(cur // 2)
    return need


def test_kept_vertices_are_exactly_those_the_output_needs(setup):
    js, laps, perms, perm_reverse, num_vertices, model = setup
    mesh = model.pose2mesh
    real = perm_reverse[:num_vertices]
    used = list(laps[:-2]) + [laps[-1]]
    need = needed_vertices(mesh, used, real)
    mesh.set_padding_skip(real)
    try:
        for level, vertices in need.items():
            kept = getattr(mesh, f"live_{level}").numpy()
            np.testing.assert_array_equal(kept, vertices, err_msg=f"level {level}")
            assert len(kept) < sp.csr_matrix(used[level]).shape[0], f"level {level}: nothing skipped"
        # the finest level keeps exactly the real vertices (e.g. 6890 of the body's padded level)
        assert len(need[0]) == num_vertices < mesh.num_vertices_padded
    finally:
        mesh.set_padding_skip(None)


@pytest.mark.cuda
@pytest.mark.parametrize("batch", [1, 3])
def test_real_vertices_equal_the_full_forward(setup, batch, device):
    js, laps, perms, perm_reverse, num_vertices, model = setup
    real = perm_reverse[:num_vertices]
    x = torch.randn(batch, js.num_joints, 2, generator=torch.Generator().manual_seed(batch)).to(device)
    with torch.no_grad():
        model.to(device)
        full, pose3d = model(x)
        model.pose2mesh.set_padding_skip(real)
        try:
            fast, fast_pose3d = model(x)
        finally:
            model.pose2mesh.set_padding_skip(None)
            model.cpu()
    assert fast.shape == full.shape
    # on CUDA the smaller products of the skip may take other GEMM kernels (another summation order)
    torch.testing.assert_close(fast[:, real], full[:, real], rtol=0, atol=1e-6 if device.type == "cpu" else 1e-5)
    torch.testing.assert_close(fast_pose3d, pose3d, rtol=0, atol=0)
    fake = np.setdiff1d(np.arange(full.shape[1]), real)
    assert fast[:, fake].abs().max() == 0


def test_training_mode_ignores_the_skip(setup):
    """Batch statistics include the fake rows (as the original), so training runs the full graph."""
    js, laps, perms, perm_reverse, num_vertices, model = setup
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(4, js.num_joints, 2, generator=torch.Generator().manual_seed(7))
    model.train()
    try:
        torch.manual_seed(3)
        ref, _ = model(x)
        model.pose2mesh.set_padding_skip(perm_reverse[:num_vertices])
        torch.manual_seed(3)
        out, _ = model(x)
    finally:
        model.pose2mesh.set_padding_skip(None)
        model.load_state_dict(state)
        model.eval()
    torch.testing.assert_close(out, ref, rtol=0, atol=0)


def test_bad_positions_are_refused(setup):
    js, laps, perms, perm_reverse, num_vertices, model = setup
    mesh = model.pose2mesh
    with pytest.raises(ValueError):
        mesh.set_padding_skip(np.array([mesh.num_vertices_padded]))
    with pytest.raises(ValueError):
        mesh.set_padding_skip(np.array([], dtype=np.int64))
    assert not mesh.skips_padding
