"""Every bench script that offers ``--smoke`` runs to the end and prints its table.

Smoke mode uses tiny sizes and one repeat: it catches breakage (an API change, a failed
equality assertion between our model and the original's formulation), not slowness. The
scripts run side by side in subprocesses, so the whole check takes about as long as the
slowest one (about 20 s on the shared 2-core machine).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


# scripts whose smoke run is a case of its own below (checked in more detail, run once)
OWN_CASE = {"bench_smoothing.py"}


def smoke_scripts():
    return sorted(p for p in BENCH.glob("bench_*.py") if '"--smoke"' in p.read_text() and p.name not in OWN_CASE)


def test_bench_scripts_smoke():
    scripts = smoke_scripts()
    assert {p.name for p in scripts} >= {"bench_model.py", "bench_memory.py", "bench_graph.py",
                                          "bench_train_wait.py", "bench_fitting.py"}
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    start = time.perf_counter()
    procs = {p.name: subprocess.Popen([sys.executable, str(p), "--smoke"], cwd=BENCH.parent, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for p in scripts}
    failures = []
    for name, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            failures.append(f"{name}: timed out\n{err[-1500:]}")
            continue
        if proc.returncode != 0:
            failures.append(f"{name}: exit {proc.returncode}\n{err[-1500:]}")
        elif "|---" not in out:
            failures.append(f"{name}: printed no table\n{out[-1500:]}")
    assert not failures, "\n\n".join(failures)
    print(f"bench smoke: {len(procs)} scripts in {time.perf_counter() - start:.1f} s")


def test_bench_smoothing_smoke():
    """bench_smoothing.py --smoke: synthetic motion through a tiny random-weight model; every row
    of its table is there with finite figures, and smoothing lowers the 2D input's acceleration."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, str(BENCH / "bench_smoothing.py"), "--smoke"], cwd=BENCH.parent, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-1500:]
    rows = {}
    for line in proc.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| noisy") or line.startswith("| ground-truth"):
            rows[cells[0]] = cells
    assert set(rows) == {"ground-truth 2D", "noisy, no smoothing", "noisy, 1€ forward (causal)",
                         "noisy, 1€ forward-backward, strength 1"}, proc.stdout
    for cells in rows.values():
        assert all(c not in ("nan", "inf") for c in cells), cells
    accel_2d = {name: float(cells[2]) for name, cells in rows.items()}
    assert accel_2d["ground-truth 2D"] == 0.0
    assert accel_2d["noisy, 1€ forward-backward, strength 1"] < accel_2d["noisy, no smoothing"]
    assert "# command: python bench/bench_smoothing.py --smoke" in proc.stdout
