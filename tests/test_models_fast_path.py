"""The float32/float64 fast path of the Chebyshev layer: Clenshaw order, folded evaluation
BatchNorm, and the deferred x2 upsampling (``parent``), against the composed reference."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from pose2mesh.models.cheb_conv import _cheb_conv_composed, cheb_conv, to_torch_sparse
from test_models import random_laplacian


def _layer(Fin, Fout, K, with_bn, dtype, train):
    torch.manual_seed(1)
    linear = nn.Linear(Fin * K, Fout).to(dtype)
    bn = nn.BatchNorm1d(Fout).to(dtype) if with_bn else None
    if bn is not None:
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 1.5)
        bn.train(train)
    return linear, bn


@pytest.mark.parametrize("K", [1, 2, 3, 4])
@pytest.mark.parametrize("with_bn,train", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("upsample", [False, True])
@pytest.mark.cuda
def test_fast_path_equals_composed_float64(K, with_bn, train, upsample, device):
    V, B, Fin, Fout = 24, 3, 5, 4
    L = to_torch_sparse(random_laplacian(V, seed=2), dtype=torch.float64).to(device)
    linear, bn = _layer(Fin, Fout, K, with_bn, torch.float64, train)
    linear, bn = linear.to(device), bn.to(device) if bn is not None else None
    Vx = V // 2 if upsample else V
    parent = (torch.arange(V) // 2).to(device) if upsample else None
    x = torch.randn(Vx, B, Fin, dtype=torch.float64).to(device).requires_grad_()
    probe = torch.randn(V, B, Fout, dtype=torch.float64).to(device)
    params = [x, linear.weight, linear.bias] + ([bn.weight, bn.bias] if bn is not None else [])

    state = {k: v.clone() for k, v in bn.state_dict().items()} if bn is not None else None
    ref = _cheb_conv_composed(x.index_select(0, parent) if upsample else x, L, linear, bn, K, True)
    grads_ref = torch.autograd.grad((ref * probe).sum(), params)
    if bn is not None:
        bn.load_state_dict(state)
    out = cheb_conv(x, L, linear, bn, K, symmetric=True, parent=parent)
    grads = torch.autograd.grad((out * probe).sum(), params)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    for g, gr in zip(grads, grads_ref):
        torch.testing.assert_close(g, gr, rtol=1e-10, atol=1e-12)


def test_parent_index_is_checked():
    L = to_torch_sparse(random_laplacian(10, seed=1))
    linear = nn.Linear(3 * 2, 4)
    with pytest.raises(ValueError, match="parent"):
        cheb_conv(torch.randn(5, 1, 2), L, linear, None, 3, True, parent=torch.arange(8) // 2)
