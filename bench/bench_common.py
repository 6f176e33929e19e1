"""Shared helpers of the bench scripts: machine description, timing, the body model and graphs."""
from __future__ import annotations

import datetime
import os
import platform
import statistics
import time
from typing import Callable, Dict, List, Sequence

import numpy as np

# On a machine whose cores are shared (load above the core count), OpenMP threads that spin while
# waiting for a descheduled sibling make small operations up to ~80x slower (measured here: a
# batch-2 training step, 8 s with 2 spinning threads, 0.1 s with 1 thread or with passive
# waiting). Sleep instead of spinning unless the caller chose; set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def machine() -> str:
    """'AMD EPYC, 2 cores, torch 2.x, 16:05 UTC 2026-11-25' style one-liner (lscpu model name)."""
    import torch

    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        load = "load avg %.1f" % os.getloadavg()[0]
    except OSError:
        load = "load avg n/a"
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"{model}, {cores} cores, torch {torch.__version__}, {torch.get_num_threads()} torch threads, "
            f"{load}, {now}")


def set_threads(threads: int) -> int:
    """Torch intra-op threads: ``threads``, or (0) the cores this process may use."""
    import torch

    if threads <= 0:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(threads)
    return threads


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def interleaved(cases: Dict[str, Callable[[], object]], repeat: int, warmup: int = 1) -> Dict[str, float]:
    """Median seconds of each case, timed in turn (case A, case B, A, B, ...) so that a change in
    the machine's load hits every case alike."""
    for _ in range(warmup):
        for fn in cases.values():
            fn()
    times: Dict[str, List[float]] = {name: [] for name in cases}
    for _ in range(max(1, repeat)):
        for name, fn in cases.items():
            times[name].append(timed(fn))
    return {name: statistics.median(t) for name, t in times.items()}


def matmul_gflops(n: int = 2048, repeat: int = 5) -> float:
    """The machine's dense float32 matmul rate (GFLOP/s): median over ``repeat`` n x n products."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = statistics.median(timed(lambda: a @ b) for _ in range(repeat))
    return 2.0 * n ** 3 / t / 1e9


def body_graphs(joint_set: str = "human36", levels: int = 9, cache: bool = True):
    """(joint set, synthetic SMPL, build_coarse_graphs output) for the 6890-vertex synthetic body."""
    from pose2mesh.body_models import SMPL
    from pose2mesh.graph_utils import build_coarse_graphs
    from pose2mesh.joints import get_joint_set

    js = get_joint_set(joint_set)
    smpl = SMPL(synthetic=True)
    graphs = build_coarse_graphs(smpl.face, js.num_joints, js.skeleton, js.graph_pairs, levels=levels, cache=cache)
    return js, smpl, graphs


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (the bench README pastes it as printed)."""
    cells = [[str(c) for c in header]] + [[c if isinstance(c, str) else _fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        if v == 0 or not np.isfinite(v):
            return f"{v:g}"
        if abs(v) >= 100:
            return f"{v:,.0f}"
        if abs(v) >= 1:
            return f"{v:.2f}"
        return f"{v:.3g}"
    return str(v)
