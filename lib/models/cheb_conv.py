"""The Chebyshev spectral graph convolution of Pose2Mesh (Defferrard et al. 2016), as pure functions.

For a graph with rescaled Laplacian ``L`` (V x V) and features ``X`` (V x Fin), order ``K``:

    T_0 = X,   T_1 = L X,   T_k = 2 L T_{k-1} - T_{k-2}
    Y   = sum_{f, k} T_k[:, f] W[:, f * K + k] + b                      (V x Fout)

``W`` and ``b`` are those of one ``nn.Linear(Fin * K, Fout)`` whose input features are ordered
**Fin-major, K-minor** (feature ``f`` of order ``k`` is column ``f * K + k``), followed by an
optional ``BatchNorm1d(Fout)`` over all B * V rows. This is the layout of the released weights;
PyG's ``ChebConv`` keeps one Linear per order and cannot load them. Pose2Mesh's Laplacians are
rescaled as ``L / (2 lmax) - I`` (its code comment says ``2 L / lmax - I``), and the joint-graph
Laplacian of the coarsest level is not rescaled at all: this module takes ``L`` as given.

Layout. Features travel **vertex-major**, ``V x B x F`` (``B`` the batch), so that the sparse
products act on a free view ``V x (B * F)`` with no transpose and no concatenation.

Evaluation order (the float32 fast path, :class:`_ChebLinear`). The Linear is applied *first*:
``Z_k = X W_k`` (``W_k = W[:, k::K]``, one dense product per order), and the Chebyshev series is
then summed with Clenshaw's recurrence on the ``Fout``-wide results,

    b_{K-1} = Z_{K-1},   b_k = Z_k + 2 L b_{k+1} - b_{k+2},   Y = Z_0 + L b_1 - b_2 + bias,

which is ``sum_k T_k(L) X W_k``, the same linear map (for K = 3: ``Y = X (W_0 - W_2) + L (X W_1 +
2 L X W_2)``). Each sparse product accumulates in place into a dense product's output, so a layer
allocates K outputs and nothing else. The backward pass needs only ``X``: with a symmetric ``L``
(every graph Laplacian here) ``dX = sum_k T_k(L) dY W_k^T`` and ``dW_k = X^T T_k(L) dY``, i.e. the
Chebyshev terms of the ``Fout``-wide gradient, so the K Chebyshev terms of ``X`` are never stored
(about a third of the original's activation memory). In evaluation, a following BatchNorm on
running statistics is folded into ``W`` and ``b``. A layer that reads an x2-upsampled input takes
the coarse input and a ``parent`` index: the dense products run on the coarse rows and only their
``Fout``-wide results are upsampled (exact: the Linear acts row by row). Results equal the
original's stacked formulation to float32 rounding (float64: to 1e-12); the tests check both.
Speed and memory against the original's formulation: ``bench/README.md``. Under autocast, or
when ``x`` and ``L`` differ in dtype, the composed path below runs instead (:func:`chebyshev_basis`
then ``K`` products), whose dense products follow the ambient autocast.

Sparse products run in the Laplacian's dtype with autocast switched off (sparse kernels have no
bfloat16 path on every device); the dense products follow the ambient autocast, so
``torch.autocast('cuda', dtype=torch.bfloat16)`` around the model works.
"""
from __future__ import annotations

import warnings
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["to_torch_sparse", "sparse_parts", "sparse_from_parts", "is_symmetric", "chebyshev_basis", "cheb_conv",
           "SPARSE_LAYOUTS"]

# Measured on this project's CPU (torch 2.13, one thread, icosphere levels, (V x V) @ (V x B*Fin)
# with B*Fin = 1024..4096): COO and CSR products take the same time forward, COO is 5-10 % faster
# forward+backward, so COO is the default. On CUDA, CSR is cuSPARSE's native format (not measured
# here); MeshNet.set_sparse_layout('csr') switches.
SPARSE_LAYOUTS = ("coo", "csr")


def to_torch_sparse(matrix, layout: str = "coo", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A scipy sparse matrix (or a torch sparse / dense tensor, or a numpy array) as a torch
    sparse tensor of the given layout (``'coo'``, coalesced, or ``'csr'``) and dtype."""
    if layout not in SPARSE_LAYOUTS:
        raise ValueError(f"sparse layout {layout!r}: expected one of {', '.join(SPARSE_LAYOUTS)}")
    if isinstance(matrix, torch.Tensor):
        t = matrix.detach()
        if t.layout == torch.sparse_csr:
            t = t.to_sparse_coo()
        elif t.layout != torch.sparse_coo:
            t = t.to_sparse()
        t = t.to(dtype=dtype).coalesce()
    elif isinstance(matrix, np.ndarray):
        return to_torch_sparse(torch.from_numpy(matrix), layout, dtype)
    elif hasattr(matrix, "tocoo"):  # scipy.sparse matrix or array
        coo = matrix.tocoo()
        indices = torch.from_numpy(np.vstack((coo.row, coo.col)).astype(np.int64))
        values = torch.from_numpy(np.asarray(coo.data)).to(dtype)
        t = torch.sparse_coo_tensor(indices, values, tuple(coo.shape), check_invariants=True).coalesce()
    else:
        raise TypeError(f"expected a scipy sparse matrix or a torch tensor, got {type(matrix).__name__}")
    if t.dim() != 2 or t.shape[0] != t.shape[1]:
        raise ValueError(f"a graph Laplacian must be a square matrix, got shape {tuple(t.shape)}")
    if layout == "csr":
        with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return t.to_sparse_csr()
    return t


def sparse_parts(t: torch.Tensor) -> Dict[str, torch.Tensor]:
    """The dense tensors a sparse COO (coalesced) or CSR matrix is made of, by name: modules
    keep these as buffers (DataParallel and DistributedDataParallel refuse sparse buffers)."""
    if t.layout == torch.sparse_csr:
        return {"crow_indices": t.crow_indices(), "col_indices": t.col_indices(), "values": t.values()}
    if t.layout == torch.sparse_coo:
        t = t.coalesce()
        return {"indices": t.indices(), "values": t.values()}
    raise ValueError(f"expected a sparse COO or CSR tensor, got layout {t.layout}")


def sparse_from_parts(parts: Mapping[str, torch.Tensor], size: Tuple[int, ...]) -> torch.Tensor:
    """The sparse matrix back from :func:`sparse_parts` (a view: no data is copied)."""
    if "crow_indices" in parts:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return torch.sparse_csr_tensor(parts["crow_indices"], parts["col_indices"], parts["values"], size,
                                           check_invariants=False)
    # the parts were checked when the matrix was first built (to_torch_sparse)
    return torch.sparse_coo_tensor(parts["indices"], parts["values"], size, is_coalesced=True,
                                   check_invariants=False)


def is_symmetric(L: torch.Tensor, rtol: float = 1e-6) -> bool:
    """Whether a sparse square matrix equals its transpose up to ``rtol`` of its largest entry."""
    coo = L.to_sparse_coo() if L.layout != torch.sparse_coo else L
    coo = coo.coalesce()
    if coo._nnz() == 0:
        return True
    diff = (coo - coo.t()).coalesce().values()
    scale = coo.values().abs().max()
    return bool(diff.numel() == 0 or diff.abs().max() <= rtol * scale)


class _SymmetricSparseMM(torch.autograd.Function):
    """``alpha * L @ x + beta * prev`` for a symmetric sparse ``L`` whose backward multiplies by
    ``L`` again (``L^T = L``) instead of transposing it: 25-30 % faster forward+backward on CPU."""

    @staticmethod
    def forward(ctx, L, x, prev, alpha: float, beta: float):
        ctx.save_for_backward(L)
        ctx.alpha, ctx.beta, ctx.has_prev = alpha, beta, prev is not None
        if prev is None:
            out = torch.sparse.mm(L, x)
            return out.mul_(alpha) if alpha != 1.0 else out
        return torch.addmm(prev, L, x, beta=beta, alpha=alpha)

    @staticmethod
    def backward(ctx, grad):
        (L,) = ctx.saved_tensors
        grad_x = grad_prev = None
        if ctx.needs_input_grad[1]:
            grad_x = torch.sparse.mm(L, grad)
            if ctx.alpha != 1.0:
                grad_x = grad_x.mul_(ctx.alpha)
        if ctx.has_prev and ctx.needs_input_grad[2]:
            grad_prev = grad * ctx.beta
        return None, grad_x, grad_prev, None, None


def _sparse_mm(L: torch.Tensor, x: torch.Tensor, prev: Optional[torch.Tensor] = None, alpha: float = 1.0,
               beta: float = 0.0, symmetric: bool = False) -> torch.Tensor:
    """``alpha * L @ x (+ beta * prev)`` for sparse ``L`` (V x V), dense ``x``, ``prev`` (V x N),
    in ``L``'s dtype with autocast off."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        x = x.to(L.dtype)
        prev = None if prev is None else prev.to(L.dtype)
        if symmetric:
            return _SymmetricSparseMM.apply(L, x, prev, alpha, beta)
        if prev is None:
            out = torch.sparse.mm(L, x)
            return out * alpha if alpha != 1.0 else out
        return torch.addmm(prev, L, x, beta=beta, alpha=alpha)


def chebyshev_basis(L: torch.Tensor, x: torch.Tensor, K: int, symmetric: bool = False) -> List[torch.Tensor]:
    """The Chebyshev terms ``[T_0, ..., T_{K-1}]`` of ``x``, each V x N.

    Args:
        L: sparse rescaled Laplacian, V x V.
        x: dense features, V x N (any number of columns: batch and features flattened).
        K: Chebyshev order (number of terms), >= 1.
        symmetric: ``L`` is symmetric (every graph Laplacian here is): the backward pass then
            reuses ``L`` instead of its transpose.
    """
    if K < 1:
        raise ValueError(f"Chebyshev order K must be >= 1, got {K}")
    terms = [x]
    if K > 1:
        terms.append(_sparse_mm(L, x, symmetric=symmetric))
    for _ in range(2, K):  # T_k = 2 L T_{k-1} - T_{k-2}
        terms.append(_sparse_mm(L, terms[-1], terms[-2], alpha=2.0, beta=-1.0, symmetric=symmetric))
    return terms


class _ChebLinear(torch.autograd.Function):
    """``sum_k T_k(L) X W_k + b`` (float32 / float64, no autocast), see the module docstring.

    Inputs: ``x`` (Vx x B x Fin, contiguous), ``weight`` (Fout x Fin*K, Fin-major K-minor),
    ``bias`` (Fout or None), ``L`` and ``Lt`` (its transpose; ``L`` itself when symmetric), ``K``,
    ``parent`` (None: Vx = V; or a (V,) index: the layer's input at vertex ``v`` is
    ``x[parent[v]]``, a nearest upsampling from a coarser level, applied to the Fout-wide
    products ``X W_k`` instead of to ``X``, which is exact and saves the dense products on the
    duplicated rows). Output: V x B x Fout. Saves only ``x`` and ``weight`` for the backward pass.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, L, Lt, K: int, parent):
        Vx, B, Fin = x.shape
        V = L.shape[0]
        Fout = weight.shape[0]
        Wk = weight.detach().view(Fout, Fin, K).permute(2, 0, 1).contiguous()  # K x Fout x Fin
        X = x.reshape(Vx * B, Fin)
        folded = K == 3  # Y = X (W_0 - W_2) + L (X W_1 + 2 L X W_2): b_2 = Z_2 folds into Z_0
        W0 = Wk[0] - Wk[2] if folded else Wk[0]
        Y = torch.empty(V, B, Fout, dtype=x.dtype, device=x.device)  # returned as is: not a view
        Z0 = Y.view(V * B, Fout) if parent is None else torch.empty(Vx * B, Fout, dtype=x.dtype, device=x.device)
        if bias is not None:
            torch.addmm(bias, X, W0.t(), out=Z0)
        else:
            torch.mm(X, W0.t(), out=Z0)
        Z = [Z0] + [X @ Wk[k].t() for k in range(1, K)]
        if parent is not None:  # upsample the products, not the (wider or as wide) input
            torch.index_select(Z0.view(Vx, B * Fout), 0, parent, out=Y.view(V, B * Fout))
            Z = [Y] + [t.view(Vx, B * Fout).index_select(0, parent) for t in Z[1:]]
        z = [t.view(V, B * Fout) for t in Z]
        if K > 1:  # Clenshaw's recurrence, each sparse product accumulated in place
            b1, b2 = z[K - 1], None
            for k in range(K - 2, 0, -1):
                b = z[k].addmm_(L, b1, alpha=2.0)
                if b2 is not None:
                    b.sub_(b2)
                b1, b2 = b, b1
            z[0].addmm_(L, b1)
            if b2 is not None and not folded:
                z[0].sub_(b2)
        ctx.save_for_backward(x, weight, parent)
        ctx.Lt, ctx.K, ctx.has_bias = Lt, K, bias is not None
        return Y

    @staticmethod
    def backward(ctx, grad):
        x, weight, parent = ctx.saved_tensors
        Lt, K = ctx.Lt, ctx.K
        V, B, Fin = x.shape  # V: the input's vertices (the coarser level's with ``parent``)
        Fout = weight.shape[0]
        g = grad.reshape(grad.shape[0], B * Fout)  # the Chebyshev terms of the gradient, with L^T
        terms = [g]
        if K > 1:
            terms.append(torch.sparse.mm(Lt, g))
        for _ in range(2, K):
            terms.append(torch.neg(terms[-2]).addmm_(Lt, terms[-1], alpha=2.0))
        if parent is not None:  # the upsampling's adjoint: each vertex sums its children
            terms = [g.new_zeros(V, B * Fout).index_add_(0, parent, t) for t in terms]
        terms = [t.reshape(V * B, Fout) for t in terms]
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            Wk = weight.view(Fout, Fin, K).permute(2, 0, 1).contiguous()  # K x Fout x Fin
            grad_x = terms[0] @ Wk[0]
            for k in range(1, K):
                grad_x.addmm_(terms[k], Wk[k])
            grad_x = grad_x.view(V, B, Fin)
        if ctx.needs_input_grad[1]:
            X = x.reshape(V * B, Fin)
            grad_w = torch.stack([t.t() @ X for t in terms], dim=2).view(Fout, Fin * K)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = terms[0].sum(0)
        return grad_x, grad_w, grad_b, None, None, None, None


def _transpose(L: torch.Tensor) -> torch.Tensor:
    """``L^T`` in ``L``'s sparse layout."""
    coo = L.to_sparse_coo() if L.layout != torch.sparse_coo else L
    t = coo.t().coalesce()
    if L.layout == torch.sparse_csr:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return t.to_sparse_csr()
    return t


def _folded_batch_norm(linear: nn.Linear, bn: _BatchNorm) -> Tuple[torch.Tensor, torch.Tensor]:
    """The Linear's weight and bias with an evaluation-mode BatchNorm folded in:
    ``bn(linear(x)) = x W'^T + b'`` with ``W' = s W``, ``b' = s (b - mean) + beta``,
    ``s = gamma / sqrt(var + eps)``."""
    running_mean, running_var = bn.running_mean, bn.running_var
    assert running_mean is not None and running_var is not None  # see _bn_foldable
    scale = torch.rsqrt(running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    bias: torch.Tensor = linear.bias if linear.bias is not None else torch.zeros_like(running_mean)
    bias = (bias - running_mean) * scale
    if bn.bias is not None:
        bias = bias + bn.bias
    return linear.weight * scale[:, None], bias


def _bn_foldable(bn: _BatchNorm) -> bool:
    return not bn.training and bn.running_mean is not None and bn.running_var is not None


def cheb_conv(x: torch.Tensor, L: torch.Tensor, linear: nn.Linear, bn: Optional[nn.Module], K: int,
              symmetric: bool = False, parent: Optional[torch.Tensor] = None) -> torch.Tensor:
    """One Pose2Mesh graph-convolution layer: Chebyshev basis, one Linear, optional BatchNorm.

    Args:
        x: features, vertex-major, V x B x Fin (Vc x B x Fin with ``parent``).
        L: sparse rescaled Laplacian, V x V (COO or CSR).
        linear: ``nn.Linear(Fin * K, Fout)``, input features Fin-major, K-minor.
        bn: ``nn.BatchNorm1d(Fout)`` over the B * V rows, or None (the last layer).
        K: Chebyshev order.
        symmetric: ``L`` is symmetric (the backward pass then reuses ``L``; otherwise it builds
            ``L^T`` once per call).
        parent: optional (V,) long index into ``x``'s Vc vertices: the layer's input is
            ``x[parent]`` (nearest upsampling from a coarser level), which is never materialised.

    Returns:
        V x B x Fout.
    """
    V, B, Fin = x.shape
    Fout = linear.out_features
    if K < 1:
        raise ValueError(f"Chebyshev order K must be >= 1, got {K}")
    if linear.in_features != Fin * K:
        raise ValueError(f"cheb_conv: linear layer takes {linear.in_features} features, "
                         f"expected Fin * K = {Fin} * {K}")
    if parent is not None and parent.shape != (L.shape[0],):
        raise ValueError(f"cheb_conv: parent index has shape {tuple(parent.shape)}, the Laplacian {L.shape[0]} rows")
    if parent is None and L.shape[0] != V:
        raise ValueError(f"cheb_conv: Laplacian is {L.shape[0]} x {L.shape[1]}, features have {V} vertices")
    fast = (x.dtype == L.dtype == linear.weight.dtype and x.dtype in (torch.float32, torch.float64)
            and not torch.is_autocast_enabled(x.device.type))
    if not fast:
        if parent is not None:
            x = x.index_select(0, parent)
        return _cheb_conv_composed(x, L, linear, bn, K, symmetric)
    Lt = L if symmetric or K == 1 else _transpose(L)
    if isinstance(bn, _BatchNorm) and _bn_foldable(bn):
        weight, bias = _folded_batch_norm(linear, bn)
        return _ChebLinear.apply(x.contiguous(), weight, bias, L, Lt, K, parent)
    out = _ChebLinear.apply(x.contiguous(), linear.weight, linear.bias, L, Lt, K, parent)
    if bn is not None:
        out = bn(out.view(-1, Fout)).view(out.shape)
    return out


def _cheb_conv_composed(x: torch.Tensor, L: torch.Tensor, linear: nn.Linear, bn: Optional[nn.Module], K: int,
                        symmetric: bool) -> torch.Tensor:
    """:func:`cheb_conv` composed of autograd operations: the Chebyshev terms, then ``K`` dense
    products under the ambient autocast (used under autocast or mixed dtypes)."""
    V, B, Fin = x.shape
    Fout = linear.out_features
    terms = chebyshev_basis(L, x.reshape(V, B * Fin), K, symmetric)
    weight = linear.weight.view(Fout, Fin, K)  # Fout x Fin x K
    out = None
    for k, t in enumerate(terms):
        rows = t.reshape(V * B, Fin)  # V*B x Fin
        if out is None:
            out = torch.addmm(linear.bias, rows, weight[:, :, k].t()) if linear.bias is not None \
                else rows @ weight[:, :, k].t()
        else:
            out = torch.addmm(out, rows, weight[:, :, k].t())
    assert out is not None  # K >= 1 terms
    if bn is not None:
        out = bn(out)  # V*B x Fout
    return out.view(V, B, Fout)
