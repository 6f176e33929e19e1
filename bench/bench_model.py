"""Pose2Mesh speed on the 6890-vertex synthetic body: ours against the original's formulation.

    python bench/bench_model.py [--batch 16] [--eval_batches 1,64] [--repeat 2] [--threads 0] [--smoke]

The model is the full Pose2Mesh (PoseNet 4096 wide, the original MeshNet channel plan, K = 3) on
the synthetic body's graphs (human36 joint set, 9 coarsening levels), with random weights. The
baseline is the original release's forward (``original_formulation.py``: COO ``torch.sparse.mm``,
one ``torch.cat`` per Chebyshev order, the Laplacians moved to the device in every forward, its
permute / view sequence) run over *the same modules*, so both give the same outputs; the script
asserts it (evaluation: 1e-5 absolute; training mode: 1e-3 of the output's scale, since batch
statistics amplify float32 rounding) before timing. Cases, each timed interleaved with its
baseline (median of ``--repeat`` after one warm-up):

- ``train``: forward + backward in training mode (dropout, batch statistics) at ``--batch``;
- ``eval``: forward under ``torch.no_grad`` at each of ``--eval_batches``;
- ``eval, padding skipped``: the same with ``MeshNet.set_padding_skip`` (only the vertices that
  lead to the 6890 real ones); its output is asserted equal (1e-6) to the full forward's.

FLOPs are counted once, analytically: per Chebyshev layer ``2 B V Fin K Fout`` (the Linear) and
``(K - 1) 2 nnz B Fin`` (the sparse products), the ``fc`` layer and PoseNet's Linear layers;
training counts 3x the dense and 2x the sparse FLOPs. They are the model's (the original's)
FLOPs; ours computes fewer (sparse products on ``Fout``-wide terms, the dense products of the
layer after each x2 upsampling on the coarse rows, and with the padding skip only the vertices
that matter), so "GFLOP/s" is an *effective* rate: model FLOPs / our time, compared with the
machine's dense float32 matmul rate (2048 x 2048, measured before each case in the same run:
the machine is shared and its load changes).
``--smoke`` runs tiny sizes once, to catch breakage, not to time anything.
"""
from __future__ import annotations

import argparse
import sys

from bench_common import body_graphs, interleaved, machine, matmul_gflops, set_threads, table  # noqa: I001 (first)

import torch

from original_formulation import OriginalFormulation


def mesh_flops(mesh, batch: int, sizes=None, nnz=None) -> tuple:
    """(dense, sparse) forward FLOPs of a MeshNet at ``batch``; ``sizes`` / ``nnz`` per level
    override the Laplacians' (the padding-skip path)."""
    sizes = list(mesh.level_sizes) if sizes is None else sizes
    nnz = [int(mesh.laplacian(i)._nnz()) for i in range(mesh.num_levels)] if nnz is None else nnz
    dense = 2.0 * batch * mesh.fc.in_features * mesh.fc.out_features  # fc runs in full on every path
    sparse = 0.0
    for i, block in enumerate(mesh.channels):
        level, K = mesh.level_of_block[i], mesh.cheb_order[i]
        for fin, fout in zip(block[:-1], block[1:]):
            dense += 2.0 * batch * sizes[level] * fin * K * fout
            sparse += (K - 1) * 2.0 * nnz[level] * batch * fin
    return dense, sparse


def posenet_flops(posenet, batch: int) -> float:
    return sum(2.0 * batch * m.in_features * m.out_features for m in posenet.modules()
               if isinstance(m, torch.nn.Linear))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=16,
                   help="training batch (the original's formulation needs about 22 GB at 64: see README)")
    p.add_argument("--eval_batches", default="1,64")
    p.add_argument("--repeat", type=int, default=2, help="timed runs per case (median)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: the cores this process may use)")
    p.add_argument("--hid_dim", type=int, default=4096)
    p.add_argument("--divisor", type=int, default=1, help="MeshNet channel divisor (1 = the original)")
    p.add_argument("--no_baseline", action="store_true", help="time ours only")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, one run: for breakage, not timing")
    args = p.parse_args(argv)
    warmup = 1
    if args.smoke:
        args.batch, args.eval_batches, args.repeat, args.hid_dim, args.divisor = 2, "1,2", 1, 64, 16
        warmup = 0
    set_threads(args.threads)
    eval_batches = [int(b) for b in args.eval_batches.split(",") if b]

    from pose2mesh.models import pose2mesh_net

    js, smpl, (_, graph_L, _, perm_reverse) = body_graphs("human36")
    torch.manual_seed(0)
    model = pose2mesh_net.get_model(js.num_joints, graph_L, hid_dim=args.hid_dim, channel_divisor=args.divisor)
    mesh = model.pose2mesh
    real = perm_reverse[: int(smpl.face.max()) + 1]  # positions of the 6890 real vertices
    baseline = OriginalFormulation(model)
    print(f"# bench_model: {machine()}")
    print(f"# command: python bench/bench_model.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(f"# graph levels used: {mesh.level_sizes} vertices ({len(real)} real at the finest)")

    rows = []

    def row(case, batch, t_base, t_ours, flops):
        peak = matmul_gflops(512 if args.smoke else 2048, 1 if args.smoke else 3)  # the load changes: per case
        rate = flops / t_ours / 1e9
        rows.append([case, batch, 1e3 * t_base if t_base else "-", 1e3 * t_ours,
                     batch / t_base if t_base else "-", batch / t_ours,
                     f"{t_base / t_ours:.2f}x" if t_base else "-", rate, peak, f"{rate / peak:.1%}"])

    # --- training: forward + backward
    torch.manual_seed(1)
    x = torch.randn(args.batch, js.num_joints, 2)
    model.train()

    def step(net):
        def run():
            model.zero_grad(set_to_none=True)
            mesh_out, pose3d = net(x)
            (mesh_out.abs().mean() + pose3d.abs().mean()).backward()
        return run

    state = {k: v.clone() for k, v in model.state_dict().items()}
    if not args.no_baseline:
        torch.manual_seed(2)
        ours_out = model(x)[0].detach()
        torch.manual_seed(2)
        base_out = baseline(x)[0].detach()
        diff = float((ours_out - base_out).abs().max())
        assert diff <= 1e-3 * float(base_out.abs().max()), f"training-mode outputs differ by {diff}"
        print(f"# training mode: max |ours - original| = {diff:.2e} (output scale {float(base_out.abs().max()):.3f})")
    cases = {"ours": step(model)} if args.no_baseline else {"original": step(baseline), "ours": step(model)}
    t = interleaved(cases, args.repeat, warmup if args.batch < 16 else 0)  # long runs need no warm-up
    d, s = mesh_flops(mesh, args.batch)
    flops = 3 * (d + posenet_flops(model.pose_lifter, args.batch)) + 2 * s
    row("train fwd+bwd", args.batch, t.get("original"), t["ours"], flops)
    model.load_state_dict(state)  # undo the running-statistics updates

    # --- evaluation
    model.eval()
    max_diff, skip_diff = 0.0, 0.0
    for batch in eval_batches:
        torch.manual_seed(3)
        xe = torch.randn(batch, js.num_joints, 2)
        with torch.no_grad():
            full = model(xe)[0]
            if not args.no_baseline:
                max_diff = max(max_diff, float((full - baseline(xe)[0]).abs().max()))
                assert max_diff <= 1e-5, f"evaluation outputs differ from the original's by {max_diff}"
            cases = {"ours": lambda: model(xe)} if args.no_baseline else {"original": lambda: baseline(xe),
                                                                         "ours": lambda: model(xe)}
            t = interleaved(cases, args.repeat + (batch < 16), 0)  # the check above warmed up
            d, s = mesh_flops(mesh, batch)
            row("eval", batch, t.get("original"), t["ours"], d + s + posenet_flops(model.pose_lifter, batch))
            mesh.set_padding_skip(real)
            fast = model(xe)[0]
            skip_diff = max(skip_diff, float((fast[:, real] - full[:, real]).abs().max()))
            assert skip_diff <= 1e-6, f"padding-skip output differs by {skip_diff}"
            t_skip = interleaved({"skip": lambda: model(xe)}, args.repeat + (batch < 16), 0)["skip"]
            # the model's FLOPs (the full graph's): an effective rate, for comparison
            row("eval, padding skipped", batch, t.get("original"), t_skip,
                d + s + posenet_flops(model.pose_lifter, batch))
            mesh.set_padding_skip(None)
    if not args.no_baseline:
        print(f"# evaluation: max |ours - original| = {max_diff:.2e}; padding skip vs full (real vertices) "
              f"= {skip_diff:.2e}")
    print(table(["case", "batch", "original ms", "ours ms", "original samples/s", "ours samples/s",
                 "speed-up", "ours eff. GFLOP/s", "matmul GFLOP/s", "of matmul"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
