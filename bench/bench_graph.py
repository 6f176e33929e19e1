"""Graph building time on the 6890-vertex synthetic body (human36 joint graph, 9 levels).

    python bench/bench_graph.py [--repeat 3] [--original_dir /tmp/p2m_orig/lib --original_python /tmp/np124/bin/python] [--smoke]

Rows: ``build_coarse_graphs(..., cache=False)`` (the full coarsening, every call) and the cached
call (the on-disk cache, in a temporary folder, already written). Baseline: the original
release's own figure for this step (0.48 s, reported, not measured here) and, when a
transcription of the original's coarsening and a NumPy-1.24 interpreter are present (local
scratch copies given by the two flags, not part of the project), the transcription timed in a subprocess on
the same faces in the same run. Medians over ``--repeat``; ``--smoke``: one run each.
"""
from __future__ import annotations

from bench_common import body_graphs, machine, table, timed  # noqa: I001 (first: sets OMP_WAIT_POLICY)

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np

ORIGINAL_REPORTED_S = 0.48

_ORIGINAL_TIMER = r"""
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
from graph_utils import build_coarse_graphs
faces = np.load(sys.argv[2]); spec = json.load(open(sys.argv[3])); repeat = int(sys.argv[4])
times = []
for _ in range(repeat):
    t0 = time.perf_counter()
    build_coarse_graphs(faces, spec["joint_num"], spec["skeleton"], spec["flip_pairs"], levels=spec["levels"])
    times.append(time.perf_counter() - t0)
print(json.dumps({"times": times, "numpy": np.__version__}))
"""


def time_original(original_dir: str, python: str, faces: np.ndarray, js, levels: int, repeat: int):
    """Median seconds of the original's transcription, or None (with the reason) when absent."""
    if not (os.path.isfile(os.path.join(original_dir, "graph_utils.py")) and os.path.isfile(python)):
        return None, f"no transcription at {original_dir} / {python}"
    with tempfile.TemporaryDirectory() as tmp:
        np.save(os.path.join(tmp, "faces.npy"), faces)
        with open(os.path.join(tmp, "spec.json"), "w") as f:
            json.dump({"joint_num": js.num_joints, "skeleton": [list(p) for p in js.skeleton],
                       "flip_pairs": [list(p) for p in js.graph_pairs], "levels": levels}, f)
        with open(os.path.join(tmp, "timer.py"), "w") as f:
            f.write(_ORIGINAL_TIMER)
        out = subprocess.run([python, os.path.join(tmp, "timer.py"), original_dir, os.path.join(tmp, "faces.npy"),
                              os.path.join(tmp, "spec.json"), str(repeat)], capture_output=True, text=True)
    if out.returncode != 0:
        return None, "transcription failed: " + out.stderr.strip().splitlines()[-1]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return statistics.median(result["times"]), f"numpy {result['numpy']}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--levels", type=int, default=9)
    p.add_argument("--original_dir", default="/tmp/p2m_orig/lib")
    p.add_argument("--original_python", default="/tmp/np124/bin/python")
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args(argv)
    if args.smoke:
        args.repeat = 1

    from pose2mesh.graph_utils import build_coarse_graphs

    js, smpl, _ = body_graphs("human36", args.levels)
    faces = np.asarray(smpl.face)
    build = lambda **kw: build_coarse_graphs(faces, js.num_joints, js.skeleton, js.graph_pairs,  # noqa: E731
                                             levels=args.levels, **kw)
    print(f"# bench_graph: {machine()}")
    print(f"# command: python bench/bench_graph.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(f"# mesh: {int(faces.max()) + 1} vertices, {len(faces)} faces; {args.levels} levels")
    first = statistics.median(timed(lambda: build(cache=False)) for _ in range(args.repeat))
    with tempfile.TemporaryDirectory() as cache_dir:
        build(cache=True, cache_dir=cache_dir)
        cached = statistics.median(timed(lambda: build(cache=True, cache_dir=cache_dir))
                                   for _ in range(max(args.repeat, 5)))
    orig, note = (None, "skipped in --smoke") if args.smoke else time_original(
        args.original_dir, args.original_python, faces, js, args.levels, args.repeat)
    print(f"# original transcription: {note}")
    rows = [["original, reported by its authors", f"{ORIGINAL_REPORTED_S:.3f}", "-", "-"]]
    if orig is not None:
        rows.append(["original (transcription, measured here)", f"{orig:.3f}", "-", "-"])
    base = orig if orig is not None else ORIGINAL_REPORTED_S
    base_name = "measured original" if orig is not None else "reported original"
    for name, t in (("ours, build (cache=False)", first), ("ours, cached (disk)", cached)):
        rows.append([name, f"{t:.4f}", f"{base / t:.1f}x", base_name])
    print(table(["what", "seconds", "speed-up", "vs"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
