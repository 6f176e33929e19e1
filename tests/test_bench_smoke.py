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


def smoke_scripts():
    return sorted(p for p in BENCH.glob("bench_*.py") if '"--smoke"' in p.read_text())


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
