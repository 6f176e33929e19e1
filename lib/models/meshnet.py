"""MeshNet: the coarse-to-fine Chebyshev graph CNN that maps joints to mesh vertices.

Structure (the original release's ``models/meshnet.py``, parameter names and shapes unchanged):

- ``channels`` is a list of blocks, each a tuple of feature sizes ``(F_0, F_1, ..., F_n)``: the
  block runs ``n`` Chebyshev layers ``F_0 -> F_1 -> ... -> F_n`` on one graph level.
- Block 0 runs on the joint graph (the coarsest level); ``fc`` then maps its ``J * F_n``
  outputs to the first mesh level (``V_1 * F_0`` of block 1).
- Blocks 1 .. n-3 end with a residual (the block input, linearly interpolated along the
  *feature* axis to the block's output width, as the original) and a x2 nearest upsampling of
  the vertices; block n-2 ends with the residual only; the last block runs on the finest level
  and has no residual. Every layer has a BatchNorm and a ReLU except the very last one.
- Parameters: ``fc``, ``cl.N`` (one Linear per layer, ``Fin * K -> Fout``) and ``bn.N``
  (BatchNorm1d; the last slot holds None, so it has no state_dict entries).

Laplacians are registered once as non-persistent buffers (``laplacian_0_*`` finest ..., the
joint graph last; each sparse matrix as its dense parts, indices and values, because
(Distributed)DataParallel refuse sparse buffers): they follow ``.to(device)`` and never enter
the state_dict, so the keys are exactly the original's. ``laplacians`` here is the list the
original *uses*: the coarse graphs of ``build_coarse_graphs`` with their second-to-last level
(the coarsest mesh level, replaced by the joint graph) removed. :func:`get_model` takes the full
list, as the original did.

Padding ("fake") vertices of the coarsening are isolated in every Laplacian and each coarse
vertex feeds exactly its two children, so an evaluation path could drop, level by level, the
vertices whose descendants are all fake without changing any real vertex's output:
:meth:`MeshNet.set_padding_skip` switches that evaluation path on (off by default: the forward
computes every padded vertex, as the original).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .cheb_conv import cheb_conv, is_symmetric, sparse_from_parts, sparse_parts, to_torch_sparse

__all__ = ["MeshNet", "body_channel_plan", "hand_channel_plan", "channel_plan_for", "get_model"]

ChannelPlan = Tuple[Tuple[int, ...], ...]

# the original's hidden channels (first and last entries are replaced by the input/output widths)
_BODY_PLAN = ((None, 32, 64, 64), (64, 128, 256), (256, 256, 256), (256, 256, 256),
              (256, 256, 256), (256, 256, 256), (256, 128, 128),
              (128, 128, 128), (128, 128, 128), (128, 64, None))
_HAND_PLAN = ((None, 32, 64, 64), (64, 128, 256), (256, 256, 256), (256, 256, 256),
              (256, 256, 256), (256, 128, 128),
              (128, 64, None))


def _plan(template, in_channels: int, out_channels: int, divisor: int) -> ChannelPlan:
    if divisor < 1:
        raise ValueError(f"channel divisor must be >= 1, got {divisor}")
    blocks = []
    for bi, block in enumerate(template):
        sizes = []
        for ci, c in enumerate(block):
            if bi == 0 and ci == 0:
                sizes.append(in_channels)
            elif bi == len(template) - 1 and ci == len(block) - 1:
                sizes.append(out_channels)
            else:
                sizes.append(max(1, c // divisor))
        blocks.append(tuple(sizes))
    return tuple(blocks)


def body_channel_plan(in_channels: int = 5, out_channels: int = 3, divisor: int = 1) -> ChannelPlan:
    """The body MeshNet's channel plan (10 blocks, 9 graph levels), every hidden width divided
    by ``divisor`` (rounded down, at least 1; 1 = the original's plan)."""
    return _plan(_BODY_PLAN, in_channels, out_channels, divisor)


def hand_channel_plan(in_channels: int = 5, out_channels: int = 3, divisor: int = 1) -> ChannelPlan:
    """The hand MeshNet's channel plan (7 blocks, 6 graph levels); see :func:`body_channel_plan`."""
    return _plan(_HAND_PLAN, in_channels, out_channels, divisor)


def channel_plan_for(num_graphs: int, in_channels: int = 5, out_channels: int = 3, divisor: int = 1) -> ChannelPlan:
    """The channel plan for a ``build_coarse_graphs`` output of ``num_graphs`` Laplacians:
    10 (levels=9) is the body, 7 (levels=6) the hand."""
    if num_graphs == len(_BODY_PLAN):
        return body_channel_plan(in_channels, out_channels, divisor)
    if num_graphs == len(_HAND_PLAN):
        return hand_channel_plan(in_channels, out_channels, divisor)
    raise ValueError(f"MeshNet: got {num_graphs} graph Laplacians; expected {len(_BODY_PLAN)} for the body "
                     f"(build_coarse_graphs levels=9) or {len(_HAND_PLAN)} for the hand (levels=6)")


class MeshNet(nn.Module):
    """Joints (B x J x Fin) to padded, permuted mesh vertices (B x V_0 x Fout).

    Args:
        laplacians: rescaled Laplacians the network runs on, finest mesh level first, the joint
            graph last (``len(channels) - 1`` of them); scipy sparse matrices or torch tensors.
        channels: the channel plan, e.g. :func:`body_channel_plan`.
        cheb_order: Chebyshev order K of every layer (the original: 3), an int or one per block.
        sparse_layout: ``'coo'`` (fastest measured on CPU) or ``'csr'`` for the Laplacian buffers.
    """

    live_0: torch.Tensor  # a buffer while the padding skip is on (set_padding_skip)

    def __init__(self, laplacians: Sequence, channels: ChannelPlan, cheb_order=3, sparse_layout: str = "coo"):
        super().__init__()
        channels = tuple(tuple(int(c) for c in block) for block in channels)
        num_blocks = len(channels)
        if num_blocks < 3 or any(len(block) < 2 for block in channels):
            raise ValueError(f"MeshNet: a channel plan needs >= 3 blocks of >= 2 sizes, got {channels}")
        if len(laplacians) != num_blocks - 1:
            raise ValueError(f"MeshNet: {num_blocks} blocks need {num_blocks - 1} Laplacians "
                             f"(finest mesh level first, joint graph last), got {len(laplacians)}")
        one_order = bool(np.isscalar(cheb_order))
        self.cheb_order = tuple([int(cheb_order)] * num_blocks if one_order else cheb_order)
        if len(self.cheb_order) != num_blocks:
            raise ValueError(f"MeshNet: cheb_order has {len(self.cheb_order)} entries for {num_blocks} blocks")
        self.channels = channels
        self.in_channels = channels[0][0]
        self.out_channels = channels[-1][-1]
        self.num_levels = len(laplacians)

        self._sparse_sizes: Dict[str, Tuple[int, ...]] = {}  # name -> (rows, cols) of the sparse buffers
        for i, L in enumerate(laplacians):
            self._set_sparse(f"laplacian_{i}", to_torch_sparse(L, sparse_layout))
        self.sparse_layout = sparse_layout
        # symmetric Laplacians (all of build_coarse_graphs') take the faster backward
        self.symmetric_levels = tuple(is_symmetric(self.laplacian(i)) for i in range(self.num_levels))
        sizes = self.level_sizes
        # block i runs on level index level_of_block[i] of `laplacians`
        self.level_of_block = tuple(self.num_levels - 1 - i if i < num_blocks - 1 else 0
                                    for i in range(num_blocks))
        for i in range(1, num_blocks - 2):  # these blocks upsample x2 into the next block's level
            here, there = sizes[self.level_of_block[i]], sizes[self.level_of_block[i + 1]]
            if 2 * here != there:
                raise ValueError(f"MeshNet: block {i} runs on {here} vertices and upsamples x2, "
                                 f"but the next level has {there}: Laplacians out of order?")
        for i in range(num_blocks - 1):  # each block ends where the next begins
            if channels[i][-1] != channels[i + 1][0] and i != 0:
                raise ValueError(f"MeshNet: block {i} outputs {channels[i][-1]} channels, block {i + 1} "
                                 f"takes {channels[i + 1][0]}")

        self.fc = nn.Linear(sizes[-1] * channels[0][-1], sizes[-2] * channels[1][0])
        cl, bn = [], []
        for i, block in enumerate(channels):
            K = self.cheb_order[i]
            for j in range(len(block) - 1):
                fin, fout = K * block[j], block[j + 1]
                layer = nn.Linear(fin, fout)
                bound = float(np.sqrt(2.0 / (fin + fout)))  # the original's initialisation
                nn.init.uniform_(layer.weight, -bound, bound)
                nn.init.zeros_(layer.bias)
                cl.append(layer)
                last = i == num_blocks - 1 and j == len(block) - 2
                bn.append(None if last else nn.BatchNorm1d(fout))
        self.cl = nn.ModuleList(cl)
        self.bn = nn.ModuleList(bn)  # type: ignore[arg-type]  # None entries are allowed (add_module)

    @property
    def level_sizes(self) -> List[int]:
        """Vertex count of each Laplacian, finest first, the joint count last."""
        return [int(self._sparse_sizes[f"laplacian_{i}"][0]) for i in range(self.num_levels)]

    @property
    def num_joints(self) -> int:
        return self.level_sizes[-1]

    @property
    def num_vertices_padded(self) -> int:
        return self.level_sizes[0]

    def laplacian(self, level: int) -> torch.Tensor:
        """The sparse Laplacian of a level (0 finest; the joint graph last)."""
        return self._get_sparse(f"laplacian_{level}")

    def _set_sparse(self, name: str, matrix: Optional[torch.Tensor]) -> None:
        """Keep a sparse matrix as non-persistent dense buffers ``{name}_{part}`` (they follow
        ``.to()``, stay out of the state_dict, and work with (Distributed)DataParallel)."""
        for key in [k for k in self._buffers if k.startswith(name + "_")]:
            del self._buffers[key]
        self._sparse_sizes.pop(name, None)
        if matrix is None:
            return
        for part, value in sparse_parts(matrix).items():
            self.register_buffer(f"{name}_{part}", value, persistent=False)
        self._sparse_sizes[name] = tuple(matrix.shape)

    def _get_sparse(self, name: str) -> torch.Tensor:
        prefix = name + "_"
        parts = {k[len(prefix):]: v for k, v in self._buffers.items() if k.startswith(prefix) and v is not None}
        return sparse_from_parts(parts, self._sparse_sizes[name])

    def set_sparse_layout(self, layout: str) -> None:
        """Convert the Laplacian buffers to ``'coo'`` or ``'csr'`` (e.g. CSR on CUDA)."""
        for name in list(self._sparse_sizes):
            L = self._get_sparse(name)
            self._set_sparse(name, to_torch_sparse(L, layout, L.dtype).to(L.device))
        self.sparse_layout = layout

    def extra_repr(self) -> str:
        return (f"levels={self.level_sizes}, channels={self.channels}, K={self.cheb_order}, "
                f"sparse_layout={self.sparse_layout!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: B x J x Fin (Fin = 5: normalized 2D joints and lifted 3D joints / 1000).

        Returns: B x V_0 x Fout, the padded finest level in the coarsening's vertex order.
        """
        J = self.num_joints
        if x.dim() == 2:
            x = x.view(x.shape[0], J, self.in_channels)
        if x.dim() != 3 or x.shape[1] != J or x.shape[2] != self.in_channels:
            raise ValueError(f"MeshNet expects B x {J} x {self.in_channels} input, got {tuple(x.shape)}")
        B = x.shape[0]
        skip = self.skips_padding and not self.training
        x = x.transpose(0, 1).contiguous()  # J x B x Fin (vertex-major)
        num_blocks = len(self.channels)
        layer = 0
        # Upsampling x2 between blocks is deferred: `parent` maps each vertex of the next level to
        # its parent's row in the current `x` (vertex v feeds children 2v and 2v+1; with the
        # padding skip, the live vertices' parents among the live ones). The next block's first
        # layer applies it to its Fout-wide products (cheb_conv's `parent`) and the block's
        # residual to the block input, so the upsampled input is never materialised.
        parent = None
        for i, block in enumerate(self.channels):
            block_input, input_parent = x, parent
            level = self.level_of_block[i]
            L, symmetric = self.laplacian(level), self.symmetric_levels[level]
            if skip and i > 0:
                L = self._get_sparse(f"live_laplacian_{level}")
            for _ in range(len(block) - 1):
                linear = cast(nn.Linear, self.cl[layer])
                x = cheb_conv(x, L, linear, self.bn[layer], self.cheb_order[i], symmetric, parent=parent)
                parent = None
                if self.bn[layer] is not None:  # every layer but the last one
                    x = F.relu(x, inplace=True)  # x is a fresh layer output, saved by no backward
                layer += 1
            if i == 0:  # joints -> first mesh level
                x = self.fc(x.transpose(0, 1).reshape(B, -1))  # B x (V_1 * F)
                x = x.view(B, self.level_sizes[-2], self.channels[1][0]).transpose(0, 1)
                if skip:
                    x = x[getattr(self, f"live_{self.level_of_block[1]}")]
                x = x.contiguous()
            elif i < num_blocks - 1:
                residual = self._match_features(block_input, x.shape[2])
                if input_parent is not None:
                    residual = residual.index_select(0, input_parent)
                x = x + residual
                if i < num_blocks - 2 and skip:  # each live vertex copies its parent
                    parent = getattr(self, f"live_parent_{self.level_of_block[i + 1]}")
                elif i < num_blocks - 2:
                    parent = torch.arange(2 * x.shape[0], device=x.device) // 2
        if skip:
            full = x.new_zeros(self.num_vertices_padded, B, x.shape[2])
            full[self.live_0] = x
            x = full
        return x.transpose(0, 1).contiguous()  # B x V_0 x Fout

    @property
    def skips_padding(self) -> bool:
        return "live_0" in self._buffers

    def set_padding_skip(self, real_positions) -> None:
        """Evaluation fast path: compute only the vertices that lead to real mesh vertices.

        The coarsening pads every level with "fake" vertices that have no edges; a coarse vertex
        feeds exactly its two children. In evaluation mode (BatchNorm on running statistics,
        every operation row-wise or restricted to a vertex's neighbours) the real vertices'
        outputs do not depend on the fake ones, so each level keeps only the vertices with a real
        descendant. The forward then returns zeros at the skipped rows of the padded output and
        the same values as the full forward (to rounding) at the real ones. Training mode always
        runs the full graph (BatchNorm batch statistics include the fake rows, as the original).

        Args:
            real_positions: positions of the real vertices in the padded finest level,
                ``graph_perm_reverse[:num_vertices]``; None switches the fast path off.
        """
        for name in [n for n in self._buffers if n.startswith("live_")]:
            del self._buffers[name]
        for name in [n for n in self._sparse_sizes if n.startswith("live_")]:
            del self._sparse_sizes[name]
        if real_positions is None:
            return
        buffers, sparse = {}, {}  # registered only once every level checks out
        live = torch.unique(torch.as_tensor(np.asarray(real_positions), dtype=torch.long))
        V0 = self.num_vertices_padded
        if live.numel() == 0 or int(live.min()) < 0 or int(live.max()) >= V0:
            raise ValueError(f"set_padding_skip: positions must lie in [0, {V0}), got "
                             f"{live.numel()} positions in [{int(live.min()) if live.numel() else '-'}, "
                             f"{int(live.max()) if live.numel() else '-'}]")
        values = self._buffers["laplacian_0_values"]
        assert values is not None
        device = values.device
        coarsest = self.num_levels - 2  # the mesh level that fc maps into
        for level in range(coarsest + 1):
            L = self.laplacian(level)
            coo = (L.to_sparse_coo() if L.layout != torch.sparse_coo else L).coalesce().cpu()
            rows, cols = coo.indices()
            local = torch.full((L.shape[0],), -1, dtype=torch.long)
            local[live] = torch.arange(live.numel())
            keep = local[rows] >= 0
            if bool((local[cols[keep]] < 0).any()):
                raise ValueError(f"set_padding_skip: at level {level} ({L.shape[0]} vertices) a kept vertex "
                                 "has a skipped neighbour: the positions do not match this graph's padding")
            sub = torch.sparse_coo_tensor(torch.stack([local[rows[keep]], local[cols[keep]]]), coo.values()[keep],
                                          (live.numel(), live.numel()), check_invariants=True).coalesce()
            sub = to_torch_sparse(sub, self.sparse_layout, L.dtype).to(device)
            buffers[f"live_{level}"] = live.to(device)
            sparse[f"live_laplacian_{level}"] = sub
            parents = torch.unique(live // 2)
            if level < coarsest:  # index of each live vertex's parent among the next level's live ones
                buffers[f"live_parent_{level}"] = torch.searchsorted(parents, live // 2).to(device)
            live = parents
        for name, value in buffers.items():
            self.register_buffer(name, value, persistent=False)
        for name, value in sparse.items():
            self._set_sparse(name, value)

    @staticmethod
    def _match_features(x: torch.Tensor, size: int) -> torch.Tensor:
        """The residual path: linear interpolation along the feature axis (V x B x F -> size)."""
        if x.shape[2] == size:
            return x
        return F.interpolate(x, size=size, mode="linear")


def get_model(num_joint_input_chan: int, num_mesh_output_chan: int, graph_L: Sequence,
              channel_divisor: int = 1, sparse_layout: str = "coo") -> MeshNet:
    """MeshNet from the full ``build_coarse_graphs`` Laplacian list, as the original's
    ``meshnet.get_model``: body plan for 10 Laplacians, hand plan for 7. The second-to-last
    Laplacian (coarsest mesh level, unused) is dropped from a copy; ``graph_L`` is not changed."""
    plan = channel_plan_for(len(graph_L), num_joint_input_chan, num_mesh_output_chan, channel_divisor)
    used = list(graph_L[:-2]) + [graph_L[-1]]
    return MeshNet(used, plan, cheb_order=3, sparse_layout=sparse_layout)
